//! The bench's plots, drawn with `plotters` into SVG (a file of its own with `--plot`, and
//! inline in the HTML report):
//! - latency by percentile, on the usual "number of nines" scale (x = -log10(1 - p), so
//!   90%, 99%, 99.9% are evenly spaced and the tail is visible), bounded by the samples:
//!   with n latencies no percentile beyond 1 - 1/n is drawn;
//! - completions and errors per second of the run, with the last partial second scaled to
//!   a whole one (or left out when it is too short to say anything) so that the end of a
//!   run does not look like a collapse.

use plotters::prelude::*;

use super::BenchReport;

const WIDTH: u32 = 900;
const PANEL_HEIGHT: u32 = 340;
/// A last second shorter than this share of a second is left out of the time plot: it
/// holds too few completions to scale up honestly.
const SHORTEST_PARTIAL: f64 = 0.25;
const LATENCY_COLOR: RGBColor = RGBColor(31, 119, 180);
const COMPLETED_COLOR: RGBColor = RGBColor(44, 160, 44);
const ERROR_COLOR: RGBColor = RGBColor(214, 39, 40);

/// Both plots, one above the other, as one SVG document.
pub fn to_svg(report: &BenchReport) -> String {
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH, PANEL_HEIGHT * 2 + 40)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let title = format!(
            "{}: {:.0}/s, p50 {} ms, p99 {} ms",
            report.settings(),
            report.throughput,
            round_label(report.latency_ms.p50),
            round_label(report.latency_ms.p99),
        );
        let _ = root.draw(&Text::new(
            title,
            (20, 12),
            ("sans-serif", 16).into_font().color(&BLACK),
        ));
        let body = root.margin(40, 0, 0, 0);
        let (top, bottom) = body.split_vertically(PANEL_HEIGHT);
        draw_latency(&top, report);
        draw_timeline(&bottom, report);
        let _ = root.present();
    }
    svg
}

/// How many nines of percentile `n` samples support: with n samples the p-th percentile
/// for p > 1 - 1/n is the maximum, not a measurement.
pub fn nines_supported(samples: u64) -> f64 {
    if samples < 2 {
        0.0
    } else {
        (samples as f64).log10()
    }
}

/// "90%", "99%", "99.9%" for 1, 2, 3 nines; "0%" for none, "50%" and so on between.
fn percentile_label(nines: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-nines));
    let digits = if nines <= 1.0 {
        0
    } else {
        (nines.ceil() as usize).saturating_sub(2)
    };
    format!("{p:.digits$}%")
}

fn draw_latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    report: &BenchReport,
) {
    let points: Vec<(f64, f64)> = report
        .distribution
        .iter()
        .map(|(percentile, ms)| (-(1.0 - percentile / 100.0).max(1e-12).log10(), *ms))
        .collect();
    let x_max = points.last().map_or(1.0, |p| p.0).max(1.0);
    let y_max = nice_top(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let caption = format!(
        "latency by percentile ({} samples: drawn as far as they measure)",
        report.latency_ms.count
    );
    let axes = Axes {
        x_ticks: (x_max.floor() as usize + 1).max(2),
        x_label: &|x| percentile_label(*x),
        x_desc: "percentile",
        y_desc: "latency (ms)",
    };
    let Some(mut chart) = panel(area, &caption, (x_max, y_max), &axes) else {
        return;
    };
    let _ = chart.draw_series(LineSeries::new(points, LATENCY_COLOR.stroke_width(2)));
}

/// The per-second series to draw: second `s` of the load is drawn at s + 0.5; seconds of
/// the drain after the load are left out; a last partial second is scaled to a whole one,
/// or left out when shorter than `SHORTEST_PARTIAL`.
pub fn per_second(counts: &[u64], duration_s: f64) -> Vec<(f64, f64)> {
    let whole = duration_s.floor() as usize;
    let partial = duration_s - duration_s.floor();
    counts
        .iter()
        .enumerate()
        .filter_map(|(second, &count)| {
            let count = count as f64;
            if second < whole {
                Some((second as f64 + 0.5, count))
            } else if second == whole && partial >= SHORTEST_PARTIAL {
                Some((second as f64 + partial / 2.0, count / partial))
            } else {
                None
            }
        })
        .collect()
}

fn draw_timeline<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    report: &BenchReport,
) {
    let mut completed = per_second(&report.timeline, report.duration_s);
    let mut errors = per_second(&report.error_timeline, report.duration_s);
    // Every second of the load has a point, a second with nothing in it a zero.
    for series in [&mut completed, &mut errors] {
        let seconds = report.duration_s.floor() as usize;
        for second in 0..seconds {
            let x = second as f64 + 0.5;
            if !series.iter().any(|p| (p.0 - x).abs() < 1e-9) {
                series.push((x, 0.0));
            }
        }
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let x_max = report.duration_s.max(1.0);
    let top = completed
        .iter()
        .chain(&errors)
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let y_max = nice_top(top);
    let axes = Axes {
        x_ticks: (x_max.ceil() as usize + 1).clamp(2, 12),
        x_label: &|x| round_label(*x),
        x_desc: "seconds into the run",
        y_desc: "per second",
    };
    let caption = "completed and failed operations per second";
    let Some(mut chart) = panel(area, caption, (x_max, y_max), &axes) else {
        return;
    };
    if let Ok(series) = chart.draw_series(LineSeries::new(
        completed.clone(),
        COMPLETED_COLOR.stroke_width(2),
    )) {
        series.label("completed").legend(|(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], COMPLETED_COLOR.stroke_width(2))
        });
    }
    let _ = chart.draw_series(
        completed
            .iter()
            .map(|&p| Circle::new(p, 3, COMPLETED_COLOR.filled())),
    );
    let failed: u64 = report.error_timeline.iter().sum();
    if let Ok(series) =
        chart.draw_series(LineSeries::new(errors.clone(), ERROR_COLOR.stroke_width(2)))
    {
        series
            .label(format!(
                "failed ({failed} in all: error answers, timeouts, closed connections)"
            ))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], ERROR_COLOR.stroke_width(2))
            });
    }
    let _ = chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font(("sans-serif", 13))
        .draw();
}

/// How a panel's axes are labelled (the y axis always with [`round_label`]).
struct Axes<'a> {
    x_ticks: usize,
    x_label: &'a dyn Fn(&f64) -> String,
    x_desc: &'a str,
    y_desc: &'a str,
}

type Panel<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A captioned chart on `area` from 0 to `x_max` and `y_max`, its mesh drawn.
fn panel<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    (x_max, y_max): (f64, f64),
    axes: &Axes<'_>,
) -> Option<Panel<'a, DB>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .ok()?;
    let y_label = |y: &f64| round_label(*y);
    let _ = chart
        .configure_mesh()
        .x_labels(axes.x_ticks)
        .x_label_formatter(axes.x_label)
        .y_label_formatter(&y_label)
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .light_line_style(RGBColor(240, 240, 240))
        .draw();
    Some(chart)
}

/// The top of an axis that holds `max`: 1, 2, 2.5 or 5 times a power of ten, at or above it.
pub fn nice_top(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|top| *top >= max * 1.05)
        .unwrap_or(10.0 * magnitude)
}

/// A tick label with no more digits than it needs: "0", "0.5", "12", "2500", "0.02".
pub fn round_label(value: f64) -> String {
    let abs = value.abs();
    let digits = if abs == 0.0 || abs >= 10.0 {
        0
    } else if abs >= 1.0 {
        1
    } else {
        // Two significant digits below 1.
        (-(abs.log10().floor()) as usize) + 1
    };
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_rounded() {
        assert_eq!(round_label(0.0), "0");
        assert_eq!(round_label(5.0), "5");
        assert_eq!(round_label(5.1), "5.1");
        assert_eq!(round_label(10.13), "10");
        assert_eq!(round_label(0.5), "0.5");
        assert_eq!(round_label(0.025), "0.025");
        assert_eq!(round_label(2500.0), "2500");
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
    }

    #[test]
    fn axis_tops_are_round() {
        assert!((nice_top(10.1) - 20.0).abs() < 1e-9);
        assert!((nice_top(0.9) - 1.0).abs() < 1e-9);
        assert!((nice_top(2300.0) - 2500.0).abs() < 1e-9);
        assert!((nice_top(0.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_last_partial_second_is_scaled_or_left_out() {
        // 5 s of load; the drain's second 5 is not drawn.
        let drawn = per_second(&[10, 10, 10, 10, 10, 3], 5.0);
        assert_eq!(drawn.len(), 5);
        assert!(drawn.iter().all(|p| (p.1 - 10.0).abs() < 1e-9));
        // 4.5 s: the half second's 5 completions are 10 a second.
        let drawn = per_second(&[10, 10, 10, 10, 5], 4.5);
        assert_eq!(drawn.len(), 5);
        assert!((drawn[4].1 - 10.0).abs() < 1e-9);
        // 4.1 s: the last tenth is left out.
        assert_eq!(per_second(&[10, 10, 10, 10, 1], 4.1).len(), 4);
    }

    #[test]
    fn percentiles_are_bounded_by_the_samples() {
        assert!((nines_supported(1000) - 3.0).abs() < 1e-9);
        assert!(nines_supported(1) < 1e-9);
    }
}

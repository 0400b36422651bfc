//! The bench's SVG report, written by hand: latency by percentile (on the usual
//! 1/(1-p) scale, so the tail is visible) above completions per second over time.

use std::fmt::Write as _;

use super::BenchReport;
use crate::qa::report::xml_escape;

const WIDTH: f64 = 800.0;
const PANEL: f64 = 250.0;
const MARGIN: f64 = 60.0;

/// The whole SVG document for `report`.
pub fn to_svg(report: &BenchReport) -> String {
    let height = MARGIN * 3.0 + PANEL * 2.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let title = format!(
        "{:?} workload, {} users, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        report.workload,
        report.users,
        report.throughput,
        report.latency_ms.p50,
        report.latency_ms.p99,
        report.latency_ms.max
    );
    let _ = writeln!(
        svg,
        "<text x=\"{MARGIN}\" y=\"24\" font-size=\"14\">{}</text>",
        xml_escape(&title)
    );

    // Latency by percentile: x is k where p = 1 - 10^(-k/10), k = 0..40 (0% .. 99.99%).
    let points: Vec<(f64, f64)> = report
        .distribution
        .iter()
        .enumerate()
        .map(|(k, (_, ms))| (k as f64, *ms))
        .collect();
    let top = MARGIN;
    let max_ms = points.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001);
    panel(&mut svg, top, "latency (ms) by percentile", max_ms);
    let x_of = |k: f64| MARGIN + k / 40.0 * (WIDTH - 2.0 * MARGIN);
    for (k, label) in [
        (0.0, "0%"),
        (3.0, "50%"),
        (10.0, "90%"),
        (20.0, "99%"),
        (30.0, "99.9%"),
        (40.0, "99.99%"),
    ] {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            x_of(k),
            top + PANEL + 16.0
        );
    }
    polyline(
        &mut svg,
        points
            .iter()
            .map(|(k, ms)| (x_of(*k), top + PANEL - ms / max_ms * PANEL)),
        "#1f77b4",
    );

    // Throughput over time.
    let top = MARGIN * 2.0 + PANEL;
    let max_n = report.timeline.iter().copied().max().unwrap_or(0).max(1) as f64;
    panel(&mut svg, top, "completed per second", max_n);
    let seconds = report.timeline.len().max(2) as f64 - 1.0;
    let x_of = |s: f64| MARGIN + s / seconds * (WIDTH - 2.0 * MARGIN);
    polyline(
        &mut svg,
        report
            .timeline
            .iter()
            .enumerate()
            .map(|(s, n)| (x_of(s as f64), top + PANEL - *n as f64 / max_n * PANEL)),
        "#d62728",
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds (0 .. {})</text>",
        WIDTH / 2.0,
        top + PANEL + 16.0,
        seconds
    );
    svg.push_str("</svg>\n");
    svg
}

/// Axes, frame and a y-axis scale for a panel whose top edge is at `top`.
fn panel(svg: &mut String, top: f64, title: &str, max: f64) {
    let right = WIDTH - MARGIN;
    let _ = writeln!(svg, "<rect x=\"{MARGIN}\" y=\"{top}\" width=\"{}\" height=\"{PANEL}\" fill=\"none\" stroke=\"#888\"/>", right - MARGIN);
    let _ = writeln!(
        svg,
        "<text x=\"{MARGIN}\" y=\"{}\">{}</text>",
        top - 6.0,
        xml_escape(title)
    );
    for step in 0..=4 {
        let value = max * f64::from(step) / 4.0;
        let y = top + PANEL - PANEL * f64::from(step) / 4.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{MARGIN}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#eee\"/>"
        );
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            MARGIN - 4.0,
            y + 4.0,
            short(value)
        );
    }
}

fn polyline(svg: &mut String, points: impl Iterator<Item = (f64, f64)>, color: &str) {
    let coords: Vec<String> = points.map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
        coords.join(" ")
    );
}

fn short(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

//! One self-contained HTML page per QA run (`--report FILE` on `check`, `bench` and
//! `script`): the run's settings, the server's version, the results, and for `bench` the
//! plots inline (SVG), the thresholds and the server's own metrics. No script, no file
//! beside it, no font to fetch: it opens anywhere, attaches to a CI run, and prints (the
//! print style keeps tables and plots whole on their pages).
//!
//! Pure formatting: strings in, one string out. [`Page`] is the frame every report shares;
//! a new kind of report is a function that fills one.

use std::fmt::Write as _;

use super::bench::threshold::Verdict;
use super::bench::{self, BenchReport};
use super::report::{xml_escape as escape, CaseOutcome, Report};

/// The style of every report: plain, readable on screen and on paper.
const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif;
       color: #222; max-width: 1000px; margin: 2em auto; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
.verdict { font-size: 1.2em; font-weight: 600; padding: 0.6em 1em; border-radius: 6px; margin: 1em 0; }
.verdict.ok { background: #e6f4ea; color: #1e6b34; border: 1px solid #a8d5b5; }
.verdict.bad { background: #fce8e6; color: #a3241b; border: 1px solid #f1b5ae; }
.numbers { display: flex; flex-wrap: wrap; gap: 1em; margin: 1em 0; }
.number { border: 1px solid #ddd; border-radius: 6px; padding: 0.5em 1em; min-width: 8em; }
.number b { display: block; font-size: 1.4em; }
.number span { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { text-align: left; padding: 0.3em 0.6em; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1e6b34; font-weight: 600; }
.fail { color: #a3241b; font-weight: 700; }
.skip { color: #8a6d00; }
dl.settings { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1.2em; }
dl.settings dt { color: #666; }
dl.settings dd { margin: 0; font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 0.92em; }
.plot svg { max-width: 100%; height: auto; border: 1px solid #eee; }
footer { color: #888; font-size: 0.85em; margin-top: 3em; }
@media print {
  body { margin: 0; max-width: none; }
  h2, table, .plot, .numbers { page-break-inside: avoid; break-inside: avoid; }
  .verdict { border-width: 2px; }
}
";

/// The frame of a report: heading, verdict, settings, then sections of HTML.
pub struct Page {
    pub title: String,
    /// Under the title: what was tested, when.
    pub subtitle: String,
    /// Whether the run passed, and the sentence that says so.
    pub verdict: (bool, String),
    /// (name, value) pairs shown as given.
    pub settings: Vec<(String, String)>,
    /// Sections in order, each (heading, HTML body).
    pub sections: Vec<(String, String)>,
}

impl Page {
    /// The whole document.
    pub fn to_html(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>{}</h1>\n<p class=\"sub\">{}</p>\n",
            escape(&self.title),
            escape(&self.title),
            escape(&self.subtitle)
        );
        let (ok, sentence) = &self.verdict;
        let _ = writeln!(
            out,
            "<div class=\"verdict {}\">{}</div>",
            if *ok { "ok" } else { "bad" },
            escape(sentence)
        );
        for (heading, body) in &self.sections {
            let _ = writeln!(out, "<h2>{}</h2>\n{body}", escape(heading));
        }
        out.push_str("<h2>Settings</h2>\n<dl class=\"settings\">\n");
        for (name, value) in &self.settings {
            let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(value));
        }
        let _ = write!(
            out,
            "</dl>\n<footer>Made by rtm-tui {} on {} UTC.</footer>\n</body>\n</html>\n",
            env!("CARGO_PKG_VERSION"),
            utc_now()
        );
        out
    }
}

/// The page of a `check` or `script` run.
pub fn for_cases(report: &Report, what: &str, settings: Vec<(String, String)>) -> String {
    let failed = report.count(CaseOutcome::Fail);
    let verdict = if failed == 0 {
        (true, format!("Passed: {}", report.summary()))
    } else {
        (
            false,
            format!(
                "{failed} failed of {}: {}",
                report.cases.len(),
                report.summary()
            ),
        )
    };
    let mut table = String::from(
        "<table>\n<tr><th>result</th><th>case</th><th>rule</th><th>time</th><th>why</th></tr>\n",
    );
    // Failures first: they are what the reader came for.
    let mut cases: Vec<_> = report.cases.iter().collect();
    cases.sort_by_key(|c| match c.outcome {
        CaseOutcome::Fail => 0,
        CaseOutcome::Skip => 1,
        CaseOutcome::Pass => 2,
    });
    for case in cases {
        let class = match case.outcome {
            CaseOutcome::Pass => "pass",
            CaseOutcome::Fail => "fail",
            CaseOutcome::Skip => "skip",
        };
        let _ = writeln!(
            table,
            "<tr><td class=\"{class}\">{}</td><td><code>{}</code></td><td>{}</td>\
             <td class=\"num\">{:.2}s</td><td>{}</td></tr>",
            case.outcome.label(),
            escape(&case.name),
            escape(&case.rule),
            case.duration.as_secs_f64(),
            escape(case.reason.as_deref().unwrap_or(""))
        );
    }
    table.push_str("</table>\n");
    Page {
        title: format!("{what} report"),
        subtitle: format!("against {}", report.servers.join(", ")),
        verdict,
        settings,
        sections: vec![("Results".into(), table)],
    }
    .to_html()
}

/// The page of a `bench` run: headline numbers, thresholds, plots, errors, CPU and memory,
/// the server's metrics.
pub fn for_bench(
    report: &BenchReport,
    verdicts: &[Verdict],
    settings: Vec<(String, String)>,
) -> String {
    let missed = verdicts.iter().filter(|v| !v.met).count();
    let verdict = match (&report.stopped, missed) {
        (Some(stopped), _) => (false, capitalized(stopped)),
        (None, 0) if verdicts.is_empty() => (
            true,
            format!("Completed: {:.0} operations per second", report.throughput),
        ),
        (None, 0) => (true, format!("All {} thresholds met", verdicts.len())),
        (None, missed) => (
            false,
            format!("{missed} of {} thresholds missed", verdicts.len()),
        ),
    };
    let mut sections = Vec::new();
    let l = &report.latency_ms;
    let errors: u64 = report.errors.values().sum();
    let mut numbers = String::from("<div class=\"numbers\">\n");
    for (value, label) in [
        (
            format!("{:.0}/s", report.throughput),
            "throughput".to_string(),
        ),
        (
            format!("{} ms", bench::plot::round_label(l.p50)),
            "latency p50".into(),
        ),
        (
            format!("{} ms", bench::plot::round_label(l.p99)),
            "latency p99".into(),
        ),
        (
            format!("{} ms", bench::plot::round_label(l.max)),
            "latency max".into(),
        ),
        (
            format!("{}", report.completed),
            format!("completed of {} sent", report.sent),
        ),
        (format!("{errors}"), "errors".into()),
    ] {
        let _ = writeln!(
            numbers,
            "<div class=\"number\"><b>{}</b><span>{}</span></div>",
            escape(&value),
            escape(&label)
        );
    }
    numbers.push_str("</div>\n");
    sections.push(("Summary".to_string(), numbers));
    if !verdicts.is_empty() {
        let mut table =
            String::from("<table>\n<tr><th>threshold</th><th>measured</th><th>result</th></tr>\n");
        for v in verdicts {
            let _ = writeln!(
                table,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"{}\">{}</td></tr>",
                escape(&v.threshold.text),
                escape(&v.threshold.show(v.value)),
                if v.met { "pass" } else { "fail" },
                if v.met { "met" } else { "MISSED" }
            );
        }
        table.push_str("</table>\n");
        sections.push(("Thresholds".into(), table));
    }
    sections.push((
        "Latency and throughput".into(),
        format!(
            "<div class=\"plot\">{}</div>\n",
            strip_xml_declaration(&bench::to_svg(report))
        ),
    ));
    let mut details = format!(
        "<table>\n<tr><th>latency (ms)</th><td class=\"num\">p50 {:.3}</td><td class=\"num\">p90 {:.3}</td>\
         <td class=\"num\">p99 {:.3}</td><td class=\"num\">p99.9 {:.3}</td><td class=\"num\">max {:.3}</td>\
         <td class=\"num\">mean {:.3}</td></tr>\n</table>\n",
        l.p50, l.p90, l.p99, l.p999, l.max, l.mean
    );
    if !report.errors.is_empty() {
        details.push_str("<table>\n<tr><th>error</th><th>count</th></tr>\n");
        for (what, count) in &report.errors {
            let _ = writeln!(
                details,
                "<tr><td>{}</td><td class=\"num\">{count}</td></tr>",
                escape(what)
            );
        }
        details.push_str("</table>\n");
    }
    let us =
        |v: Option<f64>| v.map_or_else(|| "not measured".to_string(), |v| format!("{v:.2} µs"));
    let _ = writeln!(
        details,
        "<p>CPU time per completed operation ({} completed): server {}, load generator {}.</p>",
        report.completed,
        us(report.cpu.server_us_per_op),
        us(report.cpu.generator_us_per_op)
    );
    if let Some(m) = &report.memory {
        let _ = writeln!(
            details,
            "<p>Memory of {}: {} KiB at the start, {} KiB at the peak, {} KiB at the end ({}).</p>",
            escape(&m.what),
            m.start_kib,
            m.peak_kib,
            m.end_kib,
            escape(&m.per_user(report.users))
        );
    }
    sections.push(("Details".into(), details));
    for metrics in &report.server_metrics {
        let mut table = String::from(
            "<table>\n<tr><th>metric</th><th>before</th><th>after</th><th>change</th><th>meaning</th></tr>\n",
        );
        for (sample, before) in &metrics.samples {
            let change = match (before, sample.kind.as_deref()) {
                (Some(before), Some("counter")) => format!("{:+}", sample.value - before),
                _ => String::new(),
            };
            let _ = writeln!(
                table,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                escape(&sample.name),
                before.map(|b| b.to_string()).unwrap_or_default(),
                sample.value,
                change,
                escape(sample.help.as_deref().unwrap_or(""))
            );
        }
        table.push_str("</table>\n");
        sections.push((format!("Server metrics ({})", metrics.url), table));
    }
    Page {
        title: "bench report".into(),
        subtitle: format!(
            "{} against {}",
            report.settings(),
            report
                .servers
                .iter()
                .map(|s| s.url.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        verdict,
        settings,
        sections,
    }
    .to_html()
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// An SVG document as an element to inline in HTML.
fn strip_xml_declaration(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(at) => &svg[at..],
        None => svg,
    }
}

/// Now, as `2026-12-07 02:20`.
fn utc_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_794), (2026, 12, 7));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn a_case_page_escapes_and_lists_failures_first() {
        let report = Report {
            title: "rtm-check".into(),
            servers: vec!["ws://a/rtm/v1".into()],
            duration: std::time::Duration::from_secs(1),
            cases: vec![
                crate::qa::report::CaseReport {
                    name: "ok.case".into(),
                    rule: "a rule".into(),
                    outcome: CaseOutcome::Pass,
                    reason: None,
                    duration: std::time::Duration::ZERO,
                    placement: None,
                },
                crate::qa::report::CaseReport {
                    name: "bad.case".into(),
                    rule: "<b>rule</b>".into(),
                    outcome: CaseOutcome::Fail,
                    reason: Some("expected 0, got 5".into()),
                    duration: std::time::Duration::ZERO,
                    placement: None,
                },
            ],
        };
        let html = for_cases(
            &report,
            "check",
            vec![("server version".into(), "x".into())],
        );
        assert!(html.contains("&lt;b&gt;rule&lt;/b&gt;"));
        assert!(html.find("bad.case").unwrap() < html.find("ok.case").unwrap());
        assert!(html.contains("1 failed of 2"));
        assert!(html.contains("verdict bad"));
    }
}

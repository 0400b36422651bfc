//! Pass/fail budgets on a bench's results, as CI states them: `p99<50ms`, `errors==0`,
//! `throughput>=10000`. A [`Threshold`] parses from that text (`--threshold`, or the
//! config file's `[bench] thresholds` list), is judged against a
//! [`BenchReport`], and the verdicts become a
//! [`Report`] (one case per threshold) for the text table, JSON and
//! JUnit that `check` already writes. A new measure is a variant of [`Measure`].

use std::fmt;

use serde::Serialize;

use super::BenchReport;
use crate::qa::report::{CaseOutcome, CaseReport, Report};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    P50,
    P90,
    P99,
    P999,
    Max,
    Mean,
    /// Failed operations, counted.
    Errors,
    /// Failed operations per operation sent, as a fraction (`error_rate<0.01`) or a
    /// percentage (`error_rate<1%`).
    ErrorRate,
    /// Completed operations per second.
    Throughput,
    Completed,
}

impl Measure {
    /// Names as written; a name that begins another comes after it (`p99.9`, `p99`).
    const ALL: [(&'static str, Measure); 11] = [
        ("p50", Measure::P50),
        ("p90", Measure::P90),
        ("p99.9", Measure::P999),
        ("p999", Measure::P999),
        ("p99", Measure::P99),
        ("max", Measure::Max),
        ("mean", Measure::Mean),
        ("error_rate", Measure::ErrorRate),
        ("errors", Measure::Errors),
        ("throughput", Measure::Throughput),
        ("completed", Measure::Completed),
    ];

    fn is_latency(self) -> bool {
        matches!(
            self,
            Measure::P50
                | Measure::P90
                | Measure::P99
                | Measure::P999
                | Measure::Max
                | Measure::Mean
        )
    }

    /// The measured value: milliseconds for latencies, a fraction for the error rate.
    fn of(self, report: &BenchReport) -> f64 {
        let l = &report.latency_ms;
        let errors: u64 = report.errors.values().sum();
        match self {
            Measure::P50 => l.p50,
            Measure::P90 => l.p90,
            Measure::P99 => l.p99,
            Measure::P999 => l.p999,
            Measure::Max => l.max,
            Measure::Mean => l.mean,
            Measure::Errors => errors as f64,
            Measure::ErrorRate => errors as f64 / report.sent.max(1) as f64,
            Measure::Throughput => report.throughput,
            Measure::Completed => report.completed as f64,
        }
    }
}

/// How the measure is compared with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Comparison {
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">")]
    More,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "==")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
}

impl Comparison {
    /// Longest first, so that `<=` is not read as `<`.
    const ALL: [(&'static str, Comparison); 6] = [
        ("<=", Comparison::AtMost),
        (">=", Comparison::AtLeast),
        ("==", Comparison::Equal),
        ("!=", Comparison::NotEqual),
        ("<", Comparison::Less),
        (">", Comparison::More),
    ];

    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Comparison::Less => value < limit,
            Comparison::AtMost => value <= limit,
            Comparison::More => value > limit,
            Comparison::AtLeast => value >= limit,
            Comparison::Equal => (value - limit).abs() < 1e-9,
            Comparison::NotEqual => (value - limit).abs() >= 1e-9,
        }
    }
}

/// One budget: `measure comparison limit`, as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// The text it was parsed from, spaces removed (`p99<50ms`).
    pub text: String,
    pub measure: Measure,
    pub comparison: Comparison,
    /// In the measure's unit: milliseconds, a fraction, a count or a rate per second.
    pub limit: f64,
}

/// A threshold judged against a run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub threshold: Threshold,
    /// The measured value, in the threshold's unit.
    pub value: f64,
    pub met: bool,
}

impl std::str::FromStr for Threshold {
    type Err = String;

    /// `p99<50ms`, `p50 <= 2.5ms`, `max<1s`, `errors==0`, `error_rate<1%`,
    /// `throughput>=10000` (also `10k`, `10000/s`).
    fn from_str(typed: &str) -> Result<Self, String> {
        let text: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
        let lower = text.to_ascii_lowercase();
        let usage = || {
            format!(
                "cannot read the threshold {typed:?}: write MEASURE OP VALUE, as p99<50ms, \
                 errors==0, error_rate<1% or throughput>=10000 (measures: p50 p90 p99 p99.9 \
                 max mean errors error_rate throughput completed; OP: < <= > >= == !=)"
            )
        };
        let (name, measure) = Measure::ALL
            .iter()
            .find(|(name, _)| lower.starts_with(name))
            .copied()
            .ok_or_else(usage)?;
        let rest = &lower[name.len()..];
        let (op, comparison) = Comparison::ALL
            .iter()
            .find(|(op, _)| rest.starts_with(op))
            .copied()
            .ok_or_else(usage)?;
        let limit = parse_limit(measure, &rest[op.len()..]).ok_or_else(usage)?;
        Ok(Threshold {
            text,
            measure,
            comparison,
            limit,
        })
    }
}

/// A limit in the measure's unit: latencies in ms (`ms`, `s`, `us`/`µs` suffixes; bare
/// numbers are ms), the error rate as a fraction (or `%`), rates with an optional `/s`
/// and `k` suffix.
fn parse_limit(measure: Measure, text: &str) -> Option<f64> {
    let number = |t: &str| t.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
    if measure.is_latency() {
        for (suffix, factor) in [("ms", 1.0), ("µs", 1e-3), ("us", 1e-3), ("s", 1e3)] {
            if let Some(value) = text.strip_suffix(suffix) {
                return number(value).map(|v| v * factor);
            }
        }
        return number(text);
    }
    if measure == Measure::ErrorRate {
        if let Some(percent) = text.strip_suffix('%') {
            return number(percent).map(|v| v / 100.0);
        }
        return number(text);
    }
    let text = text.strip_suffix("/s").unwrap_or(text);
    match text.strip_suffix('k') {
        Some(thousands) => number(thousands).map(|v| v * 1000.0),
        None => number(text),
    }
}

impl Threshold {
    /// Judges the threshold against `report`.
    pub fn judge(&self, report: &BenchReport) -> Verdict {
        let value = self.measure.of(report);
        Verdict {
            threshold: self.clone(),
            value,
            met: self.comparison.holds(value, self.limit),
        }
    }

    /// `value` in this threshold's unit, as people read it (`48.2 ms`, `0.3%`, `12000/s`).
    pub fn show(&self, value: f64) -> String {
        match self.measure {
            m if m.is_latency() => format!("{value:.3} ms"),
            Measure::ErrorRate => format!("{:.3}%", value * 100.0),
            Measure::Throughput => format!("{value:.1}/s"),
            _ => format!("{value:.0}"),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Judges every threshold against `report`, in the order given.
pub fn judge_all(thresholds: &[Threshold], report: &BenchReport) -> Vec<Verdict> {
    thresholds.iter().map(|t| t.judge(report)).collect()
}

/// The verdicts as a [`Report`] of one case per threshold (`rtm-bench`): its text table,
/// JSON and JUnit are `check`'s.
pub fn as_report(verdicts: &[Verdict], servers: Vec<String>, seconds: f64) -> Report {
    Report {
        title: "rtm-bench".into(),
        servers,
        duration: std::time::Duration::from_secs_f64(seconds.max(0.0)),
        cases: verdicts
            .iter()
            .map(|v| CaseReport {
                name: v.threshold.text.clone(),
                rule: format!(
                    "{} measured {}",
                    v.threshold.text,
                    v.threshold.show(v.value)
                ),
                outcome: if v.met {
                    CaseOutcome::Pass
                } else {
                    CaseOutcome::Fail
                },
                reason: (!v.met).then(|| {
                    format!(
                        "missed: measured {}, the limit is {} {}",
                        v.threshold.show(v.value),
                        comparison_text(v.threshold.comparison),
                        v.threshold.show(v.threshold.limit)
                    )
                }),
                duration: std::time::Duration::ZERO,
                placement: None,
            })
            .collect(),
    }
}

fn comparison_text(comparison: Comparison) -> &'static str {
    match comparison {
        Comparison::Less => "<",
        Comparison::AtMost => "<=",
        Comparison::More => ">",
        Comparison::AtLeast => ">=",
        Comparison::Equal => "==",
        Comparison::NotEqual => "!=",
    }
}

/// A table of the verdicts: threshold, measured value, met or MISSED.
pub fn to_text(verdicts: &[Verdict]) -> String {
    use std::fmt::Write as _;
    let width = verdicts
        .iter()
        .map(|v| v.threshold.text.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let mut out = format!("{:<width$}  {:>14}  result\n", "threshold", "measured");
    for v in verdicts {
        let _ = writeln!(
            out,
            "{:<width$}  {:>14}  {}",
            v.threshold.text,
            v.threshold.show(v.value),
            if v.met { "met" } else { "MISSED" }
        );
    }
    let missed = verdicts.iter().filter(|v| !v.met).count();
    let _ = writeln!(
        out,
        "{} of {} thresholds met{}",
        verdicts.len() - missed,
        verdicts.len(),
        if missed > 0 { " (exit code 1)" } else { "" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Threshold {
        text.parse().unwrap()
    }

    #[test]
    fn reads_measures_units_and_operators() {
        let t = parse("p99<50ms");
        assert_eq!(
            (t.measure, t.comparison, t.limit),
            (Measure::P99, Comparison::Less, 50.0)
        );
        assert_eq!(parse("p99.9 <= 1s").measure, Measure::P999);
        assert!((parse("p99.9<=1s").limit - 1000.0).abs() < 1e-9);
        assert!((parse("p50<250us").limit - 0.25).abs() < 1e-9);
        assert_eq!(parse("errors==0").measure, Measure::Errors);
        assert!((parse("error_rate<1%").limit - 0.01).abs() < 1e-12);
        assert_eq!(parse("error_rate<0.5").measure, Measure::ErrorRate);
        let t = parse("throughput>=10k");
        assert_eq!((t.comparison, t.limit), (Comparison::AtLeast, 10_000.0));
        assert!((parse("throughput > 500/s").limit - 500.0).abs() < 1e-9);
        assert_eq!(parse("completed!=0").comparison, Comparison::NotEqual);
        for bad in [
            "p98<5ms", "p99", "p99<", "p99<fast", "errors=0", "p99<-1ms", "",
        ] {
            assert!(bad.parse::<Threshold>().is_err(), "{bad}");
        }
    }

    #[test]
    fn comparisons_hold_as_written() {
        assert!(Comparison::Less.holds(1.0, 2.0) && !Comparison::Less.holds(2.0, 2.0));
        assert!(Comparison::AtMost.holds(2.0, 2.0));
        assert!(Comparison::AtLeast.holds(2.0, 2.0) && !Comparison::More.holds(2.0, 2.0));
        assert!(Comparison::Equal.holds(0.0, 0.0) && Comparison::NotEqual.holds(1.0, 0.0));
    }
}

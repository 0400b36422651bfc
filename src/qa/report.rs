//! Results of QA runs as people and CI read them: a text table, JSON, or JUnit XML.
//!
//! `check` produces one [`CaseReport`] per case; `script` one per scenario. Formatting is
//! pure (strings in, strings out) so it is tested without a server. A new output format is
//! a new `to_*` method on [`Report`].

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseOutcome {
    Pass,
    Fail,
    Skip,
}

impl CaseOutcome {
    pub fn label(self) -> &'static str {
        match self {
            CaseOutcome::Pass => "pass",
            CaseOutcome::Fail => "FAIL",
            CaseOutcome::Skip => "skip",
        }
    }
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    pub name: String,
    /// The rule of docs/protocol.md the case checks, in a sentence.
    pub rule: String,
    pub outcome: CaseOutcome,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(serialize_with = "as_millis", rename = "duration_ms")]
    pub duration: Duration,
    /// In a run against several servers, which server each user of the case was on:
    /// `alice@1 bob@2` (servers numbered from 1 in [`Report::servers`]' order; a user who
    /// connected again lists each, `alice@1,2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Suite name (`rtm-check`, `rtm-script`).
    pub title: String,
    /// The server URLs tested: one, or the nodes of a cluster, in the order given.
    pub servers: Vec<String>,
    #[serde(serialize_with = "as_millis", rename = "duration_ms")]
    pub duration: Duration,
    pub cases: Vec<CaseReport>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Report {
    pub fn count(&self, outcome: CaseOutcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == outcome).count()
    }

    /// True when no case failed (skipped cases do not count against a run).
    pub fn passed(&self) -> bool {
        self.count(CaseOutcome::Fail) == 0
    }

    /// Process exit code: 0 when nothing failed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.passed())
    }

    /// A one-line summary: `58 passed, 1 failed, 3 skipped in 12.3s`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped in {:.1}s",
            self.count(CaseOutcome::Pass),
            self.count(CaseOutcome::Fail),
            self.count(CaseOutcome::Skip),
            self.duration.as_secs_f64()
        )
    }

    /// What was tested, for a heading: the URL, or the numbered list of several.
    fn against(&self) -> String {
        match self.servers.as_slice() {
            [one] => one.clone(),
            servers => {
                let mut out = format!(
                    "{} servers (the users of a case take turns; user@N was on server N):",
                    servers.len()
                );
                for (n, url) in servers.iter().enumerate() {
                    let _ = write!(out, "\n  {}  {url}", n + 1);
                }
                out
            }
        }
    }

    /// A table: status, case, time, where its users were (with several servers), and the
    /// reason for failures and skips.
    pub fn to_text(&self) -> String {
        let width = self
            .cases
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        // A placement column only when there is a choice of server.
        let placement_width = (self.servers.len() > 1).then(|| {
            self.cases
                .iter()
                .filter_map(|c| c.placement.as_deref().map(|p| placement_cell(p).len()))
                .max()
                .unwrap_or(0)
                .max("PLACEMENT".len())
        });
        let mut out = String::new();
        let _ = writeln!(out, "{} against {}", self.title, self.against());
        let _ = write!(out, "{:<6} {:<width$} {:>7}  ", "STATUS", "CASE", "TIME");
        if let Some(placed) = placement_width {
            let _ = write!(out, "{:<placed$}  ", "PLACEMENT");
        }
        let _ = writeln!(out, "REASON");
        for case in &self.cases {
            let reason = case.reason.as_deref().unwrap_or("");
            let _ = write!(
                out,
                "{:<6} {:<width$} {:>6.2}s  ",
                case.outcome.label(),
                case.name,
                case.duration.as_secs_f64(),
            );
            if let Some(placed) = placement_width {
                let cell = placement_cell(case.placement.as_deref().unwrap_or(""));
                let _ = write!(out, "{cell:<placed$}  ");
            }
            let _ = writeln!(out, "{}", reason.replace('\n', " "));
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    /// The report as pretty JSON, with counts (and every case's whole placement).
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["passed"] = self.count(CaseOutcome::Pass).into();
        value["failed"] = self.count(CaseOutcome::Fail).into();
        value["skipped"] = self.count(CaseOutcome::Skip).into();
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }

    /// JUnit XML as CI systems read it: one testcase per case, classname from its prefix.
    pub fn to_junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            xml_escape(&self.title),
            self.cases.len(),
            self.count(CaseOutcome::Fail),
            self.count(CaseOutcome::Skip),
            self.duration.as_secs_f64()
        );
        out.push_str("  <properties>");
        for url in &self.servers {
            let _ = write!(
                out,
                "<property name=\"server\" value=\"{}\"/>",
                xml_escape(url)
            );
        }
        out.push_str("</properties>\n");
        for case in &self.cases {
            let class = case.name.split('.').next().unwrap_or(&case.name);
            let _ = write!(
                out,
                "  <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\">",
                xml_escape(&self.title),
                xml_escape(class),
                xml_escape(&case.name),
                case.duration.as_secs_f64()
            );
            if let Some(placement) = &case.placement {
                let _ = write!(
                    out,
                    "<properties><property name=\"placement\" value=\"{}\"/></properties>",
                    xml_escape(placement)
                );
            }
            let reason = xml_escape(case.reason.as_deref().unwrap_or(""));
            match case.outcome {
                CaseOutcome::Pass => {}
                CaseOutcome::Fail => {
                    let _ = write!(
                        out,
                        "<failure message=\"{reason}\">{}</failure>",
                        xml_escape(&case.rule)
                    );
                }
                CaseOutcome::Skip => {
                    let _ = write!(out, "<skipped message=\"{reason}\"/>");
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("</testsuite></testsuites>\n");
        out
    }
}

/// Escapes text for XML attributes and content.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Users a text table's placement cell names at most; a case with more (one with
/// hundreds of members) names the first ones and counts the rest, which the JSON and
/// JUnit reports list whole.
const PLACEMENT_CELL_USERS: usize = 4;

/// A case's placement as the text table shows it: see [`PLACEMENT_CELL_USERS`].
fn placement_cell(placement: &str) -> std::borrow::Cow<'_, str> {
    let users: Vec<&str> = placement.split_whitespace().collect();
    if users.len() <= PLACEMENT_CELL_USERS {
        return std::borrow::Cow::Borrowed(placement);
    }
    let shown = users[..PLACEMENT_CELL_USERS].join(" ");
    let more = users.len() - PLACEMENT_CELL_USERS;
    std::borrow::Cow::Owned(format!("{shown} +{more} more"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_placement_is_cut_in_the_table_only() {
        let many: Vec<String> = (1..=500).map(|i| format!("m{i}@{}", i % 2 + 1)).collect();
        let mut report = two_servers();
        report.cases[0].placement = Some(many.join(" "));
        let text = report.to_text();
        assert!(text.contains("m1@2 m2@1 m3@2 m4@1 +496 more  "), "{text}");
        assert!(text.lines().all(|line| line.len() < 200), "{text}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["cases"][0]["placement"], many.join(" "));
        assert_eq!(placement_cell("alice@1 bob@2"), "alice@1 bob@2");
    }

    fn sample() -> Report {
        let case = |name: &str, outcome, reason: Option<&str>| CaseReport {
            name: name.into(),
            rule: "a rule".into(),
            outcome,
            reason: reason.map(Into::into),
            duration: Duration::from_millis(12),
            placement: None,
        };
        Report {
            title: "rtm-check".into(),
            servers: vec!["ws://x/rtm/v1".into()],
            duration: Duration::from_millis(1500),
            cases: vec![
                case("peer.ok", CaseOutcome::Pass, None),
                case(
                    "peer.bad",
                    CaseOutcome::Fail,
                    Some("expected code 3, got 0 <\"x\">"),
                ),
                case("token.expiry", CaseOutcome::Skip, Some("needs --token-cmd")),
            ],
        }
    }

    #[test]
    fn text_table_lists_every_case_with_reasons() {
        let text = sample().to_text();
        assert!(text.contains("FAIL   peer.bad"));
        assert!(text.contains("expected code 3, got 0"));
        assert!(text.contains("skip   token.expiry"));
        assert!(text.ends_with("1 passed, 1 failed, 1 skipped in 1.5s\n"));
        assert!(text.starts_with("rtm-check against ws://x/rtm/v1\nSTATUS"));
        assert!(!text.contains("PLACEMENT"));
        assert_eq!(sample().exit_code(), 1);
    }

    /// Against several servers the heading numbers them, and every case says where its
    /// users were, in each format.
    fn two_servers() -> Report {
        let mut report = sample();
        report.servers = vec!["ws://a/rtm/v1".into(), "ws://b/rtm/v1".into()];
        for case in &mut report.cases {
            case.placement = Some("alice@1 bob@2".into());
        }
        report
    }

    #[test]
    fn text_names_each_server_and_where_users_were() {
        let text = two_servers().to_text();
        assert!(
            text.starts_with(
                "rtm-check against 2 servers (the users of a case take turns; user@N was on server N):\n  1  ws://a/rtm/v1\n  2  ws://b/rtm/v1\n"
            ),
            "{text}"
        );
        assert!(text.contains("PLACEMENT      REASON"), "{text}");
        assert!(
            text.contains("alice@1 bob@2  expected code 3, got 0"),
            "{text}"
        );
    }

    #[test]
    fn json_and_junit_name_each_server_and_where_users_were() {
        let report = two_servers();
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            json["servers"],
            serde_json::json!(["ws://a/rtm/v1", "ws://b/rtm/v1"])
        );
        assert_eq!(json["cases"][0]["placement"], "alice@1 bob@2");
        let junit = report.to_junit();
        assert!(
            junit.contains("<properties><property name=\"server\" value=\"ws://a/rtm/v1\"/><property name=\"server\" value=\"ws://b/rtm/v1\"/></properties>"),
            "{junit}"
        );
        assert!(
            junit.contains("<property name=\"placement\" value=\"alice@1 bob@2\"/>"),
            "{junit}"
        );
        // One server: no placement anywhere.
        let single: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert!(single["cases"][0].get("placement").is_none());
    }

    #[test]
    fn json_and_junit_carry_counts_and_escape() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(json["failed"], 1);
        assert_eq!(json["cases"][1]["outcome"], "fail");
        assert_eq!(json["cases"][0]["duration_ms"], 12);
        let junit = sample().to_junit();
        assert!(junit.contains("tests=\"3\" failures=\"1\" skipped=\"1\""));
        assert!(
            junit.contains("<failure message=\"expected code 3, got 0 &lt;&quot;x&quot;&gt;\">")
        );
        assert!(junit.contains("classname=\"rtm-check.token\""));
    }
}

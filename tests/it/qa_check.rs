//! `rtm-tui check` against our real server on a free port: every case passes (with the
//! server's timers shortened and the suite told so), and the command's exit codes.

use std::time::Duration;

use crate::support;
use rtm::qa::check::{self, CheckConfig, Timing};
use rtm::qa::report::CaseOutcome;
use rtm::server::Config;

/// A server config whose timers are short enough that the timer cases run in seconds.
pub fn short_timers() -> Config {
    let mut config = Config::ephemeral();
    // The REST API's key, so that the rest.* cases run too (`API_KEY`).
    config.api_keys = vec![API_KEY.parse().expect("KEY:SECRET")];
    config.ack_timeout = Duration::from_millis(800);
    config.grace = Duration::from_millis(1500);
    config.invitation_timeout = Duration::from_millis(1500);
    config.token_warning = Duration::from_secs(2);
    config.channel_attributes_ttl = Duration::from_millis(1500);
    config.media_expiry = Duration::from_millis(1500);
    config
}

/// The key of `short_timers`' REST API, as `check --api-key` takes it.
pub const API_KEY: &str = "qa:s3cret";

fn timing_of(config: &Config) -> Timing {
    Timing {
        ack_timeout: config.ack_timeout,
        grace: config.grace,
        invite_expiry: config.invitation_timeout,
        token_warning: config.token_warning,
        attribute_expiry: config.channel_attributes_ttl,
        media_expiry: config.media_expiry,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_against_our_server() {
    let config = short_timers();
    let timing = timing_of(&config);
    let server = support::start_server(config).await;
    let mut check = CheckConfig::new(server.url(), "qa-app");
    check.timing = timing;
    check.api_key = Some(API_KEY.into());
    check.filter = support::qa_filter();
    let report = check::run(check).await;
    let failed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.outcome == CaseOutcome::Fail)
        .map(|c| format!("{}: {}", c.name, c.reason.as_deref().unwrap_or("")))
        .collect();
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    let skipped: Vec<&str> = report
        .cases
        .iter()
        .filter(|c| c.outcome == CaseOutcome::Skip)
        .map(|c| c.name.as_str())
        .collect();
    // Only the token cases (this app has no certificate) and the restart case may skip.
    assert!(
        skipped.iter().all(|n| n.starts_with("login.")
            || n.starts_with("renew.")
            || n.contains("token")
            || *n == RESTART_CASE),
        "{skipped:?}"
    );
    server.shutdown().await;
}

/// Needs `--restart-cmd`, so it skips here; `qa_restart.rs` runs it with a real restart.
const RESTART_CASE: &str = "peer.offline.survives_restart";

const CERTIFIED_APP: &str = "0123456789abcdef0123456789abcdef";
const CERTIFICATE: &str = "fedcba9876543210fedcba9876543210";

/// With an app that has a certificate and `--token-cmd` minting tokens with our own
/// `rtm-tui token`, the token cases run too (none skipped) and every case passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_with_tokens() {
    let mut config = short_timers();
    config
        .apps
        .add_spec(&format!("{CERTIFIED_APP}:{CERTIFICATE}"));
    let timing = timing_of(&config);
    let server = support::start_server(config).await;
    let mut check = CheckConfig::new(server.url(), CERTIFIED_APP);
    check.timing = timing;
    check.api_key = Some(API_KEY.into());
    check.token_cmd = Some(format!(
        "{} token --app-id {CERTIFIED_APP} --certificate {CERTIFICATE} --expire \"$RTM_CHECK_EXPIRE\" --user",
        env!("CARGO_BIN_EXE_rtm-tui")
    ));
    check.filter = support::qa_filter();
    let report = check::run(check).await;
    let not_passed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.outcome != CaseOutcome::Pass && c.name != RESTART_CASE)
        .map(|c| {
            format!(
                "{} {}: {}",
                c.outcome.label(),
                c.name,
                c.reason.as_deref().unwrap_or("")
            )
        })
        .collect();
    assert!(
        not_passed.is_empty(),
        "cases not passed:\n{}",
        not_passed.join("\n")
    );
    server.shutdown().await;
}

/// How long `rtm-tui check` may run before it counts as hung.
const RUN_BOUND: Duration = Duration::from_secs(300);

/// `--server` given twice takes the multi-server path end to end (placement, report):
/// with the same server twice, the whole suite still passes, and the JSON report names
/// both servers and where each case's users were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_server_given_twice_passes_every_case() {
    let config = short_timers();
    let secs = |d: Duration| d.as_secs_f64().to_string();
    let timers = [
        ("--ack-timeout", secs(config.ack_timeout)),
        ("--grace", secs(config.grace)),
        ("--invite-expiry", secs(config.invitation_timeout)),
        ("--token-warning", secs(config.token_warning)),
        ("--attribute-expiry", secs(config.channel_attributes_ttl)),
    ];
    let server = support::start_server(config).await;
    let url = server.url();
    let mut args = vec![
        "check",
        "--server",
        &url,
        "--server",
        &url,
        "--api-key",
        API_KEY,
    ];
    for (flag, value) in &timers {
        args.extend([*flag, value.as_str()]);
    }
    let report = support::check_passes(&args, RUN_BOUND).await;
    let cases = report["cases"].as_array().expect("cases");
    assert_eq!(report["servers"], serde_json::json!([url, url]));
    assert!(cases.iter().all(|c| c["placement"].is_string()), "{report}");
    if support::qa_filter().is_none() {
        let placement = |name: &str| {
            cases
                .iter()
                .find(|c| c["name"] == name)
                .map(|c| c["placement"].clone())
        };
        // Two users: one on each server. The second login of a user: the other server.
        assert_eq!(
            placement("peer.send.received"),
            Some("alice@1 bob@2".into())
        );
        assert_eq!(placement("kick.remote_login"), Some("alice@1,2".into()));
    }
    server.shutdown().await;
}

/// Two independent servers share nothing, so a case whose users must meet shows that they
/// were put on different servers (alice's message to bob is unreachable: 3), while a case
/// with one user passes; the table names both servers and where the users were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_independent_servers_get_one_user_each() {
    let first = support::start_server(short_timers()).await;
    let second = support::start_server(short_timers()).await;
    let (a, b) = (first.url(), second.url());
    let check = |filter: &'static str| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let args = ["check", "--server", &a, "--server", &b, "--filter", filter];
            let run = support::rtm_tui(&args, RUN_BOUND).await;
            (
                run.status.code(),
                String::from_utf8_lossy(&run.stdout).into_owned(),
            )
        }
    };
    let row = |out: &str, name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"))
            .to_string()
    };

    let (code, out) = check("peer.send.received").await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(&format!(
            "rtm-check against 2 servers (the users of a case take turns; user@N was on server N):\n  1  {a}\n  2  {b}\n"
        )),
        "{out}"
    );
    let peer = row(&out, "peer.send.received");
    assert!(
        peer.starts_with("FAIL")
            && peer.contains(" alice@1 bob@2 ")
            && peer.contains("expected code 0, got 3"),
        "{peer}"
    );

    let (code, out) = check("ping.ok").await;
    assert_eq!(code, Some(0), "{out}");
    let ping = row(&out, "ping.ok");
    assert!(
        ping.starts_with("pass") && ping.contains(" alice@1 "),
        "{ping}"
    );
    first.shutdown().await;
    second.shutdown().await;
}

/// `check --list` keeps in step with docs/protocol.md: every op of its Operations table
/// and every event of its Events table is named by some case's rule (or name), and every
/// rate limit of its "Rate limits" rule has a case saying "more than N ... per T". A rule
/// added to the document without a case, or a case renamed away from its rule, fails here.
#[test]
fn check_list_names_every_rule_of_the_protocol() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md"))
        .expect("docs/protocol.md");
    let cases = check::all_cases();
    let listed: Vec<String> = cases
        .iter()
        .map(|c| format!("{} {}", c.name, c.rule))
        .collect();
    let words: std::collections::HashSet<&str> = listed
        .iter()
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .collect();
    let mut section = "";
    let mut missing = Vec::new();
    let mut named = 0;
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading;
        }
        let table = match section {
            "Operations" => "op",
            "Events" => "event",
            _ => continue,
        };
        let Some(first) = line
            .strip_prefix("| `")
            .map(|l| l.split('|').next().unwrap_or(""))
        else {
            continue;
        };
        for name in format!("`{first}").split('`').skip(1).step_by(2) {
            named += 1;
            if !words.contains(name) {
                missing.push(format!("{table} {name}"));
            }
        }
    }
    assert!(named > 40, "the tables were not read: {named} names");

    // "`get_members` 5 per 2 s" and the like, in the rate limits rule.
    let rates = doc
        .split("**Rate limits**")
        .nth(1)
        .and_then(|rest| rest.split("\n- **").next())
        .expect("a **Rate limits** rule");
    let rates = rates.replace('\n', " ").replace("per second", "per s");
    let listed = listed.join("\n").replace("per second", "per s");
    let words: Vec<&str> = rates.split_whitespace().collect();
    let mut limits = 0;
    for (i, window) in words.windows(3).enumerate() {
        if window[1] != "per" || window[0].parse::<u32>().is_err() {
            continue;
        }
        let period = if window[2].parse::<u32>().is_ok() {
            format!("{} {}", window[2], words.get(i + 3).unwrap_or(&""))
        } else {
            window[2].to_string()
        };
        let period = period.trim_end_matches([';', '.', ',']).to_string();
        limits += 1;
        let said = listed.lines().any(|rule| {
            rule.contains(&format!("more than {} ", window[0]))
                && rule.contains(&format!("per {period}"))
        });
        if !said {
            missing.push(format!("rate limit {} per {period}", window[0]));
        }
    }
    assert!(limits >= 8, "the rate limits were not read: {limits}");
    assert!(
        missing.is_empty(),
        "rules of docs/protocol.md that no case of `check --list` names:\n{}",
        missing.join("\n")
    );
}

/// Against a server without files and images (as a v1 server: `media_ticket` answered
/// 1), every media case skips, saying why; none fails.
#[tokio::test]
async fn media_cases_skip_on_a_server_without_media() {
    let config = rtm::server::Config {
        media: false,
        ..Config::ephemeral()
    };
    let server = support::start_server(config).await;
    let mut check = CheckConfig::new(server.url(), "qa-app");
    check.filter = Some("media.".into());
    let report = check::run(check).await;
    assert!(report.cases.len() >= 5, "{:?}", report.cases.len());
    for case in &report.cases {
        assert_eq!(
            case.outcome,
            CaseOutcome::Skip,
            "{}: {:?}",
            case.name,
            case.reason
        );
        let reason = case.reason.as_deref().unwrap_or_default();
        assert!(
            reason.starts_with("not supported"),
            "{}: {reason}",
            case.name
        );
    }
    server.shutdown().await;
}

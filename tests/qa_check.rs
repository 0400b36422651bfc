//! `rtm-tui check` against our real server on a free port: every case passes (with the
//! server's timers shortened and the suite told so), and the command's exit codes.

mod common;

use std::time::Duration;

use rtm::qa::check::{self, CheckConfig, Timing};
use rtm::qa::report::Outcome;
use rtm::server::Config;

/// A server config whose timers are short enough that the timer cases run in seconds.
pub fn short_timers() -> Config {
    let mut config = Config::ephemeral();
    config.ack_timeout = Duration::from_millis(800);
    config.grace = Duration::from_millis(1500);
    config.invitation_timeout = Duration::from_millis(1500);
    config.token_warning = Duration::from_secs(2);
    config
}

fn timing_of(config: &Config) -> Timing {
    Timing {
        ack_timeout: config.ack_timeout,
        grace: config.grace,
        invite_expiry: config.invitation_timeout,
        token_warning: config.token_warning,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_against_our_server() {
    let config = short_timers();
    let timing = timing_of(&config);
    let server = common::start_server(config).await;
    let mut check = CheckConfig::new(server.url(), "qa-app");
    check.timing = timing;
    check.filter = std::env::var("QA_FILTER").ok();
    let report = check::run(check).await;
    let failed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| format!("{}: {}", c.name, c.reason.as_deref().unwrap_or("")))
        .collect();
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    let skipped: Vec<&str> = report
        .cases
        .iter()
        .filter(|c| c.outcome == Outcome::Skip)
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
    let server = common::start_server(config).await;
    let mut check = CheckConfig::new(server.url(), CERTIFIED_APP);
    check.timing = timing;
    check.token_cmd = Some(format!(
        "{} token --app-id {CERTIFIED_APP} --certificate {CERTIFICATE} --expire \"$RTM_CHECK_EXPIRE\" --user",
        env!("CARGO_BIN_EXE_rtm-tui")
    ));
    check.filter = std::env::var("QA_FILTER").ok();
    let report = check::run(check).await;
    let not_passed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.outcome != Outcome::Pass && c.name != RESTART_CASE)
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

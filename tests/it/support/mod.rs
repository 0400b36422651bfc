//! Helpers shared by the integration tests: a real server on 127.0.0.1:0 here; the
//! submodules hold what a family of tests needs: [`raw`] (raw protocol JSON, the QA kit's
//! connection with expectations that panic), [`client`] (the client library's tests),
//! [`cluster`] (nodes on one Redis), [`server_process`] (`rtm-tui serve` as a child
//! process), [`tmux`] (the chat client in a real terminal), [`slow_proxy`] (a server
//! behind a slow link), [`shared_server`] (one server for many property cases, shared with
//! the fuzz target), [`token_builders`] (Agora's official token builders) and [`tui_app`]
//! (the chat client's state, logged in, shared with the TUI bench).
//!
//! Every wait has a timeout ([`WAIT`]); nothing sleeps "long enough".

pub mod client;
pub mod cluster;
pub mod raw;
pub mod server_process;
pub mod shared_server;
pub mod slow_proxy;
pub mod tmux;
pub mod token_builders;
pub mod tui_app;

use std::process::Output;
use std::time::Duration;

use rtm::server::{Config, RunningServer};
use serde_json::Value;

/// Longest wait for any expected reply, event or close.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts a server on 127.0.0.1:0 with `config`.
pub async fn start_server(config: Config) -> RunningServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    rtm::server::spawn(listener, config)
        .await
        .expect("server starts")
}

/// A config for tests: temporary store, docs/protocol.md's values otherwise.
pub fn test_config() -> Config {
    Config::ephemeral()
}

/// A text message body.
pub use rtm::qa::check::text;

/// Runs the `rtm-tui` binary with `args` to its end; a run longer than `bound` fails the
/// test rather than blocks it.
pub async fn rtm_tui(args: &[&str], bound: Duration) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(bound, run)
        .await
        .unwrap_or_else(|_| panic!("rtm-tui {} finishes within {bound:?}", args.join(" ")))
        .expect("rtm-tui runs")
}

/// The check cases a run is limited to (`QA_FILTER`, as `check --filter` takes it), for
/// trying one case of the suites that run them all.
pub fn qa_filter() -> Option<String> {
    std::env::var("QA_FILTER").ok()
}

/// Runs `rtm-tui check` with `args` and `--format json` (and `--filter` [`qa_filter`])
/// within `bound`; asserts that no case failed and that it exited 0, and returns the JSON
/// report.
pub async fn check_passes(args: &[&str], bound: Duration) -> Value {
    let filter = qa_filter();
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    if let Some(filter) = &filter {
        args.extend(["--filter", filter.as_str()]);
    }
    let run = rtm_tui(&args, bound).await;
    let report: Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON report ({e}): {}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        )
    });
    let failed: Vec<String> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["outcome"] == "fail")
        .map(|c| format!("{} [{}]: {}", c["name"], c["placement"], c["reason"]))
        .collect();
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    assert_eq!(run.status.code(), Some(0));
    report
}

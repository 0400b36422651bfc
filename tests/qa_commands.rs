//! The QA subcommands as a tester runs them: the real `rtm-tui` binary against our real
//! server on a free port, checking exit codes and what is printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rtm::server::Config;

const BIN: &str = env!("CARGO_BIN_EXE_rtm-tui");

/// Runs the binary with `args`, with a generous bound so a hang fails rather than blocks.
async fn rtm_tui(args: &[&str]) -> Output {
    let child = tokio::process::Command::new(BIN)
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("rtm-tui finishes within 120 s")
        .expect("rtm-tui runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/scenarios")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exit_codes_and_formats() {
    let server = common::start_server(Config::ephemeral()).await;
    let url = server.url();

    let ok = rtm_tui(&[
        "check",
        "--server",
        &url,
        "--filter",
        "channel.send",
        "--format",
        "junit",
    ])
    .await;
    let out = text(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{out}\n{}", text(&ok.stderr));
    assert!(
        out.contains("<testsuite name=\"rtm-check\" tests=\"5\" failures=\"0\""),
        "{out}"
    );
    assert!(out.contains("name=\"channel.send.no_echo\""), "{out}");

    let json = rtm_tui(&[
        "check", "--server", &url, "--filter", "frame.", "--format", "json",
    ])
    .await;
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["passed"].as_u64().unwrap() >= 8, "{report}");

    // An app id the server refuses makes every login fail: cases fail, exit 1, with reasons.
    let failing = rtm_tui(&[
        "check", "--server", &url, "--app-id", "bad app!", "--filter", "ping.ok",
    ])
    .await;
    let out = text(&failing.stdout);
    assert_eq!(failing.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL   ping.ok") && out.contains("expected code 0, got 4"),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 failed, 0 skipped"), "{out}");

    let none = rtm_tui(&["check", "--server", &url, "--filter", "no-such-case"]).await;
    assert_eq!(none.status.code(), Some(2));
    server.shutdown().await;

    let unreachable = rtm_tui(&["check", "--server", &url]).await;
    assert_eq!(unreachable.status.code(), Some(2));
    assert!(
        text(&unreachable.stderr).contains("cannot connect"),
        "{}",
        text(&unreachable.stderr)
    );
}

/// How the server branch answers ops it does not implement yet at this merge (see
/// qa_check.rs); a scenario stopped only by that is reported, not failed.
const NOT_YET: &str = "is not supported by this server yet";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_scenarios_pass() {
    let mut config = Config::ephemeral();
    config.grace = Duration::from_secs(5);
    let server = common::start_server(config).await;
    let url = server.url();
    let mut names: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("assets/scenarios")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rtm"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for path in names {
        let file = path.to_string_lossy().into_owned();
        let run = rtm_tui(&["script", &file, "--server", &url]).await;
        if text(&run.stdout).contains(NOT_YET) {
            eprintln!(
                "{file}: skipped, the server lacks an op: {}",
                text(&run.stdout)
            );
            continue;
        }
        assert_eq!(
            run.status.code(),
            Some(0),
            "{file}: {}{}",
            text(&run.stdout),
            text(&run.stderr)
        );
        assert!(
            text(&run.stdout).contains("passed"),
            "{}",
            text(&run.stdout)
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_errors_name_the_line() {
    let server = common::start_server(Config::ephemeral()).await;
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");

    let bad = dir.path().join("bad.rtm");
    std::fs::write(&bad, "users alice\nalice login\n\nalice fly away\n").unwrap();
    let run = rtm_tui(&["script", bad.to_str().unwrap(), "--server", &url]).await;
    assert_eq!(run.status.code(), Some(2));
    let err = text(&run.stderr);
    assert!(
        err.contains("bad.rtm:line 4: unknown verb \"fly\""),
        "{err}"
    );

    // A well-formed scenario whose expectation the server does not meet: exit 1, the line,
    // and (with --trace) the frames on stderr.
    let wrong = dir.path().join("wrong.rtm");
    std::fs::write(&wrong, "alice login\nalice send nobody hi -> 0\n").unwrap();
    let run = rtm_tui(&[
        "script",
        wrong.to_str().unwrap(),
        "--server",
        &url,
        "--trace",
    ])
    .await;
    assert_eq!(run.status.code(), Some(1));
    let out = text(&run.stdout);
    assert!(
        out.contains("line 2: alice: send_peer answered code 3"),
        "{out}"
    );
    let trace = text(&run.stderr);
    assert!(trace.contains("alice -> {\"op\":\"login\""), "{trace}");
    assert!(trace.contains("alice <- {\"id\":2,\"code\":3"), "{trace}");

    let missing = rtm_tui(&["script", "/nonexistent.rtm", "--server", &url]).await;
    assert_eq!(missing.status.code(), Some(2));
    server.shutdown().await;

    std::fs::write(&wrong, "alice login\n").unwrap();
    let unreachable = rtm_tui(&["script", wrong.to_str().unwrap(), "--server", &url]).await;
    assert_eq!(
        unreachable.status.code(),
        Some(2),
        "{}",
        text(&unreachable.stdout)
    );
}

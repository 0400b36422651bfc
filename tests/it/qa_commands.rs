//! The QA subcommands as a tester runs them: the real `rtm-tui` binary against our real
//! server on a free port, checking exit codes and what is printed.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::support;
use rtm::server::Config;

/// How long one run of the binary may take before it counts as hung.
const RUN_BOUND: Duration = Duration::from_secs(120);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the binary with `args` and checks that it exits with `code` (its output in the
/// failure message otherwise).
async fn run_expecting(code: i32, args: &[&str]) -> Output {
    let run = support::rtm_tui(args, RUN_BOUND).await;
    assert_eq!(
        run.status.code(),
        Some(code),
        "rtm-tui {}: {}{}",
        args.join(" "),
        text(&run.stdout),
        text(&run.stderr)
    );
    run
}

/// `rtm-tui script` exited 0 and its summary line says `summary`.
fn assert_script_passed(run: &Output, what: &str, summary: &str) {
    assert_eq!(
        run.status.code(),
        Some(0),
        "{what}: {}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    assert!(text(&run.stdout).contains(summary), "{}", text(&run.stdout));
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/scenarios")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exit_codes_and_formats() {
    let server = support::start_server(Config::ephemeral()).await;
    let url = server.url();

    let ok = run_expecting(
        0,
        &[
            "check",
            "--server",
            &url,
            "--filter",
            "channel.send",
            "--format",
            "junit",
        ],
    )
    .await;
    let out = text(&ok.stdout);
    assert!(
        out.contains("<testsuite name=\"rtm-check\" tests=\"5\" failures=\"0\""),
        "{out}"
    );
    assert!(out.contains("name=\"channel.send.no_echo\""), "{out}");

    let json = support::rtm_tui(
        &[
            "check", "--server", &url, "--filter", "frame.", "--format", "json",
        ],
        RUN_BOUND,
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["passed"].as_u64().unwrap() >= 8, "{report}");

    // An app id the server refuses makes every login fail: cases fail, exit 1, with reasons.
    let failing = run_expecting(
        1,
        &[
            "check", "--server", &url, "--app-id", "bad app!", "--filter", "ping.ok",
        ],
    )
    .await;
    let out = text(&failing.stdout);
    assert!(
        out.contains("FAIL   ping.ok") && out.contains("expected code 0, got 4"),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 failed, 0 skipped"), "{out}");

    run_expecting(2, &["check", "--server", &url, "--filter", "no-such-case"]).await;
    server.shutdown().await;

    let unreachable = run_expecting(2, &["check", "--server", &url]).await;
    assert!(
        text(&unreachable.stderr).contains("cannot connect"),
        "{}",
        text(&unreachable.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_scenarios_pass() {
    let mut config = Config::ephemeral();
    config.grace = Duration::from_secs(5);
    let server = support::start_server(config).await;
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
        let run = support::rtm_tui(&["script", &file, "--server", &url], RUN_BOUND).await;
        assert_script_passed(&run, &file, "passed");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_errors_name_the_line() {
    let server = support::start_server(Config::ephemeral()).await;
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");

    let bad = dir.path().join("bad.rtm");
    std::fs::write(&bad, "users alice\nalice login\n\nalice fly away\n").unwrap();
    let run = run_expecting(2, &["script", bad.to_str().unwrap(), "--server", &url]).await;
    let err = text(&run.stderr);
    assert!(
        err.contains("bad.rtm:line 4: unknown verb \"fly\""),
        "{err}"
    );

    // A well-formed scenario whose expectation the server does not meet: exit 1, the line,
    // and (with --trace) the frames on stderr.
    let wrong = dir.path().join("wrong.rtm");
    std::fs::write(&wrong, "alice login\nalice send nobody hi -> 0\n").unwrap();
    let run = run_expecting(
        1,
        &[
            "script",
            wrong.to_str().unwrap(),
            "--server",
            &url,
            "--trace",
        ],
    )
    .await;
    let out = text(&run.stdout);
    assert!(
        out.contains("line 2: alice: send_peer answered code 3"),
        "{out}"
    );
    let trace = text(&run.stderr);
    assert!(trace.contains("alice -> {\"op\":\"login\""), "{trace}");
    assert!(trace.contains("alice <- {\"id\":2,\"code\":3"), "{trace}");

    run_expecting(2, &["script", "/nonexistent.rtm", "--server", &url]).await;
    server.shutdown().await;

    std::fs::write(&wrong, "alice login\n").unwrap();
    run_expecting(2, &["script", wrong.to_str().unwrap(), "--server", &url]).await;
}

/// `script --server A --server B` puts each new virtual user on the next server: against
/// two independent servers alice's message to bob is unreachable (3), against the same
/// server twice it is received (0); traces name the server of each connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_spreads_its_users_over_several_servers() {
    let first = support::start_server(Config::ephemeral()).await;
    let second = support::start_server(Config::ephemeral()).await;
    let (a, b) = (first.url(), second.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let scenario = |name: &str, code: u32| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("alice login\nbob login\nalice send bob hi -> {code}\n"),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };

    let apart = scenario("apart.rtm", 3);
    let run = support::rtm_tui(
        &["script", &apart, "--server", &a, "--server", &b, "--trace"],
        RUN_BOUND,
    )
    .await;
    assert_script_passed(&run, &apart, &format!("against {a}, {b}"));
    let trace = text(&run.stderr);
    assert!(trace.contains("alice@1 -> {\"op\":\"login\""), "{trace}");
    assert!(trace.contains("bob@2 -> {\"op\":\"login\""), "{trace}");

    let together = scenario("together.rtm", 0);
    let run = support::rtm_tui(
        &["script", &together, "--server", &a, "--server", &a],
        RUN_BOUND,
    )
    .await;
    assert_script_passed(&run, &together, "passed");
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_workloads_report_json_memory_and_plot() {
    let server = support::start_server(Config::ephemeral()).await;
    let url = server.url();
    let dir = tempfile::tempdir().expect("temp dir");
    for workload in ["peer", "fanout", "login", "soak", "media"] {
        let plot = dir.path().join(format!("{workload}.svg"));
        let run = run_expecting(
            0,
            &[
                "bench",
                "--server",
                &url,
                "--workload",
                workload,
                "--users",
                "4",
                "--channels",
                "2",
                "--rate",
                "20",
                "--duration",
                "1",
                "--json",
                "--plot",
                plot.to_str().unwrap(),
            ],
        )
        .await;
        let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON report");
        assert_eq!(report["workload"], workload);
        assert!(report["completed"].as_u64().unwrap() > 0, "{report}");
        if workload == "media" {
            assert_eq!(report["media_bytes"], 1 << 20, "{report}");
            assert!(report["mib_per_s"].as_f64().unwrap() > 0.0, "{report}");
        }
        assert!(report["errors"].as_object().unwrap().is_empty(), "{report}");
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(
                report["latency_ms"][p].as_f64().unwrap() > 0.0,
                "{p}: {report}"
            );
        }
        // The server listens in this test process, on loopback: its memory is found.
        assert_eq!(report["memory"]["pid"], std::process::id(), "{report}");
        assert_eq!(report["memory"]["what"], "server process");
        let svg = std::fs::read_to_string(&plot).expect("plot written");
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
    }
    let bad = run_expecting(2, &["bench", "--server", &url, "--workload", "storm"]).await;
    assert!(text(&bad.stderr).contains("unknown workload"));
    // A server without files and images: the media workload says so and does not run.
    let v1_like = support::start_server(Config {
        media: false,
        ..Config::ephemeral()
    })
    .await;
    let no_media = run_expecting(
        2,
        &[
            "bench",
            "--server",
            &v1_like.url(),
            "--workload",
            "media",
            "--users",
            "1",
        ],
    )
    .await;
    assert!(
        text(&no_media.stderr).contains("not supported"),
        "{}",
        text(&no_media.stderr)
    );
    v1_like.shutdown().await;
    run_expecting(2, &["bench", "--server", &url, "--users", "100000"]).await;
    server.shutdown().await;
    run_expecting(2, &["bench", "--server", &url, "--duration", "1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_without_server_runs_its_own() {
    let run = run_expecting(
        0,
        &[
            "bench",
            "--workload",
            "peer",
            "--users",
            "2",
            "--duration",
            "1",
        ],
    )
    .await;
    let out = text(&run.stdout);
    assert!(
        out.contains("latency ms  p50") && out.contains("in-process server"),
        "{out}"
    );
}

/// The language's less common parts against a server with a short ack timeout: `ack off`
/// provoking code 2, nested repeats with `$i`, variables, `close`, `expect-none`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_ack_timeout_nested_repeats_and_variables() {
    let mut config = Config::ephemeral();
    config.ack_timeout = Duration::from_millis(500);
    let server = support::start_server(config).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("acks.rtm");
    std::fs::write(
        &file,
        r#"
set greeting "hello there"
users alice bob
alice login
bob login
bob ack off
alice send bob "$greeting" -> 2          # received but never acknowledged
bob expect message_from_peer text="hello there"
bob ack on
repeat 2 {
  repeat 2 {
    alice send bob "n$i"
  }
}
bob expect message_from_peer text=n1
bob expect message_from_peer text=n2
bob expect message_from_peer text=n1
bob expect message_from_peer text=n2
bob expect-none message_from_peer within=200ms
bob logout                                   # answered once bob is offline everywhere
bob close
alice send bob "gone" -> 3
"#,
    )
    .unwrap();
    let run = support::rtm_tui(
        &["script", file.to_str().unwrap(), "--server", &server.url()],
        RUN_BOUND,
    )
    .await;
    assert_script_passed(&run, "inline script", "passed, 22 steps");
    server.shutdown().await;
}

//! `check --restart-cmd`: the case that cached peer messages survive a server restart
//! passes against our server restarted on its SQLite store, and fails against a server that
//! comes back with an empty store (one that keeps cached messages only in memory).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rtm::qa::check::{self, CheckConfig};
use rtm::qa::report::{CaseOutcome, CaseReport};
use rtm::server::{Config, RunningServer, StoreLocation};

/// Longest the restart handshake may take.
const RESTART_BOUND: Duration = Duration::from_secs(15);

async fn start_on(addr: SocketAddr, store: StoreLocation) -> RunningServer {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let mut config = Config::ephemeral();
    config.store = store;
    rtm::server::spawn(listener, config)
        .await
        .expect("server starts")
}

/// Runs the restart case against a server that restarts when `--restart-cmd` creates a
/// signal file; after the restart it uses `store_after`.
async fn run_restart_case(store_dir: &Path, store_after: StoreLocation) -> CaseReport {
    let server = start_on(
        "127.0.0.1:0".parse().unwrap(),
        StoreLocation::Path(store_dir.to_path_buf()),
    )
    .await;
    let addr = server.addr();
    let url = server.url();
    let signal_dir = tempfile::tempdir().expect("temp dir");
    let signal: PathBuf = signal_dir.path().join("restart");
    // The command asks for a restart and returns once the test has begun it (the file is gone).
    let cmd = format!(
        "touch '{0}'; for i in $(seq 300); do [ -e '{0}' ] || exit 0; sleep 0.05; done; exit 1",
        signal.display()
    );
    let watcher = {
        let signal = signal.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + RESTART_BOUND;
            while !signal.exists() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no restart was asked for"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            server.shutdown().await;
            let restarted = start_on(addr, store_after).await;
            std::fs::remove_file(&signal).expect("clear the signal");
            restarted
        })
    };
    let mut config = CheckConfig::new(url, "qa-restart");
    config.restart_cmd = Some(cmd);
    config.filter = Some("peer.offline.survives_restart".into());
    let report = check::run(config).await;
    let restarted = tokio::time::timeout(RESTART_BOUND, watcher)
        .await
        .expect("restart done")
        .expect("watcher");
    restarted.shutdown().await;
    report.cases.into_iter().next().expect("one case")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_messages_survive_our_servers_restart() {
    let store = tempfile::tempdir().expect("store dir");
    let case = run_restart_case(
        store.path(),
        StoreLocation::Path(store.path().to_path_buf()),
    )
    .await;
    assert_eq!(case.outcome, CaseOutcome::Pass, "{case:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_forgets_on_restart_fails_the_case() {
    let store = tempfile::tempdir().expect("store dir");
    let case = run_restart_case(store.path(), StoreLocation::Ephemeral).await;
    assert_eq!(case.outcome, CaseOutcome::Fail, "{case:?}");
    assert!(
        case.reason
            .as_deref()
            .unwrap_or("")
            .contains("no message_from_peer"),
        "{case:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_restart_cmd_the_case_is_skipped() {
    let store = tempfile::tempdir().expect("store dir");
    let server = start_on(
        "127.0.0.1:0".parse().unwrap(),
        StoreLocation::Path(store.path().to_path_buf()),
    )
    .await;
    let mut config = CheckConfig::new(server.url(), "qa-restart");
    config.filter = Some("peer.offline.survives_restart".into());
    let report = check::run(config).await;
    assert_eq!(report.cases[0].outcome, CaseOutcome::Skip);
    assert!(report.cases[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("--restart-cmd"));
    server.shutdown().await;
}

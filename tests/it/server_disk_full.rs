//! A full disk, with a real `rtm-tui serve` process whose data directory and log sit on a
//! 600 KiB tmpfs (needs root to mount it; skipped with a message otherwise): every cached
//! send is answered promptly, 4 while it fits and 1 once the store cannot write; pings
//! and `history` keep being answered; once space is freed, cached sends answer 4 again
//! without a restart.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support;
use crate::support::raw::{self, Expect};
use crate::support::text;
use rtm::qa::raw::RawConn;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long any one request may take, full disk or not.
const PROMPT: Duration = Duration::from_secs(3);

/// A tmpfs mounted for the test on a temporary directory, unmounted (lazily, so a
/// still-running process cannot keep it) when dropped, before the directory goes.
pub(crate) struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Where it is mounted.
    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }

    /// Mounts a tmpfs of `size` on a fresh directory; `Err` says why not (not root, no mount).
    pub(crate) fn mount(size: &str) -> Result<Tmpfs, String> {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
            });
        if uid.as_deref() != Some("0") {
            return Err(format!("not running as root (effective uid {uid:?})"));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !status.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&status.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// `rtm-tui serve --data-dir DIR` with its log (stderr) in `log`.
async fn start_server(data_dir: &Path, log: &Path) -> (Child, String) {
    let log = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start rtm-tui serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::time::timeout(support::WAIT, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("the server says where it listens")
        .expect("read stdout");
    let url = line.split_whitespace().last().expect("url").to_string();
    (child, url)
}

/// Sends `op` and waits at most [`PROMPT`] for its reply.
async fn prompt_request(client: &mut RawConn, op: Value, what: &str) -> Value {
    tokio::time::timeout(PROMPT, client.request(op))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {PROMPT:?}"))
}

fn cached_send(n: usize) -> Value {
    let body = format!("{n:05} {}", "x".repeat(30 * 1024));
    json!({"op": "send_peer", "to": "bob", "message": text(&body), "offline": true})
}

#[tokio::test]
async fn a_full_disk_fails_cached_sends_promptly_and_recovers_when_space_returns() {
    let tmpfs = match Tmpfs::mount("600k") {
        Ok(mounted) => mounted,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_fails_cached_sends...: needs a tmpfs: {why}");
            return;
        }
    };
    let root: PathBuf = tmpfs.0.path().to_path_buf();
    let (mut server, url) = start_server(&root.join("data"), &root.join("server.log")).await;
    // Space to give back later: the store fills what is left.
    let filler = root.join("filler");
    std::fs::write(&filler, vec![0u8; 256 * 1024]).expect("filler fits");

    let mut alice = raw::login(&url, "demo", "alice").await;
    let mut codes = Vec::new();
    for n in 0..60 {
        let reply = prompt_request(&mut alice, cached_send(n), "cached send").await;
        let code = reply["code"].as_u64().expect("code");
        assert!(code == 4 || code == 1, "cached send {n}: {reply}");
        codes.push(code);
        // What needs no disk keeps working.
        let ping = prompt_request(&mut alice, json!({"op": "ping"}), "ping").await;
        assert_eq!(ping["code"], 0, "{ping}");
        if codes.len() >= 12 && codes.ends_with(&[1; 8]) {
            break;
        }
    }
    assert!(codes.starts_with(&[4]), "the first sends fit: {codes:?}");
    assert!(
        codes.ends_with(&[1; 8]),
        "the disk never filled up: {codes:?}"
    );
    // A read answers too (0, or 1 when the store cannot read).
    let history = prompt_request(
        &mut alice,
        json!({"op": "history", "peer": "bob", "limit": 5}),
        "history",
    )
    .await;
    let code = history["code"].as_u64().expect("code");
    assert!(code == 0 || code == 1, "{history}");
    // A second connection still logs in and is served.
    let mut carol = raw::login(&url, "demo", "carol").await;
    let ping = prompt_request(&mut carol, json!({"op": "ping"}), "ping").await;
    assert_eq!(ping["code"], 0);

    // Space comes back: the store recovers by itself.
    std::fs::remove_file(&filler).expect("remove filler");
    for n in 100..103 {
        let reply = prompt_request(&mut alice, cached_send(n), "cached send after freeing").await;
        assert_eq!(
            reply["code"], 4,
            "cached send {n} after freeing space: {reply}"
        );
    }
    // Bob gets every message answered 4.
    let answered_4 = codes.iter().filter(|&&c| c == 4).count() + 3;
    let mut bob = raw::connect(&url).await;
    let login = prompt_request(
        &mut bob,
        json!({"op": "login", "app_id": "demo", "user": "bob"}),
        "login",
    )
    .await;
    assert_eq!(login["code"], 0, "{login}");
    let mut received = 0;
    while received < answered_4 {
        let event = bob.expect_event("message_from_peer").await;
        assert_eq!(event["offline"], true, "{event}");
        received += 1;
    }
    // ...and none of those answered 1.
    bob.sync().await;
    let extra: Vec<_> = bob
        .take_events(raw::named("message_from_peer"))
        .iter()
        .map(|e| e["message"]["text"].as_str().unwrap_or("")[..5].to_string())
        .collect();
    assert!(
        extra.is_empty(),
        "delivered although answered 1: {extra:?}; codes {codes:?}"
    );
    assert!(server.try_wait().expect("status").is_none(), "server alive");
    // The log (on the same full disk) says it once per interval, not once per write,
    // and says when writes work again.
    let log = std::fs::read_to_string(root.join("server.log")).expect("log");
    let failures = log.matches("store: a write or read failed").count();
    assert!(
        failures <= 2,
        "{failures} error lines for one episode:\n{log}"
    );
    assert!(log.contains("store: writes work again"), "{log}");
    let _ = server.start_kill();
    let _ = server.wait().await;
}

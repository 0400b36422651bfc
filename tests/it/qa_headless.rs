//! `rtm-tui headless` driven like a tester's script would: the real binary with piped
//! stdin/stdout against our real server, with a raw protocol peer on the other side.

use std::process::Stdio;

use crate::support::{self, WAIT};
use rtm::qa::raw::RawConn;
use rtm::server::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

struct Headless {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Every line printed so far, for failure messages.
    seen: Vec<Value>,
}

impl Headless {
    fn start(url: &str, app: &str) -> Headless {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
            .args(["headless", "--server", url, "--app-id", app])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start rtm-tui headless");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Headless {
            child,
            stdin,
            stdout,
            seen: Vec::new(),
        }
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write stdin");
    }

    /// The next printed object for which `matches` holds (others are kept in `seen`).
    async fn until(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = tokio::time::timeout(WAIT, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; saw {:?}", self.seen))
                .expect("read stdout")
                .unwrap_or_else(|| panic!("output ended before {what}; saw {:?}", self.seen));
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            self.seen.push(value.clone());
            if matches(&value) {
                return value;
            }
        }
    }

    /// Sends a command and returns its reply line.
    async fn command(&mut self, line: &str) -> Value {
        self.send(line).await;
        let verb = line.split_whitespace().next().unwrap_or("").to_string();
        self.until(&format!("reply to {line:?}"), |v| v["reply"] == json!(verb))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_in_json_lines_out() {
    let server = support::start_server(Config::ephemeral()).await;
    let url = server.url();
    let mut bob = RawConn::connect(&url, "bob", None).await.unwrap();
    assert_eq!(
        bob.call(json!({"op": "login", "app_id": "qa", "user": "bob"}))
            .await
            .unwrap()["code"],
        0
    );
    assert_eq!(
        bob.call(json!({"op": "join", "channel": "lobby"}))
            .await
            .unwrap()["code"],
        0
    );

    let mut alice = Headless::start(&url, "qa");
    let login = alice.command("login alice").await;
    assert_eq!(login["ok"], true, "{login}");
    assert_eq!(login["result"]["user"], "alice");
    // The state event and the login reply race to stdout; either order is fine.
    if !alice.seen.iter().any(|v| v["state"] == "CONNECTED") {
        alice
            .until("CONNECTED state", |v| v["state"] == "CONNECTED")
            .await;
    }

    let join = alice.command("join lobby").await;
    assert_eq!(join["result"]["member_count"], 2, "{join}");

    assert_eq!(bob.call(json!({"op": "send_channel", "channel": "lobby", "message": {"type": "text", "text": "hi alice"}})).await.unwrap()["code"], 0);
    let event = alice
        .until("channel message", |v| v["event"] == "message_from_channel")
        .await;
    assert_eq!(event["from"], "bob");
    assert_eq!(event["message"]["text"], "hi alice");

    let sent = alice.command("send bob \"hello bob\"").await;
    assert_eq!(sent["ok"], true, "{sent}");
    assert!(sent["result"]["message_id"].is_u64());
    let got = bob
        .next_event(WAIT, |e| e["event"] == "message_from_peer")
        .await
        .expect("bob gets it");
    assert_eq!(got["message"]["text"], "hello bob");

    let unreachable = alice.command("send nobody hi").await;
    assert_eq!(
        (unreachable["ok"].clone(), unreachable["code"].clone()),
        (json!(false), json!(3)),
        "{unreachable}"
    );

    let raw = alice
        .command(r#"raw {"op": "get_channel_member_count", "channels": ["lobby"]}"#)
        .await;
    assert_eq!(raw["result"]["counts"]["lobby"], 2, "{raw}");

    let unknown = alice.command("frobnicate now").await;
    assert_eq!(unknown["ok"], false);
    assert!(
        unknown["error"]
            .as_str()
            .unwrap()
            .contains("unknown command"),
        "{unknown}"
    );

    bob.call(
        json!({"op": "send_peer", "to": "alice", "message": {"type": "text", "text": "ping me"}}),
    )
    .await
    .unwrap();
    let waited = alice.command("wait message_from_peer 5").await;
    assert_eq!(waited["ok"], true, "{waited}");

    let quit = alice.command("quit").await;
    assert_eq!(quit["ok"], true);
    let status = tokio::time::timeout(WAIT, alice.child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_app_id_is_a_usage_error() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
        .args([
            "headless",
            "--server",
            "ws://127.0.0.1:9/rtm/v1",
            "--app-id",
            "no spaces!",
        ])
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(WAIT, output)
        .await
        .expect("exits")
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

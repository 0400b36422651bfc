//! `rtm-tui serve` as a process, configured by a TOML file and flags: a closed registry
//! with a certified app refuses unknown apps (4) and token-less logins (5) and accepts a
//! token; listing apps closes the registry on loopback unless `--open` is given. The TLS
//! flags are tested in `server_tls.rs`.

use crate::support::raw::{self, Expect};
use crate::support::server_process::ServerProcess;
use rtm::token::{build_rtm_token_007, unix_now};
use serde_json::json;

const APP: &str = "970CA35de60c44645bbae8a215061b33";
const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";

#[tokio::test]
async fn a_config_file_closes_the_registry_and_sets_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.toml");
    std::fs::write(
        &file,
        format!(
            "open = false\n[[app]]\nid = \"{APP}\"\ncertificate = \"{CERT}\"\n\
             [[app]]\nid = \"demo\"\n[limits]\nlogin_timeout_secs = 5\n"
        ),
    )
    .unwrap();
    let server = ServerProcess::start_with(&[
        "--listen",
        "127.0.0.1:0",
        "--ephemeral",
        "--config",
        file.to_str().unwrap(),
    ])
    .await;
    let url = server.url();
    let login = |app: &str, token: Option<String>| {
        let mut op = json!({"op": "login", "app_id": app, "user": "alice"});
        if let Some(token) = token {
            op["token"] = json!(token);
        }
        op
    };
    // One connection per attempt: a connection may try 2 logins per second.
    let mut codes = Vec::new();
    let token = build_rtm_token_007(APP, CERT, "alice", 1, unix_now() as u32, 600);
    for op in [
        login("unknown", None),
        login(APP, None),
        login(APP, Some(token)),
        login("demo", None),
    ] {
        let mut client = raw::connect(&url).await;
        codes.push(client.code(op).await);
    }
    assert_eq!(codes, [4, 5, 0, 0]);
    server.kill9().await;
}

/// One login per connection (a connection may try 2 per second): the codes of `app` ids.
async fn login_codes(url: &str, apps: &[&str]) -> Vec<u32> {
    let mut codes = Vec::new();
    for app in apps {
        let mut client = raw::connect(url).await;
        codes.push(
            client
                .code(json!({"op": "login", "app_id": app, "user": "alice"}))
                .await,
        );
    }
    codes
}

#[tokio::test]
async fn configured_apps_close_the_registry_on_loopback_unless_open_is_asked_for() {
    let app = format!("{APP}:{CERT}");
    // --app: any other app id is refused (4), the listed one needs its token (5).
    let server =
        ServerProcess::start_with(&["--listen", "127.0.0.1:0", "--ephemeral", "--app", &app]).await;
    assert_eq!(login_codes(&server.url(), &["other", APP]).await, [4, 5]);
    server.kill9().await;
    // An app in the file closes it just the same.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.toml");
    std::fs::write(&file, "[[app]]\nid = \"demo\"\n").unwrap();
    let config = file.to_str().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--ephemeral", "--config", config];
    let server = ServerProcess::start_with(&args).await;
    assert_eq!(login_codes(&server.url(), &["other", "demo"]).await, [4, 0]);
    server.kill9().await;
    // --open asks for open mode: unknown ids get in, listed apps keep their certificate.
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--ephemeral",
        "--app",
        &app,
        "--open",
    ];
    let server = ServerProcess::start_with(&args).await;
    assert_eq!(login_codes(&server.url(), &["other", APP]).await, [0, 5]);
    server.kill9().await;
    // No app configured on loopback: open, so that the README's one command works.
    let server = ServerProcess::start_with(&["--listen", "127.0.0.1:0", "--ephemeral"]).await;
    assert_eq!(login_codes(&server.url(), &["other"]).await, [0]);
    server.kill9().await;
}

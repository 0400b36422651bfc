//! The data directory across server processes: message ids after a SIGKILL exceed every
//! id answered before it, a second server on the same directory is refused with a message
//! that says what to do, and a server that shut down lets go of it.

use crate::support::raw::{self, Expect};
use crate::support::server_process::ServerProcess;
use crate::support::{start_server, text};
use rtm::server::{Config, ServerError, StoreLocation};
use serde_json::json;

const APP: &str = "demo";

#[tokio::test]
async fn message_ids_after_a_sigkill_exceed_every_id_answered_before() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), 0).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.request(json!({"op": "join", "channel": "c"})).await;
    // Answered before their batch commits: only the id reservation protects them.
    let mut before = 0;
    for n in 0..50 {
        let reply = alice
            .request(json!({"op": "send_channel", "channel": "c", "message": text(&n.to_string())}))
            .await;
        assert_eq!(reply["code"], 0);
        before = reply["message_id"].as_u64().unwrap();
    }
    server.kill9().await;

    let server = ServerProcess::start(dir.path(), 0).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.request(json!({"op": "join", "channel": "c"})).await;
    let reply = alice
        .request(json!({"op": "send_channel", "channel": "c", "message": text("after")}))
        .await;
    let after = reply["message_id"].as_u64().unwrap();
    assert!(
        after > before,
        "id {after} after the crash, {before} before"
    );
    server.kill9().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = || Config {
        store: StoreLocation::Path(dir.path().to_path_buf()),
        ..Config::default()
    };
    let first = start_server(config()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = rtm::server::spawn(listener, config()).await.unwrap_err();
    assert!(matches!(error, ServerError::Store(_)), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("--data-dir") && message.contains("--ephemeral"),
        "{message}"
    );
    // The first one still serves; leave timers running in it (an unacked send, a grace).
    let mut alice = raw::login(&first.url(), APP, "alice").await;
    let bob = raw::login(&first.url(), APP, "bob").await;
    alice.request(json!({"op": "join", "channel": "c"})).await;
    let _unacked = alice
        .start(json!({"op": "send_peer", "to": "bob", "message": text("hi")}))
        .unwrap();
    alice.sync().await;
    bob.drop_abruptly();
    first.shutdown().await;
    // Shut down: nothing of it holds the directory any more.
    let again = start_server(config()).await;
    again.shutdown().await;
}

//! Fixes from the server review, each over real WebSockets with raw JSON: the cached
//! backlog at login, invitation and renewal limits, codes before login and of malformed
//! requests, message ids across restarts, the data directory lock, shutdown of timers.

mod common;
mod harden_support;

use common::{start_server, test_config, text, RawClient};
use harden_support::ServerProcess;
use rtm::server::{Config, RateLimits, ServerError, StoreLocation};
use serde_json::json;

const APP: &str = "demo";

/// Logs in and sends `pings` pings in the same frame as the login; returns the ids.
async fn login_then_ping(client: &mut RawClient, user: &str, pings: usize) -> (u32, Vec<u32>) {
    let login_id = client.id();
    let mut frame =
        vec![json!({"id": login_id, "op": "login", "app_id": APP, "user": user}).to_string()];
    let mut ids = Vec::new();
    for _ in 0..pings {
        let id = client.id();
        frame.push(json!({"id": id, "op": "ping"}).to_string());
        ids.push(id);
    }
    client.send_text(&frame.join("\n")).await;
    (login_id, ids)
}

/// Reads the login reply, every ping reply and `count` cached messages; returns their ids.
async fn expect_backlog(client: &mut RawClient, user: &str, count: usize) -> Vec<u64> {
    let (login, pings) = login_then_ping(client, user, 20).await;
    assert_eq!(client.expect_reply(login).await["code"], 0);
    let mut ids = Vec::new();
    for _ in 0..count {
        let event = client.expect_event("message_from_peer").await;
        assert_eq!(event["offline"], true);
        ids.push(event["message_id"].as_u64().unwrap());
    }
    for id in pings {
        assert_eq!(client.expect_reply(id).await["code"], 0);
    }
    ids
}

#[tokio::test]
async fn large_login_backlog_arrives_whole_and_stays_until_acked() {
    let server = start_server(Config {
        rate_limits: RateLimits::unlimited(),
        ..test_config()
    })
    .await;
    let mut alice = RawClient::login(&server.url(), APP, "alice").await;
    let body = "x".repeat(32 * 1000);
    for _ in 0..200 {
        let reply = alice
            .request(
                json!({"op": "send_peer", "to": "bob", "message": text(&body), "offline": true}),
            )
            .await;
        assert_eq!(reply["code"], 4, "{reply}");
    }

    // 6.4 MB of backlog, then requests right behind it: all answered, nothing lost.
    let mut bob = RawClient::connect(&server.url()).await;
    let first = expect_backlog(&mut bob, "bob", 200).await;
    assert!(first.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert!(bob.ended.is_none());
    bob.drop_connection();

    // Not acked: all of them again at the next login. Acked: gone.
    let mut bob = RawClient::connect(&server.url()).await;
    let again = expect_backlog(&mut bob, "bob", 200).await;
    assert_eq!(again, first);
    for id in &again[..150] {
        bob.ack(*id).await;
    }
    bob.sync().await;
    bob.close().await;
    let mut bob = RawClient::connect(&server.url()).await;
    let rest = expect_backlog(&mut bob, "bob", 50).await;
    assert_eq!(rest, first[150..]);
    for id in &rest {
        bob.ack(*id).await;
    }
    bob.close().await;
    let mut bob = RawClient::login(&server.url(), APP, "bob").await;
    bob.assert_no_event("message_from_peer").await;
    server.shutdown().await;
}

fn invite(n: usize) -> serde_json::Value {
    json!({"op": "invite", "invitation_id": format!("call-{n}"), "callee": "bob", "content": "hi"})
}

#[tokio::test]
async fn invitations_are_rate_limited_with_code_4() {
    let server = start_server(test_config()).await;
    let mut alice = RawClient::login(&server.url(), APP, "alice").await;
    let _bob = RawClient::login(&server.url(), APP, "bob").await;
    // Default: 10 per 5 s; INVITE has no "too often", so the 11th is 4 (invalid argument).
    for n in 0..10 {
        assert_eq!(alice.code(invite(n)).await, 0);
    }
    let reply = alice.request(invite(10)).await;
    assert_eq!(reply["code"], 4);
    assert!(reply["reason"].as_str().unwrap().contains("too often"));
    server.shutdown().await;
}

#[tokio::test]
async fn pending_invitations_per_caller_are_capped() {
    let mut config = test_config();
    config.rate_limits = RateLimits::unlimited();
    config.max_pending_invitations = 32;
    let server = start_server(config).await;
    let mut alice = RawClient::login(&server.url(), APP, "alice").await;
    let mut bob = RawClient::login(&server.url(), APP, "bob").await;
    for n in 0..32 {
        assert_eq!(alice.code(invite(n)).await, 0);
    }
    assert_eq!(alice.code(invite(32)).await, 4);
    // Another caller is not affected; an answered invitation frees a slot.
    let mut carol = RawClient::login(&server.url(), APP, "carol").await;
    assert_eq!(carol.code(invite(0)).await, 0);
    let refuse = json!({"op": "refuse_invitation", "invitation_id": "call-0",
        "caller": "alice", "response": "busy"});
    assert_eq!(bob.code(refuse).await, 0);
    assert_eq!(alice.code(invite(32)).await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn renew_token_too_often_is_4() {
    let server = start_server(test_config()).await;
    let mut alice = RawClient::login(&server.url(), APP, "alice").await;
    let renew = json!({"op": "renew_token", "token": "whatever"});
    // Default: 2 per 5 s (this app has no certificate, so a renewal answers 0).
    assert_eq!(alice.code(renew.clone()).await, 0);
    assert_eq!(alice.code(renew.clone()).await, 0);
    assert_eq!(alice.code(renew).await, 4);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_before_login_are_102() {
    let server = start_server(test_config()).await;
    let mut client = RawClient::connect(&server.url()).await;
    for op in [
        json!({"op": "join"}),
        json!({"op": "send_peer", "to": 5}),
        json!({"op": "send_channel", "channel": "c"}),
        json!({"op": "get_user_attributes"}),
        json!({"op": "renew_token"}),
    ] {
        let reply = client.request(op.clone()).await;
        assert_eq!(reply["code"], 102, "{op} before login: {reply}");
    }
    // A malformed login is still a login problem: 3.
    assert_eq!(client.code(json!({"op": "login", "app_id": APP})).await, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_sends_answer_the_code_of_the_failed_field() {
    let server = start_server(test_config()).await;
    let mut alice = RawClient::login(&server.url(), APP, "alice").await;
    alice.request(json!({"op": "join", "channel": "c"})).await;
    // CHANNEL_MSG 4 "invalid message": missing, or of the wrong shape.
    for message in [None, Some(json!("hi")), Some(json!({"type": "text"}))] {
        let mut op = json!({"op": "send_channel", "channel": "c"});
        if let Some(message) = message {
            op["message"] = message;
        }
        assert_eq!(alice.code(op.clone()).await, 4, "{op}");
    }
    // PEER 6 "invalid user id" when `to` is missing or not a string; 7 for the message.
    let to_missing = json!({"op": "send_peer", "message": text("hi")});
    let to_number = json!({"op": "send_peer", "to": 42, "message": text("hi")});
    let bad_message = json!({"op": "send_peer", "to": "bob", "message": {"type": "nope"}});
    assert_eq!(alice.code(to_missing).await, 6);
    assert_eq!(alice.code(to_number).await, 6);
    assert_eq!(alice.code(bad_message).await, 7);
    server.shutdown().await;
}

#[tokio::test]
async fn message_ids_after_a_sigkill_exceed_every_id_answered_before() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), 0).await;
    let mut alice = RawClient::login(&server.url(), APP, "alice").await;
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
    let mut alice = RawClient::login(&server.url(), APP, "alice").await;
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
    let mut alice = RawClient::login(&first.url(), APP, "alice").await;
    let bob = RawClient::login(&first.url(), APP, "bob").await;
    alice.request(json!({"op": "join", "channel": "c"})).await;
    alice
        .send_request(json!({"op": "send_peer", "to": "bob", "message": text("hi")}))
        .await;
    alice.sync().await;
    bob.drop_connection();
    first.shutdown().await;
    // Shut down: nothing of it holds the directory any more.
    let again = start_server(config()).await;
    again.shutdown().await;
}

//! Server over real WebSockets, raw JSON: login, logout, ping, codes for bad input (before
//! login, and of each malformed field), batching, oversized frames, remote-login kick,
//! shutdown.

use crate::support;
use crate::support::raw::{self, Expect};
use crate::support::{start_server, test_config, text};
use rtm::qa::raw::Closure;
use serde_json::json;

const APP: &str = "demo";

#[tokio::test]
async fn login_ping_logout() {
    let server = start_server(test_config()).await;
    let mut alice = raw::connect(&server.url()).await;
    let reply = alice
        .request(json!({"op": "login", "app_id": APP, "user": "alice", "token": "anything"}))
        .await;
    assert_eq!(reply["code"], 0);
    assert_eq!(reply["user"], "alice");
    assert_eq!(reply["protocol"], 1);
    assert!(reply["server"].as_str().unwrap().starts_with("rtm-tui/"));
    assert!(reply["server_ts"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(reply.get("token_expires_at").is_none());
    assert!(reply.get("reason").is_none());

    let ping = alice.request(json!({"op": "ping"})).await;
    assert_eq!(ping["code"], 0);
    assert!(ping["server_ts"].as_u64().is_some());

    // A second login on the same connection: 8.
    assert_eq!(
        alice
            .code(json!({"op": "login", "app_id": APP, "user": "alice"}))
            .await,
        8
    );
    assert_eq!(alice.code(json!({"op": "logout"})).await, 0);
    // Logged out: 102 again, and a new login works on the same connection.
    let reply = alice.request(json!({"op": "ping"})).await;
    assert_eq!(reply["code"], 102);
    assert!(reply["reason"].is_string());
    assert_eq!(
        alice
            .code(json!({"op": "login", "app_id": APP, "user": "alice2"}))
            .await,
        0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_op_needs_login_first() {
    let server = start_server(test_config()).await;
    let mut client = raw::connect(&server.url()).await;
    for op in [
        json!({"op": "ping"}),
        json!({"op": "logout"}),
        json!({"op": "send_peer", "to": "bob", "message": text("hi")}),
        json!({"op": "join", "channel": "c"}),
        json!({"op": "leave", "channel": "c"}),
        json!({"op": "send_channel", "channel": "c", "message": text("hi")}),
        json!({"op": "get_members", "channel": "c"}),
        json!({"op": "get_channel_member_count", "channels": ["c"]}),
        json!({"op": "history", "channel": "c"}),
        json!({"op": "query_peers_online", "peers": ["bob"]}),
        json!({"op": "renew_token", "token": "t"}),
    ] {
        assert_eq!(client.code(op.clone()).await, 102, "{op}");
    }
    // The ack notice before login is ignored, never answered.
    client.ack(5);
    client.assert_no_event("error").await;
    server.shutdown().await;
}

#[tokio::test]
async fn login_codes() {
    let server = start_server(test_config()).await;
    let mut client = raw::connect(&server.url()).await;
    let login = |app: &str, user: &str| json!({"op": "login", "app_id": app, "user": user});
    assert_eq!(client.code(login("bad app!", "alice")).await, 4);
    assert_eq!(client.code(login(APP, " alice")).await, 3);
    // Rate limit: 2 logins per second (the two refused ones above count).
    assert_eq!(client.code(login(APP, "null")).await, 10);
    server.shutdown().await;

    let mut config = test_config();
    config.apps.open = false;
    config.apps.add_spec("known");
    config
        .apps
        .add_spec("secure:0123456789abcdef0123456789abcdef");
    let server = start_server(config).await;
    let mut client = raw::connect(&server.url()).await;
    assert_eq!(client.code(login("unknown", "alice")).await, 4);
    assert_eq!(client.code(login("secure", "alice")).await, 5);
    let mut client = raw::connect(&server.url()).await;
    assert_eq!(client.code(login("known", "alice")).await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_ops_bad_params_and_garbage() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let reply = alice.request(json!({"op": "fly"})).await;
    assert_eq!(reply["code"], 1);
    assert!(reply["reason"].as_str().unwrap().contains("fly"));
    // Missing parameters: the family's invalid-argument code.
    assert_eq!(alice.code(json!({"op": "join"})).await, 3);
    // Garbage and id-less objects: an error event, the connection stays.
    for garbage in [
        "{not json",
        "[1,2]",
        r#"{"op":"ping"}"#,
        r#"{"id":0,"op":"ping"}"#,
    ] {
        alice.send_frame(garbage);
        let event = alice.expect_event("error").await;
        assert_eq!(event["code"], 1, "{garbage}");
        assert!(event["reason"].is_string());
    }
    // Binary frames are not protocol: an error event too.
    alice.send_binary(vec![1, 2, 3]).unwrap();
    assert_eq!(alice.expect_event("error").await["code"], 1);
    // Unknown fields are ignored.
    assert_eq!(
        alice.code(json!({"op": "ping", "future": {"x": 1}})).await,
        0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn hundred_errors_close_with_1008() {
    let server = start_server(test_config()).await;
    // Logged in: before login the connection would be closed after 16 objects anyway.
    let mut client = raw::login(&server.url(), APP, "alice").await;
    let garbage = vec!["nope"; 100].join("\n");
    client.send_frame(&garbage);
    assert_eq!(client.expect_end().await, Closure::CloseFrame(Some(1008)));
    assert_eq!(client.take_events(raw::named("error")).len(), 100);
    server.shutdown().await;
}

#[tokio::test]
async fn batched_requests_in_one_frame() {
    let server = start_server(test_config()).await;
    let mut client = raw::connect(&server.url()).await;
    let mut replies = client
        .start_batch(vec![
            json!({"op": "login", "app_id": APP, "user": "alice"}),
            json!({"op": "ping"}),
            json!({"op": "join", "channel": "lobby"}),
            json!({"op": "get_members", "channel": "lobby"}),
        ])
        .unwrap();
    let members = replies.pop().unwrap();
    for reply in replies {
        assert_eq!(raw::expect_reply(reply).await["code"], 0);
    }
    assert_eq!(
        raw::expect_reply(members).await["members"],
        json!(["alice"])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn remote_login_kicks_the_older_connection() {
    let server = start_server(test_config()).await;
    let mut first = raw::login(&server.url(), APP, "alice").await;
    let mut second = raw::login(&server.url(), APP, "alice").await;
    let kicked = first.expect_event("kicked").await;
    assert_eq!(kicked["reason"], "remote_login");
    assert!(matches!(
        first.expect_end().await,
        Closure::CloseFrame(Some(_))
    ));
    second.sync().await;
    // The same user in another app is someone else.
    let mut other_app = raw::login(&server.url(), "other", "alice").await;
    other_app.sync().await;
    second.assert_no_event("kicked").await;
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_sends_close_frames() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.sync().await;
    server.shutdown().await;
    assert_eq!(alice.expect_end().await, Closure::CloseFrame(Some(1001)));
}

#[tokio::test]
async fn wrong_path_is_refused() {
    let server = start_server(test_config()).await;
    let url = format!("ws://{}/other", server.addr());
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn pings_keep_a_reading_client_alive_and_silence_kills() {
    use futures_util::StreamExt as _;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    let config = rtm::server::Config {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..test_config()
    };
    let server = start_server(config).await;
    // A client that reads answers the server's Pings (tungstenite pongs on read): after
    // more Pings than fit into the idle timeout, it is still connected.
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .unwrap();
    let mut pings = 0;
    while pings < 8 {
        let frame = tokio::time::timeout(support::WAIT, ws.next())
            .await
            .expect("a Ping in time")
            .expect("still connected")
            .expect("no error");
        if matches!(frame, WsMessage::Ping(_)) {
            pings += 1;
        }
    }
    // A client that stops reading sends nothing back: dropped without a close frame.
    let mut silent = raw::login(&server.url(), APP, "silent").await;
    silent.set_reading(false);
    let mut watcher = raw::login(&server.url(), APP, "watcher").await;
    watcher
        .request(json!({"op": "subscribe_peers_online", "peers": ["silent"]}))
        .await;
    watcher.expect_event("peers_online_status").await;
    let event = watcher.expect_event("peers_online_status").await;
    assert_eq!(event["peers"]["silent"], "unreachable");
    silent.set_reading(true);
    assert_eq!(silent.expect_end().await, Closure::Dropped);
    drop(ws);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_requests_before_login_are_102() {
    let server = start_server(test_config()).await;
    let mut client = raw::connect(&server.url()).await;
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
    let mut alice = raw::login(&server.url(), APP, "alice").await;
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

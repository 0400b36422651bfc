//! Peer messages over real WebSockets, raw JSON: ack semantics, timeout, unreachable,
//! cached messages (cap, order, durability across a restart, a large backlog at login),
//! ordering, peer history.

use std::time::Duration;

use crate::support::raw::{self, Expect, Transcript};
use crate::support::{start_server, test_config, text};
use rtm::qa::raw::{Closure, RawConn};
use rtm::server::{Config, RateLimits, StoreLocation};
use serde_json::{json, Value};

const APP: &str = "demo";

fn send_peer(to: &str, body: &str) -> Value {
    json!({"op": "send_peer", "to": to, "message": text(body)})
}

#[tokio::test]
async fn answered_zero_only_after_the_receivers_ack() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let mut eve = raw::login(&server.url(), APP, "eve").await;

    let mut reply = alice.start(send_peer("bob", "hello")).unwrap();
    let event = bob.expect_event("message_from_peer").await;
    assert_eq!(event["from"], "alice");
    assert_eq!(event["message"], text("hello"));
    assert_eq!(event["offline"], false);
    let message_id = event["message_id"].as_u64().unwrap();
    assert!(event["server_ts"].as_u64().is_some());

    // Not acked yet: no reply for alice.
    alice.sync().await;
    assert!(raw::unanswered(&mut reply).await, "replied before ack");
    // An ack from someone else does not count.
    eve.ack(message_id);
    eve.sync().await;
    alice.sync().await;
    assert!(raw::unanswered(&mut reply).await, "eve's ack counted");

    bob.ack(message_id);
    let reply = raw::expect_reply(reply).await;
    assert_eq!(reply["code"], 0);
    assert_eq!(reply["message_id"], message_id);
    assert_eq!(reply["server_ts"], event["server_ts"]);
    server.shutdown().await;
}

#[tokio::test]
async fn no_ack_in_time_is_code_2() {
    let config = Config {
        ack_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let reply = alice.start(send_peer("bob", "are you there?")).unwrap();
    let event = bob.expect_event("message_from_peer").await;
    let reply = raw::expect_reply(reply).await;
    assert_eq!(reply["code"], 2);
    assert!(reply["reason"].is_string());
    // A late ack changes nothing.
    bob.ack(event["message_id"].as_u64().unwrap());
    alice.sync().await;
    assert_eq!(alice.stray_replies(), 0, "a second reply");
    server.shutdown().await;
}

#[tokio::test]
async fn unreachable_invalid_and_cached() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    assert_eq!(alice.code(send_peer("nobody", "hi")).await, 3);
    assert_eq!(alice.code(send_peer(" bad", "hi")).await, 6);
    assert_eq!(alice.code(send_peer("null", "hi")).await, 6);
    assert_eq!(alice.code(send_peer("bob", "")).await, 7);
    let too_big = "x".repeat(32 * 1024 + 1);
    assert_eq!(alice.code(send_peer("bob", &too_big)).await, 7);
    let bad_raw = json!({"op": "send_peer", "to": "bob",
        "message": {"type": "raw", "data": "!!notbase64", "description": ""}});
    assert_eq!(alice.code(bad_raw).await, 7);
    let reply = alice
        .request(json!({"op": "send_peer", "to": "bob", "message": text("later"), "offline": true}))
        .await;
    assert_eq!(reply["code"], 4);
    assert!(reply["message_id"].as_u64().is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn cached_messages_arrive_right_after_login_oldest_first() {
    let config = Config {
        offline_cap: 3,
        ..test_config()
    };
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        let reply = alice
            .request(json!({"op": "send_peer", "to": "bob",
                "message": text(&format!("m{n}")), "offline": true}))
            .await;
        assert_eq!(reply["code"], 4);
        ids.push(reply["message_id"].as_u64().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let mut transcript = Transcript::default();
    let mut bob = raw::connect_traced(&server.url(), transcript.tracer()).await;
    let login = bob
        .request(json!({"op": "login", "app_id": APP, "user": "bob"}))
        .await;
    let first = transcript.next().await;
    assert_eq!(first, login, "the login reply comes first");
    assert_eq!(first["code"], 0);
    // The cap of 3 dropped the two oldest.
    for n in 3..=5 {
        let event = transcript.next().await;
        assert_eq!(event["event"], "message_from_peer");
        assert_eq!(event["message"], text(&format!("m{n}")));
        assert_eq!(event["offline"], true);
        assert_eq!(event["from"], "alice");
        assert_eq!(event["message_id"], ids[n - 1]);
        bob.ack(ids[n - 1]);
    }
    // Delivered and acked: a new login does not get them again.
    bob.sync().await;
    bob.hang_up().await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    bob.assert_no_event("message_from_peer").await;
    server.shutdown().await;
}

#[tokio::test]
async fn cached_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || Config {
        store: StoreLocation::Path(dir.path().to_path_buf()),
        ..Config::default()
    };
    let server = start_server(config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut last_id = 0;
    for body in ["one", "two", "three"] {
        let reply = alice
            .request(
                json!({"op": "send_peer", "to": "bob", "message": text(body), "offline": true}),
            )
            .await;
        assert_eq!(reply["code"], 4);
        last_id = reply["message_id"].as_u64().unwrap();
    }
    alice.request(json!({"op": "join", "channel": "log"})).await;
    let posted = alice
        .request(json!({"op": "send_channel", "channel": "log", "message": text("kept")}))
        .await;
    server.shutdown().await;

    let server = start_server(config()).await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    for body in ["one", "two", "three"] {
        let event = bob.expect_event("message_from_peer").await;
        assert_eq!(event["message"], text(body));
        assert_eq!(event["offline"], true);
    }
    // Message ids keep increasing across the restart, and history is still there.
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.request(json!({"op": "join", "channel": "log"})).await;
    let history = alice
        .request(json!({"op": "history", "channel": "log"}))
        .await;
    assert_eq!(history["messages"][0]["message_id"], posted["message_id"]);
    assert_eq!(history["messages"][0]["message"], text("kept"));
    let peer = bob.request(json!({"op": "history", "peer": "alice"})).await;
    assert_eq!(peer["messages"].as_array().unwrap().len(), 3);
    let reply = alice
        .request(json!({"op": "send_peer", "to": "carol", "message": text("x"), "offline": true}))
        .await;
    assert!(reply["message_id"].as_u64().unwrap() > last_id);
    server.shutdown().await;
}

#[tokio::test]
async fn peer_messages_keep_their_order() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let replies = alice
        .start_batch((1..=50).map(|n| send_peer("bob", &n.to_string())).collect())
        .unwrap();
    let mut last_id = 0;
    for n in 1..=50 {
        let event = bob.expect_event("message_from_peer").await;
        assert_eq!(event["message"], text(&n.to_string()));
        let id = event["message_id"].as_u64().unwrap();
        assert!(id > last_id);
        last_id = id;
        bob.ack(id);
    }
    for reply in replies {
        assert_eq!(raw::expect_reply(reply).await["code"], 0);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn peer_history_windows() {
    let server = start_server(Config {
        history_limit: 5,
        ..test_config()
    })
    .await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let mut ids = Vec::new();
    for n in 1..=7 {
        let reply = alice.start(send_peer("bob", &format!("m{n}"))).unwrap();
        let event = bob.expect_event("message_from_peer").await;
        bob.ack(event["message_id"].as_u64().unwrap());
        ids.push(
            raw::expect_reply(reply).await["message_id"]
                .as_u64()
                .unwrap(),
        );
    }
    let bodies = |reply: &Value| {
        reply["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message"]["text"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // Only the newest 5 are kept, oldest first; bob sees the same conversation.
    let all = bob.request(json!({"op": "history", "peer": "alice"})).await;
    assert_eq!(all["code"], 0);
    assert_eq!(bodies(&all), ["m3", "m4", "m5", "m6", "m7"]);
    assert_eq!(all["messages"][0]["from"], "alice");
    assert_eq!(all["messages"][0]["message_id"], ids[2]);
    let before = alice
        .request(json!({"op": "history", "peer": "bob", "before": ids[5], "limit": 2}))
        .await;
    assert_eq!(bodies(&before), ["m4", "m5"]);
    let after = alice
        .request(json!({"op": "history", "peer": "bob", "after": ids[3], "limit": 2}))
        .await;
    assert_eq!(bodies(&after), ["m5", "m6"]);
    // Bad arguments: 2.
    for op in [
        json!({"op": "history", "peer": "bob", "limit": 0}),
        json!({"op": "history", "peer": "bob", "limit": 101}),
        json!({"op": "history"}),
        json!({"op": "history", "peer": "bob", "channel": "c"}),
        json!({"op": "history", "peer": " bad"}),
    ] {
        assert_eq!(alice.code(op.clone()).await, 2, "{op}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn raw_messages_up_to_32_kib() {
    use base64::Engine as _;
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let raw = |bytes: usize, description: &str| {
        let data = base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes]);
        json!({"type": "raw", "data": data, "description": description})
    };
    // Data plus description exactly 32 KiB: accepted and delivered as sent.
    let message = raw(32 * 1024 - 8, "file.bin");
    let reply = alice
        .start(json!({"op": "send_peer", "to": "bob", "message": message}))
        .unwrap();
    let event = bob.expect_event("message_from_peer").await;
    assert_eq!(event["message"], message);
    bob.ack(event["message_id"].as_u64().unwrap());
    assert_eq!(raw::expect_reply(reply).await["code"], 0);
    // One byte more: 7.
    let message = raw(32 * 1024 - 7, "file.bin");
    assert_eq!(
        alice
            .code(json!({"op": "send_peer", "to": "bob", "message": message}))
            .await,
        7
    );
    server.shutdown().await;
}

/// Logs in with 20 pings in the same frame; reads the login reply, `count` cached
/// messages and every ping reply; returns the messages' ids.
async fn expect_backlog(client: &mut RawConn, user: &str, count: usize) -> Vec<u64> {
    let mut ops = vec![json!({"op": "login", "app_id": APP, "user": user})];
    ops.extend(std::iter::repeat_n(json!({"op": "ping"}), 20));
    let mut replies = client.start_batch(ops).unwrap().into_iter();
    let login = replies.next().unwrap();
    assert_eq!(raw::expect_reply(login).await["code"], 0);
    let mut ids = Vec::new();
    for _ in 0..count {
        let event = client.expect_event("message_from_peer").await;
        assert_eq!(event["offline"], true);
        ids.push(event["message_id"].as_u64().unwrap());
    }
    for ping in replies {
        assert_eq!(raw::expect_reply(ping).await["code"], 0);
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
    let mut alice = raw::login(&server.url(), APP, "alice").await;
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
    let mut bob = raw::connect(&server.url()).await;
    let first = expect_backlog(&mut bob, "bob", 200).await;
    assert!(first.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert_eq!(bob.closure(), Closure::Open);
    bob.drop_abruptly();

    // Not acked: all of them again at the next login. Acked: gone.
    let mut bob = raw::connect(&server.url()).await;
    let again = expect_backlog(&mut bob, "bob", 200).await;
    assert_eq!(again, first);
    for id in &again[..150] {
        bob.ack(*id);
    }
    bob.sync().await;
    bob.hang_up().await;
    let mut bob = raw::connect(&server.url()).await;
    let rest = expect_backlog(&mut bob, "bob", 50).await;
    assert_eq!(rest, first[150..]);
    for id in &rest {
        bob.ack(*id);
    }
    bob.hang_up().await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    bob.assert_no_event("message_from_peer").await;
    server.shutdown().await;
}

//! User and channel attributes over real WebSockets, raw JSON: every write op, reads,
//! limits and codes, notify events, and expiry of an empty channel's attributes.

use std::time::Duration;

use crate::support::raw::{self, Expect};
use crate::support::{start_server, test_config};
use rtm::qa::raw::RawConn;
use rtm::server::{Config, RateLimits};
use serde_json::{json, Value};

const APP: &str = "demo";

fn unlimited() -> Config {
    Config {
        rate_limits: RateLimits::unlimited(),
        ..test_config()
    }
}

#[tokio::test]
async fn user_attributes_lifecycle() {
    let server = start_server(unlimited()).await;
    let url = server.url();
    let mut alice = raw::login(&url, APP, "alice").await;
    let mut bob = raw::login(&url, APP, "bob").await;
    let get = |keys: Option<Value>| match keys {
        Some(keys) => json!({"op": "get_user_attributes", "user": "alice", "keys": keys}),
        None => json!({"op": "get_user_attributes", "user": "alice"}),
    };

    assert_eq!(
        alice
            .code(
                json!({"op": "set_user_attributes", "attributes": {"mood": "happy", "role": "dev"}})
            )
            .await,
        0
    );
    assert_eq!(
        bob.request(get(None)).await["attributes"],
        json!({"mood": "happy", "role": "dev"})
    );
    assert_eq!(
        alice
            .code(json!({"op": "add_or_update_user_attributes", "attributes": {"mood": "busy", "x": "1"}}))
            .await,
        0
    );
    assert_eq!(
        bob.request(get(Some(json!(["mood", "missing"])))).await["attributes"],
        json!({"mood": "busy"})
    );
    assert_eq!(
        alice
            .code(json!({"op": "delete_user_attributes", "keys": ["x", "role"]}))
            .await,
        0
    );
    assert_eq!(
        bob.request(get(None)).await["attributes"],
        json!({"mood": "busy"})
    );
    // Set replaces everything.
    assert_eq!(
        alice
            .code(json!({"op": "set_user_attributes", "attributes": {"a": "1"}}))
            .await,
        0
    );
    assert_eq!(
        bob.request(get(None)).await["attributes"],
        json!({"a": "1"})
    );
    assert_eq!(alice.code(json!({"op": "clear_user_attributes"})).await, 0);
    assert_eq!(bob.request(get(None)).await["attributes"], json!({}));

    // Offline user: 6; invalid user id: 3.
    assert_eq!(
        bob.code(json!({"op": "get_user_attributes", "user": "nobody"}))
            .await,
        6
    );
    assert_eq!(
        bob.code(json!({"op": "get_user_attributes", "user": " x"}))
            .await,
        3
    );

    // Cleared at logout.
    alice
        .request(json!({"op": "set_user_attributes", "attributes": {"k": "v"}}))
        .await;
    assert_eq!(alice.code(json!({"op": "logout"})).await, 0);
    assert_eq!(bob.code(get(None)).await, 6);
    alice
        .request(json!({"op": "login", "app_id": APP, "user": "alice"}))
        .await;
    assert_eq!(bob.request(get(None)).await["attributes"], json!({}));
    server.shutdown().await;
}

#[tokio::test]
async fn user_attribute_limits() {
    let server = start_server(unlimited()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let set = |attributes: Value| json!({"op": "set_user_attributes", "attributes": attributes});
    let big = "v".repeat(8 * 1024);
    assert_eq!(alice.code(set(json!({"k": big}))).await, 0);
    assert_eq!(alice.code(set(json!({"k": format!("{big}v")}))).await, 4);
    assert_eq!(alice.code(set(json!({"k": ""}))).await, 3);
    assert_eq!(alice.code(set(json!({"bad\u{1}key": "v"}))).await, 3);
    assert_eq!(alice.code(set(json!({"k".repeat(33): "v"}))).await, 4);
    let many: serde_json::Map<String, Value> =
        (0..33).map(|n| (format!("k{n}"), json!("v"))).collect();
    assert_eq!(alice.code(set(Value::Object(many))).await, 4);
    // 16 KiB in all: two full values fit in a channel but not in a user.
    let two = json!({"a": big, "b": big});
    assert_eq!(alice.code(set(two)).await, 4);
    // An add that would overflow the set is refused and leaves it unchanged.
    assert_eq!(alice.code(set(json!({"a": big}))).await, 0);
    assert_eq!(
        alice
            .code(json!({"op": "add_or_update_user_attributes", "attributes": {"b": big}}))
            .await,
        4
    );
    let mine = alice
        .request(json!({"op": "get_user_attributes", "user": "alice"}))
        .await;
    assert_eq!(mine["attributes"].as_object().unwrap().len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn attribute_writes_are_rate_limited() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    for n in 0..10 {
        let op = if n % 2 == 0 {
            json!({"op": "set_user_attributes", "attributes": {"n": n.to_string()}})
        } else {
            json!({"op": "set_channel_attributes", "channel": "c", "attributes": {"n": "1"}})
        };
        assert_eq!(alice.code(op).await, 0);
    }
    assert_eq!(alice.code(json!({"op": "clear_user_attributes"})).await, 5);
    assert_eq!(
        alice
            .code(json!({"op": "clear_channel_attributes", "channel": "c"}))
            .await,
        5
    );
    // Reads are not writes.
    assert_eq!(
        alice
            .code(json!({"op": "get_channel_attributes", "channel": "c"}))
            .await,
        0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn channel_attributes_with_notify() {
    let server = start_server(unlimited()).await;
    let url = server.url();
    let mut member = raw::login(&url, APP, "member").await;
    member
        .request(json!({"op": "join", "channel": "room"}))
        .await;
    // Writers need not be members.
    let mut alice = raw::login(&url, APP, "alice").await;
    let mut bob = raw::login(&url, APP, "bob").await;

    let reply = alice
        .request(json!({"op": "set_channel_attributes", "channel": "room",
            "attributes": {"topic": "rust", "rules": "be kind"}, "notify": true}))
        .await;
    assert_eq!(reply["code"], 0);
    let event = member.expect_event("channel_attributes_updated").await;
    assert_eq!(event["channel"], "room");
    let list = event["attributes"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["key"], "rules");
    assert_eq!(list[1]["key"], "topic");
    assert_eq!(list[1]["value"], "rust");
    assert_eq!(list[1]["updated_by"], "alice");
    let set_ts = list[1]["updated_ts"].as_u64().unwrap();
    assert!(set_ts > 1_600_000_000_000);

    // Without notify: no event. add_or_update stamps only the keys it writes.
    bob.request(
        json!({"op": "add_or_update_channel_attributes", "channel": "room",
        "attributes": {"topic": "tokio"}}),
    )
    .await;
    member.assert_no_event("channel_attributes_updated").await;
    let got = bob
        .request(json!({"op": "get_channel_attributes", "channel": "room"}))
        .await;
    let list = got["attributes"].as_array().unwrap();
    assert_eq!(list[0]["updated_by"], "alice");
    assert_eq!(list[1]["value"], "tokio");
    assert_eq!(list[1]["updated_by"], "bob");

    let only = bob
        .request(json!({"op": "get_channel_attributes", "channel": "room", "keys": ["topic"]}))
        .await;
    assert_eq!(only["attributes"].as_array().unwrap().len(), 1);

    bob.request(json!({"op": "delete_channel_attributes", "channel": "room",
        "keys": ["topic"], "notify": true}))
        .await;
    let event = member.expect_event("channel_attributes_updated").await;
    assert_eq!(event["attributes"].as_array().unwrap().len(), 1);
    bob.request(json!({"op": "clear_channel_attributes", "channel": "room", "notify": true}))
        .await;
    let event = member.expect_event("channel_attributes_updated").await;
    assert_eq!(event["attributes"], json!([]));

    // Unknown channel: an empty list. Limits: 32 KiB in all, 3 for bad input.
    let empty = bob
        .request(json!({"op": "get_channel_attributes", "channel": "nowhere"}))
        .await;
    assert_eq!(empty["attributes"], json!([]));
    let big = "v".repeat(8 * 1024);
    let four: serde_json::Map<String, Value> =
        (0..4).map(|n| (format!("{n}"), json!(big))).collect();
    assert_eq!(
        bob.code(json!({"op": "set_channel_attributes", "channel": "room", "attributes": four}))
            .await,
        4
    );
    assert_eq!(
        bob.code(
            json!({"op": "set_channel_attributes", "channel": " x", "attributes": {"k": "v"}})
        )
        .await,
        3
    );
    server.shutdown().await;
}

/// The number of attributes `channel` has.
async fn attribute_count(client: &mut RawConn, channel: &str) -> usize {
    let got = client
        .request(json!({"op": "get_channel_attributes", "channel": channel}))
        .await;
    got["attributes"].as_array().expect("attributes").len()
}

/// On paused time: the sleeps move the server's clock to just before and just after the
/// expiry (docs/protocol.md's 5 minutes). The server's Pings and idle timeout are pushed past
/// the test: on paused time a Ping that reaches the raw client while it is not reading
/// stalled the next reply (seen, not yet understood).
#[tokio::test(start_paused = true)]
async fn attributes_of_an_empty_channel_expire() {
    let ttl = Duration::from_secs(5 * 60);
    let config = Config {
        channel_attributes_ttl: ttl,
        ping_interval: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(7200),
        ..unlimited()
    };
    let server = start_server(config).await;
    let url = server.url();
    let mut alice = raw::login(&url, APP, "alice").await;
    let mut bob = raw::login(&url, APP, "bob").await;
    let attrs = |channel: &str| json!({"op": "set_channel_attributes", "channel": channel, "attributes": {"k": "v"}});
    // "kept" has a member all along; "left" loses its member; "never" never had one.
    bob.request(json!({"op": "join", "channel": "kept"})).await;
    alice
        .request(json!({"op": "join", "channel": "left"}))
        .await;
    alice.request(attrs("kept")).await;
    alice.request(attrs("left")).await;
    alice
        .request(json!({"op": "leave", "channel": "left"}))
        .await;
    alice.request(attrs("never")).await;
    tokio::time::sleep(ttl.saturating_sub(Duration::from_secs(1))).await;
    for channel in ["kept", "left", "never"] {
        assert_eq!(
            attribute_count(&mut alice, channel).await,
            1,
            "{channel} before the TTL"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        attribute_count(&mut alice, "left").await,
        0,
        "left after the TTL"
    );
    assert_eq!(
        attribute_count(&mut alice, "never").await,
        0,
        "never after the TTL"
    );
    assert_eq!(
        attribute_count(&mut alice, "kept").await,
        1,
        "kept has a member"
    );
    server.shutdown().await;
}

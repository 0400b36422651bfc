//! Presence over real WebSockets, raw JSON: query, subscribe/unsubscribe, the states
//! subscribers see (online, unreachable during the grace, offline), limits and codes.

use std::time::Duration;

use crate::support::raw::{self, Expect, Transcript};
use crate::support::{start_server, test_config};
use rtm::server::{Config, RateLimits};
use serde_json::json;

const APP: &str = "demo";

#[tokio::test]
async fn query_answers_in_input_order() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let _bob = raw::login(&server.url(), APP, "bob").await;
    let reply = alice
        .request(json!({"op": "query_peers_online", "peers": ["zed", "bob", "alice"]}))
        .await;
    assert_eq!(reply["code"], 0);
    // Order as asked, not sorted.
    let peers: Vec<_> = reply["peers"].as_object().unwrap().iter().collect();
    assert_eq!(
        peers,
        [
            (&"zed".to_string(), &json!("offline")),
            (&"bob".to_string(), &json!("online")),
            (&"alice".to_string(), &json!("online")),
        ]
    );
    let too_many: Vec<String> = (0..257).map(|n| format!("u{n}")).collect();
    for op in [
        json!({"op": "query_peers_online", "peers": []}),
        json!({"op": "query_peers_online", "peers": too_many}),
        json!({"op": "query_peers_online", "peers": [" bad"]}),
    ] {
        assert_eq!(alice.code(op).await, 2);
    }
    // 10 presence requests per 5 s: one was allowed above, nine more, then 5.
    for _ in 0..9 {
        assert_eq!(
            alice
                .code(json!({"op": "query_peers_online", "peers": ["bob"]}))
                .await,
            0
        );
    }
    assert_eq!(
        alice
            .code(json!({"op": "query_peers_online", "peers": ["bob"]}))
            .await,
        5
    );
    server.shutdown().await;
}

#[tokio::test]
async fn subscribers_see_online_unreachable_offline() {
    let config = Config {
        grace: Duration::from_millis(300),
        ..test_config()
    };
    let server = start_server(config).await;
    let url = server.url();
    let mut transcript = Transcript::default();
    let mut alice = raw::connect_traced(&url, transcript.tracer()).await;
    alice.login(APP, "alice").await;
    let bob = raw::login(&url, APP, "bob").await;

    transcript.skip_received();
    let reply = alice
        .request(json!({"op": "subscribe_peers_online", "peers": ["bob", "carol"]}))
        .await;
    assert_eq!(reply["code"], 0);
    let current = alice.next_any_event().await;
    assert_eq!(
        current,
        json!({"event": "peers_online_status", "peers": {"bob": "online", "carol": "offline"}})
    );
    // The reply, then the current states.
    assert_eq!(transcript.next().await, reply);
    assert_eq!(transcript.next().await, current);
    let subscribed = alice.request(json!({"op": "query_subscribed_peers"})).await;
    let mut peers: Vec<_> = subscribed["peers"].as_array().unwrap().clone();
    peers.sort_by_key(ToString::to_string);
    assert_eq!(peers, [json!("bob"), json!("carol")]);

    let carol = raw::login(&url, APP, "carol").await;
    let event = alice.expect_event("peers_online_status").await;
    assert_eq!(event["peers"], json!({"carol": "online"}));

    // A dropped connection: unreachable at once (query says offline), offline after the grace.
    bob.drop_abruptly();
    let event = alice.expect_event("peers_online_status").await;
    assert_eq!(event["peers"], json!({"bob": "unreachable"}));
    let query = alice
        .request(json!({"op": "query_peers_online", "peers": ["bob"]}))
        .await;
    assert_eq!(query["peers"]["bob"], "offline");
    let event = alice.expect_event("peers_online_status").await;
    assert_eq!(event["peers"], json!({"bob": "offline"}));

    // A logout: offline at once.
    let mut carol = carol;
    assert_eq!(carol.code(json!({"op": "logout"})).await, 0);
    let event = alice.expect_event("peers_online_status").await;
    assert_eq!(event["peers"], json!({"carol": "offline"}));

    // Unsubscribed: no more events.
    assert_eq!(
        alice
            .code(json!({"op": "unsubscribe_peers_online", "peers": ["carol"]}))
            .await,
        0
    );
    let _carol = raw::login(&url, APP, "carol").await;
    alice.assert_no_event("peers_online_status").await;
    server.shutdown().await;
}

#[tokio::test]
async fn subscriptions_survive_a_reconnect_and_end_at_logout() {
    let config = Config {
        grace: Duration::from_secs(5),
        ..test_config()
    };
    let server = start_server(config).await;
    let url = server.url();
    let mut alice = raw::login(&url, APP, "alice").await;
    assert_eq!(
        alice
            .code(json!({"op": "subscribe_peers_online", "peers": ["bob"]}))
            .await,
        0
    );
    alice.drop_abruptly();
    let mut alice = raw::login(&url, APP, "alice").await;
    let subscribed = alice.request(json!({"op": "query_subscribed_peers"})).await;
    assert_eq!(subscribed["peers"], json!(["bob"]));
    let _bob = raw::login(&url, APP, "bob").await;
    assert_eq!(
        alice.expect_event("peers_online_status").await["peers"],
        json!({"bob": "online"})
    );
    assert_eq!(alice.code(json!({"op": "logout"})).await, 0);
    assert_eq!(
        alice
            .code(json!({"op": "login", "app_id": APP, "user": "alice"}))
            .await,
        0
    );
    let subscribed = alice.request(json!({"op": "query_subscribed_peers"})).await;
    assert_eq!(subscribed["peers"], json!([]));
    server.shutdown().await;
}

#[tokio::test]
async fn at_most_512_subscriptions() {
    let config = Config {
        rate_limits: RateLimits::unlimited(),
        ..test_config()
    };
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let first: Vec<String> = (0..500).map(|n| format!("u{n}")).collect();
    let more: Vec<String> = (500..513).map(|n| format!("u{n}")).collect();
    let too_many: Vec<String> = (0..513).map(|n| format!("v{n}")).collect();
    assert_eq!(
        alice
            .code(json!({"op": "subscribe_peers_online", "peers": too_many}))
            .await,
        2
    );
    assert_eq!(
        alice
            .code(json!({"op": "subscribe_peers_online", "peers": first}))
            .await,
        0
    );
    // Already subscribed peers do not count twice.
    assert_eq!(
        alice
            .code(json!({"op": "subscribe_peers_online", "peers": ["u1", "u2"]}))
            .await,
        0
    );
    assert_eq!(
        alice
            .code(json!({"op": "subscribe_peers_online", "peers": more}))
            .await,
        6
    );
    let subscribed = alice.request(json!({"op": "query_subscribed_peers"})).await;
    assert_eq!(subscribed["peers"].as_array().unwrap().len(), 500);
    server.shutdown().await;
}

/// A remote login keeps the user's subscriptions: the new session lists them and gets
/// the peers' changes at once, and the kicked one gets nothing more.
#[tokio::test]
async fn a_remote_login_keeps_the_subscriptions_and_their_events_move_to_it() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let mut first = raw::login(&url, APP, "alice").await;
    let subscribe = json!({"op": "subscribe_peers_online", "peers": ["bob", "carol"]});
    assert_eq!(first.code(subscribe).await, 0);
    let states = first.expect_event("peers_online_status").await;
    assert_eq!(
        states["peers"],
        json!({"bob": "offline", "carol": "offline"})
    );
    let mut second = raw::login(&url, APP, "alice").await;
    first
        .expect_event_with("kicked", json!({"reason": "remote_login"}))
        .await;
    let subscribed = second
        .request(json!({"op": "query_subscribed_peers"}))
        .await;
    assert_eq!(subscribed["peers"], json!(["bob", "carol"]));
    let _bob = raw::login(&url, APP, "bob").await;
    assert_eq!(
        second.expect_event("peers_online_status").await["peers"],
        json!({"bob": "online"})
    );
    server.shutdown().await;
}

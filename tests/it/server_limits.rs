//! Rate limits over real WebSockets, raw JSON: each family's "too often" code, with the
//! limits of docs/protocol.md (and one configured value to show they are configurable). The
//! invitation limit is with the other INVITE codes in `server_invitations.rs`.

use std::time::Duration;

use crate::support::raw::{self, Expect};
use crate::support::{start_server, test_config, text};
use rtm::qa::raw::{code_of, RawConn};
use rtm::server::{Config, RateLimit};
use serde_json::json;

const APP: &str = "demo";

/// Sends `count` copies of `op` in one frame and returns their codes in order.
async fn burst(client: &mut RawConn, op: &serde_json::Value, count: usize) -> Vec<u32> {
    let replies = client.start_batch(vec![op.clone(); count]).unwrap();
    let mut codes = Vec::new();
    for reply in replies {
        codes.push(code_of(&raw::expect_reply(reply).await));
    }
    codes
}

#[tokio::test]
async fn sends_180_per_3_seconds() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.request(json!({"op": "join", "channel": "c"})).await;
    let channel = json!({"op": "send_channel", "channel": "c", "message": text("x")});
    let codes = burst(&mut alice, &channel, 180).await;
    assert!(codes.iter().all(|c| *c == 0));
    // Peer and channel sends share the budget: PEER says 5, CHANNEL_MSG says 3.
    let peer = json!({"op": "send_peer", "to": "nobody", "message": text("x")});
    assert_eq!(alice.code(peer).await, 5);
    assert_eq!(alice.code(channel).await, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn joins_per_connection_and_per_channel() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let join = json!({"op": "join", "channel": "c"});
    let leave = json!({"op": "leave", "channel": "c"});
    assert_eq!(alice.code(join.clone()).await, 0);
    assert_eq!(alice.code(leave.clone()).await, 0);
    assert_eq!(alice.code(join.clone()).await, 0);
    assert_eq!(alice.code(leave).await, 0);
    // The third join of one channel within 5 s: 8.
    assert_eq!(alice.code(join).await, 8);

    // 50 joins per 3 s in all; the three above counted. The 20-channel cap answers 5
    // first, then the rate limit 7.
    let mut codes = Vec::new();
    for n in 0..50 {
        let reply = alice
            .request(json!({"op": "join", "channel": format!("j{n}")}))
            .await;
        codes.push(reply["code"].as_u64().unwrap());
    }
    let mut expected = vec![0; 20];
    expected.extend([5; 27]);
    expected.extend([7; 3]);
    assert_eq!(codes, expected);
    server.shutdown().await;
}

/// On paused time, docs/protocol.md's own window: 180 sends per 3 s, the next one too often,
/// and once the window has slid past the burst, sends go through again. (The server's
/// Pings and idle timeout are pushed past the test, as in `server_attributes.rs`.)
#[tokio::test(start_paused = true)]
async fn a_send_window_reopens_once_it_has_slid_past_the_burst() {
    let config = Config {
        ping_interval: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(7200),
        ..test_config()
    };
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let peer = json!({"op": "send_peer", "to": "nobody", "message": text("x")});
    let mut expected = vec![3; 180];
    expected.push(5);
    assert_eq!(burst(&mut alice, &peer, 181).await, expected);
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert_eq!(
        burst(&mut alice, &peer, 1).await,
        vec![5],
        "still inside the 3 s window"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        burst(&mut alice, &peer, 2).await,
        vec![3, 3],
        "the window slid on"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn limits_are_configurable() {
    let mut config = test_config();
    config.rate_limits.send = RateLimit::new(2, Duration::from_secs(60));
    let server = start_server(Config { ..config }).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let peer = json!({"op": "send_peer", "to": "nobody", "message": text("x")});
    assert_eq!(burst(&mut alice, &peer, 3).await, vec![3, 3, 5]);
    server.shutdown().await;
}

#[tokio::test]
async fn renew_token_too_often_is_4() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let renew = json!({"op": "renew_token", "token": "whatever"});
    // Default: 2 per 5 s (this app has no certificate, so a renewal answers 0).
    assert_eq!(alice.code(renew.clone()).await, 0);
    assert_eq!(alice.code(renew.clone()).await, 0);
    assert_eq!(alice.code(renew).await, 4);
    server.shutdown().await;
}

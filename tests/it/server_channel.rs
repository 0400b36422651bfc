//! Channels over real WebSockets, raw JSON: join/leave codes, member events, throttled
//! counts, messages (not echoed, ordered), history, the grace period, slow consumers.

use std::time::{Duration, Instant};

use crate::support::raw::{self, join, send_channel, Expect};
use crate::support::{start_server, test_config, text};
use rtm::qa::raw::Closure;
use rtm::server::{Config, RateLimits};
use serde_json::json;

const APP: &str = "demo";

#[tokio::test]
async fn join_leave_members_and_events() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;

    let reply = alice.request(join("lobby")).await;
    assert_eq!(reply["code"], 0);
    assert_eq!(reply["member_count"], 1);
    assert_eq!(alice.code(join("lobby")).await, 6);
    assert_eq!(alice.code(join(" bad")).await, 3);

    assert_eq!(bob.request(join("lobby")).await["member_count"], 2);
    let joined = alice.expect_event("member_joined").await;
    assert_eq!(
        joined,
        json!({"event": "member_joined", "channel": "lobby", "user": "bob"})
    );
    bob.assert_no_event("member_joined").await;

    let members = alice
        .request(json!({"op": "get_members", "channel": "lobby"}))
        .await;
    assert_eq!(members["members"], json!(["alice", "bob"]));
    assert_eq!(
        alice
            .code(json!({"op": "get_members", "channel": "other"}))
            .await,
        5
    );

    let counts = alice
        .request(json!({"op": "get_channel_member_count", "channels": ["lobby", "empty"]}))
        .await;
    assert_eq!(counts["counts"], json!({"lobby": 2, "empty": 0}));
    let many: Vec<String> = (0..33).map(|n| format!("c{n}")).collect();
    assert_eq!(
        alice
            .code(json!({"op": "get_channel_member_count", "channels": many}))
            .await,
        5
    );
    assert_eq!(
        alice
            .code(json!({"op": "get_channel_member_count", "channels": []}))
            .await,
        2
    );

    assert_eq!(
        bob.code(json!({"op": "leave", "channel": "lobby"})).await,
        0
    );
    let left = alice.expect_event("member_left").await;
    assert_eq!(
        left,
        json!({"event": "member_left", "channel": "lobby", "user": "bob"})
    );
    assert_eq!(
        bob.code(json!({"op": "leave", "channel": "lobby"})).await,
        3
    );
    server.shutdown().await;
}

#[tokio::test]
async fn twenty_channels_at_most() {
    let config = Config {
        rate_limits: RateLimits::unlimited(),
        ..test_config()
    };
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    for n in 0..20 {
        assert_eq!(alice.code(join(&format!("c{n}"))).await, 0);
    }
    assert_eq!(alice.code(join("c20")).await, 5);
    assert_eq!(alice.code(json!({"op": "leave", "channel": "c0"})).await, 0);
    assert_eq!(alice.code(join("c20")).await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn channel_messages_reach_others_not_the_sender() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let mut carol = raw::login(&server.url(), APP, "carol").await;
    alice.request(join("lobby")).await;
    bob.request(join("lobby")).await;

    let reply = alice.request(send_channel("lobby", "hi all")).await;
    assert_eq!(reply["code"], 0);
    let event = bob.expect_event("message_from_channel").await;
    assert_eq!(event["channel"], "lobby");
    assert_eq!(event["from"], "alice");
    assert_eq!(event["message"], text("hi all"));
    assert_eq!(event["message_id"], reply["message_id"]);
    assert_eq!(event["server_ts"], reply["server_ts"]);
    alice.assert_no_event("message_from_channel").await;
    carol.assert_no_event("message_from_channel").await;

    assert_eq!(carol.code(send_channel("lobby", "let me in")).await, 5);
    assert_eq!(alice.code(send_channel("lobby", "")).await, 4);
    let raw = json!({"op": "send_channel", "channel": "lobby",
        "message": {"type": "raw", "data": "AAEC", "description": "three bytes"}});
    assert_eq!(alice.code(raw).await, 0);
    let event = bob.expect_event("message_from_channel").await;
    assert_eq!(event["message"]["data"], "AAEC");
    assert_eq!(event["message"]["description"], "three bytes");
    server.shutdown().await;
}

#[tokio::test]
async fn everyone_sees_one_order() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let mut senders = Vec::new();
    let mut readers = Vec::new();
    for user in ["s1", "s2"] {
        let mut client = raw::login(&url, APP, user).await;
        client.request(join("race")).await;
        senders.push(client);
    }
    for user in ["r1", "r2"] {
        let mut client = raw::login(&url, APP, user).await;
        client.request(join("race")).await;
        readers.push(client);
    }
    const EACH: usize = 60;
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(n, mut sender)| {
            tokio::spawn(async move {
                let ops = (1..=EACH)
                    .map(|i| send_channel("race", &format!("{n}:{i}")))
                    .collect();
                for reply in sender.start_batch(ops).unwrap() {
                    assert_eq!(raw::expect_reply(reply).await["code"], 0);
                }
                sender
            })
        })
        .collect();
    let mut seen = Vec::new();
    for reader in &mut readers {
        let mut order = Vec::new();
        while order.len() < 2 * EACH {
            let event = reader.expect_event("message_from_channel").await;
            order.push((
                event["message_id"].as_u64().unwrap(),
                event["message"]["text"].as_str().unwrap().to_string(),
            ));
        }
        seen.push(order);
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(seen[0], seen[1], "both readers see the same order");
    assert!(seen[0].windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    for n in 0..2 {
        let mine: Vec<_> = seen[0]
            .iter()
            .filter(|(_, body)| body.starts_with(&format!("{n}:")))
            .map(|(_, body)| body.clone())
            .collect();
        let expected: Vec<_> = (1..=EACH).map(|i| format!("{n}:{i}")).collect();
        assert_eq!(mine, expected, "a sender's messages stay in send order");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn member_count_updates_are_throttled() {
    let config = Config {
        member_count_interval: Duration::from_millis(300),
        ..test_config()
    };
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.request(join("busy")).await;
    let first = alice.expect_event("member_count_updated").await;
    let first_at = Instant::now();
    assert_eq!(
        first,
        json!({"event": "member_count_updated", "channel": "busy", "count": 1})
    );
    let mut others = Vec::new();
    for user in ["bob", "carol", "dave"] {
        let mut client = raw::login(&server.url(), APP, user).await;
        client.request(join("busy")).await;
        others.push(client);
    }
    // The joins within one interval coalesce into one update with the latest count.
    let second = alice.expect_event("member_count_updated").await;
    assert!(first_at.elapsed() >= Duration::from_millis(250));
    assert_eq!(second["count"], 4);
    alice.assert_no_event("member_count_updated").await;
    // Members who joined later get it as well.
    assert_eq!(
        others[0].expect_event("member_count_updated").await["count"],
        4
    );
    server.shutdown().await;
}

#[tokio::test]
async fn channel_history_needs_membership() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    alice.request(join("log")).await;
    let mut ids = Vec::new();
    for n in 1..=4 {
        let reply = alice.request(send_channel("log", &format!("m{n}"))).await;
        ids.push(reply["message_id"].as_u64().unwrap());
    }
    assert_eq!(
        bob.code(json!({"op": "history", "channel": "log"})).await,
        5
    );
    bob.request(join("log")).await;
    let reply = bob
        .request(json!({"op": "history", "channel": "log", "limit": 3}))
        .await;
    let got: Vec<_> = reply["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["message_id"].as_u64().unwrap(), m["from"].clone()))
        .collect();
    assert_eq!(
        got,
        ids[1..]
            .iter()
            .map(|id| (*id, json!("alice")))
            .collect::<Vec<_>>()
    );
    let after = bob
        .request(json!({"op": "history", "channel": "log", "after": ids[0]}))
        .await;
    assert_eq!(after["messages"].as_array().unwrap().len(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn rejoin_within_grace_is_silent() {
    let config = Config {
        grace: Duration::from_millis(800),
        ..test_config()
    };
    let server = start_server(config).await;
    let url = server.url();
    let mut alice = raw::login(&url, APP, "alice").await;
    alice.request(join("room")).await;
    let mut bob = raw::login(&url, APP, "bob").await;
    bob.request(join("room")).await;
    let mut marker = raw::login(&url, APP, "marker").await;
    marker.request(join("room")).await;
    alice.sync().await;
    alice.take_events(raw::named("member_joined"));

    // Bob's connection drops; he is back and rejoins within the grace.
    bob.drop_abruptly();
    let mut bob = raw::login(&url, APP, "bob").await;
    let reply = bob.request(join("room")).await;
    assert_eq!(reply["code"], 0);
    assert_eq!(reply["member_count"], 3);
    // The marker drops after bob did, so its grace ends after bob's: once alice sees the
    // marker leave, bob's grace is over too.
    marker.drop_abruptly();
    let left = alice.expect_event("member_left").await;
    assert_eq!(left["user"], "marker");
    alice.sync().await;
    assert!(alice.take_events(raw::named("member_left")).is_empty());
    assert!(alice.take_events(raw::named("member_joined")).is_empty());
    // Bob is a full member again: he gets messages.
    alice.request(send_channel("room", "welcome back")).await;
    assert_eq!(
        bob.expect_event("message_from_channel").await["message"],
        text("welcome back")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_panic_in_a_request_still_tells_the_others_the_user_is_gone() {
    let config = Config {
        grace: Duration::from_millis(200),
        panic_on_ping_from: Some("boom".into()),
        ..test_config()
    };
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.request(join("room")).await;
    let mut boom = raw::login(&server.url(), APP, "boom").await;
    boom.request(join("room")).await;
    assert_eq!(alice.expect_event("member_joined").await["user"], "boom");
    // The request panics inside boom's connection task: the connection is dropped...
    boom.send_frame(&json!({"id": 99, "op": "ping"}).to_string());
    assert_eq!(boom.expect_end().await, Closure::Dropped);
    // ...and the hub still learns that boom is gone: offline at once, out after the grace.
    let presence = alice
        .request(json!({"op": "query_peers_online", "peers": ["boom"]}))
        .await;
    assert_eq!(presence["peers"]["boom"], "offline");
    assert_eq!(alice.expect_event("member_left").await["user"], "boom");
    // The server serves on.
    let mut carol = raw::login(&server.url(), APP, "carol").await;
    assert_eq!(carol.request(join("room")).await["member_count"], 2);
    server.shutdown().await;
}

#[tokio::test]
async fn members_leave_when_the_grace_ends() {
    let config = Config {
        grace: Duration::from_millis(200),
        ..test_config()
    };
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.request(join("room")).await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    bob.request(join("room")).await;
    alice.expect_event("member_joined").await;
    bob.drop_abruptly();
    let left = alice.expect_event("member_left").await;
    assert_eq!(left["user"], "bob");
    let counts = alice
        .request(json!({"op": "get_channel_member_count", "channels": ["room"]}))
        .await;
    assert_eq!(counts["counts"]["room"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn logout_leaves_channels_at_once() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.request(join("room")).await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    bob.request(join("room")).await;
    assert_eq!(bob.code(json!({"op": "logout"})).await, 0);
    assert_eq!(alice.expect_event("member_left").await["user"], "bob");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_while_others_keep_receiving() {
    // The soft bound (1 MiB) holds a burst of 20 messages of 16 KiB easily; a client that
    // takes nothing past it for the stall time is cut off.
    let mut config = Config {
        rate_limits: RateLimits::unlimited(),
        ..test_config()
    };
    config.outbox.stall = Duration::from_millis(300);
    let server = start_server(config).await;
    let url = server.url();
    let mut slow = raw::login(&url, APP, "slow").await;
    slow.request(join("firehose")).await;
    slow.set_reading(false);
    let mut fast = raw::login(&url, APP, "fast").await;
    fast.request(join("firehose")).await;
    let mut sender = raw::login(&url, APP, "sender").await;
    sender.request(join("firehose")).await;

    // Far more than the socket buffers and the outbox of the slow client can hold. The
    // sender goes in bursts, each as fast as the server takes it, and waits for the fast
    // reader between bursts (a reader slower than its sender would be cut off too).
    const BURSTS: usize = 40;
    const BURST: usize = 20;
    let body = "z".repeat(16 * 1024);
    let mut last = 0;
    for _ in 0..BURSTS {
        let replies = sender
            .start_batch(vec![send_channel("firehose", &body); BURST])
            .unwrap();
        for reply in replies {
            assert_eq!(raw::expect_reply(reply).await["code"], 0);
        }
        for _ in 0..BURST {
            let event = fast.expect_event("message_from_channel").await;
            let id = event["message_id"].as_u64().unwrap();
            assert!(id > last);
            last = id;
        }
    }
    // The slow client was dropped without a close frame and got only part of the stream.
    slow.set_reading(true);
    assert_eq!(slow.expect_end().await, Closure::Dropped);
    let received = slow.take_events(raw::named("message_from_channel")).len();
    assert!(
        received < BURSTS * BURST,
        "slow consumer got everything ({received})"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn above_512_members_no_member_events_and_capped_lists() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let mut observer = raw::login(&url, APP, "observer").await;
    observer.request(join("stadium")).await;
    let mut fans = Vec::new();
    for n in 0..512 {
        // Login and join in one frame: one round trip per fan.
        let mut fan = raw::connect(&url).await;
        let login = json!({"op": "login", "app_id": APP, "user": format!("fan{n:03}")});
        let mut replies = fan.start_batch(vec![login, join("stadium")]).unwrap();
        let joined = replies.pop().unwrap();
        assert_eq!(raw::expect_reply(joined).await["code"], 0);
        fans.push(fan);
    }
    observer.sync().await;
    // 511 fans joined while the channel had at most 512 members; the 513th did not show.
    let joined = observer.take_events(raw::named("member_joined"));
    assert_eq!(joined.len(), 511);
    assert_eq!(joined.last().unwrap()["user"], "fan510");
    let members = observer
        .request(json!({"op": "get_members", "channel": "stadium"}))
        .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 512);
    let count = observer
        .request(json!({"op": "get_channel_member_count", "channels": ["stadium"]}))
        .await;
    assert_eq!(count["counts"]["stadium"], 513);
    // Leaving from 513 members: no member_left either; from 512 on, again.
    let mut last = fans.pop().unwrap();
    assert_eq!(
        last.code(json!({"op": "leave", "channel": "stadium"}))
            .await,
        0
    );
    observer.assert_no_event("member_left").await;
    let mut other = fans.pop().unwrap();
    assert_eq!(
        other
            .code(json!({"op": "leave", "channel": "stadium"}))
            .await,
        0
    );
    assert_eq!(observer.expect_event("member_left").await["user"], "fan510");
    server.shutdown().await;
}

#[tokio::test]
async fn apps_are_separate_worlds() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let mut alice = raw::login(&url, "app-one", "alice").await;
    let mut bob = raw::login(&url, "app-two", "bob").await;
    alice.request(join("lobby")).await;
    assert_eq!(bob.request(join("lobby")).await["member_count"], 1);
    alice.request(send_channel("lobby", "only app-one")).await;
    bob.assert_no_event("message_from_channel").await;
    bob.assert_no_event("member_joined").await;
    let members = bob
        .request(json!({"op": "get_members", "channel": "lobby"}))
        .await;
    assert_eq!(members["members"], json!(["bob"]));
    // Peers are per app as well.
    assert_eq!(
        alice
            .code(json!({"op": "send_peer", "to": "bob", "message": text("hi")}))
            .await,
        3
    );
    server.shutdown().await;
}

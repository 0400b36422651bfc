//! Faults with real processes on loopback: the server is the `rtm-tui serve` binary,
//! killed with SIGKILL and restarted on the same data directory and port. Clients are
//! raw WebSocket connections (`support`) or the client library.
//!
//! - a client that stops reading is cut off, others are unaffected, memory stays bounded;
//! - a client killed in the middle of a frame leaves the server serving (and the user
//!   can log in again at once);
//! - SIGKILL while messages are being cached: every send answered 4 arrives after restart;
//! - a restart under connected library clients: they reconnect with backoff, rejoin and
//!   catch up on what they missed, in order;
//! - a flood from one client is answered "too often" and others are served meanwhile.

use std::io::Write as _;
use std::time::Duration;

use crate::support;
use crate::support::client::{
    fast_config, logged_in, next_channel_text, next_state_skipping, Proxy,
};
use crate::support::raw::{self, Expect};
use crate::support::server_process::ServerProcess;
use crate::support::{text, WAIT};
use rtm::client::{ClientEvent, Events};
use rtm::protocol::{ConnectionState, Message};
use rtm::qa::raw::{code_of, Closure};
use serde_json::{json, Value};

const APP: &str = "demo";

#[tokio::test]
async fn sigkill_while_caching_loses_nothing_answered_4() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), 0).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    // 150 offline sends in one frame (under the 180 per 3 s limit); kill as soon as half
    // have been answered, so the rest are in flight.
    let sends = (0..150)
        .map(|n| {
            json!({"op": "send_peer", "to": "bob", "offline": true,
                   "message": text(&format!("m{n}"))})
        })
        .collect();
    let mut replies = alice.start_batch(sends).unwrap();
    let in_flight = replies.split_off(75);
    let mut cached = Vec::new();
    for reply in replies {
        let reply = raw::expect_reply(reply).await;
        assert_eq!(reply["code"], 4, "{reply}");
        cached.push(reply["message_id"].as_u64().unwrap());
    }
    server.kill9().await;
    assert_eq!(alice.expect_end().await, Closure::Dropped);
    // Whatever else was answered 4 before the process died counts too.
    for mut reply in in_flight {
        if let Ok(reply) = reply.wait(Duration::ZERO).await {
            assert_eq!(reply["code"], 4, "{reply}");
            cached.push(reply["message_id"].as_u64().unwrap());
        }
    }

    let server = ServerProcess::start(data.path(), 0).await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    bob.sync().await;
    let delivered: Vec<u64> = bob
        .take_events(raw::named("message_from_peer"))
        .iter()
        .map(|e| {
            assert_eq!(e["offline"], true);
            e["message_id"].as_u64().unwrap()
        })
        .collect();
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "in order");
    for id in &cached {
        assert!(
            delivered.contains(id),
            "message {id} was answered 4 and lost"
        );
    }
    server.kill9().await;
}

/// The next channel message text, skipping state changes and membership events.
async fn next_text_skipping_states(events: &mut Events) -> String {
    loop {
        let event = support::client::next_event(events).await;
        if let ClientEvent::Server(rtm::protocol::Event::MessageFromChannel { message, .. }) = event
        {
            return message.summary();
        }
    }
}

#[tokio::test]
async fn restart_under_connected_clients_reconnects_rejoins_and_catches_up() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), 0).await;
    let port = server.addr.port();
    // Alice reaches the server through a proxy that can refuse her while others talk.
    let proxy = Proxy::start(server.addr).await;
    let (alice, mut alice_events) = logged_in(fast_config(&proxy.url()), "alice").await;
    let room = alice.create_channel("room").unwrap();
    room.join().await.unwrap();
    let mut carol = raw::login(&server.url(), APP, "carol").await;
    assert_eq!(
        carol.code(json!({"op": "join", "channel": "room"})).await,
        0
    );
    assert_eq!(
        carol
            .code(json!({"op": "send_channel", "channel": "room", "message": text("before")}))
            .await,
        0
    );
    assert_eq!(next_channel_text(&mut alice_events).await, "before");

    proxy.refuse(true);
    server.kill9().await;
    assert_eq!(carol.expect_end().await, Closure::Dropped);
    // Alice retries with growing delays while the server is down.
    let mut delays = Vec::new();
    while delays.len() < 3 {
        let (state, _, retry_in) = next_state_skipping(&mut alice_events).await;
        assert_eq!(state, ConnectionState::Reconnecting);
        delays.push(retry_in.expect("RECONNECTING says when it retries"));
    }
    assert!(delays.last() > delays.first(), "backoff: {delays:?}");

    // Back on the same port and data; carol talks while alice is still kept out.
    let server = ServerProcess::start(data.path(), port).await;
    let mut carol = raw::login(&server.url(), APP, "carol").await;
    assert_eq!(
        carol.code(json!({"op": "join", "channel": "room"})).await,
        0
    );
    for n in 1..=5 {
        let op = json!({"op": "send_channel", "channel": "room", "message": text(&format!("missed {n}"))});
        assert_eq!(carol.code(op).await, 0);
    }
    proxy.refuse(false);
    for n in 1..=5 {
        assert_eq!(
            next_text_skipping_states(&mut alice_events).await,
            format!("missed {n}")
        );
    }
    assert_eq!(alice.state().0, ConnectionState::Connected);
    // Rejoined: live messages flow again.
    let op = json!({"op": "send_channel", "channel": "room", "message": text("live")});
    assert_eq!(carol.code(op).await, 0);
    assert_eq!(next_text_skipping_states(&mut alice_events).await, "live");
    let sent = room.send_message(Message::text("alice is back")).await;
    assert!(sent.is_ok(), "{sent:?}");
    assert_eq!(
        carol.expect_event("message_from_channel").await["message"]["text"],
        "alice is back"
    );
    server.kill9().await;
}

/// Channel messages of `size` bytes from `senders` connections, 180 each (the rate limit),
/// one sender after the other (a sender does not get its own messages back).
async fn flood_channel(url: &str, channel: &str, senders: usize, size: usize) -> usize {
    let body = "x".repeat(size);
    for s in 0..senders {
        let mut sender = raw::login(url, APP, &format!("sender{s}")).await;
        assert_eq!(
            sender.code(json!({"op": "join", "channel": channel})).await,
            0
        );
        // One at a time: a burst of 180 × 30 KiB (5 MiB) at once would exceed the 1 MiB
        // outbox of every reader that the box cannot schedule in time.
        for _ in 0..180 {
            let op = json!({"op": "send_channel", "channel": channel, "message": text(&body)});
            assert_eq!(sender.code(op).await, 0);
        }
        sender.hang_up().await;
    }
    senders * 180
}

/// Reads frames until `wanted` replies with code 0 have arrived (batches count each one).
async fn await_ok_replies<S>(ws: &mut S, wanted: usize)
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt as _;
    let mut replies = 0;
    while replies < wanted {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        replies += frame.to_text().unwrap().matches("\"code\":0").count();
    }
}

/// Counts `message_from_channel` events on a fresh member of `channel` until `wanted`
/// have arrived (frames are scanned, not parsed, so that this reader keeps up).
async fn count_channel_messages(
    url: String,
    channel: &str,
    wanted: usize,
) -> tokio::task::JoinHandle<()> {
    use futures_util::{SinkExt as _, StreamExt as _};
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let login = json!({"id": 1, "op": "login", "app_id": APP, "user": "reader"});
    let join = json!({"id": 2, "op": "join", "channel": channel});
    ws.send(format!("{login}\n{join}").into()).await.unwrap();
    await_ok_replies(&mut ws, 2).await;
    tokio::spawn(async move {
        let mut got = 0;
        while got < wanted {
            match tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("the flood flows")
            {
                Some(Ok(frame)) => {
                    got += frame
                        .to_text()
                        .unwrap_or("")
                        .matches("\"message_from_channel\"")
                        .count();
                }
                other => panic!("the reader lost its connection after {got}: {other:?}"),
            }
        }
    })
}

/// A server process whose connections are cut off after `stall_ms` of taking nothing.
async fn server_with_stall(data: &std::path::Path, stall_ms: u64) -> ServerProcess {
    let config = data.join("serve.toml");
    std::fs::write(&config, format!("[limits]\noutbox_stall_ms = {stall_ms}\n")).unwrap();
    let data_dir = data.join("data");
    ServerProcess::start_with(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ])
    .await
}

/// A burst that the rate limits allow does not cost a reader that keeps reading its
/// connection, however far past the 1 MiB soft bound its outbox goes for a moment.
#[tokio::test]
async fn readers_that_keep_reading_survive_a_burst_the_limits_allow() {
    use futures_util::{SinkExt as _, StreamExt as _};
    const MEMBERS: usize = 5;
    const SENDERS: usize = 3;
    const EACH: usize = 150; // under 180 per 3 s
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), 0).await;
    let url = server.url();
    let mut members = Vec::new();
    for m in 0..MEMBERS {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.clone()).await.unwrap();
        let login = json!({"id": 1, "op": "login", "app_id": APP, "user": format!("m{m}")});
        let join = json!({"id": 2, "op": "join", "channel": "burst"});
        ws.send(format!("{login}\n{join}").into()).await.unwrap();
        await_ok_replies(&mut ws, 2).await;
        members.push(ws);
    }
    let body = "b".repeat(30 * 1000);
    let mut readers = Vec::new();
    for (m, ws) in members.into_iter().enumerate() {
        let sends: Vec<String> = if m < SENDERS {
            (0..EACH)
                .map(|i| {
                    json!({"id": 10 + i, "op": "send_channel", "channel": "burst", "message": text(&body)})
                        .to_string()
                })
                .collect()
        } else {
            Vec::new()
        };
        let expected = if m < SENDERS {
            (SENDERS - 1) * EACH
        } else {
            SENDERS * EACH
        };
        let wanted_replies = sends.len();
        readers.push(tokio::spawn(async move {
            // Each sender sends its whole burst as fast as the socket takes it, while
            // reading all along.
            let (mut sink, mut stream) = ws.split();
            tokio::spawn(async move {
                for op in sends {
                    sink.send(op.into()).await.unwrap();
                }
                sink
            });
            let (mut messages, mut replies) = (0, 0);
            while messages < expected || replies < wanted_replies {
                match tokio::time::timeout(WAIT, stream.next()).await {
                    Ok(Some(Ok(frame))) => {
                        let frame = frame.to_text().unwrap_or("").to_string();
                        messages += frame.matches("\"message_from_channel\"").count();
                        replies += frame.matches("\"code\":0").count();
                    }
                    other => panic!(
                        "member {m} lost its connection after {messages} messages: {other:?}"
                    ),
                }
            }
            (messages, replies)
        }));
    }
    for (m, reader) in readers.into_iter().enumerate() {
        let (messages, replies) = reader.await.expect("the member was served");
        let sent = if m < SENDERS { EACH } else { 0 };
        assert_eq!(replies, sent, "member {m}: every send answered 0");
        assert!(
            messages
                >= if m < SENDERS {
                    (SENDERS - 1) * EACH
                } else {
                    SENDERS * EACH
                }
        );
    }
    server.kill9().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_memory_stays_bounded() {
    const STALL: Duration = Duration::from_secs(1);
    let data = tempfile::tempdir().unwrap();
    let server = server_with_stall(data.path(), STALL.as_millis() as u64).await;
    let url = server.url();
    let mut stalled = raw::login_with_small_receive_buffer(server.addr, APP, "stalled").await;
    assert_eq!(
        stalled
            .code(json!({"op": "join", "channel": "flood"}))
            .await,
        0
    );
    stalled.set_reading(false);
    // 4 × 180 × 30 KiB ≈ 21 MiB of fan-out, 20 times the 1 MiB outbox bound.
    let total = 4 * 180;
    let reader = count_channel_messages(url.clone(), "flood", total).await;
    let before = server.rss_kib();
    let flood_began = tokio::time::Instant::now();
    flood_channel(&url, "flood", 4, 30 * 1024).await;
    tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reader got everything in time")
        .expect("the reader was served");
    let after = server.rss_kib();
    println!("{total} messages; server RSS {before} KiB -> {after} KiB");
    // This client stays away for longer than the stall time (that is what is tested).
    tokio::time::sleep_until(flood_began + STALL * 3).await;
    // The stalled client was cut off (no close frame): past its soft bound it took
    // nothing for the stall time, so it finds far less than the flood before the end.
    stalled.set_reading(true);
    assert_eq!(stalled.expect_end().await, Closure::Dropped);
    let reached_it = stalled
        .take_events(raw::named("message_from_channel"))
        .len();
    println!("the stalled client got {reached_it} of {total} before it was cut off");
    assert!(
        reached_it < total / 2,
        "{reached_it} of {total} were queued for it"
    );
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(grown_mib < 64, "server memory grew by {grown_mib} MiB");
    // Others are served afterwards too.
    let mut later = raw::login(&url, APP, "later").await;
    assert_eq!(
        later.code(json!({"op": "join", "channel": "flood"})).await,
        0
    );
    server.kill9().await;
}

#[tokio::test]
async fn a_client_killed_mid_frame_leaves_the_server_serving() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), 0).await;
    let mut witness = raw::login(&server.url(), APP, "witness").await;
    assert_eq!(witness.code(json!({"op": "join", "channel": "c"})).await, 0);

    // The victim's socket: a std handle kept aside to write a torn frame at the end.
    let tcp = std::net::TcpStream::connect(server.addr).unwrap();
    let mut raw = tcp.try_clone().unwrap();
    tcp.set_nonblocking(true).unwrap();
    let tcp = tokio::net::TcpStream::from_std(tcp).unwrap();
    // When the last handle goes the kernel resets the connection, as for a killed process.
    tcp.set_zero_linger().unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(server.url(), tcp)
        .await
        .unwrap();
    use futures_util::SinkExt as _;
    for op in [
        json!({"id": 1, "op": "login", "app_id": APP, "user": "victim"}),
        json!({"id": 2, "op": "join", "channel": "c"}),
    ] {
        ws.send(op.to_string().into()).await.unwrap();
    }
    await_ok_replies(&mut ws, 2).await;
    // A masked text frame announcing 1000 bytes, of which 10 are sent; then the process
    // "dies": the socket is reset.
    let mut torn = vec![0x81, 0xFE, 0x03, 0xE8, 1, 2, 3, 4];
    torn.extend_from_slice(b"{\"id\":3,\"o");
    raw.write_all(&torn).unwrap();
    drop(raw);
    drop(ws);

    // Nothing of the torn frame arrives; the server serves the witness and a new login
    // of the victim, which rejoins within the grace period.
    witness.assert_no_event("message_from_channel").await;
    let mut victim = raw::login(&server.url(), APP, "victim").await;
    let reply = victim.request(json!({"op": "join", "channel": "c"})).await;
    assert_eq!(reply["code"], 0, "{reply}");
    assert_eq!(reply["member_count"], 2);
    witness.assert_no_event("member_left").await;
    server.kill9().await;
}

#[tokio::test]
async fn a_flood_is_limited_and_others_are_served() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), 0).await;
    let url = server.url();
    let mut listener = raw::login(&url, APP, "listener").await;
    let mut polite = raw::login(&url, APP, "polite").await;
    let mut flooder = raw::login(&url, APP, "flooder").await;
    for client in [&mut listener, &mut polite, &mut flooder] {
        assert_eq!(client.code(json!({"op": "join", "channel": "c"})).await, 0);
    }
    // 1000 channel sends and 200 peer sends in one go.
    let spam = (0..1200)
        .map(|n| {
            if n < 1000 {
                json!({"op": "send_channel", "channel": "c", "message": text("spam")})
            } else {
                json!({"op": "send_peer", "to": "listener", "message": text("spam")})
            }
        })
        .collect();
    let replies = flooder.start_batch(spam).unwrap();
    // Meanwhile the polite user is served normally.
    let op = json!({"op": "send_channel", "channel": "c", "message": text("hello")});
    assert_eq!(polite.code(op).await, 0);
    let mut codes = Vec::new();
    for reply in replies {
        codes.push(code_of(&raw::expect_reply(reply).await));
    }
    let ok = codes.iter().filter(|c| **c == 0).count();
    assert_eq!(ok, 180, "180 sends per 3 s");
    assert!(
        codes[..1000].iter().all(|c| *c == 0 || *c == 3),
        "CHANNEL_MSG too often is 3"
    );
    assert!(codes[1000..].iter().all(|c| *c == 5), "PEER too often is 5");
    // The listener got exactly the 180 accepted spam messages and the polite one.
    let mut spam = 0;
    let mut hello = false;
    while spam < 180 || !hello {
        let event: Value = listener.expect_event("message_from_channel").await;
        match event["message"]["text"].as_str() {
            Some("spam") => spam += 1,
            Some("hello") => hello = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    listener.assert_no_event("message_from_channel").await;
    server.kill9().await;
}

//! The client library against the real reference server on 127.0.0.1:0: login and logout,
//! peer messages with their result codes and automatic acks, channels through `Channel`,
//! several clients in one process.

use std::time::Duration;

use crate::support::client::{
    expect_server_event, fast_config, logged_in, next_channel_text, next_event, next_state, WAIT,
};
use crate::support::raw::{self, Expect};
use crate::support::{start_server, test_config};
use rtm::client::{ClientError, ClientEvent, HistoryTarget, SendOptions};
use rtm::protocol::{ChangeReason, ConnectionState, Event, Family, Message, Op};
use rtm::server::RateLimits;
use tokio::time::timeout;

#[tokio::test]
async fn login_logout_and_login_again() {
    let server = start_server(test_config()).await;
    let (client, mut events) = logged_in(fast_config(&server.url()), "alice").await;
    assert_eq!(client.user().as_deref(), Some("alice"));
    assert_eq!(
        client.state(),
        (ConnectionState::Connected, ChangeReason::LoginSuccess)
    );
    let pong = client.ping().await.unwrap();
    assert!(pong.server_ts > 1_600_000_000_000);

    let again = client.login(None, "alice").await.unwrap_err();
    assert_eq!(again, ClientError::AlreadyLoggedIn);
    assert_eq!(again.code(), Some(8));

    client.logout().await.unwrap();
    assert_eq!(
        next_state(&mut events).await,
        (ConnectionState::Disconnected, ChangeReason::Logout, None)
    );
    assert_eq!(client.user(), None);
    assert_eq!(client.ping().await.unwrap_err(), ClientError::NotLoggedIn);

    let result = client.login(None, "alice2").await.unwrap();
    assert_eq!(result.user, "alice2");
    assert_eq!(result.protocol, 1);
    assert!(result.server.starts_with("rtm-tui/"), "{}", result.server);
    server.shutdown().await;
}

#[tokio::test]
async fn peer_messages_get_codes_0_3_4_and_are_acknowledged_automatically() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let (alice, _alice_events) = logged_in(fast_config(&url), "alice").await;
    let (bob, mut bob_events) = logged_in(fast_config(&url), "bob").await;

    // 0: bob's client acknowledged it without bob doing anything.
    let sent = alice
        .send_message_to_peer("bob", Message::text("hello bob"), SendOptions::default())
        .await
        .unwrap();
    match expect_server_event(&mut bob_events, "alice's message", |e| {
        matches!(e, Event::MessageFromPeer { .. })
    })
    .await
    {
        Event::MessageFromPeer {
            from,
            message,
            message_id,
            offline,
            ..
        } => {
            assert_eq!(from, "alice");
            assert_eq!(message, Message::text("hello bob"));
            assert_eq!(message_id, sent.message_id);
            assert!(!offline);
        }
        _ => unreachable!(),
    }
    // Raw messages travel too.
    let raw = Message::raw(&[0, 1, 2, 255], "bytes.bin");
    bob.send_message_to_peer("alice", raw.clone(), SendOptions::default())
        .await
        .unwrap();

    // 3: carol is not online and the message is not for caching.
    let unreachable = alice
        .send_message_to_peer("carol", Message::text("hi"), SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(unreachable.code(), Some(3));
    assert_eq!(unreachable.family(), Some(Family::Peer));

    // 4: cached for carol, delivered at her login, oldest first.
    for text in ["first", "second"] {
        let cached = alice
            .send_message_to_peer("carol", Message::text(text), SendOptions { offline: true })
            .await
            .unwrap_err();
        assert_eq!(cached.code(), Some(4), "{cached}");
    }
    let (_carol, mut carol_events) = logged_in(fast_config(&url), "carol").await;
    for expected in ["first", "second"] {
        match next_event(&mut carol_events).await {
            ClientEvent::Server(Event::MessageFromPeer {
                from,
                message,
                offline,
                ..
            }) => {
                assert_eq!(from, "alice");
                assert_eq!(message, Message::text(expected));
                assert!(offline);
            }
            other => panic!("expected a cached message, got {other:?}"),
        }
    }

    // The conversation is in the history, oldest first.
    let history = alice
        .history(HistoryTarget::Peer("bob".into()), None, None, 10)
        .await
        .unwrap();
    let texts: Vec<_> = history.iter().map(|m| m.message.summary()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(history[0].message, Message::text("hello bob"));
    assert_eq!(history[1].message, raw);
    server.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_does_not_ack_gives_code_2() {
    let mut config = test_config();
    config.ack_timeout = Duration::from_millis(300);
    let server = start_server(config).await;
    let url = server.url();
    let (alice, _events) = logged_in(fast_config(&url), "alice").await;
    // A raw protocol client that never sends `ack`.
    let mut mute = raw::login(&url, "demo", "mute").await;
    let error = alice
        .send_message_to_peer("mute", Message::text("anyone?"), SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(2), "{error}");
    mute.expect_event("message_from_peer").await;
    server.shutdown().await;
}

#[tokio::test]
async fn channels_join_send_members_and_events() {
    // Three joins of one channel within 5 s: past the default rate limit.
    let mut config = test_config();
    config.rate_limits = RateLimits::unlimited();
    let server = start_server(config).await;
    let url = server.url();
    let (alice, mut alice_events) = logged_in(fast_config(&url), "alice").await;
    let (bob, mut bob_events) = logged_in(fast_config(&url), "bob").await;
    let alice_lobby = alice.create_channel("lobby").unwrap();
    let bob_lobby = bob.create_channel("lobby").unwrap();

    assert_eq!(alice_lobby.join().await.unwrap().member_count, 1);
    assert_eq!(bob_lobby.join().await.unwrap().member_count, 2);
    let joined = expect_server_event(&mut alice_events, "bob joining", |e| {
        matches!(e, Event::MemberJoined { .. })
    })
    .await;
    assert_eq!(
        joined,
        Event::MemberJoined {
            channel: "lobby".into(),
            user: "bob".into()
        }
    );
    let mut members = alice_lobby.get_members().await.unwrap();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    let again = alice_lobby.join().await.unwrap_err();
    assert_eq!(again.code(), Some(6));

    // Messages reach the others in order, not the sender; the event names its channel.
    let first = bob_lobby.send_message(Message::text("one")).await.unwrap();
    let second = bob_lobby.send_message(Message::text("two")).await.unwrap();
    assert!(second.message_id > first.message_id);
    let event = ClientEvent::Server(
        expect_server_event(&mut alice_events, "bob's message", |e| {
            matches!(e, Event::MessageFromChannel { .. })
        })
        .await,
    );
    assert!(alice_lobby.owns(&event));
    match event {
        ClientEvent::Server(Event::MessageFromChannel {
            channel,
            from,
            message,
            message_id,
            ..
        }) => {
            assert_eq!((channel.as_str(), from.as_str()), ("lobby", "bob"));
            assert_eq!(message, Message::text("one"));
            assert_eq!(message_id, first.message_id);
        }
        _ => unreachable!(),
    }
    assert_eq!(next_channel_text(&mut alice_events).await, "two");
    // Bob's next event is alice's peer message, not his own channel message echoed.
    alice
        .send_message_to_peer("bob", Message::text("sync"), SendOptions::default())
        .await
        .unwrap();
    let next = expect_server_event(&mut bob_events, "a message", |e| {
        matches!(
            e,
            Event::MessageFromPeer { .. } | Event::MessageFromChannel { .. }
        )
    })
    .await;
    assert!(
        matches!(next, Event::MessageFromPeer { .. }),
        "the sender got its own channel message back: {next:?}"
    );

    // Leaving: the others see it; sending afterwards is refused with 5.
    bob_lobby.leave().await.unwrap();
    let left = expect_server_event(&mut alice_events, "bob leaving", |e| {
        matches!(e, Event::MemberLeft { .. })
    })
    .await;
    assert_eq!(
        left,
        Event::MemberLeft {
            channel: "lobby".into(),
            user: "bob".into()
        }
    );
    let refused = bob_lobby
        .send_message(Message::text("still here?"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(5));
    assert_eq!(refused.family(), Some(Family::ChannelMsg));

    // Release forgets the handle (leaving if joined); the id can be created again.
    assert!(matches!(
        alice.create_channel("lobby"),
        Err(ClientError::ChannelExists(_))
    ));
    alice_lobby.release();
    let counts = timeout(WAIT, async {
        loop {
            let counts = bob
                .get_channel_member_count(&["lobby".to_string()])
                .await
                .unwrap();
            if counts["lobby"] == 0 {
                return counts;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("release leaves the channel");
    assert_eq!(counts["lobby"], 0);
    let recreated = alice.create_channel("lobby").unwrap();
    assert_eq!(recreated.join().await.unwrap().member_count, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn several_clients_in_one_process_share_a_channel() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let mut clients = Vec::new();
    for i in 0..5 {
        let (client, events) = logged_in(fast_config(&url), &format!("user{i}")).await;
        let channel = client.create_channel("crowd").unwrap();
        channel.join().await.unwrap();
        clients.push((client, events, channel));
    }
    let (_, _, speaker) = &clients[0];
    speaker.send_message(Message::text("hi all")).await.unwrap();
    for (client, events, _) in &mut clients[1..] {
        // Later joiners have fewer member_joined events before the message.
        let text = loop {
            match next_event(events).await {
                ClientEvent::Server(Event::MessageFromChannel { message, from, .. }) => {
                    assert_eq!(from, "user0");
                    break message.summary();
                }
                ClientEvent::Server(
                    Event::MemberJoined { .. } | Event::MemberCountUpdated { .. },
                ) => {}
                other => panic!("{:?} got {other:?}", client.user()),
            }
        };
        assert_eq!(text, "hi all");
    }
    let (first, _, _) = &clients[0];
    let mut members = clients[1].2.get_members().await.unwrap();
    members.sort();
    assert_eq!(members, ["user0", "user1", "user2", "user3", "user4"]);
    assert_eq!(first.user().as_deref(), Some("user0"));
    server.shutdown().await;
}

#[tokio::test]
async fn the_server_judges_what_raw_requests_carry() {
    let server = start_server(test_config()).await;
    let (client, _events) = logged_in(fast_config(&server.url()), "alice").await;
    // `request` skips client-side validation: the server's code comes back as it is.
    let reply = client
        .request(Op::Join {
            channel: "null".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.code, 3);
    assert!(reply.reason.is_some());
    let reply = client
        .request(Op::SendPeer {
            to: "bob".into(),
            message: Message::text(""),
            offline: false,
        })
        .await
        .unwrap();
    assert_ne!(reply.code, 0);
    let ok = client.request(Op::Ping).await.unwrap();
    assert_eq!(ok.code, 0);
    assert!(ok.fields.contains_key("server_ts"));
    // Typed calls turn codes into errors of the right family.
    let never_joined = client.create_channel("elsewhere").unwrap();
    let error = never_joined.leave().await.unwrap_err();
    assert_eq!(
        (error.family(), error.code()),
        (Some(Family::Leave), Some(3))
    );
    let error = never_joined.get_members().await.unwrap_err();
    assert_eq!(error.code(), Some(5));
    server.shutdown().await;
}

#[tokio::test]
async fn an_application_that_reads_late_loses_no_events() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let mut config = fast_config(&url);
    config.event_buffer = 2;
    let (alice, mut alice_events) = logged_in(config, "alice").await;
    let (bob, _bob_events) = logged_in(fast_config(&url), "bob").await;
    let alice_lobby = alice.create_channel("lobby").unwrap();
    alice_lobby.join().await.unwrap();
    let bob_lobby = bob.create_channel("lobby").unwrap();
    bob_lobby.join().await.unwrap();
    // Alice reads nothing while bob sends far more than her buffer holds; her client
    // keeps answering requests all the same.
    for i in 0..40 {
        bob_lobby
            .send_message(Message::text(format!("m{i}")))
            .await
            .unwrap();
    }
    alice.ping().await.unwrap();
    for i in 0..40 {
        assert_eq!(next_channel_text(&mut alice_events).await, format!("m{i}"));
    }
    server.shutdown().await;
}

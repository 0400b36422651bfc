//! The rest of the RTM surface through the client library, against the real server:
//! presence, user and channel attributes, member counts, call invitations, raw messages.

use std::time::Duration;

use crate::support::client::{expect_server_event, fast_config, logged_in, WAIT};
use crate::support::{start_server, test_config};
use rtm::client::{new_invitation_id, Attributes, ClientEvent, Event, Events, Message, PeerStatus};
use rtm::protocol::Family;
use tokio::time::timeout;

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

async fn invitation_received(events: &mut Events) -> Event {
    expect_server_event(events, "an invitation", |e| {
        matches!(e, Event::InvitationReceived { .. })
    })
    .await
}

#[tokio::test]
async fn presence_queries_and_subscriptions() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let (alice, mut alice_events) = logged_in(fast_config(&url), "alice").await;
    let (bob, _bob_events) = logged_in(fast_config(&url), "bob").await;

    let peers = alice
        .query_peers_online_status(&ids(&["carol", "bob"]))
        .await
        .unwrap();
    // In the order asked.
    assert_eq!(
        peers.into_iter().collect::<Vec<_>>(),
        vec![
            ("carol".to_string(), PeerStatus::Offline),
            ("bob".to_string(), PeerStatus::Online)
        ]
    );

    alice
        .subscribe_peers_online_status(&ids(&["bob"]))
        .await
        .unwrap();
    let current = expect_server_event(&mut alice_events, "bob's current state", |e| {
        matches!(e, Event::PeersOnlineStatus { .. })
    })
    .await;
    assert!(
        matches!(&current, Event::PeersOnlineStatus { peers } if peers.get("bob") == Some(&PeerStatus::Online)),
        "{current:?}"
    );
    assert_eq!(alice.query_subscribed_peers().await.unwrap(), ids(&["bob"]));

    bob.logout().await.unwrap();
    let change = expect_server_event(&mut alice_events, "bob going offline", |e| {
        matches!(e, Event::PeersOnlineStatus { .. })
    })
    .await;
    assert!(
        matches!(&change, Event::PeersOnlineStatus { peers } if peers.get("bob") == Some(&PeerStatus::Offline)),
        "{change:?}"
    );

    alice
        .unsubscribe_peers_online_status(&ids(&["bob"]))
        .await
        .unwrap();
    assert!(alice.query_subscribed_peers().await.unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn user_attributes_set_update_delete_clear_and_get() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let (alice, _alice_events) = logged_in(fast_config(&url), "alice").await;
    let (bob, _bob_events) = logged_in(fast_config(&url), "bob").await;

    alice
        .set_local_user_attributes(&attrs(&[("a", "1"), ("b", "2")]))
        .await
        .unwrap();
    alice
        .add_or_update_local_user_attributes(&attrs(&[("b", "3"), ("c", "4")]))
        .await
        .unwrap();
    assert_eq!(
        bob.get_user_attributes("alice", None).await.unwrap(),
        attrs(&[("a", "1"), ("b", "3"), ("c", "4")])
    );
    alice
        .delete_local_user_attributes_by_keys(&ids(&["a"]))
        .await
        .unwrap();
    assert_eq!(
        bob.get_user_attributes("alice", Some(&ids(&["c", "zzz"])))
            .await
            .unwrap(),
        attrs(&[("c", "4")])
    );
    alice.clear_local_user_attributes().await.unwrap();
    assert!(bob
        .get_user_attributes("alice", None)
        .await
        .unwrap()
        .is_empty());

    let nobody = bob.get_user_attributes("nobody", None).await.unwrap_err();
    assert_eq!(
        (nobody.family(), nobody.code()),
        (Some(Family::Attr), Some(6))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn channel_attributes_notify_members_and_counts_are_reported() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let (alice, mut alice_events) = logged_in(fast_config(&url), "alice").await;
    let (bob, _bob_events) = logged_in(fast_config(&url), "bob").await;
    let lobby = alice.create_channel("lobby").unwrap();
    lobby.join().await.unwrap();

    // Bob is not a member and may still write; members hear of it with `notify`.
    bob.set_channel_attributes("lobby", &attrs(&[("topic", "launch")]), true)
        .await
        .unwrap();
    let updated = expect_server_event(&mut alice_events, "the attribute update", |e| {
        matches!(e, Event::ChannelAttributesUpdated { .. })
    })
    .await;
    let Event::ChannelAttributesUpdated {
        channel,
        attributes,
    } = updated
    else {
        unreachable!()
    };
    assert_eq!(channel, "lobby");
    assert_eq!(attributes.len(), 1);
    assert_eq!(
        (attributes[0].key.as_str(), attributes[0].value.as_str()),
        ("topic", "launch")
    );
    assert_eq!(attributes[0].updated_by, "bob");
    assert!(attributes[0].updated_ts > 0);

    bob.add_or_update_channel_attributes("lobby", &attrs(&[("rules", "be kind")]), false)
        .await
        .unwrap();
    let both = alice.get_channel_attributes("lobby", None).await.unwrap();
    assert_eq!(both.len(), 2);
    let rules = alice
        .get_channel_attributes("lobby", Some(&ids(&["rules"])))
        .await
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].value, "be kind");
    alice
        .delete_channel_attributes_by_keys("lobby", &ids(&["rules"]), false)
        .await
        .unwrap();
    assert_eq!(
        bob.get_channel_attributes("lobby", None)
            .await
            .unwrap()
            .len(),
        1
    );
    alice.clear_channel_attributes("lobby", true).await.unwrap();
    let cleared = expect_server_event(&mut alice_events, "the clearing", |e| {
        matches!(e, Event::ChannelAttributesUpdated { .. })
    })
    .await;
    assert!(
        matches!(&cleared, Event::ChannelAttributesUpdated { attributes, .. } if attributes.is_empty())
    );

    let counts = bob
        .get_channel_member_count(&ids(&["lobby", "empty"]))
        .await
        .unwrap();
    assert_eq!(counts["lobby"], 1);
    assert_eq!(counts["empty"], 0);
    server.shutdown().await;
}

#[tokio::test]
async fn invitations_are_received_accepted_refused_and_canceled() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let (alice, mut alice_events) = logged_in(fast_config(&url), "alice").await;
    let (bob, mut bob_events) = logged_in(fast_config(&url), "bob").await;

    // Accepted, with the channel carried along.
    let first = new_invitation_id();
    alice
        .send_invitation(&first, "bob", "call me", Some("room-1"))
        .await
        .unwrap();
    assert_eq!(
        invitation_received(&mut bob_events).await,
        Event::InvitationReceived {
            invitation_id: first.clone(),
            caller: "alice".into(),
            content: "call me".into(),
            channel: Some("room-1".into()),
        }
    );
    bob.accept_invitation(&first, "alice", "on my way")
        .await
        .unwrap();
    let accepted = expect_server_event(&mut alice_events, "the acceptance", |e| {
        matches!(e, Event::InvitationAccepted { .. })
    })
    .await;
    assert_eq!(
        accepted,
        Event::InvitationAccepted {
            invitation_id: first,
            callee: "bob".into(),
            response: "on my way".into()
        }
    );

    // Refused.
    let second = new_invitation_id();
    alice
        .send_invitation(&second, "bob", "", None)
        .await
        .unwrap();
    invitation_received(&mut bob_events).await;
    bob.refuse_invitation(&second, "alice", "busy")
        .await
        .unwrap();
    let refused = expect_server_event(&mut alice_events, "the refusal", |e| {
        matches!(e, Event::InvitationRefused { .. })
    })
    .await;
    assert!(matches!(refused, Event::InvitationRefused { response, .. } if response == "busy"));

    // Canceled by the caller.
    let third = new_invitation_id();
    alice
        .send_invitation(&third, "bob", "", None)
        .await
        .unwrap();
    invitation_received(&mut bob_events).await;
    alice.cancel_invitation(&third, "bob").await.unwrap();
    let canceled = expect_server_event(&mut bob_events, "the cancel", |e| {
        matches!(e, Event::InvitationCanceled { .. })
    })
    .await;
    assert_eq!(
        canceled,
        Event::InvitationCanceled {
            invitation_id: third.clone(),
            caller: "alice".into()
        }
    );
    // Answering a canceled invitation finds nothing; an offline callee is refused.
    let gone = bob
        .accept_invitation(&third, "alice", "")
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some(5));
    let offline = alice
        .send_invitation(&new_invitation_id(), "carol", "", None)
        .await
        .unwrap_err();
    assert_eq!(
        (offline.family(), offline.code()),
        (Some(Family::Invite), Some(1))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unanswered_invitations_expire_for_both_sides() {
    let mut config = test_config();
    config.invitation_timeout = Duration::from_millis(300);
    let server = start_server(config).await;
    let url = server.url();
    let (alice, mut alice_events) = logged_in(fast_config(&url), "alice").await;
    let (_bob, mut bob_events) = logged_in(fast_config(&url), "bob").await;
    let id = new_invitation_id();
    alice.send_invitation(&id, "bob", "", None).await.unwrap();
    invitation_received(&mut bob_events).await;
    for events in [&mut alice_events, &mut bob_events] {
        let failure = timeout(
            WAIT,
            expect_server_event(events, "the expiry", |e| {
                matches!(e, Event::InvitationFailure { .. })
            }),
        )
        .await
        .unwrap();
        assert_eq!(
            failure,
            Event::InvitationFailure {
                invitation_id: id.clone(),
                reason: 3
            }
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn raw_messages_travel_in_channels() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let (alice, mut alice_events) = logged_in(fast_config(&url), "alice").await;
    let (bob, _bob_events) = logged_in(fast_config(&url), "bob").await;
    // Bob first, so that alice's next event is his message.
    let bob_lobby = bob.create_channel("lobby").unwrap();
    bob_lobby.join().await.unwrap();
    let alice_lobby = alice.create_channel("lobby").unwrap();
    alice_lobby.join().await.unwrap();
    let bytes: Vec<u8> = (0..=255).collect();
    bob_lobby
        .send_message(Message::raw(&bytes, "all bytes"))
        .await
        .unwrap();
    let event = expect_server_event(&mut alice_events, "the raw message", |e| {
        matches!(e, Event::MessageFromChannel { .. })
    })
    .await;
    let Event::MessageFromChannel { message, .. } = event else {
        unreachable!()
    };
    assert_eq!(message.raw_bytes().unwrap(), bytes);
    assert!(matches!(message, Message::Raw { description, .. } if description == "all bytes"));
    server.shutdown().await;
}

/// An event the server sent before a reply is handed to the application before that
/// reply answers its request: once `get_members` names bob, his `member_joined` is already
/// waiting (the chat client relies on it to show "bob joined").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_before_a_reply_is_waiting_when_the_reply_answers() {
    let mut config = test_config();
    config.rate_limits = rtm::server::RateLimits::unlimited();
    let server = start_server(config).await;
    let url = server.url();
    let (alice, mut alice_events) = logged_in(fast_config(&url), "alice").await;
    let (bob, _bob_events) = logged_in(fast_config(&url), "bob").await;
    for round in 0..50 {
        let name = format!("room{round}");
        let alice_side = alice.create_channel(&name).unwrap();
        alice_side.join().await.unwrap();
        // Bob's join is answered once applied: alice's event is queued before it.
        let bob_side = bob.create_channel(&name).unwrap();
        bob_side.join().await.unwrap();
        let members = alice_side.get_members().await.unwrap();
        assert!(members.contains(&"bob".to_string()), "{members:?}");
        let mut waiting = Vec::new();
        while let Some(event) = alice_events.try_recv() {
            waiting.push(event);
        }
        let joined = waiting.iter().any(|e| {
            matches!(e, ClientEvent::Server(Event::MemberJoined { channel, user })
                if *channel == name && user == "bob")
        });
        assert!(
            joined,
            "round {round}: bob's join not yet handed over: {waiting:?}"
        );
        // At most 20 channels each.
        alice_side.leave().await.unwrap();
        bob_side.leave().await.unwrap();
    }
}

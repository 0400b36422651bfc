//! The client's connection state machine against the real reference server: a dropped
//! TCP connection and a server restart lead to RECONNECTING then CONNECTED with channels
//! rejoined and missed channel messages caught up; a remote login aborts the older
//! client for good.

use crate::support::client::{
    expect_server_event, fast_config, logged_in, next_channel_text, next_state,
    next_state_skipping, state_after_reconnecting, Proxy, WAIT,
};
use crate::support::{start_server, test_config};
use rtm::client::{Channel, Client, ClientError, Events, SendOptions};
use rtm::protocol::{ChangeReason, ConnectionState, Event, KickReason, Message, PeerStatus};
use rtm::server::{Config, StoreLocation};
use tokio::time::timeout;

/// Alice and bob in channel "lobby", alice having received bob's message "before".
struct Pair {
    alice: Client,
    alice_events: Events,
    bob_events: Events,
    lobby_of_bob: Channel,
}

impl Pair {
    async fn start(alice_url: &str, bob_url: &str) -> Pair {
        let (alice, mut alice_events) = logged_in(fast_config(alice_url), "alice").await;
        let (bob, bob_events) = logged_in(fast_config(bob_url), "bob").await;
        let alice_lobby = alice.create_channel("lobby").unwrap();
        let bob_lobby = bob.create_channel("lobby").unwrap();
        alice_lobby.join().await.unwrap();
        bob_lobby.join().await.unwrap();
        bob_lobby
            .send_message(Message::text("before"))
            .await
            .unwrap();
        assert_eq!(next_channel_text(&mut alice_events).await, "before");
        Pair {
            alice,
            alice_events,
            bob_events,
            lobby_of_bob: bob_lobby,
        }
    }
}

#[tokio::test]
async fn a_dropped_connection_reconnects_rejoins_and_catches_up() {
    let server = start_server(test_config()).await;
    let proxy = Proxy::start(server.addr()).await;
    // Alice goes through the proxy, bob straight to the server.
    let Pair {
        alice,
        mut alice_events,
        mut bob_events,
        lobby_of_bob: bob_lobby,
        ..
    } = Pair::start(&proxy.url(), &server.url()).await;

    // Cut alice off and keep her off while bob talks.
    proxy.refuse(true);
    proxy.cut();
    let (state, reason, retry_in) = next_state_skipping(&mut alice_events).await;
    assert_eq!(
        (state, reason),
        (ConnectionState::Reconnecting, ChangeReason::Interrupted)
    );
    assert!(retry_in.is_some());
    assert_eq!(alice.user().as_deref(), Some("alice"));
    for text in ["missed 1", "missed 2", "missed 3"] {
        bob_lobby.send_message(Message::text(text)).await.unwrap();
    }
    // A request made now waits for the reconnect.
    let waiting_ping = tokio::spawn({
        let alice = alice.clone();
        async move { alice.ping().await }
    });
    // Failed attempts announce the next delay each time.
    let (state, _, retry_in) = next_state_skipping(&mut alice_events).await;
    assert_eq!(state, ConnectionState::Reconnecting);
    assert!(retry_in.is_some());

    proxy.refuse(false);
    let (state, reason) = state_after_reconnecting(&mut alice_events).await;
    assert_eq!(
        (state, reason),
        (ConnectionState::Connected, ChangeReason::LoginSuccess)
    );
    // The missed messages come first, in order, as ordinary channel messages.
    for expected in ["missed 1", "missed 2", "missed 3"] {
        assert_eq!(next_channel_text(&mut alice_events).await, expected);
    }
    assert!(waiting_ping.await.unwrap().is_ok());

    // Rejoined: live messages flow again, and the membership is back.
    bob_lobby
        .send_message(Message::text("after"))
        .await
        .unwrap();
    assert_eq!(next_channel_text(&mut alice_events).await, "after");
    let mut members = bob_lobby.get_members().await.unwrap();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    // Within the grace period bob saw no one leave or join.
    alice
        .send_message_to_peer("bob", Message::text("sync"), SendOptions::default())
        .await
        .unwrap();
    expect_server_event(&mut bob_events, "only alice's peer message", |e| {
        matches!(e, Event::MessageFromPeer { .. })
    })
    .await;
    server.shutdown().await;
}

/// A channel where nothing had arrived yet before the cut: catch-up has no message id to
/// start from and takes what was stored since the join.
#[tokio::test]
async fn catch_up_works_for_a_channel_with_no_message_seen_yet() {
    let server = start_server(test_config()).await;
    let proxy = Proxy::start(server.addr()).await;
    let (alice, mut alice_events) = logged_in(fast_config(&proxy.url()), "alice").await;
    let (bob, _bob_events) = logged_in(fast_config(&server.url()), "bob").await;
    let bob_quiet = bob.create_channel("quiet").unwrap();
    bob_quiet.join().await.unwrap();
    bob_quiet
        .send_message(Message::text("before alice came"))
        .await
        .unwrap();
    let alice_quiet = alice.create_channel("quiet").unwrap();
    alice_quiet.join().await.unwrap();

    proxy.refuse(true);
    proxy.cut();
    let (state, _, _) = next_state_skipping(&mut alice_events).await;
    assert_eq!(state, ConnectionState::Reconnecting);
    bob_quiet.send_message(Message::text("q1")).await.unwrap();
    proxy.refuse(false);
    assert_eq!(
        state_after_reconnecting(&mut alice_events).await,
        (ConnectionState::Connected, ChangeReason::LoginSuccess)
    );
    // Only what was sent after alice joined.
    assert_eq!(next_channel_text(&mut alice_events).await, "q1");
    bob_quiet.send_message(Message::text("q2")).await.unwrap();
    assert_eq!(next_channel_text(&mut alice_events).await, "q2");
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_restart_on_the_same_port_and_data_is_survived() {
    let data = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = Config::ephemeral();
        config.store = StoreLocation::Path(data.path().to_path_buf());
        config
    };
    let server = start_server(config()).await;
    let url = server.url();
    let Pair {
        // Kept: the client's task ends when its last handle is dropped.
        alice: _alice,
        mut alice_events,
        mut bob_events,
        lobby_of_bob: bob_lobby,
        ..
    } = Pair::start(&url, &url).await;

    let server = restart(server, config(), [&mut alice_events, &mut bob_events]).await;
    // Both rejoined the lobby on the new server.
    let members = timeout(WAIT, async {
        loop {
            let mut members = bob_lobby.get_members().await.unwrap();
            members.sort();
            if members.len() == 2 {
                return members;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both members back");
    assert_eq!(members, ["alice", "bob"]);
    bob_lobby
        .send_message(Message::text("after"))
        .await
        .unwrap();
    assert_eq!(next_channel_text(&mut alice_events).await, "after");
    server.shutdown().await;
}

/// A server restarted on a fresh store (`--ephemeral`, or an embedded server taken over
/// with another data directory) starts its message ids over: new messages must still
/// reach the receiver, not be dropped as already seen (issue 11, item 3).
#[tokio::test]
async fn a_server_restart_on_a_fresh_store_loses_no_message() {
    let server = start_server(Config::ephemeral()).await;
    let url = server.url();
    let mut pair = Pair::start(&url, &url).await;
    let said = |text: String| pair.lobby_of_bob.send_message(Message::text(text));
    // Ids well past where the fresh store starts.
    let old: Vec<String> = (0..5).map(|i| format!("old {i}")).collect();
    for text in &old {
        said(text.clone()).await.unwrap();
    }
    for text in &old {
        assert_eq!(&next_channel_text(&mut pair.alice_events).await, text);
    }
    let events = [&mut pair.alice_events, &mut pair.bob_events];
    let server = restart(server, Config::ephemeral(), events).await;
    for text in ["new 1", "new 2", "new 3"] {
        let sent = pair.lobby_of_bob.send_message(Message::text(text));
        sent.await.unwrap();
        assert_eq!(next_channel_text(&mut pair.alice_events).await, text);
    }
    server.shutdown().await;
}

/// Stops `server`, sees both clients RECONNECTING, starts a server with `config` on the
/// same address and sees both CONNECTED again.
async fn restart(
    server: rtm::server::RunningServer,
    config: Config,
    clients: [&mut Events; 2],
) -> rtm::server::RunningServer {
    let addr = server.addr();
    server.shutdown().await;
    let [alice, bob] = clients;
    for events in [&mut *alice, &mut *bob] {
        let (state, reason, _) = next_state_skipping(events).await;
        assert_eq!(
            (state, reason),
            (ConnectionState::Reconnecting, ChangeReason::Interrupted)
        );
    }
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = rtm::server::spawn(listener, config).await.unwrap();
    for events in [alice, bob] {
        assert_eq!(
            state_after_reconnecting(events).await,
            (ConnectionState::Connected, ChangeReason::LoginSuccess)
        );
    }
    server
}

#[tokio::test]
async fn a_remote_login_aborts_the_older_client_for_good() {
    let server = start_server(test_config()).await;
    let url = server.url();
    let (first, mut first_events) = logged_in(fast_config(&url), "alice").await;
    let lobby = first.create_channel("lobby").unwrap();
    lobby.join().await.unwrap();
    let (second, _second_events) = logged_in(fast_config(&url), "alice").await;

    let kick = expect_server_event(&mut first_events, "the kick", |e| {
        matches!(e, Event::Kicked { .. })
    })
    .await;
    assert_eq!(
        kick,
        Event::Kicked {
            reason: KickReason::RemoteLogin
        }
    );
    assert_eq!(
        next_state(&mut first_events).await,
        (ConnectionState::Aborted, ChangeReason::RemoteLogin, None)
    );
    assert_eq!(
        first.state(),
        (ConnectionState::Aborted, ChangeReason::RemoteLogin)
    );
    assert_eq!(first.user(), None);
    assert_eq!(lobby.join().await.unwrap_err(), ClientError::NotLoggedIn);

    // Nothing is retried: the newer session keeps working and the older stays down.
    for _ in 0..5 {
        second.ping().await.unwrap();
    }
    assert_eq!(
        second.state(),
        (ConnectionState::Connected, ChangeReason::LoginSuccess)
    );
    assert!(first_events.try_recv().is_none());
    assert_eq!(first.state().0, ConnectionState::Aborted);
    server.shutdown().await;
}

#[tokio::test]
async fn logout_while_reconnecting_stops_the_reconnect() {
    let server = start_server(test_config()).await;
    let proxy = Proxy::start(server.addr()).await;
    let (alice, mut events) = logged_in(fast_config(&proxy.url()), "alice").await;
    proxy.refuse(true);
    proxy.cut();
    assert_eq!(
        next_state(&mut events).await.0,
        ConnectionState::Reconnecting
    );
    alice.logout().await.unwrap();
    let (state, reason, _) = loop {
        let change = next_state(&mut events).await;
        if change.0 != ConnectionState::Reconnecting {
            break change;
        }
    };
    assert_eq!(
        (state, reason),
        (ConnectionState::Disconnected, ChangeReason::Logout)
    );
    assert_eq!(alice.user(), None);
    server.shutdown().await;
}

#[tokio::test]
async fn a_reconnect_restores_presence_subscriptions_and_attributes() {
    let server = start_server(test_config()).await;
    let proxy = Proxy::start(server.addr()).await;
    let (alice, mut alice_events) = logged_in(fast_config(&proxy.url()), "alice").await;
    let (bob, mut bob_events) = logged_in(fast_config(&server.url()), "bob").await;
    let watched = ["bob".to_string()];
    alice.subscribe_peers_online_status(&watched).await.unwrap();
    let status_of_bob = |event: &Event| matches!(event, Event::PeersOnlineStatus { .. });
    expect_server_event(&mut alice_events, "bob's state", status_of_bob).await;
    let attrs = [("mood".to_string(), "away".to_string())].into();
    alice.set_local_user_attributes(&attrs).await.unwrap();
    bob.subscribe_peers_online_status(&["alice".to_string()])
        .await
        .unwrap();
    assert_eq!(alice_status(&mut bob_events).await, PeerStatus::Online);

    // While alice is cut off, her subscribers see her unreachable (the grace period).
    proxy.refuse(true);
    proxy.cut();
    assert_eq!(alice_status(&mut bob_events).await, PeerStatus::Unreachable);
    proxy.refuse(false);
    let (state, reason) = state_after_reconnecting(&mut alice_events).await;
    assert_eq!(
        (state, reason),
        (ConnectionState::Connected, ChangeReason::LoginSuccess)
    );
    assert_eq!(alice_status(&mut bob_events).await, PeerStatus::Online);
    // Re-subscribed (with the current state reported again) and attributes re-sent.
    let status = expect_server_event(&mut alice_events, "bob's state again", status_of_bob).await;
    assert!(
        matches!(&status, Event::PeersOnlineStatus { peers } if peers.get("bob") == Some(&PeerStatus::Online))
    );
    assert_eq!(alice.query_subscribed_peers().await.unwrap(), watched);
    assert_eq!(bob.get_user_attributes("alice", None).await.unwrap(), attrs);
    server.shutdown().await;
}

/// Alice's state in the next presence event on `events`.
async fn alice_status(events: &mut Events) -> PeerStatus {
    match expect_server_event(events, "alice's state", |e| {
        matches!(e, Event::PeersOnlineStatus { .. })
    })
    .await
    {
        Event::PeersOnlineStatus { peers } => *peers.get("alice").expect("alice listed"),
        _ => unreachable!(),
    }
}

//! A client given several servers (`ClientConfig::with_fallback_servers`), against real
//! reference servers on 127.0.0.1:0: the first login lands on the first server that
//! answers (an unreachable one or a silent one is skipped), and a client whose server goes
//! away logs in again on the next one, round the list, with its channels restored there.

use std::time::Duration;

use crate::support;
use crate::support::client::{
    expect_server_event, fast_config, logged_in, next_channel_text, next_state_skipping,
    state_after_reconnecting, Proxy, WAIT,
};
use crate::support::{start_server, test_config};
use rtm::client::{Channel, Client, ClientConfig, ClientError, ConnectError, Events, SendOptions};
use rtm::protocol::{ChangeReason, ConnectionState, Event, Message};
use tokio::net::TcpListener;
use tokio::time::timeout;

/// [`fast_config`] for every server of `urls`, in that order.
fn config_for(urls: &[&str]) -> ClientConfig {
    fast_config(urls[0]).with_fallback_servers(urls[1..].iter().copied())
}

/// A `ws://` URL where nothing listens: a port bound, then let go.
async fn unreachable_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("ws://{addr}/rtm/v1")
}

/// Waits for the members of `channel` to be `expected`: a rejoin reaches the server some
/// time after the state says CONNECTED elsewhere.
async fn members_become(channel: &Channel, expected: &[&str]) {
    timeout(WAIT, async {
        loop {
            let mut members = channel.get_members().await.unwrap();
            members.sort();
            if members == expected {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("members {expected:?} in time"));
}

/// The sender and text of the next peer message, skipping presence and membership news
/// (a restored session brings some, at the server's pace).
async fn next_peer_message(events: &mut Events) -> (String, String) {
    loop {
        let event = expect_server_event(events, "a peer message", |e| {
            matches!(
                e,
                Event::MessageFromPeer { .. }
                    | Event::PeersOnlineStatus { .. }
                    | Event::MemberJoined { .. }
            )
        })
        .await;
        if let Event::MessageFromPeer { from, message, .. } = event {
            return (from, message.summary());
        }
    }
}

#[tokio::test]
async fn a_client_whose_server_goes_away_logs_in_again_on_the_next_one() {
    let first = start_server(test_config()).await;
    let second = start_server(test_config()).await;
    let (first_url, second_url) = (first.url(), second.url());
    let (alice, mut alice_events) =
        logged_in(config_for(&[&first_url, &second_url]), "alice").await;
    assert_eq!(alice.current_server().as_deref(), Some(first_url.as_str()));
    let alice_lobby = alice.create_channel("lobby").unwrap();
    alice_lobby.join().await.unwrap();
    alice
        .subscribe_peers_online_status(&["bob".to_string()])
        .await
        .unwrap();
    let mood = rtm::client::Attributes::from([("mood".to_string(), "calm".to_string())]);
    alice.set_local_user_attributes(&mood).await.unwrap();
    // Bob lives on the second server only.
    let (bob, mut bob_events) = logged_in(fast_config(&second_url), "bob").await;
    let bob_lobby = bob.create_channel("lobby").unwrap();
    bob_lobby.join().await.unwrap();

    first.shutdown().await;
    let (state, reason, retry_in) = next_state_skipping(&mut alice_events).await;
    assert_eq!(
        (state, reason),
        (ConnectionState::Reconnecting, ChangeReason::Interrupted)
    );
    assert!(retry_in.is_some());
    assert_eq!(
        alice.current_server(),
        None,
        "on no server while reconnecting"
    );
    assert_eq!(
        state_after_reconnecting(&mut alice_events).await,
        (ConnectionState::Connected, ChangeReason::LoginSuccess)
    );
    assert_eq!(alice.current_server().as_deref(), Some(second_url.as_str()));
    assert_eq!(alice.user().as_deref(), Some("alice"));

    // Logged in there: peer messages go both ways (0 means bob received it)...
    alice
        .send_message_to_peer(
            "bob",
            Message::text("hi from a new node"),
            SendOptions::default(),
        )
        .await
        .expect("received by bob");
    assert_eq!(
        next_peer_message(&mut bob_events).await,
        ("alice".to_string(), "hi from a new node".to_string())
    );
    bob.send_message_to_peer("alice", Message::text("welcome"), SendOptions::default())
        .await
        .expect("received by alice");
    assert_eq!(
        next_peer_message(&mut alice_events).await,
        ("bob".to_string(), "welcome".to_string())
    );
    // ...and the session was restored on the new server: the presence subscription and
    // the attributes re-sent, the channel rejoined.
    assert_eq!(
        alice.query_subscribed_peers().await.unwrap(),
        ["bob".to_string()]
    );
    assert_eq!(bob.get_user_attributes("alice", None).await.unwrap(), mood);
    members_become(&bob_lobby, &["alice", "bob"]).await;
    bob_lobby
        .send_message(Message::text("lobby on node 2"))
        .await
        .unwrap();
    assert_eq!(
        next_channel_text(&mut alice_events).await,
        "lobby on node 2"
    );
    second.shutdown().await;
}

/// Two servers behind two proxies: a drop moves the client to the other one each time,
/// also from the last server of the list back to the first.
#[tokio::test]
async fn reconnects_go_round_the_list() {
    let first = start_server(test_config()).await;
    let second = start_server(test_config()).await;
    let (to_first, to_second) = (
        Proxy::start(first.addr()).await,
        Proxy::start(second.addr()).await,
    );
    let (alice, mut alice_events) =
        logged_in(config_for(&[&to_first.url(), &to_second.url()]), "alice").await;
    assert_eq!(alice.current_server(), Some(to_first.url()));

    for (lost, next) in [(&to_first, &to_second), (&to_second, &to_first)] {
        next.refuse(false);
        lost.refuse(true);
        lost.cut();
        assert_eq!(
            state_after_reconnecting(&mut alice_events).await,
            (ConnectionState::Connected, ChangeReason::LoginSuccess)
        );
        assert_eq!(alice.current_server(), Some(next.url()));
        // Logged in for real on that server: it answers requests.
        alice.ping().await.unwrap();
    }
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn the_first_login_skips_an_unreachable_server() {
    let server = start_server(test_config()).await;
    let dead = unreachable_url().await;
    // `logged_in` checks the events: CONNECTING, then CONNECTED, nothing in between.
    let (alice, _events) = logged_in(config_for(&[&dead, &server.url()]), "alice").await;
    assert_eq!(alice.current_server(), Some(server.url()));
    let (bob, mut bob_events) = logged_in(fast_config(&server.url()), "bob").await;
    alice
        .send_message_to_peer("bob", Message::text("made it"), SendOptions::default())
        .await
        .expect("received by bob");
    assert_eq!(
        next_peer_message(&mut bob_events).await,
        ("alice".to_string(), "made it".to_string())
    );
    drop(bob);
    server.shutdown().await;
}

/// A server that accepts the TCP connection and then says nothing costs one login
/// timeout; the next server then gets a login timeout of its own.
#[tokio::test]
async fn a_silent_server_costs_one_login_timeout_then_the_next_is_tried() {
    let server = start_server(test_config()).await;
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("ws://{}/rtm/v1", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let mut config = config_for(&[&silent_url, &server.url()]);
    config.login_timeout = Duration::from_secs(1);
    let (alice, _events) = logged_in(config, "alice").await;
    assert_eq!(alice.current_server(), Some(server.url()));
    held.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn a_login_where_no_server_answers_names_them_all() {
    let (first, second) = (unreachable_url().await, unreachable_url().await);
    let (client, mut events) = Client::new(config_for(&[&first, &second])).unwrap();
    let error = timeout(WAIT, client.login(None, "alice"))
        .await
        .expect("an answer in time")
        .unwrap_err();
    let ClientError::Connect(ConnectError::NoServer(tried)) = &error else {
        panic!("expected a connect error for each server, got {error:?}");
    };
    assert_eq!(tried.len(), 2, "{tried:?}");
    let text = error.to_string();
    assert!(text.contains(&first) && text.contains(&second), "{text}");
    support::client::expect_login_ended(&mut events, ChangeReason::LoginFailure).await;
    assert_eq!(client.current_server(), None);
}

#[tokio::test]
async fn every_server_url_is_checked_when_the_client_is_made() {
    let config =
        fast_config("ws://127.0.0.1:7420/rtm/v1").with_fallback_servers(["127.0.0.1:7421"]);
    let error = Client::new(config).unwrap_err();
    assert!(
        matches!(&error, ClientError::Connect(ConnectError::NotWebSocket { url }) if url.contains("127.0.0.1:7421")),
        "{error:?}"
    );
}

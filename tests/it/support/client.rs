//! Helpers shared by the client library's integration tests (`client_*`): a fast
//! client config, waiting for events with a timeout, and a TCP proxy that can cut and
//! refuse connections so a test can take one client off the network on demand.
//!
//! The server side comes from [`super`] (the real reference server on 127.0.0.1:0).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtm::client::{Client, ClientConfig, ClientEvent, Events, ReconnectPolicy};
use rtm::protocol::{ChangeReason, ConnectionState, Event};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;

pub use super::WAIT;

/// Durations short enough to keep tests fast yet safe on a loaded 2-core box (a busy
/// server must not look dead): reconnects from 50 ms, 3 s login timeout, pings every
/// second and a dead server after 5 s of silence. Tests of timeouts set their own.
pub fn fast_config(url: &str) -> ClientConfig {
    let mut config = ClientConfig::new(url, "demo");
    config.login_timeout = Duration::from_secs(3);
    config.request_timeout = Duration::from_secs(5);
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        jitter: 0.2,
    };
    config.ping_interval = Duration::from_secs(1);
    config.dead_timeout = Duration::from_secs(5);
    config
}

/// A client logged in as `user`, its CONNECTING and CONNECTED events already read.
pub async fn logged_in(config: ClientConfig, user: &str) -> (Client, Events) {
    let (client, mut events) = Client::new(config).expect("client");
    timeout(WAIT, client.login(None, user))
        .await
        .expect("login in time")
        .unwrap_or_else(|e| panic!("login of {user}: {e}"));
    expect_login_succeeded(&mut events).await;
    (client, events)
}

/// Checks that a login went CONNECTING(LOGIN) and then CONNECTED(LOGIN_SUCCESS).
pub async fn expect_login_succeeded(events: &mut Events) {
    assert_eq!(
        next_state(events).await,
        (ConnectionState::Connecting, ChangeReason::Login, None)
    );
    assert_eq!(
        next_state(events).await,
        (ConnectionState::Connected, ChangeReason::LoginSuccess, None)
    );
}

/// The next event, whatever it is.
pub async fn next_event(events: &mut Events) -> ClientEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the client is alive")
}

/// The next event, which must be a state change.
pub async fn next_state(events: &mut Events) -> (ConnectionState, ChangeReason, Option<Duration>) {
    match next_event(events).await {
        ClientEvent::StateChanged {
            state,
            reason,
            retry_in,
        } => (state, reason, retry_in),
        other @ ClientEvent::Server(_) => panic!("expected a state change, got {other:?}"),
    }
}

/// Checks that a login went CONNECTING(LOGIN) and then ended DISCONNECTED with `reason`.
pub async fn expect_login_ended(events: &mut Events, reason: ChangeReason) {
    assert_eq!(
        next_state(events).await,
        (ConnectionState::Connecting, ChangeReason::Login, None)
    );
    assert_eq!(
        next_state(events).await,
        (ConnectionState::Disconnected, reason, None)
    );
}

/// The next state change, skipping server events.
pub async fn next_state_skipping(
    events: &mut Events,
) -> (ConnectionState, ChangeReason, Option<Duration>) {
    loop {
        if let ClientEvent::StateChanged {
            state,
            reason,
            retry_in,
        } = next_event(events).await
        {
            return (state, reason, retry_in);
        }
    }
}

/// The first state other than RECONNECTING, skipping server events.
pub async fn state_after_reconnecting(events: &mut Events) -> (ConnectionState, ChangeReason) {
    loop {
        let (state, reason, _) = next_state_skipping(events).await;
        if state != ConnectionState::Reconnecting {
            return (state, reason);
        }
    }
}

/// The first server event `wanted` accepts, skipping member counts (the server sends
/// them at its own pace); any other event in between fails the test.
pub async fn expect_server_event(
    events: &mut Events,
    what: &str,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    loop {
        match next_event(events).await {
            ClientEvent::Server(event) if wanted(&event) => return event,
            ClientEvent::Server(Event::MemberCountUpdated { .. }) => {}
            other => panic!("expected {what}, got {other:?}"),
        }
    }
}

/// The text of the next channel message, skipping membership events and counts.
pub async fn next_channel_text(events: &mut Events) -> String {
    loop {
        match next_event(events).await {
            ClientEvent::Server(Event::MessageFromChannel { message, .. }) => {
                return message.summary()
            }
            ClientEvent::Server(
                Event::MemberJoined { .. }
                | Event::MemberLeft { .. }
                | Event::MemberCountUpdated { .. },
            ) => {}
            other => panic!("expected a channel message, got {other:?}"),
        }
    }
}

/// A TCP proxy on 127.0.0.1:0 in front of `upstream`: `cut` drops every connection it
/// carries, `refuse(true)` closes new ones at once, so a client behind it loses its
/// server while everyone else keeps theirs.
pub struct Proxy {
    pub addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refusing = Arc::new(AtomicBool::new(false));
        let (cuts, cut_seen) = watch::channel(0u64);
        let accept_loop = tokio::spawn({
            let refusing = Arc::clone(&refusing);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if refusing.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let mut cut_seen = cut_seen.clone();
                    cut_seen.mark_unchanged();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut_seen.changed() => {}
                        }
                    });
                }
            }
        });
        Proxy {
            addr,
            refusing,
            cuts,
            accept_loop,
        }
    }

    /// The WebSocket URL of the server behind the proxy.
    pub fn url(&self) -> String {
        format!("ws://{}/rtm/v1", self.addr)
    }

    /// Drops every connection carried so far (both sides see the TCP connection end).
    pub fn cut(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }

    /// Whether new connections are closed as soon as they are accepted.
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept_loop.abort();
    }
}

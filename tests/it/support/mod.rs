//! Helpers shared by the integration tests: a real server on 127.0.0.1:0 and a raw WebSocket
//! JSON client that speaks protocol.md directly (not through `rtm::client`), so the server
//! is tested against the protocol itself. The submodules hold what a family of tests needs:
//! [`client`] (the client library's tests), [`cluster`] (nodes on one Redis),
//! [`server_process`] (`rtm-tui serve` as a child process) and [`token_builders`] (Agora's
//! official token builders).
//!
//! Every wait has a timeout ([`WAIT`]); nothing sleeps "long enough". To check that
//! something did NOT arrive, call [`RawClient::sync`] first: the server queues a
//! connection's events and replies in order, so everything caused before the ping is in
//! front of its reply.

pub mod client;
pub mod cluster;
pub mod server_process;
pub mod token_builders;

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use rtm::server::{Config, RunningServer};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest wait for any expected reply, event or close.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts a server on 127.0.0.1:0 with `config`.
pub async fn start_server(config: Config) -> RunningServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    rtm::server::spawn(listener, config)
        .await
        .expect("server starts")
}

/// A config for tests: temporary store, protocol.md's values otherwise.
pub fn test_config() -> Config {
    Config::ephemeral()
}

/// What ended a connection, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code.
    Close(u16),
    /// The stream ended (or failed) without a close frame.
    Dropped,
}

/// A raw protocol client: JSON objects in, JSON values out.
pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Objects read but not yet asked for, in arrival order.
    inbox: VecDeque<Value>,
    next_id: u32,
    /// Set once the connection ended.
    pub ended: Option<Ended>,
}

impl RawClient {
    /// Opens a WebSocket to `url`.
    pub async fn connect(url: &str) -> RawClient {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("WebSocket handshake");
        RawClient {
            ws,
            inbox: VecDeque::new(),
            next_id: 1,
            ended: None,
        }
    }

    /// Wraps a WebSocket opened by the test itself (special socket options, TLS).
    pub fn from_socket(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> RawClient {
        RawClient {
            ws,
            inbox: VecDeque::new(),
            next_id: 1,
            ended: None,
        }
    }

    /// Connects and logs in as `user` of `app`; panics unless the login answers 0.
    pub async fn login(url: &str, app: &str, user: &str) -> RawClient {
        let mut client = RawClient::connect(url).await;
        let reply = client
            .request(json!({"op": "login", "app_id": app, "user": user}))
            .await;
        assert_eq!(reply["code"], 0, "login of {user}: {reply}");
        client
    }

    /// Sends one JSON value as its own text frame.
    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends a raw text frame (may hold several objects, or garbage).
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(WsMessage::text(text.to_string()))
            .await
            .expect("send frame");
    }

    /// Sends a binary frame (which protocol v1 does not use).
    pub async fn ws_send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(WsMessage::binary(bytes))
            .await
            .expect("send frame");
    }

    /// A fresh request id.
    pub fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends `op` (an object without `id`) with a fresh id and returns the id.
    pub async fn send_request(&mut self, mut op: Value) -> u32 {
        let id = self.id();
        op["id"] = json!(id);
        self.send(op).await;
        id
    }

    /// Sends `op` with a fresh id and waits for its reply.
    pub async fn request(&mut self, op: Value) -> Value {
        let id = self.send_request(op).await;
        self.expect_reply(id).await
    }

    /// Sends `op` and returns the reply's code.
    pub async fn code(&mut self, op: Value) -> u64 {
        let reply = self.request(op).await;
        reply["code"].as_u64().expect("reply has a code")
    }

    /// Sends the `ack` notice for a peer message.
    pub async fn ack(&mut self, message_id: u64) {
        self.send(json!({"op": "ack", "message_id": message_id}))
            .await;
    }

    /// Reads one more frame into the inbox; false if the connection ended.
    async fn read_frame(&mut self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the server answered in time");
            match next {
                Some(Ok(WsMessage::Text(text))) => {
                    for line in text.as_str().split('\n').filter(|l| !l.trim().is_empty()) {
                        let value: Value = serde_json::from_str(line)
                            .unwrap_or_else(|e| panic!("server sent bad JSON {line:?}: {e}"));
                        self.inbox.push_back(value);
                    }
                    return true;
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    self.ended =
                        Some(frame.map_or(Ended::Dropped, |f| Ended::Close(f.code.into())));
                    return false;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    self.ended = Some(Ended::Dropped);
                    return false;
                }
            }
        }
    }

    fn take_from_inbox(&mut self, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        let position = self.inbox.iter().position(wanted)?;
        self.inbox.remove(position)
    }

    async fn expect(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            if let Some(value) = self.take_from_inbox(&wanted) {
                return value;
            }
            assert!(
                self.read_frame().await,
                "connection ended ({:?}) while waiting for {what}; unread: {:?}",
                self.ended,
                self.inbox
            );
        }
    }

    /// Waits for the reply to request `id` (other objects stay in the inbox).
    pub async fn expect_reply(&mut self, id: u32) -> Value {
        self.expect(&format!("reply {id}"), |v| {
            v.get("event").is_none() && v["id"] == json!(id)
        })
        .await
    }

    /// Waits for the first event named `name` (other objects stay in the inbox).
    pub async fn expect_event(&mut self, name: &str) -> Value {
        self.expect(&format!("event {name}"), |v| v["event"] == json!(name))
            .await
    }

    /// The next object of any kind (reply or event), in arrival order.
    pub async fn next_value(&mut self) -> Value {
        self.expect("anything", |_| true).await
    }

    /// The next event of any name, in arrival order.
    pub async fn next_event(&mut self) -> Value {
        self.expect("any event", |v| v.get("event").is_some()).await
    }

    /// Round trip of a `ping`: afterwards everything the server queued for this
    /// connection before it is in the inbox.
    /// Works before login too (the 102 answer is just as ordered).
    pub async fn sync(&mut self) {
        self.request(json!({"op": "ping"})).await;
    }

    /// Events named `name` already received (after a `sync`), removed from the inbox.
    pub fn take_events(&mut self, name: &str) -> Vec<Value> {
        let (taken, kept): (Vec<Value>, Vec<Value>) = self
            .inbox
            .drain(..)
            .partition(|v| v["event"] == json!(name));
        self.inbox = kept.into();
        taken
    }

    /// Asserts that no event named `name` has arrived, after a `sync`.
    pub async fn assert_no_event(&mut self, name: &str) {
        self.sync().await;
        let events = self.take_events(name);
        assert!(events.is_empty(), "unexpected {name}: {events:?}");
    }

    /// Reads until the connection ends; returns how it ended (objects read stay in the inbox).
    pub async fn expect_end(&mut self) -> Ended {
        while self.read_frame().await {}
        self.ended.clone().expect("ended")
    }

    /// Objects received so far and not yet taken.
    pub fn inbox(&self) -> &VecDeque<Value> {
        &self.inbox
    }

    /// Closes the connection with a close frame (a clean client exit).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Drops the TCP connection without a close frame (a network failure).
    pub fn drop_connection(self) {
        drop(self);
    }
}

/// A text message body.
pub fn text(body: &str) -> Value {
    json!({"type": "text", "text": body})
}

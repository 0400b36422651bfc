//! Raw protocol JSON for the tests, through the QA kit's connection ([`RawConn`]): it
//! speaks protocol v1 directly (not through `rtm::client`), so the server is tested
//! against the protocol itself. What the tests add to it: connections that leave
//! acknowledging peer messages to the test (whether and who acknowledges is under test),
//! [`Expect`], requests and expectations that panic with what was seen instead of
//! returning errors, each bounded by [`WAIT`], and a [`Transcript`] of what arrived,
//! replies and events in one order, for the tests of that order.
//!
//! To check that something did NOT arrive, [`Expect::sync`] first: the server queues a
//! connection's events and replies in order, so everything caused before the ping is in
//! front of its reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rtm::protocol::split_frame;
use rtm::qa::check::event_matches;
use rtm::qa::raw::{
    code_of, Closure, PendingReply, RawConn, RawError, TraceDirection, Tracer, WebSocket,
};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::MaybeTlsStream;

use super::{text, WAIT};

/// Opens a raw connection to `url`; the test acknowledges peer messages itself.
pub async fn connect(url: &str) -> RawConn {
    open(url, "raw", None).await
}

/// [`connect`], with every frame received going to `tracer` too (see [`Transcript`]).
pub async fn connect_traced(url: &str, tracer: Tracer) -> RawConn {
    open(url, "raw", Some(tracer)).await
}

async fn open(url: &str, label: &str, tracer: Option<Tracer>) -> RawConn {
    let conn = RawConn::connect(url, label, tracer)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    conn.set_auto_ack(false);
    conn
}

/// A raw connection over a WebSocket the test opened itself (with socket options of its
/// own); the test acknowledges peer messages itself.
pub fn from_socket(socket: WebSocket) -> RawConn {
    let conn = RawConn::from_socket(socket, "raw", None);
    conn.set_auto_ack(false);
    conn
}

/// Logs in as `user` of `app` over a socket with a tiny receive buffer, so that what the
/// server queues for it cannot hide in the client's kernel buffer once it stops reading
/// ([`RawConn::set_reading`]).
pub async fn login_with_small_receive_buffer(addr: SocketAddr, app: &str, user: &str) -> RawConn {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/rtm/v1");
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
        .await
        .unwrap();
    let mut conn = from_socket(ws);
    conn.login(app, user).await;
    conn
}

/// Connects and logs in as `user` of `app`; panics unless the login answers 0.
pub async fn login(url: &str, app: &str, user: &str) -> RawConn {
    let mut conn = open(url, user, None).await;
    conn.login(app, user).await;
    conn
}

/// A `join` request.
pub fn join(channel: &str) -> Value {
    json!({"op": "join", "channel": channel})
}

/// A `send_channel` request with a text message.
pub fn send_channel(channel: &str, body: &str) -> Value {
    json!({"op": "send_channel", "channel": channel, "message": text(body)})
}

/// Matches the events named `name` (for [`RawConn::take_events`] and
/// [`RawConn::next_event`]).
pub fn named(name: &str) -> impl Fn(&Value) -> bool + '_ {
    move |event| event["event"] == name
}

/// Requests and expectations on a [`RawConn`] that panic, with what came instead, rather
/// than return an error; every wait is bounded by [`WAIT`]. Each also fails the test if
/// the server sent something that is not JSON.
pub trait Expect {
    /// Logs in as `user` of `app`; panics unless the login answers 0.
    async fn login(&mut self, app: &str, user: &str);
    /// Sends `op` (an object without `id`) with a fresh id and waits for its reply.
    async fn request(&mut self, op: Value) -> Value;
    /// Sends `op` and returns its reply's code.
    async fn code(&mut self, op: Value) -> u32;
    /// Sends `op` and returns its reply, which must have code 0.
    async fn ok(&mut self, op: Value) -> Value;
    /// The first event named `name` (events before it stay queued).
    async fn expect_event(&mut self, name: &str) -> Value;
    /// The first event named `name` that has `fields` (compared as with
    /// [`event_matches`]).
    async fn expect_event_with(&mut self, name: &str, fields: Value) -> Value;
    /// [`Expect::expect_event_with`], waiting up to `within`.
    async fn expect_event_within(&mut self, name: &str, fields: Value, within: Duration) -> Value;
    /// The next event of any name, in arrival order.
    async fn next_any_event(&mut self) -> Value;
    /// Round trip of a `ping`: afterwards every event the server queued for this
    /// connection before it has arrived. Works before login too (the 102 answer is just
    /// as ordered).
    async fn sync(&mut self);
    /// Asserts that no event named `name` has arrived, after a [`Expect::sync`].
    async fn assert_no_event(&mut self, name: &str);
    /// Waits until the connection ends; returns how (events that came before stay queued).
    async fn expect_end(&mut self) -> Closure;
    /// Closes with a close frame (a clean client exit) and waits for the server's answer.
    async fn hang_up(self);
    /// Sends the `ack` notice for a peer message.
    fn ack(&self, message_id: u64);
    /// Sends one text frame exactly as given; panics if the connection is closed.
    fn send_frame(&self, text: &str);
}

impl Expect for RawConn {
    async fn login(&mut self, app: &str, user: &str) {
        let reply = self
            .request(json!({"op": "login", "app_id": app, "user": user}))
            .await;
        assert_eq!(reply["code"], 0, "login of {user}: {reply}");
    }

    async fn request(&mut self, op: Value) -> Value {
        let what = op.to_string();
        let reply = self
            .call_within(op, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{}: {what}: {e}", self.label()));
        assert_json_only(self);
        reply
    }

    async fn code(&mut self, op: Value) -> u32 {
        code_of(&self.request(op).await)
    }

    async fn ok(&mut self, op: Value) -> Value {
        let what = op.to_string();
        let reply = self.request(op).await;
        assert_eq!(
            code_of(&reply),
            0,
            "{}: {what} answered {reply}",
            self.label()
        );
        reply
    }

    async fn expect_event(&mut self, name: &str) -> Value {
        self.expect_event_with(name, json!({})).await
    }

    async fn expect_event_with(&mut self, name: &str, fields: Value) -> Value {
        self.expect_event_within(name, fields, WAIT).await
    }

    async fn expect_event_within(&mut self, name: &str, fields: Value, within: Duration) -> Value {
        let found = self
            .next_event(within, |e| event_matches(e, name, &fields))
            .await;
        assert_json_only(self);
        if let Some(event) = found {
            return event;
        }
        let (label, closure) = (self.label().to_string(), self.closure());
        panic!(
            "{label}: no {name} with {fields} within {within:?} ({closure:?}); other events: {:?}",
            self.drain_events()
        )
    }

    async fn next_any_event(&mut self) -> Value {
        let found = self.next_event(WAIT, |_| true).await;
        assert_json_only(self);
        found.unwrap_or_else(|| panic!("{}: no event ({:?})", self.label(), self.closure()))
    }

    async fn sync(&mut self) {
        self.request(json!({"op": "ping"})).await;
    }

    async fn assert_no_event(&mut self, name: &str) {
        self.sync().await;
        let events = self.take_events(named(name));
        assert!(events.is_empty(), "unexpected {name}: {events:?}");
    }

    async fn expect_end(&mut self) -> Closure {
        let end = self.wait_closed(WAIT).await;
        assert_ne!(
            end,
            Closure::Open,
            "{}: still open after {WAIT:?}",
            self.label()
        );
        assert_json_only(self);
        end
    }

    async fn hang_up(mut self) {
        self.close();
        self.wait_closed(WAIT).await;
    }

    fn ack(&self, message_id: u64) {
        self.send_frame(&json!({"op": "ack", "message_id": message_id}).to_string());
    }

    fn send_frame(&self, text: &str) {
        self.send_text(text)
            .unwrap_or_else(|e| panic!("{}: {e}", self.label()));
    }
}

/// Protocol v1 sends only JSON objects; anything else fails the test.
fn assert_json_only(conn: &RawConn) {
    assert_eq!(
        conn.malformed_objects(),
        0,
        "{}: the server sent something that is not JSON",
        conn.label()
    );
}

/// Every object a connection received, replies and events in the one order they came in
/// (the connection itself keeps replies apart from events): give [`Transcript::tracer`]
/// to [`connect_traced`].
#[derive(Default)]
pub struct Transcript {
    received: Arc<watch::Sender<Vec<Value>>>,
    /// How many objects [`Transcript::next`] has handed out (or skipped).
    read: usize,
}

impl Transcript {
    /// A tracer that records what the connection receives here.
    pub fn tracer(&self) -> Tracer {
        let received = Arc::clone(&self.received);
        Arc::new(move |_, direction, frame| {
            if direction == TraceDirection::Received {
                let objects: Vec<Value> = split_frame(frame)
                    .filter_map(|object| serde_json::from_str(object).ok())
                    .collect();
                received.send_modify(|all| all.extend(objects));
            }
        })
    }

    /// The next object received (a reply or an event), in arrival order.
    pub async fn next(&mut self) -> Value {
        let read = self.read;
        let mut received = self.received.subscribe();
        let all = tokio::time::timeout(WAIT, received.wait_for(|all| all.len() > read))
            .await
            .unwrap_or_else(|_| panic!("nothing more received within {WAIT:?}"))
            .expect("the transcript is alive");
        self.read += 1;
        all[read].clone()
    }

    /// Skips everything received so far: [`Transcript::next`] gives what comes after.
    pub fn skip_received(&mut self) {
        self.read = self.received.borrow().len();
    }
}

/// Waits up to [`WAIT`] for the reply `pending` stands for (see [`RawConn::start`]).
pub async fn expect_reply(mut pending: PendingReply) -> Value {
    pending
        .wait(WAIT)
        .await
        .unwrap_or_else(|e| panic!("no reply: {e}"))
}

/// Whether the reply `pending` stands for has not come (yet): after a [`Expect::sync`],
/// the server did not send it before the ping's reply.
pub async fn unanswered(pending: &mut PendingReply) -> bool {
    matches!(
        pending.wait(Duration::ZERO).await,
        Err(RawError::Timeout { .. })
    )
}

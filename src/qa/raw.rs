//! A raw protocol connection: JSON objects over a WebSocket, nothing else.
//!
//! The conformance suite and the scenario runner speak protocol v1 through this type rather
//! than through `client/`, so that they test the server (any server) and not our library.
//! One background task reads frames, splits batches, acknowledges peer messages (unless told
//! not to, to provoke code 2), routes replies to their waiting request by `id`, and queues
//! events. Frames can be traced to a [`Tracer`]. New request helpers go on [`RawConn`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::protocol::split_frame;

/// How long a request waits for its reply unless told otherwise.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a raw exchange did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("no reply to {op} within {0:?}", .timeout)]
    Timeout { op: String, timeout: Duration },
    #[error("the connection is closed{}", close_suffix(*.code))]
    Closed { code: Option<u16> },
}

fn close_suffix(code: Option<u16>) -> String {
    code.map_or_else(String::new, |c| format!(" (close code {c})"))
}

/// What the server at `url` says it is (the login reply's `server`, an rtm-tui addition
/// to v1), asked with a login as `user` to `app_id` that is then closed; `None` when the
/// server does not say or refuses the login.
pub async fn server_version(url: &str, app_id: &str, user: &str) -> Option<String> {
    let mut conn = RawConn::connect(url, "version", None).await.ok()?;
    let reply = conn
        .call(json!({"op": "login", "app_id": app_id, "user": user}))
        .await
        .ok();
    conn.close();
    reply?.get("server")?.as_str().map(str::to_string)
}

/// Why a WebSocket could not be opened to `url`, in words that say what to change: nothing
/// listening, a server that speaks TLS (or not) when the URL says otherwise, a wrong path,
/// a name that does not resolve.
pub fn connect_cause(url: &str, error: &tokio_tungstenite::tungstenite::Error) -> String {
    use std::io::ErrorKind;
    use tokio_tungstenite::tungstenite::Error;
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
        .unwrap_or("/");
    let tls = url.starts_with("wss://");
    match error {
        Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => format!(
            "nothing listens on {authority} (connection refused); \
             `rtm-tui serve --ephemeral --listen {authority}` starts a server there"
        ),
        Error::Io(io) if io.kind() == ErrorKind::TimedOut => {
            format!("{authority} did not answer (timed out): a firewall, or a wrong address")
        }
        Error::Io(io) if !tls && is_eof(io.kind()) => format!(
            "a server on {authority} accepted the connection and closed it without a \
             WebSocket answer: if it serves TLS, use wss://{authority}{path}"
        ),
        Error::Io(io) if io.to_string().contains("lookup") || io.kind() == ErrorKind::NotFound => {
            format!("the host of {authority} has no address ({io})")
        }
        Error::Tls(tls_error) => format!(
            "a server on {authority} answered, but the TLS handshake failed ({tls_error}): \
             if it serves plain WebSocket, use ws://{authority}{path}"
        ),
        Error::Io(io) if tls => format!(
            "a server on {authority} answered, but the TLS handshake failed ({io}): \
             if it serves plain WebSocket, use ws://{authority}{path}"
        ),
        Error::Http(response) if response.status().as_u16() == 404 => format!(
            "a server on {authority} answered 404 Not Found for the path {path}: \
             RTM servers listen on {}",
            crate::protocol::WS_PATH
        ),
        Error::Http(response) => format!(
            "a server on {authority} refused the WebSocket with HTTP {}",
            response.status()
        ),
        Error::HttpFormat(_) | Error::Protocol(_) if !tls => format!(
            "something on {authority} answered, but not as a WebSocket server ({error}): \
             if it serves TLS, use wss://{authority}{path}"
        ),
        Error::Url(url_error) => {
            format!("not a server address ({url_error}): give ws://host:port/rtm/v1, or host:port")
        }
        other => other.to_string(),
    }
}

fn is_eof(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind;
    matches!(
        kind,
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// Which way a traced frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceDirection {
    Sent,
    Received,
}

/// Receives every frame of a connection: (connection label, direction, frame text).
pub type Tracer = Arc<dyn Fn(&str, TraceDirection, &str) + Send + Sync>;

/// How a connection ended, as far as the reader saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closure {
    Open,
    /// A close frame arrived, with its code if it had one.
    CloseFrame(Option<u16>),
    /// The TCP stream ended or failed without a close frame.
    Dropped,
}

type AwaitedReplies = Arc<Mutex<HashMap<u32, oneshot::Sender<Value>>>>;

/// A WebSocket as `tokio-tungstenite` opens it, over plain TCP or TLS.
pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// State the reader task and the handle share.
#[derive(Debug)]
struct Flags {
    /// Acknowledge peer messages on receipt.
    auto_ack: AtomicBool,
    /// Replies whose id no request was waiting for (a second reply to one request, or a
    /// reply to an id never sent).
    stray_replies: AtomicU64,
    /// Objects that did not parse as JSON.
    malformed: AtomicU64,
}

/// One WebSocket connection speaking raw protocol JSON.
pub struct RawConn {
    label: String,
    outgoing: mpsc::UnboundedSender<WsMessage>,
    pending: AwaitedReplies,
    events: mpsc::UnboundedReceiver<Value>,
    /// Events received but not yet taken by an expectation, oldest first.
    backlog: VecDeque<Value>,
    closure: watch::Receiver<Closure>,
    flags: Arc<Flags>,
    /// Whether the reader takes frames off the socket; see [`RawConn::set_reading`].
    reading: watch::Sender<bool>,
    next_id: u32,
    tracer: Option<Tracer>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for RawConn {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RawConn {
    /// Opens a WebSocket to `url`. `label` names the connection in traces.
    pub async fn connect(
        url: &str,
        label: impl Into<String>,
        tracer: Option<Tracer>,
    ) -> Result<RawConn, RawError> {
        let connect_error = |detail: String| RawError::Connect {
            url: url.to_string(),
            detail,
        };
        let ws_config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(crate::protocol::WS_READ_BUFFER_BYTES);
        let connect = tokio_tungstenite::connect_async_with_config(url, Some(ws_config), false);
        let (socket, _) = tokio::time::timeout(REPLY_TIMEOUT, connect)
            .await
            .map_err(|_| connect_error("no answer within 5 s".into()))?
            .map_err(|e| connect_error(connect_cause(url, &e)))?;
        Ok(RawConn::from_socket(socket, label, tracer))
    }

    /// Speaks raw protocol over a WebSocket the caller opened itself (with socket options
    /// of its own, such as a small receive buffer). `label` names the connection in traces.
    pub fn from_socket(
        socket: WebSocket,
        label: impl Into<String>,
        tracer: Option<Tracer>,
    ) -> RawConn {
        let (mut sink, mut stream) = socket.split();
        let label = label.into();
        let (outgoing, mut to_send) = mpsc::unbounded_channel::<WsMessage>();
        let writer = tokio::spawn(async move {
            while let Some(message) = to_send.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let pending: AwaitedReplies = Arc::default();
        let (event_tx, events) = mpsc::unbounded_channel();
        let (closure_tx, closure) = watch::channel(Closure::Open);
        let flags = Arc::new(Flags {
            auto_ack: AtomicBool::new(true),
            stray_replies: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        });
        let (reading, mut reading_rx) = watch::channel(true);
        let reader = {
            let pending = pending.clone();
            let outgoing = outgoing.clone();
            let flags = flags.clone();
            let tracer = tracer.clone();
            let label = label.clone();
            tokio::spawn(async move {
                let end = loop {
                    // Paused: what the server sends stays in the socket's buffers.
                    if reading_rx.wait_for(|on| *on).await.is_err() {
                        break Closure::Dropped;
                    }
                    let Some(Ok(frame)) = stream.next().await else {
                        break Closure::Dropped;
                    };
                    let text = match frame {
                        WsMessage::Text(text) => text,
                        WsMessage::Close(close) => {
                            break Closure::CloseFrame(close.map(|c| u16::from(c.code)));
                        }
                        _ => continue,
                    };
                    if let Some(tracer) = &tracer {
                        tracer(&label, TraceDirection::Received, &text);
                    }
                    for object in split_frame(&text) {
                        let Ok(value) = serde_json::from_str::<Value>(object) else {
                            flags.malformed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        route(
                            &value,
                            &pending,
                            &event_tx,
                            &outgoing,
                            &flags,
                            tracer.as_ref(),
                            &label,
                        );
                    }
                };
                // Waiting requests learn of the end when their senders drop.
                pending.lock().expect("pending lock").clear();
                let _ = closure_tx.send(end);
            })
        };
        RawConn {
            label,
            outgoing,
            pending,
            events,
            backlog: VecDeque::new(),
            closure,
            flags,
            reading,
            next_id: 1,
            tracer,
            tasks: [writer, reader],
        }
    }

    /// The label this connection has in traces and reports.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether peer messages are acknowledged on receipt (default true, as client libraries do).
    pub fn set_auto_ack(&self, on: bool) {
        self.flags.auto_ack.store(on, Ordering::Relaxed);
    }

    /// How many replies arrived that no request was waiting for (protocol v1 promises
    /// exactly one reply per request).
    pub fn stray_replies(&self) -> u64 {
        self.flags.stray_replies.load(Ordering::Relaxed)
    }

    /// How many objects arrived that were not JSON (protocol v1 sends only JSON objects).
    pub fn malformed_objects(&self) -> u64 {
        self.flags.malformed.load(Ordering::Relaxed)
    }

    /// Whether frames are read off the socket (default true). Off, what the server sends
    /// stays in the socket's buffers, as with a client that stopped reading (a stalled or
    /// slow consumer); on again, reading goes on where it stopped.
    pub fn set_reading(&self, on: bool) {
        self.reading.send_replace(on);
    }

    /// Sends a binary frame (protocol v1 has none: to see a server refuse one).
    pub fn send_binary(&self, bytes: Vec<u8>) -> Result<(), RawError> {
        if let Some(tracer) = &self.tracer {
            tracer(
                &self.label,
                TraceDirection::Sent,
                &format!("<{} binary bytes>", bytes.len()),
            );
        }
        self.outgoing
            .send(WsMessage::binary(bytes))
            .map_err(|_| self.closed_error())
    }

    /// Sends one text frame exactly as given (for malformed input and batches).
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), RawError> {
        let text = text.into();
        if let Some(tracer) = &self.tracer {
            tracer(&self.label, TraceDirection::Sent, &text);
        }
        self.outgoing
            .send(WsMessage::text(text))
            .map_err(|_| self.closed_error())
    }

    /// The next request id (what [`RawConn::start`] will use).
    pub fn allocate_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Sends `op` (an object with `"op"` and parameters) with a fresh id and returns a
    /// receiver of its reply: lets a caller pipeline several requests.
    pub fn start(&mut self, mut op: Value) -> Result<PendingReply, RawError> {
        let id = self.allocate_id();
        if let Value::Object(map) = &mut op {
            map.insert("id".into(), json!(id));
        }
        let name = op_name(&op);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        self.send_text(op.to_string())?;
        Ok(PendingReply {
            op: name,
            rx,
            closure: self.closure.clone(),
        })
    }

    /// Sends several requests in one frame, separated by newlines (a batch).
    pub fn start_batch(&mut self, ops: Vec<Value>) -> Result<Vec<PendingReply>, RawError> {
        let mut frame = String::new();
        let mut replies = Vec::with_capacity(ops.len());
        for mut op in ops {
            let id = self.allocate_id();
            op["id"] = json!(id);
            let (tx, rx) = oneshot::channel();
            self.pending.lock().expect("pending lock").insert(id, tx);
            replies.push(PendingReply {
                op: op_name(&op),
                rx,
                closure: self.closure.clone(),
            });
            if !frame.is_empty() {
                frame.push('\n');
            }
            frame.push_str(&op.to_string());
        }
        self.send_text(frame)?;
        Ok(replies)
    }

    /// Sends every op at once (pipelined, one frame each) and waits for all replies, in order.
    pub async fn call_all(&mut self, ops: Vec<Value>) -> Result<Vec<Value>, RawError> {
        let mut pending = Vec::with_capacity(ops.len());
        for op in ops {
            pending.push(self.start(op)?);
        }
        let mut replies = Vec::with_capacity(pending.len());
        for mut reply in pending {
            replies.push(reply.wait(REPLY_TIMEOUT).await?);
        }
        Ok(replies)
    }

    /// Sends `op` and waits for its reply (the whole reply object).
    pub async fn call(&mut self, op: Value) -> Result<Value, RawError> {
        self.start(op)?.wait(REPLY_TIMEOUT).await
    }

    /// Sends `op` and waits up to `timeout` for its reply.
    pub async fn call_within(&mut self, op: Value, timeout: Duration) -> Result<Value, RawError> {
        self.start(op)?.wait(timeout).await
    }

    /// Sends a notice (no id, no reply), such as `ack`.
    pub fn notice(&self, op: &Value) -> Result<(), RawError> {
        self.send_text(op.to_string())
    }

    /// Waits up to `timeout` for an event for which `matches` is true, taking it out of the
    /// queue; events that do not match stay queued for later expectations.
    pub async fn next_event(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(index) = self.backlog.iter().position(&mut matches) {
            return self.backlog.remove(index);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()
                .flatten()?;
            if matches(&event) {
                return Some(event);
            }
            self.backlog.push_back(event);
        }
    }

    /// Takes the events that have arrived so far for which `matches` is true, oldest
    /// first; the others stay queued.
    pub fn take_events(&mut self, mut matches: impl FnMut(&Value) -> bool) -> Vec<Value> {
        while let Ok(event) = self.events.try_recv() {
            self.backlog.push_back(event);
        }
        let (taken, kept): (Vec<Value>, Vec<Value>) =
            self.backlog.drain(..).partition(|event| matches(event));
        self.backlog = kept.into();
        taken
    }

    /// Takes every event that has arrived so far, oldest first.
    pub fn drain_events(&mut self) -> Vec<Value> {
        self.take_events(|_| true)
    }

    /// How the connection stands.
    pub fn closure(&self) -> Closure {
        *self.closure.borrow()
    }

    /// Waits up to `timeout` for the connection to end; returns how it ended.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Closure {
        let mut closure = self.closure.clone();
        let _ = tokio::time::timeout(timeout, closure.wait_for(|c| *c != Closure::Open)).await;
        let end = *closure.borrow();
        end
    }

    /// Sends a close frame (a polite disconnect).
    pub fn close(&self) {
        let _ = self.outgoing.send(WsMessage::Close(None));
    }

    /// Drops the TCP connection without a close frame, as a crash or network loss would.
    pub fn drop_abruptly(self) {
        drop(self);
    }

    fn closed_error(&self) -> RawError {
        RawError::Closed {
            code: match self.closure() {
                Closure::CloseFrame(code) => code,
                _ => None,
            },
        }
    }
}

/// A reply not yet received; see [`RawConn::start`].
pub struct PendingReply {
    op: String,
    rx: oneshot::Receiver<Value>,
    closure: watch::Receiver<Closure>,
}

impl PendingReply {
    /// Waits up to `timeout` for the reply; after a timeout it can be waited for again.
    pub async fn wait(&mut self, timeout: Duration) -> Result<Value, RawError> {
        match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(RawError::Closed {
                code: match *self.closure.borrow() {
                    Closure::CloseFrame(code) => code,
                    _ => None,
                },
            }),
            Err(_) => Err(RawError::Timeout {
                op: self.op.clone(),
                timeout,
            }),
        }
    }
}

fn route(
    value: &Value,
    pending: &AwaitedReplies,
    events: &mpsc::UnboundedSender<Value>,
    outgoing: &mpsc::UnboundedSender<WsMessage>,
    flags: &Flags,
    tracer: Option<&Tracer>,
    label: &str,
) {
    if value.get("event").is_some() {
        if value["event"] == "message_from_peer" && flags.auto_ack.load(Ordering::Relaxed) {
            if let Some(message_id) = value["message_id"].as_u64() {
                let ack = json!({"op": "ack", "message_id": message_id}).to_string();
                if let Some(tracer) = tracer {
                    tracer(label, TraceDirection::Sent, &ack);
                }
                let _ = outgoing.send(WsMessage::text(ack));
            }
        }
        let _ = events.send(value.clone());
    } else if let Some(id) = value.get("id").and_then(Value::as_u64) {
        let waiter = pending.lock().expect("pending lock").remove(&(id as u32));
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(value.clone());
            }
            None => {
                flags.stray_replies.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The `"op"` of a request object, for messages.
pub fn op_name(op: &Value) -> String {
    op.get("op")
        .and_then(Value::as_str)
        .unwrap_or("request")
        .to_string()
}

/// The `code` of a reply (`u32::MAX` when missing, which no rule allows).
pub fn code_of(reply: &Value) -> u32 {
    reply
        .get("code")
        .and_then(Value::as_u64)
        .map_or(u32::MAX, |c| c as u32)
}

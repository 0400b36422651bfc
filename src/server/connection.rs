//! The per-connection task: WebSocket frames in → requests for `handle`; outbox → frames.
//!
//! The reader loop (this task) splits frames into objects, decodes them and calls
//! `session::handle`; the writer task drains the outbox in batches (one frame, one flush
//! per batch) and sends the server's Pings. Nothing here decides what a request means,
//! but the connection's own clocks live here: the handshake and login deadlines and
//! liveness (token expiry timers are the hub's: `Hub::watch_token`), and its bounds:
//! what it may read and send before login (`prelogin.rs`), a pause in reading while its
//! outbox is over the soft bound, and RFC 6455's close codes for frames that break it.
//!
//! After login the reader reads ahead while a request is being handled (a `join` on
//! Redis waits for a round trip): frames that came meanwhile are stamped with when they
//! arrived ([`ReadAhead`]), and rate limits count a request at that instant, not when its
//! turn came, so a burst is a burst however slow the engine is.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use crate::protocol::limits::MAX_OBJECT_BYTES;
use crate::protocol::{
    decode_request, split_frame, DecodeError, LoginError, Op, Reply, WireCode, CLOSE_POLICY,
    CLOSE_TOO_BIG, WS_PATH,
};

use super::admission::{Admission, Slot};
use super::hub::Hub;
use super::outbox::{Closing, ConnHandle};
use super::prelogin::{Metered, ReadBudget, PRE_LOGIN_OBJECTS};
use super::session::{handle, not_logged_in_reply, Session};

/// Read buffer of a server connection (tungstenite allocates it up front): sized for
/// chat, since it is most of an idle connection's memory; a larger frame reserves its
/// whole length as it arrives and is read in steps of this size.
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Most bytes the writer puts into one frame.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// How long a closing connection may take to send its last frames.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Close code when the server shuts down.
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a frame that breaks RFC 6455 (unmasked, reserved bits or opcode, a
/// control frame over 125 bytes).
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text frame that is not UTF-8.
const CLOSE_INVALID_DATA: u16 = 1007;
/// How often a reader paused on a full outbox looks again (it is also woken by each write).
const ROOM_POLL: Duration = Duration::from_millis(50);
/// Most bytes of text a logged-in connection reads ahead of the request being handled.
const READ_AHEAD_BYTES: usize = 64 * 1024;
/// Most frames read ahead (small ones: each costs a queue slot besides its text).
const READ_AHEAD_FRAMES: usize = 256;

/// What the socket produced: a frame, its end, an error, or silence past the idle timeout.
type SocketInput = Result<Option<Result<WsMessage, WsError>>, tokio::time::error::Elapsed>;

/// Frames read while a request was being handled, with the instants they arrived at
/// (see the module header); bounded by [`READ_AHEAD_BYTES`] and [`READ_AHEAD_FRAMES`].
#[derive(Default)]
struct ReadAhead {
    frames: VecDeque<(SocketInput, Instant)>,
    bytes: usize,
    /// The stream ended or failed: nothing more is read from it.
    ended: bool,
}

impl ReadAhead {
    fn has_room(&self) -> bool {
        !self.ended && self.bytes < READ_AHEAD_BYTES && self.frames.len() < READ_AHEAD_FRAMES
    }

    fn push(&mut self, input: Option<Result<WsMessage, WsError>>, at: Instant) {
        self.ended = !matches!(input, Some(Ok(_)));
        self.bytes += input.as_ref().map_or(0, frame_bytes);
        self.frames.push_back((Ok(input), at));
    }

    fn pop(&mut self) -> Option<(SocketInput, Instant)> {
        let (input, at) = self.frames.pop_front()?;
        if let Ok(Some(read)) = &input {
            self.bytes -= frame_bytes(read);
        }
        Some((input, at))
    }
}

/// Bytes a read-ahead frame holds.
fn frame_bytes(read: &Result<WsMessage, WsError>) -> usize {
    match read {
        Ok(message) => message.len(),
        Err(_) => 0,
    }
}

/// What a connection runs on: plain TCP, or TLS over TCP.
pub(super) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Where a connection comes from and what it holds while served.
pub(super) struct Admitted {
    pub peer: Option<SocketAddr>,
    pub admission: Arc<Admission>,
    /// The connection's place under `max_connections`, freed when it ends.
    pub _slot: Slot,
}

/// Serves one connection (after TCP accept and any TLS handshake) until it ends.
pub(super) async fn serve<S: Transport>(
    stream: S,
    admitted: Admitted,
    hub: Hub,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = admitted.peer;
    let config = hub.config();
    let budget = ReadBudget::new();
    let stream = Metered::new(stream, Arc::clone(&budget));
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes));
    // The callback's error type is fixed by tungstenite.
    #[allow(clippy::result_large_err)]
    let check_path = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() == WS_PATH {
            Ok(response)
        } else {
            let mut refusal = ErrorResponse::new(Some(format!("use {WS_PATH}")));
            *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
            Err(refusal)
        }
    };
    // A peer that opens TCP and never finishes the handshake must not hold a slot.
    // Boxed, like `handle` below: an idle connection's task then holds only the small
    // reader loop, not room for the handshake's or a request's state.
    let handshake = tokio::time::timeout(
        config.login_timeout,
        Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
            stream,
            check_path,
            Some(ws_config),
        )),
    );
    let socket = match handshake.await {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => {
            tracing::debug!(?peer, %error, "WebSocket handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(?peer, "WebSocket handshake timed out");
            return;
        }
    };
    let conn = hub.new_conn();
    tracing::debug!(?peer, conn = conn.id(), "connected");
    let (sink, stream) = socket.split();
    let mut writer = tokio::spawn(write_loop(
        sink,
        conn.clone(),
        (
            config.ping_interval,
            config.write_delay,
            config.outbox.stall,
        ),
        hub.clone(),
    ));
    let mut departure = Departure {
        session: Session::new(conn.clone(), &hub),
        hub: &hub,
    };
    let mut reader = SocketReader {
        session: &mut departure.session,
        hub: &hub,
        admitted: &admitted,
        budget,
        before_login: 0,
    };
    reader.run(stream, &mut shutdown).await;
    drop(departure);
    if conn.closing_state() == Closing::Open {
        conn.close(1000, "");
    }
    // Let the writer send what is queued and the close frame, unless the socket is
    // being dropped (slow consumer, dead peer) or the peer does not read it in time.
    let finished = conn.closing_state() != Closing::Abort
        && tokio::time::timeout(CLOSE_GRACE, &mut writer).await.is_ok();
    if !finished {
        writer.abort();
    }
    tracing::debug!(?peer, conn = conn.id(), "disconnected");
}

/// Tells the hub that the session's user is gone however the reader ends, a panic in a
/// request included (the task unwinds through this), so no user stays online forever.
struct Departure<'a> {
    session: Session,
    hub: &'a Hub,
}

impl Drop for Departure<'_> {
    fn drop(&mut self) {
        let conn = &self.session.conn;
        // Whatever it followed ends with it (subscriptions stay the user's).
        self.hub.end_following(self.hub.conn_id(conn));
        if let Some(me) = self.session.identity.take() {
            self.hub
                .submit_detached(crate::server::engine::Change::Disconnected {
                    conn: self.hub.conn_id(conn),
                    app: me.app,
                    user: me.user,
                });
        }
        if std::thread::panicking() {
            tracing::error!(
                conn = conn.id(),
                "a request panicked; dropping its connection"
            );
            conn.abort();
        }
    }
}

/// The reader side of one connection: its session, the login deadline and what it may
/// still do before login.
struct SocketReader<'a> {
    session: &'a mut Session,
    hub: &'a Hub,
    admitted: &'a Admitted,
    budget: Arc<ReadBudget>,
    /// Objects handled since connecting or the last `logout` while not logged in.
    before_login: u32,
}

impl SocketReader<'_> {
    async fn run(
        &mut self,
        mut stream: futures_util::stream::SplitStream<WebSocketStream<impl Transport>>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let conn = self.session.conn.clone();
        let hub = self.hub;
        let mut closing = conn.closing();
        let idle = hub.config().idle_timeout;
        let mut logged_out_at = Instant::now();
        let login_timeout = hub.config().login_timeout;
        let mut ahead = ReadAhead::default();
        loop {
            // Not logged in since connecting or since the last `logout`: a deadline runs.
            let waiting_for_login = self.session.identity.is_none();
            let (next, arrived) = if let Some(read) = ahead.pop() {
                if conn.is_closed() {
                    return;
                }
                if shutdown.has_changed().unwrap_or(true) {
                    conn.close(CLOSE_GOING_AWAY, "server shutting down");
                    return;
                }
                read
            } else {
                let next = tokio::select! {
                    _ = closing.changed() => return,
                    _ = shutdown.changed() => {
                        conn.close(CLOSE_GOING_AWAY, "server shutting down");
                        return;
                    }
                    () = tokio::time::sleep_until(logged_out_at + login_timeout), if waiting_for_login => {
                        tracing::info!(conn = conn.id(), "no login in time");
                        conn.close(CLOSE_POLICY, "login timeout");
                        return;
                    }
                    next = tokio::time::timeout(idle, stream.next()) => next,
                };
                (next, hub.config().clock.now())
            };
            let was_logged_in = self.session.identity.is_some();
            self.session.arrived = Some(arrived);
            let keep = {
                let handling = self.on_input(next);
                tokio::pin!(handling);
                loop {
                    tokio::select! {
                        biased;
                        keep = &mut handling => break keep,
                        // Before login the pre-login budget reads one frame at a time;
                        // past the outbox's soft bound reading pauses (`handle_frame`).
                        read = stream.next(), if was_logged_in && ahead.has_room() && !conn.over_soft_bound() => {
                            ahead.push(read, hub.config().clock.now());
                        }
                    }
                }
            };
            if !keep {
                return;
            }
            match (was_logged_in, self.session.identity.is_some()) {
                (true, false) => {
                    logged_out_at = Instant::now();
                    self.budget.renew();
                    self.before_login = 0;
                }
                (false, true) => self.budget.open(),
                _ => {}
            }
        }
    }

    /// Handles what the socket produced; false when the connection must close.
    async fn on_input(
        &mut self,
        next: Result<Option<Result<WsMessage, WsError>>, tokio::time::error::Elapsed>,
    ) -> bool {
        let conn = &self.session.conn;
        match next {
            Err(_) => {
                tracing::info!(conn = conn.id(), "no sign of life: connection dead");
                conn.abort();
                false
            }
            Ok(None) => false,
            Ok(Some(Err(WsError::Capacity(error)))) => {
                tracing::info!(conn = conn.id(), %error, "frame too large");
                conn.close(CLOSE_TOO_BIG, "frame too large");
                false
            }
            Ok(Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)))) => {
                tracing::debug!(conn = conn.id(), "the peer went without a close frame");
                false
            }
            Ok(Some(Err(WsError::Protocol(error)))) => {
                tracing::info!(conn = conn.id(), %error, "WebSocket protocol error");
                conn.close(CLOSE_PROTOCOL_ERROR, "protocol error");
                false
            }
            Ok(Some(Err(WsError::Utf8(error)))) => {
                tracing::info!(conn = conn.id(), %error, "text frame not UTF-8");
                conn.close(CLOSE_INVALID_DATA, "text frame not UTF-8");
                false
            }
            Ok(Some(Err(error))) => {
                if self.budget.spent() {
                    tracing::info!(conn = conn.id(), "too much sent before login");
                    conn.close(CLOSE_POLICY, "too much sent before login");
                } else {
                    tracing::debug!(conn = conn.id(), %error, "read failed");
                }
                false
            }
            Ok(Some(Ok(message))) => match message {
                WsMessage::Text(text) => self.handle_frame(text.as_str()).await,
                WsMessage::Binary(_) => count_error(
                    self.session,
                    self.hub,
                    "binary frames are not supported".into(),
                ),
                WsMessage::Close(_) => false,
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => true,
            },
        }
    }

    /// Handles every object of a text frame; false when the connection must close.
    async fn handle_frame(&mut self, frame: &str) -> bool {
        let (session, hub) = (&mut *self.session, self.hub);
        for object in split_frame(frame) {
            // A client that sends faster than it reads waits here while its outbox is
            // full: its requests queue in its own socket, not in the server's memory.
            while session.conn.over_soft_bound() && !session.conn.is_closed() {
                session.conn.wait_for_room(ROOM_POLL).await;
            }
            // A frame may hold tens of thousands of small requests, each handled without
            // waiting: let the other connections' tasks run every so often (tokio's budget).
            tokio::task::consume_budget().await;
            if session.conn.is_closed() {
                return false;
            }
            if session.identity.is_none() {
                self.before_login += 1;
                if self.before_login > PRE_LOGIN_OBJECTS {
                    tracing::info!(conn = session.conn.id(), "too many requests before login");
                    session.conn.close(CLOSE_POLICY, "log in first");
                    return false;
                }
            }
            match decode_request(object) {
                Ok(request) => {
                    if let (Some(id), Op::Login { .. }, None) =
                        (request.id, &request.op, &session.identity)
                    {
                        if !admitted_login(self.admitted) {
                            session.conn.send_reply(&Reply::code(
                                id,
                                LoginError::TooOften.code(),
                                "too many logins from this address",
                            ));
                            continue;
                        }
                    }
                    let op: &'static str = crate::protocol::OpName::from(&request.op).into();
                    let started = std::time::Instant::now();
                    session.conn.take_reply_code();
                    Box::pin(handle(request, session, hub)).await;
                    let code = session.conn.take_reply_code();
                    hub.http().metrics.request(op, code, started.elapsed());
                }
                Err(DecodeError::TooLarge(bytes)) => {
                    tracing::info!(conn = session.conn.id(), bytes, "object too large");
                    session.conn.close(
                        CLOSE_TOO_BIG,
                        &format!("object larger than {MAX_OBJECT_BYTES} bytes"),
                    );
                    return false;
                }
                Err(error) => {
                    if let Some(reply) = not_logged_in(&error, session) {
                        session.conn.send_reply(&reply);
                    } else if let Some(reply) = error.reply() {
                        session.conn.send_reply(&reply);
                    } else if !count_error(session, hub, error.to_string()) {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// Before login, every op but `login` is 102 (docs/protocol.md), malformed parameters too:
/// the client learns what it must do first, not what else is wrong.
fn not_logged_in(error: &DecodeError, session: &Session) -> Option<Reply> {
    match error {
        DecodeError::InvalidParams { id, op, family, .. }
            if session.identity.is_none() && op != "login" =>
        {
            Some(not_logged_in_reply(*id, *family))
        }
        _ => None,
    }
}

/// Counts a login attempt against the peer address's rate.
fn admitted_login(admitted: &Admitted) -> bool {
    let Some(peer) = admitted.peer else {
        return true;
    };
    admitted
        .admission
        .allow_login(peer.ip(), super::clock::Instant::now())
}

/// Answers unusable input with the `error` event; false once the connection has had too many.
fn count_error(session: &mut Session, hub: &Hub, reason: String) -> bool {
    session.conn.send_event(&crate::protocol::Event::Error {
        code: LoginError::Unknown.code(),
        reason,
    });
    session.errors += 1;
    if session.errors >= hub.config().max_errors {
        tracing::info!(conn = session.conn.id(), "too many errors");
        session.conn.close(CLOSE_POLICY, "too many errors");
        return false;
    }
    true
}

/// Objects in a batch are joined with newlines (docs/protocol.md's batched frames).
fn memchr_count(batch: &str) -> usize {
    batch.bytes().filter(|b| *b == b'\n').count()
}

/// Drains the outbox into frames: everything queued goes out as one frame and one write.
/// After a write, events wait until `write_delay` has passed, so that what arrives
/// meanwhile shares the next write: a connection fed events faster than that gets a write
/// per `write_delay` instead of one per event, while the first event after a quiet spell
/// goes at once. A reply is never held back (its client may be waiting on it), nor are
/// [`WRITE_NOW_OBJECTS`](super::outbox::WRITE_NOW_OBJECTS) queued objects; either takes
/// whatever is queued along.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<impl Transport>, WsMessage>,
    conn: ConnHandle,
    (ping_interval, write_delay, stall): (Duration, Duration, Duration),
    hub: Hub,
) {
    let metrics = &hub.http().metrics;
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    let mut next_write = Instant::now();
    loop {
        tokio::select! {
            () = conn.wait_for_work() => {}
            _ = ping.tick() => {
                if sink.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    conn.abort();
                    return;
                }
                continue;
            }
        }
        if conn.closing_state() == Closing::Abort {
            return;
        }
        while Instant::now() < next_write
            && !conn.worth_writing_now()
            && conn.closing_state() == Closing::Open
        {
            tokio::select! {
                () = tokio::time::sleep_until(next_write) => break,
                () = conn.wait_for_work() => {}
            }
        }
        if conn.closing_state() == Closing::Abort {
            return;
        }
        // Let the request being handled (a frame may hold many) finish queuing first.
        tokio::task::yield_now().await;
        loop {
            let drained = conn.drain(MAX_BATCH_BYTES);
            let wrote = !drained.batch.is_empty();
            if wrote {
                // A client that takes nothing for the stall time has stopped reading.
                let (objects, bytes) = (memchr_count(&drained.batch) + 1, drained.batch.len());
                let sent = tokio::time::timeout(stall, sink.send(WsMessage::text(drained.batch)));
                match sent.await {
                    Ok(Ok(())) => {
                        conn.wrote();
                        metrics.wrote(objects, bytes);
                    }
                    Ok(Err(_)) => {
                        conn.abort();
                        return;
                    }
                    Err(_) => {
                        metrics.stalled_cut_offs.inc();
                        tracing::warn!(
                            conn = conn.id(),
                            "the client takes nothing; disconnecting it"
                        );
                        conn.abort();
                        return;
                    }
                }
            }
            if let Some((code, reason)) = drained.close {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = sink.send(WsMessage::Close(Some(frame))).await;
                let _ = sink.close().await;
                return;
            }
            if !wrote {
                break;
            }
            next_write = Instant::now() + write_delay;
        }
    }
}

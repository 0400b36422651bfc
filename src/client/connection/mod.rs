//! The background task of a client ([`ConnectionHandler`]): it owns the WebSocket, sends
//! the [`ClientCommand`]s of the [`Client`](super::Client) handles, matches replies to
//! requests by id, acknowledges peer messages, pings, and runs the connection state machine
//! of docs/protocol.md:
//!
//! ```text
//! DISCONNECTED --login--> CONNECTING --reply 0--> CONNECTED --logout--> DISCONNECTED(LOGOUT)
//!                              | code≠0 / 6 s         |  \--kicked--> ABORTED(REMOTE_LOGIN, ...)
//!                              v                      | lost (close, error, 30 s silence)
//!               DISCONNECTED(LOGIN_FAILURE/TIMEOUT)   v
//!                                  RECONNECTING(INTERRUPTED): backoff, connect, login,
//!                                  rejoin channels, re-subscribe, re-send attributes,
//!                                  catch up with `history` --> CONNECTED(LOGIN_SUCCESS)
//! ```
//!
//! The task is a loop over one `select!` ([`ConnectionHandler::next_input`]); handlers
//! change state and queue outgoing lines in a batch, and the loop writes that batch as one
//! frame after each input. Something new the client must remember across a reconnect
//! goes in `restore.rs`; a new transition of the state machine in `lifecycle.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::config::ClientConfig;
use super::error::{ClientError, ConnectError};
use super::event::ClientEvent;
use super::shared::{lock, ClientState};
use crate::protocol::codes::Family;
use crate::protocol::{
    decode_server_message, push_to_batch, split_frame, ChangeReason, ConnectionState, Event,
    KickReason, LoginResult, Op, Reply, Request, ServerMessage,
};

mod lifecycle;
mod restore;

use restore::{Memory, MemoryChange, RestoreStep};

/// How long a closing socket may take to write its last frames and the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Past this many events waiting for the application (times the event buffer), the task
/// stops reading the socket, so a stalled application slows its server connection down
/// rather than growing memory without bound.
const BACKLOG_FACTOR: usize = 4;
/// Most commands or frames handled before the batch of outgoing lines is written: enough
/// to coalesce a burst into one write, few enough to keep timers and events flowing.
const MAX_BATCH: usize = 64;
/// When nothing is scheduled the task still wakes this rarely (it costs nothing).
const IDLE_WAKEUP: Duration = Duration::from_secs(3600);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Box<Socket>, ConnectError>> + Send>>;

/// What the [`Client`](super::Client) handle asks of its task.
pub(crate) enum ClientCommand {
    Login {
        user: String,
        token: Option<String>,
        reply: oneshot::Sender<Result<LoginResult, ClientError>>,
    },
    Logout {
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// Any other op; the raw reply goes back, whatever its code.
    Request {
        op: Op,
        reply: oneshot::Sender<Result<Reply, ClientError>>,
    },
    /// Forget a channel (leaving it if joined); no answer.
    Release { channel: String },
    /// While waiting to reconnect: try now instead of at the end of the backoff.
    ReconnectNow,
}

/// Where the task stands; each phase maps to one [`ConnectionState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No session: DISCONNECTED or ABORTED.
    Idle,
    /// CONNECTING: the first login, opening the socket or waiting for the login reply.
    LoggingIn,
    /// CONNECTED.
    Online,
    /// RECONNECTING: waiting out the backoff delay.
    Backoff { retry_at: Instant },
    /// RECONNECTING: opening the socket or waiting for the login reply of an attempt.
    Relogging,
    /// RECONNECTING: logged in again, rejoining channels and catching up.
    Restoring,
}

/// Who logged in, and how to do it again.
struct LoginState {
    user: String,
    token: Option<String>,
    /// The caller of the first login, answered when it succeeds or fails.
    login_reply: Option<oneshot::Sender<Result<LoginResult, ClientError>>>,
    /// Reconnect attempts since the connection was last good.
    attempt: u32,
    /// What went wrong with each server tried by the first login, when there are several
    /// (to tell the caller about all of them if none works).
    connect_errors: Vec<ConnectError>,
    /// End of the current connect-and-login attempt (the login timeout).
    attempt_deadline: Instant,
}

/// Why a request is pending, i.e. what to do with its reply.
enum Purpose {
    /// A caller's request.
    Caller {
        reply: oneshot::Sender<Result<Reply, ClientError>>,
        effect: MemoryChange,
    },
    /// The login of the first login or of a reconnect attempt (its deadline is the
    /// session's attempt deadline, not the request timeout).
    Login,
    Logout {
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// A step of restoring the session after a reconnect.
    Restore(RestoreStep),
    /// Sent on the client's own account; the reply does not matter (leave on release).
    Quiet,
    /// The newest message of a channel just joined: where a later catch-up starts. The
    /// caller's join is answered once it is known.
    Baseline { channel: String, join: HeldAnswer },
}

/// A caller's reply kept back until a follow-up request of the client is answered.
struct HeldAnswer {
    caller: oneshot::Sender<Result<Reply, ClientError>>,
    reply: Reply,
}

impl HeldAnswer {
    fn deliver(self) {
        let _ = self.caller.send(Ok(self.reply));
    }
}

struct PendingRequest {
    family: Family,
    deadline: Instant,
    purpose: Purpose,
}

/// A caller's request made while RECONNECTING, sent once the session is restored, in
/// the order made. Its request timeout starts when it is sent: a reconnect that takes
/// longer than the timeout must not fail a message that then goes out fine. It waits
/// until then, or until the session ends (answered `Disconnected`) or its caller gives up.
struct Queued {
    op: Op,
    reply: oneshot::Sender<Result<Reply, ClientError>>,
}

/// The live WebSocket and its liveness clock.
struct Connection {
    socket: Socket,
    last_heard: Instant,
    next_ping: Instant,
}

/// One thing the task's loop reacts to.
enum Input {
    /// From a handle; `None` once every handle is gone.
    Command(Option<ClientCommand>),
    /// From the socket; `None` or an error when it is gone.
    Socket(Option<Result<WsMessage, WsError>>),
    /// The socket of an attempt is open (or could not be).
    Connected(Result<Box<Socket>, ConnectError>),
    /// Some deadline may have passed.
    Timer,
    /// Handled inside the select (an event handed to the application).
    Nothing,
}

/// The task that owns one client's connection.
pub(crate) struct ConnectionHandler {
    config: ClientConfig,
    shared: Arc<Mutex<ClientState>>,
    commands: mpsc::UnboundedReceiver<ClientCommand>,
    events: mpsc::Sender<ClientEvent>,
    /// Events waiting for room in `events`.
    backlog: VecDeque<ClientEvent>,
    /// The application dropped its [`Events`](super::Events): events are discarded.
    events_closed: bool,

    phase: Phase,
    login_state: Option<LoginState>,
    /// Index in [`ClientConfig::servers`] of the server of the current (or next) attempt:
    /// 0 at each login, then the next one after each failed attempt or lost connection.
    server_index: usize,
    memory: Memory,
    connecting: Option<Connecting>,
    connection: Option<Connection>,
    /// A socket being closed on purpose, with the last lines to write to it.
    closing: Option<(Socket, String)>,
    /// Lines to write as one frame after the current input.
    outbox: String,
    ping_due: bool,

    pending: HashMap<u32, PendingRequest>,
    last_request_id: u32,
    /// The earliest deadline among `pending` (may be early, never late).
    sweep_at: Option<Instant>,
    queued: Vec<Queued>,

    /// Restore steps still unanswered.
    restore_outstanding: usize,
    /// Messages fetched by catch-up, per channel, oldest first.
    catch_up: BTreeMap<String, Vec<Event>>,
    /// Server events that arrived while restoring, delivered after the catch-up.
    held: Vec<Event>,
}

impl ConnectionHandler {
    pub(crate) fn new(
        config: ClientConfig,
        shared: Arc<Mutex<ClientState>>,
        commands: mpsc::UnboundedReceiver<ClientCommand>,
        events: mpsc::Sender<ClientEvent>,
    ) -> Self {
        ConnectionHandler {
            config,
            shared,
            commands,
            events,
            backlog: VecDeque::new(),
            events_closed: false,
            phase: Phase::Idle,
            login_state: None,
            server_index: 0,
            memory: Memory::default(),
            connecting: None,
            connection: None,
            closing: None,
            outbox: String::new(),
            ping_due: false,
            pending: HashMap::new(),
            last_request_id: 0,
            sweep_at: None,
            queued: Vec::new(),
            restore_outstanding: 0,
            catch_up: BTreeMap::new(),
            held: Vec::new(),
        }
    }

    /// Runs until every handle is dropped, then closes the socket.
    pub(crate) async fn run(mut self) {
        loop {
            match self.next_input().await {
                Input::Command(None) => break,
                Input::Command(Some(command)) => {
                    self.on_command(command);
                    self.drain_ready_commands();
                }
                Input::Socket(message) => {
                    self.on_socket(message);
                    self.drain_ready_socket();
                }
                Input::Connected(result) => self.on_connect_result(result),
                Input::Timer => self.on_timer(Instant::now()),
                Input::Nothing => {}
            }
            self.write_out().await;
        }
        if let Some(connection) = self.connection.take() {
            self.closing = Some((connection.socket, std::mem::take(&mut self.outbox)));
        }
        self.write_out().await;
    }

    async fn next_input(&mut self) -> Input {
        let wake_at = self.next_wakeup();
        let reading = self.connection.is_some() && !self.reading_paused();
        tokio::select! {
            command = self.commands.recv() => Input::Command(command),
            message = async {
                match self.connection.as_mut() {
                    Some(connection) => connection.socket.next().await,
                    None => None,
                }
            }, if reading => Input::Socket(message),
            result = async {
                match self.connecting.as_mut() {
                    Some(connecting) => connecting.as_mut().await,
                    // Not polled without an attempt (the branch's condition).
                    None => std::future::pending().await,
                }
            }, if self.connecting.is_some() => {
                self.connecting = None;
                Input::Connected(result)
            }
            permit = self.events.reserve(), if !self.backlog.is_empty() => {
                if let Ok(permit) = permit {
                    if let Some(event) = self.backlog.pop_front() {
                        permit.send(event);
                    }
                } else {
                    self.events_closed = true;
                    self.backlog.clear();
                }
                Input::Nothing
            }
            () = sleep_until(wake_at) => Input::Timer,
        }
    }

    /// Handles commands already waiting, so that their requests leave in one frame.
    fn drain_ready_commands(&mut self) {
        for _ in 0..MAX_BATCH {
            match self.commands.try_recv() {
                Ok(command) => self.on_command(command),
                Err(_) => break,
            }
        }
    }

    /// Handles frames already received, so that their acks leave in one frame.
    fn drain_ready_socket(&mut self) {
        for _ in 0..MAX_BATCH {
            if self.reading_paused() {
                break;
            }
            let Some(connection) = self.connection.as_mut() else {
                break;
            };
            match connection.socket.next().now_or_never() {
                Some(message) => self.on_socket(message),
                None => break,
            }
        }
    }

    /// Whether so many events wait for the application that the socket is not read. Not
    /// while a reply is awaited: an application that waits on a request before it reads
    /// its events would wait forever (the backlog then grows for at most the request
    /// timeout).
    fn reading_paused(&self) -> bool {
        self.backlog.len() >= self.config.event_buffer.max(1) * BACKLOG_FACTOR
            && self.pending.is_empty()
    }

    /// The earliest instant at which [`on_timer`](Self::on_timer) has something to do.
    fn next_wakeup(&self) -> Instant {
        let mut wake_at = Instant::now() + IDLE_WAKEUP;
        let mut consider = |at: Instant| wake_at = wake_at.min(at);
        match self.phase {
            Phase::Backoff { retry_at } => consider(retry_at),
            Phase::LoggingIn | Phase::Relogging => {
                if let Some(login_state) = &self.login_state {
                    consider(login_state.attempt_deadline);
                }
            }
            Phase::Idle | Phase::Online | Phase::Restoring => {}
        }
        if let Some(connection) = &self.connection {
            consider(connection.next_ping);
            consider(connection.last_heard + self.config.dead_timeout);
        }
        if let Some(sweep_at) = self.sweep_at {
            consider(sweep_at);
        }
        wake_at
    }

    // ----- commands from the handles -----

    fn on_command(&mut self, command: ClientCommand) {
        match command {
            ClientCommand::Login { user, token, reply } => self.start_login(user, token, reply),
            ClientCommand::Logout { reply } => self.start_logout(reply),
            ClientCommand::Request { op, reply } => {
                let deadline = Instant::now() + self.config.request_timeout;
                match self.phase {
                    Phase::Idle | Phase::LoggingIn => {
                        let _ = reply.send(Err(ClientError::NotLoggedIn));
                    }
                    Phase::Online => {
                        let effect = MemoryChange::of(&op);
                        self.send_request(op, Purpose::Caller { reply, effect }, deadline);
                    }
                    Phase::Backoff { .. } | Phase::Relogging | Phase::Restoring => {
                        self.queued.push(Queued { op, reply });
                    }
                }
            }
            ClientCommand::ReconnectNow => {
                if let Phase::Backoff { .. } = self.phase {
                    self.phase = Phase::Relogging;
                    self.set_state(
                        ConnectionState::Reconnecting,
                        ChangeReason::Interrupted,
                        None,
                    );
                    self.start_attempt();
                }
            }
            ClientCommand::Release { channel } => {
                if self.memory.channels.remove(&channel).is_some()
                    && matches!(self.phase, Phase::Online | Phase::Restoring)
                {
                    let deadline = Instant::now() + self.config.request_timeout;
                    self.send_request(Op::Leave { channel }, Purpose::Quiet, deadline);
                }
            }
        }
    }

    fn start_login(
        &mut self,
        user: String,
        token: Option<String>,
        reply: oneshot::Sender<Result<LoginResult, ClientError>>,
    ) {
        if self.phase != Phase::Idle {
            let _ = reply.send(Err(ClientError::AlreadyLoggedIn));
            return;
        }
        self.login_state = Some(LoginState {
            user,
            token,
            login_reply: Some(reply),
            attempt: 0,
            connect_errors: Vec::new(),
            attempt_deadline: Instant::now(),
        });
        self.server_index = 0;
        self.memory = Memory::default();
        self.phase = Phase::LoggingIn;
        self.set_state(ConnectionState::Connecting, ChangeReason::Login, None);
        self.start_attempt();
    }

    fn start_logout(&mut self, reply: oneshot::Sender<Result<(), ClientError>>) {
        match self.phase {
            Phase::Idle => {
                let _ = reply.send(Err(ClientError::NotLoggedIn));
            }
            Phase::Online | Phase::Restoring => {
                let deadline = Instant::now() + self.config.request_timeout;
                self.send_request(Op::Logout, Purpose::Logout { reply }, deadline);
            }
            Phase::LoggingIn | Phase::Backoff { .. } | Phase::Relogging => {
                self.end_session(
                    ConnectionState::Disconnected,
                    ChangeReason::Logout,
                    ClientError::Disconnected,
                );
                let _ = reply.send(Ok(()));
            }
        }
    }

    // ----- the socket -----

    fn on_socket(&mut self, message: Option<Result<WsMessage, WsError>>) {
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                tracing::debug!(%error, "connection error");
                self.connection_lost();
                return;
            }
            None => {
                self.connection_lost();
                return;
            }
        };
        if let Some(connection) = &mut self.connection {
            connection.last_heard = Instant::now();
        }
        match message {
            WsMessage::Text(text) => {
                for line in split_frame(text.as_str()) {
                    if self.connection.is_none() {
                        break; // a kick in this frame ended the login_state
                    }
                    match decode_server_message(line) {
                        Ok(ServerMessage::Reply(reply)) => self.on_reply(reply),
                        Ok(ServerMessage::Event(event)) => self.on_event(event),
                        Err(error) => tracing::debug!(%error, "skipping what the server sent"),
                    }
                }
            }
            WsMessage::Close(frame) => {
                tracing::debug!(?frame, "server closed the connection");
                self.connection_lost();
            }
            // tungstenite answers pings itself; anything heard counts as liveness.
            WsMessage::Ping(_)
            | WsMessage::Pong(_)
            | WsMessage::Binary(_)
            | WsMessage::Frame(_) => {}
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        let Some(pending) = self.pending.remove(&reply.id) else {
            tracing::debug!(id = reply.id, "reply to no pending request");
            return;
        };
        match pending.purpose {
            Purpose::Caller {
                reply: caller,
                effect,
            } => {
                let answer = HeldAnswer { caller, reply };
                match self.apply(effect, answer.reply.code) {
                    Some(joined) => self.request_baseline(joined, answer),
                    None => answer.deliver(),
                }
            }
            Purpose::Login => self.on_login_reply(&reply),
            Purpose::Logout { reply: caller } => {
                self.end_session(
                    ConnectionState::Disconnected,
                    ChangeReason::Logout,
                    ClientError::Disconnected,
                );
                let _ = caller.send(Ok(()));
            }
            Purpose::Restore(step) => self.on_restore_reply(step, Some(&reply)),
            Purpose::Quiet => {}
            Purpose::Baseline { channel, join } => {
                self.on_baseline(&channel, &reply);
                join.deliver();
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match &event {
            Event::MessageFromPeer { message_id, .. } => {
                // Acknowledged on receipt, whatever the application does with it: the
                // sender's result code says "received by peer".
                push_to_batch(
                    &mut self.outbox,
                    &Request {
                        id: None,
                        op: Op::Ack {
                            message_id: *message_id,
                        },
                    },
                );
            }
            Event::Kicked { reason } => {
                let reason = match reason {
                    KickReason::RemoteLogin => ChangeReason::RemoteLogin,
                    KickReason::Banned => ChangeReason::BannedByServer,
                    KickReason::TokenExpired => ChangeReason::TokenExpired,
                };
                self.deliver(event);
                self.end_session(ConnectionState::Aborted, reason, ClientError::Disconnected);
                return;
            }
            _ => {}
        }
        if self.phase == Phase::Restoring {
            self.held.push(event);
        } else {
            self.deliver(event);
        }
    }

    /// Hands a server event to the application, skipping channel messages it already has
    /// (a catch-up and the live stream may overlap; see `ChannelMark::admit`).
    fn deliver(&mut self, event: Event) {
        if let Event::MessageFromChannel {
            channel,
            message_id,
            server_ts,
            ..
        } = &event
        {
            if let Some(mark) = self.memory.channels.get_mut(channel) {
                if !mark.admit((*message_id, *server_ts)) {
                    return;
                }
            }
        }
        self.emit(ClientEvent::Server(event));
    }

    // ----- time -----

    fn on_timer(&mut self, now: Instant) {
        match self.phase {
            Phase::Backoff { retry_at } if now >= retry_at => {
                self.phase = Phase::Relogging;
                self.start_attempt();
            }
            Phase::LoggingIn | Phase::Relogging
                if self
                    .login_state
                    .as_ref()
                    .is_some_and(|s| now >= s.attempt_deadline) =>
            {
                tracing::debug!(url = self.server(), "no login reply in time");
                let error = ConnectError::NoLoginReply {
                    url: self.server().to_string(),
                    within_ms: self.config.login_timeout.as_millis() as u64,
                };
                if self.phase == Phase::LoggingIn && !self.try_next_server(error) {
                    self.end_session(
                        ConnectionState::Disconnected,
                        ChangeReason::LoginTimeout,
                        ClientError::Timeout {
                            family: Family::Login,
                        },
                    );
                } else if self.phase == Phase::Relogging {
                    self.drop_connection();
                    self.schedule_reconnect();
                }
            }
            _ => {}
        }
        let silent_too_long =
            |connection: &Connection| now >= connection.last_heard + self.config.dead_timeout;
        if self.connection.as_ref().is_some_and(silent_too_long) {
            // The timer may have won the select over data already waiting (a busy task,
            // a loaded machine): read what is there before calling the server dead.
            self.drain_ready_socket();
        }
        let paused = self.reading_paused();
        if let Some(connection) = &mut self.connection {
            if paused {
                // Silence is ours, not the server's, while the application is not reading.
                connection.last_heard = now;
            }
            if now >= connection.last_heard + self.config.dead_timeout {
                tracing::debug!("nothing heard from the server; connection taken for dead");
                self.connection_lost();
            } else if now >= connection.next_ping {
                connection.next_ping = now + self.config.ping_interval;
                self.ping_due = true;
            }
        }
        if self.sweep_at.is_some_and(|at| now >= at) {
            self.sweep(now);
        }
    }

    /// Fails the requests whose deadline has passed and forgets those nobody waits for.
    fn sweep(&mut self, now: Instant) {
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| !matches!(p.purpose, Purpose::Login) && now >= p.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(pending) = self.pending.remove(&id) else {
                continue;
            };
            let timed_out = ClientError::Timeout {
                family: pending.family,
            };
            match pending.purpose {
                Purpose::Caller { reply, .. } => {
                    let _ = reply.send(Err(timed_out));
                }
                Purpose::Logout { reply } => {
                    // Logged out locally all the same; the socket closes.
                    self.end_session(
                        ConnectionState::Disconnected,
                        ChangeReason::Logout,
                        ClientError::Disconnected,
                    );
                    let _ = reply.send(Ok(()));
                }
                Purpose::Restore(step) => self.on_restore_reply(step, None),
                // The join itself succeeded; only its starting point is unknown.
                Purpose::Baseline { join, .. } => join.deliver(),
                Purpose::Login | Purpose::Quiet => {}
            }
        }
        self.queued.retain(|q| !q.reply.is_closed());
        self.sweep_at = self
            .pending
            .values()
            .filter(|p| !matches!(p.purpose, Purpose::Login))
            .map(|p| p.deadline)
            .min();
    }

    fn schedule_sweep(&mut self, deadline: Instant) {
        self.sweep_at = Some(self.sweep_at.map_or(deadline, |at| at.min(deadline)));
    }

    // ----- output -----

    fn send_request(&mut self, op: Op, purpose: Purpose, deadline: Instant) {
        let id = self.next_request_id();
        let family = op.family();
        push_to_batch(&mut self.outbox, &Request { id: Some(id), op });
        if !matches!(purpose, Purpose::Login) {
            self.schedule_sweep(deadline);
        }
        self.pending.insert(
            id,
            PendingRequest {
                family,
                deadline,
                purpose,
            },
        );
    }

    /// The next id in 1..=2^32-1 not used by a pending request.
    fn next_request_id(&mut self) -> u32 {
        loop {
            self.last_request_id = self.last_request_id.checked_add(1).unwrap_or(1);
            if !self.pending.contains_key(&self.last_request_id) {
                return self.last_request_id;
            }
        }
    }

    fn set_state(
        &mut self,
        state: ConnectionState,
        reason: ChangeReason,
        retry_in: Option<Duration>,
    ) {
        {
            let mut shared = lock(&self.shared);
            shared.state = state;
            shared.reason = reason;
        }
        tracing::debug!(
            state = state.label(),
            reason = reason.label(),
            ?retry_in,
            "state"
        );
        self.emit(ClientEvent::StateChanged {
            state,
            reason,
            retry_in,
        });
    }

    /// Hands `event` to the application at once when there is room (so that it is
    /// there before a reply read after it resolves its request), else after those
    /// already waiting.
    fn emit(&mut self, event: ClientEvent) {
        if self.events_closed {
            return;
        }
        if !self.backlog.is_empty() {
            self.backlog.push_back(event);
            return;
        }
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => self.backlog.push_back(event),
            Err(mpsc::error::TrySendError::Closed(_)) => self.events_closed = true,
        }
    }

    /// Writes the batch of lines as one frame, a due ping, and the close of a socket
    /// being let go.
    async fn write_out(&mut self) {
        if let Some(connection) = &mut self.connection {
            let mut written = Ok(());
            if !self.outbox.is_empty() {
                let frame = std::mem::take(&mut self.outbox);
                written = write_within(
                    &mut connection.socket,
                    WsMessage::text(frame),
                    self.config.dead_timeout,
                )
                .await;
            }
            if written.is_ok() && self.ping_due {
                self.ping_due = false;
                written = write_within(
                    &mut connection.socket,
                    WsMessage::Ping(Vec::new().into()),
                    self.config.dead_timeout,
                )
                .await;
            }
            if let Err(error) = written {
                tracing::debug!(%error, "cannot write to the server");
                self.connection_lost();
            }
        }
        if let Some((mut socket, last_lines)) = self.closing.take() {
            if !last_lines.is_empty() {
                let _ = write_within(&mut socket, WsMessage::text(last_lines), CLOSE_TIMEOUT).await;
            }
            let _ = timeout(CLOSE_TIMEOUT, socket.close(None)).await;
        }
    }
}

async fn write_within(
    socket: &mut Socket,
    message: WsMessage,
    limit: Duration,
) -> Result<(), String> {
    match timeout(limit, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("write timed out".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::shared::ClientState;

    fn handler() -> ConnectionHandler {
        let shared = Arc::new(Mutex::new(ClientState::new()));
        let (_commands, command_receiver) = mpsc::unbounded_channel();
        let (events, _event_receiver) = mpsc::channel(1);
        ConnectionHandler::new(
            ClientConfig::new("ws://127.0.0.1:9/rtm/v1", "demo"),
            shared,
            command_receiver,
            events,
        )
    }

    #[tokio::test]
    async fn request_ids_wrap_and_skip_those_still_pending() {
        let mut handler = handler();
        assert_eq!(handler.next_request_id(), 1);
        let far = Instant::now() + Duration::from_secs(60);
        handler.send_request(Op::Ping, Purpose::Quiet, far); // id 2, stays pending
        handler.last_request_id = u32::MAX - 1;
        assert_eq!(handler.next_request_id(), u32::MAX);
        // 0 is never used; 1 is free again, 2 is still pending.
        assert_eq!(handler.next_request_id(), 1);
        assert_eq!(handler.next_request_id(), 3);
        assert!(handler.outbox.contains(r#""id":2"#));
    }
}

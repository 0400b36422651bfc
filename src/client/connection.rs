//! The background task of a client ([`ConnectionHandler`]): it owns the WebSocket, sends
//! the [`Command`]s of the [`Client`](super::Client) handles, matches replies to requests
//! by id, acknowledges peer messages, pings, and runs the connection state machine of
//! protocol.md:
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
//! goes in [`Memory`] (set by an [`Effect`] of the op's reply) and in `start_restore`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::client::{lock, Shared};
use super::config::ClientConfig;
use super::error::ClientError;
use super::event::ClientEvent;
use crate::protocol::codes::{join, leave, login, Family};
use crate::protocol::limits::MAX_HISTORY_LIMIT;
use crate::protocol::{
    decode_server_message, now_ms, push_to_batch, split_frame, Attributes, ChangeReason,
    ConnectionState, Event, HistoryResult, KickReason, LoginResult, Op, Reply, Request,
    ServerMessage,
};

/// How long a closing socket may take to write its last frames and the close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Past this many events waiting for the application (times the event buffer), the task
/// stops reading the socket, so a stalled application slows its server connection down
/// rather than growing memory without bound.
const BACKLOG_FACTOR: usize = 4;
/// When nothing is scheduled the task still wakes this rarely (it costs nothing).
const IDLE_WAKEUP: Duration = Duration::from_secs(3600);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Box<Socket>, String>> + Send>>;

/// What the [`Client`](super::Client) handle asks of its task.
pub(crate) enum Command {
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
struct Session {
    user: String,
    token: Option<String>,
    /// The caller of the first login, answered when it succeeds or fails.
    login_reply: Option<oneshot::Sender<Result<LoginResult, ClientError>>>,
    /// Reconnect attempts since the connection was last good.
    attempt: u32,
    /// End of the current connect-and-login attempt (the login timeout).
    attempt_deadline: Instant,
}

/// What the client re-establishes after a reconnect: the effects of its successful ops.
#[derive(Default)]
struct Memory {
    /// Joined channels, with how far the application has seen each.
    channels: BTreeMap<String, ChannelMark>,
    subscribed: BTreeSet<String>,
    attributes: Attributes,
    /// Server clock minus local clock, in ms, measured at login.
    server_offset_ms: i64,
}

/// How far a joined channel has been delivered to the application.
#[derive(Debug, Clone, Copy)]
struct ChannelMark {
    /// The last `message_id` delivered, if any.
    last_seen: Option<u64>,
    /// When the channel was joined, in server time (ms): without a `last_seen`, catch-up
    /// takes the messages stored after it.
    joined_at_ms: u64,
}

/// What a successful reply changes in [`Memory`].
enum Effect {
    None,
    Joined(String),
    Left(String),
    Subscribed(Vec<String>),
    Unsubscribed(Vec<String>),
    SetAttributes(Attributes),
    AddAttributes(Attributes),
    DeleteAttributes(Vec<String>),
    ClearAttributes,
    Renewed(String),
}

impl Effect {
    fn of(op: &Op) -> Self {
        match op {
            Op::Join { channel } => Effect::Joined(channel.clone()),
            Op::Leave { channel } => Effect::Left(channel.clone()),
            Op::SubscribePeersOnline { peers } => Effect::Subscribed(peers.clone()),
            Op::UnsubscribePeersOnline { peers } => Effect::Unsubscribed(peers.clone()),
            Op::SetUserAttributes { attributes } => Effect::SetAttributes(attributes.clone()),
            Op::AddOrUpdateUserAttributes { attributes } => {
                Effect::AddAttributes(attributes.clone())
            }
            Op::DeleteUserAttributes { keys } => Effect::DeleteAttributes(keys.clone()),
            Op::ClearUserAttributes => Effect::ClearAttributes,
            Op::RenewToken { token } => Effect::Renewed(token.clone()),
            _ => Effect::None,
        }
    }
}

/// Why a request is pending, i.e. what to do with its reply.
enum Purpose {
    /// A caller's request.
    Caller {
        reply: oneshot::Sender<Result<Reply, ClientError>>,
        effect: Effect,
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
}

enum RestoreStep {
    Join(String),
    History(String),
    Other,
}

struct Pending {
    family: Family,
    deadline: Instant,
    purpose: Purpose,
}

/// A caller's request made while RECONNECTING, sent once the session is restored.
struct Queued {
    op: Op,
    reply: oneshot::Sender<Result<Reply, ClientError>>,
    deadline: Instant,
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
    Command(Option<Command>),
    /// From the socket; `None` or an error when it is gone.
    Socket(Option<Result<WsMessage, WsError>>),
    /// The socket of an attempt is open (or could not be).
    Connected(Result<Box<Socket>, String>),
    /// Some deadline may have passed.
    Timer,
    /// Handled inside the select (an event handed to the application).
    Nothing,
}

/// The task that owns one client's connection.
pub(crate) struct ConnectionHandler {
    config: ClientConfig,
    shared: Arc<Mutex<Shared>>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<ClientEvent>,
    /// Events waiting for room in `events`.
    backlog: VecDeque<ClientEvent>,
    /// The application dropped its [`Events`](super::Events): events are discarded.
    events_closed: bool,

    phase: Phase,
    session: Option<Session>,
    memory: Memory,
    connecting: Option<Connecting>,
    connection: Option<Connection>,
    /// A socket being closed on purpose, with the last lines to write to it.
    closing: Option<(Socket, String)>,
    /// Lines to write as one frame after the current input.
    outbox: String,
    ping_due: bool,

    pending: HashMap<u32, Pending>,
    last_request_id: u32,
    /// The earliest deadline among `pending` and `queued` (may be early, never late).
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
        shared: Arc<Mutex<Shared>>,
        commands: mpsc::UnboundedReceiver<Command>,
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
            session: None,
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
                Input::Command(Some(command)) => self.on_command(command),
                Input::Socket(message) => self.on_socket(message),
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
        let reading = self.connection.is_some()
            && self.backlog.len() < self.config.event_buffer.max(1) * BACKLOG_FACTOR;
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
                    None => Err("no connection attempt".to_string()),
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

    /// The earliest instant at which [`on_timer`](Self::on_timer) has something to do.
    fn next_wakeup(&self) -> Instant {
        let mut wake_at = Instant::now() + IDLE_WAKEUP;
        let mut consider = |at: Instant| wake_at = wake_at.min(at);
        match self.phase {
            Phase::Backoff { retry_at } => consider(retry_at),
            Phase::LoggingIn | Phase::Relogging => {
                if let Some(session) = &self.session {
                    consider(session.attempt_deadline);
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

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Login { user, token, reply } => self.start_login(user, token, reply),
            Command::Logout { reply } => self.start_logout(reply),
            Command::Request { op, reply } => {
                let deadline = Instant::now() + self.config.request_timeout;
                match self.phase {
                    Phase::Idle | Phase::LoggingIn => {
                        let _ = reply.send(Err(ClientError::NotLoggedIn));
                    }
                    Phase::Online => {
                        let effect = Effect::of(&op);
                        self.send_request(op, Purpose::Caller { reply, effect }, deadline);
                    }
                    Phase::Backoff { .. } | Phase::Relogging | Phase::Restoring => {
                        self.queued.push(Queued {
                            op,
                            reply,
                            deadline,
                        });
                        self.schedule_sweep(deadline);
                    }
                }
            }
            Command::Release { channel } => {
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
        self.session = Some(Session {
            user,
            token,
            login_reply: Some(reply),
            attempt: 0,
            attempt_deadline: Instant::now(),
        });
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

    // ----- connecting and logging in -----

    /// Opens a socket for a login (first or reconnect), within the login timeout.
    fn start_attempt(&mut self) {
        let deadline = Instant::now() + self.config.login_timeout;
        if let Some(session) = &mut self.session {
            session.attempt_deadline = deadline;
        }
        let url = self.config.server_url.clone();
        self.connecting = Some(Box::pin(async move {
            tokio_tungstenite::connect_async_with_config(url, None, true)
                .await
                .map(|(socket, _response)| Box::new(socket))
                .map_err(|e| e.to_string())
        }));
    }

    fn on_connect_result(&mut self, result: Result<Box<Socket>, String>) {
        let Some(session) = &self.session else {
            return;
        };
        match result {
            Ok(socket) => {
                let now = Instant::now();
                self.outbox.clear();
                self.connection = Some(Connection {
                    socket: *socket,
                    last_heard: now,
                    next_ping: now + self.config.ping_interval,
                });
                let op = Op::Login {
                    app_id: self.config.app_id.clone(),
                    user: session.user.clone(),
                    token: session.token.clone(),
                };
                let deadline = session.attempt_deadline;
                self.send_request(op, Purpose::Login, deadline);
            }
            Err(error) => {
                tracing::debug!(%error, url = %self.config.server_url, "cannot connect");
                if self.phase == Phase::LoggingIn {
                    self.end_session(
                        ConnectionState::Disconnected,
                        ChangeReason::LoginFailure,
                        ClientError::Connect(error),
                    );
                } else {
                    self.schedule_reconnect();
                }
            }
        }
    }

    fn on_login_reply(&mut self, reply: &Reply) {
        if reply.code == login::OK {
            match reply.result::<LoginResult>() {
                Ok(result) => self.logged_in(result),
                Err(e) => self.login_failed(ClientError::Protocol(e.to_string()), None),
            }
        } else {
            let error = ClientError::Code {
                family: Family::Login,
                code: reply.code,
                reason: reply
                    .reason
                    .clone()
                    .unwrap_or_else(|| Family::Login.describe(reply.code).to_string()),
            };
            self.login_failed(error, Some(reply.code));
        }
    }

    fn logged_in(&mut self, result: LoginResult) {
        self.memory.server_offset_ms = result.server_ts as i64 - now_ms() as i64;
        lock(&self.shared).user = Some(result.user.clone());
        if let Some(session) = &mut self.session {
            session.user.clone_from(&result.user);
        }
        match self.phase {
            Phase::LoggingIn => {
                self.phase = Phase::Online;
                self.set_state(ConnectionState::Connected, ChangeReason::LoginSuccess, None);
                if let Some(reply) = self.session.as_mut().and_then(|s| s.login_reply.take()) {
                    let _ = reply.send(Ok(result));
                }
            }
            Phase::Relogging => self.start_restore(),
            Phase::Idle | Phase::Online | Phase::Backoff { .. } | Phase::Restoring => {}
        }
    }

    fn login_failed(&mut self, error: ClientError, code: Option<u32>) {
        tracing::debug!(%error, "login failed");
        if self.phase == Phase::LoggingIn {
            self.end_session(
                ConnectionState::Disconnected,
                ChangeReason::LoginFailure,
                error,
            );
            return;
        }
        // A reconnect attempt: a verdict on the credentials ends the session, anything
        // else (too often, a server still starting) is worth another attempt.
        match code {
            Some(login::TOKEN_EXPIRED) => {
                self.end_session(ConnectionState::Aborted, ChangeReason::TokenExpired, error);
            }
            Some(
                login::REJECTED
                | login::INVALID_ARGUMENT
                | login::INVALID_APP_ID
                | login::INVALID_TOKEN,
            ) => self.end_session(
                ConnectionState::Disconnected,
                ChangeReason::LoginFailure,
                error,
            ),
            _ => {
                self.drop_connection();
                self.schedule_reconnect();
            }
        }
    }

    // ----- restoring the session after a reconnect -----

    fn start_restore(&mut self) {
        self.phase = Phase::Restoring;
        self.catch_up.clear();
        self.restore_outstanding = 0;
        let deadline = Instant::now() + self.config.request_timeout;
        let channels: Vec<String> = self.memory.channels.keys().cloned().collect();
        for channel in channels {
            self.send_restore(
                Op::Join {
                    channel: channel.clone(),
                },
                RestoreStep::Join(channel),
                deadline,
            );
        }
        if !self.memory.subscribed.is_empty() {
            let peers = self.memory.subscribed.iter().cloned().collect();
            self.send_restore(
                Op::SubscribePeersOnline { peers },
                RestoreStep::Other,
                deadline,
            );
        }
        if !self.memory.attributes.is_empty() {
            let attributes = self.memory.attributes.clone();
            self.send_restore(
                Op::SetUserAttributes { attributes },
                RestoreStep::Other,
                deadline,
            );
        }
        if self.restore_outstanding == 0 {
            self.finish_restore();
        }
    }

    fn send_restore(&mut self, op: Op, step: RestoreStep, deadline: Instant) {
        self.restore_outstanding += 1;
        self.send_request(op, Purpose::Restore(step), deadline);
    }

    /// A restore step was answered (`reply`) or timed out (`None`).
    fn on_restore_reply(&mut self, step: RestoreStep, reply: Option<&Reply>) {
        self.restore_outstanding = self.restore_outstanding.saturating_sub(1);
        let code = reply.map(|r| r.code);
        match step {
            RestoreStep::Join(channel) => match code {
                Some(join::OK | join::ALREADY_JOINED) => self.fetch_missed(&channel),
                _ => {
                    // Kept in memory: the next reconnect tries again.
                    tracing::warn!(%channel, ?code, "could not rejoin channel after reconnect");
                }
            },
            RestoreStep::History(channel) => {
                if let Some(reply) = reply.filter(|r| r.code == 0) {
                    match reply.result::<HistoryResult>() {
                        Ok(result) => self.on_missed(&channel, result),
                        Err(e) => tracing::warn!(%channel, error = %e, "bad history reply"),
                    }
                } else {
                    tracing::warn!(%channel, ?code, "could not fetch missed messages");
                }
            }
            RestoreStep::Other => {
                if code != Some(0) {
                    tracing::warn!(?code, "could not restore subscriptions or attributes");
                }
            }
        }
        if self.restore_outstanding == 0 && self.phase == Phase::Restoring {
            self.finish_restore();
        }
    }

    /// Asks for the messages of `channel` after the last one delivered (or caught up).
    fn fetch_missed(&mut self, channel: &str) {
        let Some(mark) = self.memory.channels.get(channel) else {
            return;
        };
        let after = self
            .catch_up
            .get(channel)
            .and_then(|messages| messages.last())
            .and_then(message_id)
            .or(mark.last_seen);
        let deadline = Instant::now() + self.config.request_timeout;
        self.send_restore(
            Op::History {
                peer: None,
                channel: Some(channel.to_string()),
                before: None,
                after,
                limit: Some(MAX_HISTORY_LIMIT),
            },
            RestoreStep::History(channel.to_string()),
            deadline,
        );
    }

    fn on_missed(&mut self, channel: &str, result: HistoryResult) {
        let Some(mark) = self.memory.channels.get(channel).copied() else {
            return;
        };
        let own_user = self.session.as_ref().map(|s| s.user.clone());
        let full_page = result.messages.len() >= MAX_HISTORY_LIMIT as usize;
        let missed = result.messages.into_iter().filter(|m| {
            // The sender does not get its own messages back; neither does catch-up.
            Some(&m.from) != own_user.as_ref()
                && (mark.last_seen.is_some() || m.server_ts >= mark.joined_at_ms)
        });
        self.catch_up
            .entry(channel.to_string())
            .or_default()
            .extend(missed.map(|m| Event::MessageFromChannel {
                channel: channel.to_string(),
                from: m.from,
                message: m.message,
                message_id: m.message_id,
                server_ts: m.server_ts,
            }));
        // With a cursor the pages go forward in time; without one we only have the newest.
        if full_page && mark.last_seen.is_some() {
            self.fetch_missed(channel);
        }
    }

    fn finish_restore(&mut self) {
        self.phase = Phase::Online;
        if let Some(session) = &mut self.session {
            session.attempt = 0;
        }
        self.set_state(ConnectionState::Connected, ChangeReason::LoginSuccess, None);
        for (_, messages) in std::mem::take(&mut self.catch_up) {
            for event in messages {
                self.deliver(event);
            }
        }
        for event in std::mem::take(&mut self.held) {
            self.deliver(event);
        }
        for queued in std::mem::take(&mut self.queued) {
            if queued.reply.is_closed() {
                continue;
            }
            let effect = Effect::of(&queued.op);
            let purpose = Purpose::Caller {
                reply: queued.reply,
                effect,
            };
            self.send_request(queued.op, purpose, queued.deadline);
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
                        break; // a kick in this frame ended the session
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
                self.apply(effect, reply.code);
                let _ = caller.send(Ok(reply));
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
        }
    }

    fn apply(&mut self, effect: Effect, code: u32) {
        let memory = &mut self.memory;
        match effect {
            Effect::Joined(channel) if code == join::OK || code == join::ALREADY_JOINED => {
                let joined_at_ms = server_now(memory.server_offset_ms);
                memory.channels.entry(channel).or_insert(ChannelMark {
                    last_seen: None,
                    joined_at_ms,
                });
            }
            Effect::Left(channel) if code == leave::OK || code == leave::NOT_IN_CHANNEL => {
                memory.channels.remove(&channel);
            }
            _ if code != 0 => {}
            Effect::Subscribed(peers) => memory.subscribed.extend(peers),
            Effect::Unsubscribed(peers) => {
                for peer in peers {
                    memory.subscribed.remove(&peer);
                }
            }
            Effect::SetAttributes(attributes) => memory.attributes = attributes,
            Effect::AddAttributes(attributes) => memory.attributes.extend(attributes),
            Effect::DeleteAttributes(keys) => {
                for key in keys {
                    memory.attributes.remove(&key);
                }
            }
            Effect::ClearAttributes => memory.attributes.clear(),
            Effect::Renewed(token) => {
                if let Some(session) = &mut self.session {
                    session.token = Some(token);
                }
            }
            Effect::None | Effect::Joined(_) | Effect::Left(_) => {}
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
    /// (a catch-up and the live stream may overlap).
    fn deliver(&mut self, event: Event) {
        if let Event::MessageFromChannel {
            channel,
            message_id,
            ..
        } = &event
        {
            if let Some(mark) = self.memory.channels.get_mut(channel) {
                if mark.last_seen.is_some_and(|seen| *message_id <= seen) {
                    return;
                }
                mark.last_seen = Some(*message_id);
            }
        }
        self.emit(ClientEvent::Server(event));
    }

    // ----- losing and ending -----

    /// The socket is gone: reconnect if logged in.
    fn connection_lost(&mut self) {
        self.connection = None;
        self.outbox.clear();
        let logging_out = self
            .pending
            .values()
            .any(|p| matches!(p.purpose, Purpose::Logout { .. }));
        if logging_out {
            // The server drops the session on close as it would on logout.
            self.end_session(
                ConnectionState::Disconnected,
                ChangeReason::Logout,
                ClientError::Disconnected,
            );
            return;
        }
        match self.phase {
            Phase::Idle | Phase::Backoff { .. } => {}
            Phase::LoggingIn => self.end_session(
                ConnectionState::Disconnected,
                ChangeReason::LoginFailure,
                ClientError::Disconnected,
            ),
            Phase::Online | Phase::Restoring | Phase::Relogging => {
                self.fail_pending(&ClientError::Disconnected);
                self.schedule_reconnect();
            }
        }
    }

    /// Closes the socket of a failed attempt (no session change).
    fn drop_connection(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.closing = Some((connection.socket, String::new()));
        }
        self.connecting = None;
        self.outbox.clear();
        self.fail_pending(&ClientError::Disconnected);
    }

    fn schedule_reconnect(&mut self) {
        let Some(session) = &mut self.session else {
            return;
        };
        let delay = self.config.reconnect.delay(session.attempt);
        session.attempt = session.attempt.saturating_add(1);
        // Partial catch-up is fetched again from the last delivered message next time.
        self.catch_up.clear();
        self.restore_outstanding = 0;
        self.phase = Phase::Backoff {
            retry_at: Instant::now() + delay,
        };
        self.set_state(
            ConnectionState::Reconnecting,
            ChangeReason::Interrupted,
            Some(delay),
        );
    }

    /// Ends the session: closes the socket, answers everything waiting with `error` (the
    /// first login's caller) or [`ClientError::Disconnected`], forgets what was joined.
    fn end_session(&mut self, state: ConnectionState, reason: ChangeReason, error: ClientError) {
        if let Some(connection) = self.connection.take() {
            self.closing = Some((connection.socket, std::mem::take(&mut self.outbox)));
        }
        self.connecting = None;
        self.outbox.clear();
        self.fail_pending(&ClientError::Disconnected);
        for queued in self.queued.drain(..) {
            let _ = queued.reply.send(Err(ClientError::Disconnected));
        }
        if let Some(reply) = self.session.take().and_then(|s| s.login_reply) {
            let _ = reply.send(Err(error));
        }
        for event in std::mem::take(&mut self.held) {
            self.emit(ClientEvent::Server(event));
        }
        self.catch_up.clear();
        self.restore_outstanding = 0;
        self.memory = Memory::default();
        lock(&self.shared).user = None;
        self.phase = Phase::Idle;
        self.set_state(state, reason, None);
    }

    fn fail_pending(&mut self, error: &ClientError) {
        for (_, pending) in self.pending.drain() {
            match pending.purpose {
                Purpose::Caller { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Purpose::Logout { reply } => {
                    let _ = reply.send(Ok(()));
                }
                Purpose::Login | Purpose::Restore(_) | Purpose::Quiet => {}
            }
        }
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
                    .session
                    .as_ref()
                    .is_some_and(|s| now >= s.attempt_deadline) =>
            {
                tracing::debug!("no login reply in time");
                if self.phase == Phase::LoggingIn {
                    self.end_session(
                        ConnectionState::Disconnected,
                        ChangeReason::LoginTimeout,
                        ClientError::Timeout {
                            family: Family::Login,
                        },
                    );
                } else {
                    self.drop_connection();
                    self.schedule_reconnect();
                }
            }
            _ => {}
        }
        if let Some(connection) = &mut self.connection {
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
                Purpose::Login | Purpose::Quiet => {}
            }
        }
        let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queued)
            .into_iter()
            .partition(|q| now >= q.deadline || q.reply.is_closed());
        self.queued = waiting;
        for queued in expired {
            let family = queued.op.family();
            let _ = queued.reply.send(Err(ClientError::Timeout { family }));
        }
        self.sweep_at = self
            .pending
            .values()
            .filter(|p| !matches!(p.purpose, Purpose::Login))
            .map(|p| p.deadline)
            .chain(self.queued.iter().map(|q| q.deadline))
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
            Pending {
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

    fn emit(&mut self, event: ClientEvent) {
        if !self.events_closed {
            self.backlog.push_back(event);
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

fn message_id(event: &Event) -> Option<u64> {
    match event {
        Event::MessageFromChannel { message_id, .. }
        | Event::MessageFromPeer { message_id, .. } => Some(*message_id),
        _ => None,
    }
}

/// The server's clock now, estimated from the offset measured at login.
fn server_now(offset_ms: i64) -> u64 {
    (now_ms() as i64 + offset_ms).max(0) as u64
}

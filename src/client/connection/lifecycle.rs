//! Connecting, logging in, losing the connection and ending the session: the
//! transitions between DISCONNECTED, CONNECTING, CONNECTED, RECONNECTING and ABORTED.
//! Also which server each attempt goes to, when the config names several: the first
//! login tries them in order until one answers, each with its own login timeout; a lost
//! connection and every failed reconnect attempt move on to the next one, round the list.

use tokio::time::Instant;

use super::{Connection, ConnectionHandler, Memory, Phase, Purpose, Socket};
use crate::client::error::{ClientError, ConnectError, UnexpectedReply};
use crate::client::event::ClientEvent;
use crate::client::shared::lock;
use crate::protocol::codes::{login, Family};
use crate::protocol::{now_ms, ChangeReason, ConnectionState, LoginResult, Op, Reply};

impl ConnectionHandler {
    /// Opens a socket for a login (first or reconnect), within the login timeout.
    pub(super) fn start_attempt(&mut self) {
        let deadline = Instant::now() + self.config.login_timeout;
        if let Some(login_state) = &mut self.login_state {
            login_state.attempt_deadline = deadline;
        }
        let url = self.server().to_string();
        let tls = crate::client::tls::connector(&self.config.extra_root_certificates);
        let ws_config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(crate::protocol::WS_READ_BUFFER_BYTES);
        self.connecting = Some(Box::pin(async move {
            let tls = tls.map_err(|reason| ConnectError::BadRootCertificate { reason })?;
            tokio_tungstenite::connect_async_tls_with_config(&url, Some(ws_config), true, tls)
                .await
                .map(|(socket, _response)| Box::new(socket))
                .map_err(|error| connect_error(url, &error))
        }));
    }

    pub(super) fn on_connect_result(&mut self, result: Result<Box<Socket>, ConnectError>) {
        let Some(login_state) = &self.login_state else {
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
                    user: login_state.user.clone(),
                    token: login_state.token.clone(),
                };
                let deadline = login_state.attempt_deadline;
                self.send_request(op, Purpose::Login, deadline);
            }
            Err(error) => {
                tracing::debug!(%error, "cannot connect");
                if self.phase == Phase::LoggingIn {
                    if !self.try_next_server(error.clone()) {
                        let error = self.all_connect_errors(error);
                        self.end_session(
                            ConnectionState::Disconnected,
                            ChangeReason::LoginFailure,
                            ClientError::Connect(error),
                        );
                    }
                } else {
                    self.schedule_reconnect();
                }
            }
        }
    }

    pub(super) fn on_login_reply(&mut self, reply: &Reply) {
        if reply.code == login::OK {
            match reply.result::<LoginResult>() {
                Ok(result) => self.logged_in(result),
                Err(e) => {
                    let error = UnexpectedReply {
                        op: "login",
                        problem: e.to_string(),
                    };
                    self.login_failed(ClientError::Protocol(error), None);
                }
            }
        } else {
            let error = ClientError::from_code(Family::Login, reply.code, reply.reason.clone());
            self.login_failed(error, Some(reply.code));
        }
    }

    pub(super) fn logged_in(&mut self, result: LoginResult) {
        self.memory.server_offset_ms = result.server_ts as i64 - now_ms() as i64;
        if self.phase == Phase::Relogging && result.store != self.memory.store {
            // Another store: its ids mean nothing next to the ones seen so far (a server
            // restarted on a fresh store starts them over), so nothing seen may hold a new
            // message back, and catch-up starts from the join time, not from an old id.
            tracing::info!(old = ?self.memory.store, new = ?result.store, "the server's store changed");
            for mark in self.memory.channels.values_mut() {
                mark.forget_store();
            }
        }
        self.memory.store.clone_from(&result.store);
        tracing::debug!(url = self.server(), user = %result.user, "logged in");
        {
            let mut shared = lock(&self.shared);
            shared.user = Some(result.user.clone());
            shared.server = Some(self.server().to_string());
        }
        if let Some(login_state) = &mut self.login_state {
            login_state.user.clone_from(&result.user);
        }
        match self.phase {
            Phase::LoggingIn => {
                self.phase = Phase::Online;
                self.set_state(ConnectionState::Connected, ChangeReason::LoginSuccess, None);
                if let Some(reply) = self.login_state.as_mut().and_then(|s| s.login_reply.take()) {
                    let _ = reply.send(Ok(result));
                }
            }
            Phase::Relogging => self.start_restore(),
            Phase::Idle | Phase::Online | Phase::Backoff { .. } | Phase::Restoring => {}
        }
    }

    pub(super) fn login_failed(&mut self, error: ClientError, code: Option<u32>) {
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

    /// The socket is gone: reconnect if logged in.
    pub(super) fn connection_lost(&mut self) {
        self.connection = None;
        self.outbox.clear();
        lock(&self.shared).server = None;
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
            Phase::LoggingIn => {
                // Closed before the login reply: a node going away, or not an RTM server.
                let url = self.server().to_string();
                if !self.try_next_server(ConnectError::ClosedBeforeLogin { url }) {
                    self.end_session(
                        ConnectionState::Disconnected,
                        ChangeReason::LoginFailure,
                        ClientError::Disconnected,
                    );
                }
            }
            Phase::Online | Phase::Restoring | Phase::Relogging => {
                self.fail_pending(&ClientError::Disconnected);
                self.schedule_reconnect();
            }
        }
    }

    /// Closes the socket of a failed attempt (no session change).
    pub(super) fn drop_connection(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.closing = Some((connection.socket, String::new()));
        }
        lock(&self.shared).server = None;
        self.connecting = None;
        self.outbox.clear();
        self.fail_pending(&ClientError::Disconnected);
    }

    pub(super) fn schedule_reconnect(&mut self) {
        let Some(login_state) = &mut self.login_state else {
            return;
        };
        let delay = self.config.reconnect.delay(login_state.attempt);
        login_state.attempt = login_state.attempt.saturating_add(1);
        // The server just lost (or just failed) is the last one to try again.
        self.server_index = (self.server_index + 1) % self.config.servers().count();
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
    pub(super) fn end_session(
        &mut self,
        state: ConnectionState,
        reason: ChangeReason,
        error: ClientError,
    ) {
        if let Some(connection) = self.connection.take() {
            self.closing = Some((connection.socket, std::mem::take(&mut self.outbox)));
        }
        self.connecting = None;
        self.outbox.clear();
        self.fail_pending(&ClientError::Disconnected);
        for queued in self.queued.drain(..) {
            let _ = queued.reply.send(Err(ClientError::Disconnected));
        }
        if let Some(reply) = self.login_state.take().and_then(|s| s.login_reply) {
            let _ = reply.send(Err(error));
        }
        for event in std::mem::take(&mut self.held) {
            self.emit(ClientEvent::Server(event));
        }
        self.catch_up.clear();
        self.restore_outstanding = 0;
        self.memory = Memory::default();
        {
            let mut shared = lock(&self.shared);
            shared.user = None;
            shared.server = None;
        }
        self.phase = Phase::Idle;
        self.set_state(state, reason, None);
    }

    /// The URL of the server of the current (or next) attempt.
    pub(super) fn server(&self) -> &str {
        self.config
            .servers()
            .nth(self.server_index)
            .unwrap_or(&self.config.server_url)
    }

    /// During the first login, after the attempt on one server failed with `error`: moves
    /// on to the next server, with a login timeout of its own, if one is left untried.
    pub(super) fn try_next_server(&mut self, error: ConnectError) -> bool {
        if self.server_index + 1 >= self.config.servers().count() {
            return false;
        }
        tracing::info!(%error, "server unusable; trying the next one");
        if let Some(login_state) = &mut self.login_state {
            login_state.connect_errors.push(error);
        }
        self.drop_connection();
        self.server_index += 1;
        self.start_attempt();
        true
    }

    /// The error of the last server tried, after those of the servers tried before it
    /// (so that the caller of a login learns why none of them would do).
    fn all_connect_errors(&self, last: ConnectError) -> ConnectError {
        let earlier = self
            .login_state
            .as_ref()
            .map(|s| s.connect_errors.as_slice())
            .unwrap_or_default();
        if earlier.is_empty() {
            return last;
        }
        let mut all = earlier.to_vec();
        all.push(last);
        ConnectError::NoServer(all)
    }

    pub(super) fn fail_pending(&mut self, error: &ClientError) {
        for (_, pending) in self.pending.drain() {
            match pending.purpose {
                Purpose::Caller { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Purpose::Logout { reply } => {
                    let _ = reply.send(Ok(()));
                }
                // The join itself succeeded; only its starting point is unknown.
                Purpose::Baseline { join, .. } => join.deliver(),
                Purpose::Login | Purpose::Restore(_) | Purpose::Quiet => {}
            }
        }
    }
}

/// What a failed WebSocket connect to `url` means for the caller: a 404 is a web server (or
/// an RTM server asked at another path), anything else the network layer's words.
fn connect_error(url: String, error: &tokio_tungstenite::tungstenite::Error) -> ConnectError {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Http(response) if response.status().as_u16() == 404 => {
            ConnectError::WrongPath { url }
        }
        other => ConnectError::Failed {
            url,
            reason: other.to_string(),
        },
    }
}

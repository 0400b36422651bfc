//! Who we are, where, and how the connection stands: what the status line shows, and
//! the details `/status` prints. Changed by logins, connection changes and notices.
//! [`state_words`] and [`reason_words`] are the connection's states and reasons in
//! words; Agora's names (`ABORTED`, `REMOTE_LOGIN`) are only in `/status`.

use crate::protocol::{ChangeReason, ConnectionState};

/// A connection state as people say it.
pub fn state_words(state: ConnectionState) -> &'static str {
    match state {
        ConnectionState::Disconnected => "disconnected",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Connected => "connected",
        ConnectionState::Reconnecting => "reconnecting",
        ConnectionState::Aborted => "session ended",
    }
}

/// Why the connection state changed, as people say it.
pub fn reason_words(reason: ChangeReason) -> &'static str {
    match reason {
        ChangeReason::Login => "logging in",
        ChangeReason::LoginSuccess => "logged in",
        ChangeReason::LoginFailure => "login failed",
        ChangeReason::LoginTimeout => "no answer to the login",
        ChangeReason::Interrupted => "connection lost",
        ChangeReason::Logout => "logged out",
        ChangeReason::BannedByServer => "the server banned this login",
        ChangeReason::RemoteLogin => "you logged in somewhere else",
        ChangeReason::TokenExpired => "your token expired",
    }
}

/// The connection as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnStatus {
    pub state: ConnectionState,
    pub reason: ChangeReason,
    /// When RECONNECTING: the time (ms) of the next attempt, for the countdown.
    pub retry_at: Option<u64>,
}

/// The session as the user sees it.
#[derive(Debug)]
pub struct Status {
    /// Who we are (logging in) as.
    pub me: Option<String>,
    pub app_id: String,
    /// The server as typed (completed): one URL, or several separated by commas.
    pub server: String,
    /// The server's name for itself, from the login reply.
    pub server_name: String,
    /// The server of the last CONNECTED, one of `server`'s.
    pub connected_to: Option<String>,
    pub conn: ConnStatus,
    /// A lasting note (embedded server started, ...).
    pub notice: Option<String>,
    /// A login succeeded before: the next one is a re-login that rejoins the channel tabs.
    pub has_logged_in: bool,
}

impl Status {
    pub fn new(app_id: &str, server: &str) -> Status {
        Status {
            me: None,
            app_id: app_id.to_string(),
            server: server.to_string(),
            server_name: String::new(),
            connected_to: None,
            conn: ConnStatus {
                state: ConnectionState::Disconnected,
                reason: ChangeReason::Logout,
                retry_at: None,
            },
            notice: None,
            has_logged_in: false,
        }
    }

    pub fn me(&self) -> &str {
        self.me.as_deref().unwrap_or("")
    }

    /// Logged in (or getting back in by itself).
    pub fn in_session(&self) -> bool {
        matches!(
            self.conn.state,
            ConnectionState::Connected | ConnectionState::Reconnecting
        )
    }

    /// Whether several servers were given, so which one is in use is worth showing.
    pub fn has_several_servers(&self) -> bool {
        self.server.contains(',')
    }

    /// The server in use is `url`; `true` when it moved there from another.
    pub fn connected_to(&mut self, url: String) -> bool {
        let moved = self.connected_to.as_ref().is_some_and(|old| *old != url);
        self.connected_to = Some(url);
        moved
    }

    /// What `/status` prints: the details the status line leaves out.
    pub fn lines(&self) -> Vec<String> {
        let conn = &self.conn;
        // Agora's names too: what a log, a bug report or the SDK's docs use.
        let mut lines = vec![format!(
            "connection {}: {} ({}, {})",
            state_words(conn.state),
            reason_words(conn.reason),
            conn.state.label(),
            conn.reason.label()
        )];
        let who = match self.me.as_deref() {
            Some(me) => format!("{me} in app {}", self.app_id),
            None => "not logged in".to_string(),
        };
        let connected = conn.state == ConnectionState::Connected;
        let url = match &self.connected_to {
            Some(url) if connected => url.clone(),
            _ => self.server.replace(',', ", "),
        };
        let server = if self.server_name.is_empty() {
            url
        } else {
            format!("{url} ({})", self.server_name)
        };
        lines.push(format!("{who} on {server}"));
        if self.has_several_servers() {
            let list = self.server.replace(',', ", ");
            lines.push(format!("servers, tried in turn: {list}"));
        }
        if let Some(notice) = &self.notice {
            lines.push(notice.clone());
        }
        lines
    }
}

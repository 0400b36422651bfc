//! Client-side connection states and change reasons, with Agora's integer values.

use serde::{Deserialize, Serialize};

/// Where a client's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionState {
    Disconnected = 1,
    Connecting = 2,
    Connected = 3,
    Reconnecting = 4,
    Aborted = 5,
}

/// Why the state last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeReason {
    Login = 1,
    LoginSuccess = 2,
    LoginFailure = 3,
    LoginTimeout = 4,
    Interrupted = 5,
    Logout = 6,
    BannedByServer = 7,
    RemoteLogin = 8,
    TokenExpired = 9,
}

impl ConnectionState {
    /// Agora's upper-case name, as the TUI shows it.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionState::Disconnected => "DISCONNECTED",
            ConnectionState::Connecting => "CONNECTING",
            ConnectionState::Connected => "CONNECTED",
            ConnectionState::Reconnecting => "RECONNECTING",
            ConnectionState::Aborted => "ABORTED",
        }
    }
}

impl ChangeReason {
    /// Agora's upper-case name, as the TUI shows it.
    pub fn label(self) -> &'static str {
        match self {
            ChangeReason::Login => "LOGIN",
            ChangeReason::LoginSuccess => "LOGIN_SUCCESS",
            ChangeReason::LoginFailure => "LOGIN_FAILURE",
            ChangeReason::LoginTimeout => "LOGIN_TIMEOUT",
            ChangeReason::Interrupted => "INTERRUPTED",
            ChangeReason::Logout => "LOGOUT",
            ChangeReason::BannedByServer => "BANNED_BY_SERVER",
            ChangeReason::RemoteLogin => "REMOTE_LOGIN",
            ChangeReason::TokenExpired => "TOKEN_EXPIRED",
        }
    }
}

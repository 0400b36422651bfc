//! [`ClientError`]: why a client call failed, with the Agora code where one applies.

use crate::protocol::codes::{self, Family};
use crate::protocol::{MediaFailure, ValidationError};

/// Agora's `LOGIN_ERR_TIMEOUT`: no login reply in time. The server never sends it; it is
/// what [`ClientError::code`] reports for a login that timed out.
pub const LOGIN_TIMEOUT_CODE: u32 = 9;

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-zero code; `family` tells how to read it
    /// (e.g. a peer send with code 4 was cached for offline delivery).
    #[error("{reason} (code {code})")]
    Code {
        /// The op's family, which says what `code` means.
        family: Family,
        /// The server's result code (never 0).
        code: u32,
        /// The server's words, else Agora's for the code.
        reason: String,
    },
    /// Refused before sending: an id, message or attribute that breaks docs/protocol.md's rules.
    #[error("invalid argument: {0}")]
    Invalid(#[from] ValidationError),
    /// The call needs a logged-in client (state CONNECTED or RECONNECTING).
    #[error("not logged in")]
    NotLoggedIn,
    /// `login` while already logged in or logging in; log out first.
    #[error("already logged in")]
    AlreadyLoggedIn,
    /// `create_channel` for a channel this client already created and has not released.
    #[error("channel {0:?} was already created")]
    ChannelExists(String),
    /// No reply in time (the login timeout for `login`, the request timeout otherwise).
    #[error("timed out waiting for the server")]
    Timeout {
        /// The family of the op that timed out ([`ClientError::code`] gives its timeout code).
        family: Family,
    },
    /// The connection was lost, or the client logged out or was kicked, before the reply.
    #[error("disconnected from the server")]
    Disconnected,
    /// The client's background task has ended (its runtime shut down).
    #[error("the client has shut down")]
    Closed,
    /// `Client::new` was called outside a tokio runtime.
    #[error("no tokio runtime to run the client on")]
    NoRuntime,
    /// No server could be used: [`ConnectError`] says why (a bad URL, nothing listening,
    /// a web server at the address, a failed handshake).
    #[error("cannot connect: {0}")]
    Connect(ConnectError),
    /// The server's reply did not have the fields docs/protocol.md promises.
    #[error("unexpected reply from the server: {0}")]
    Protocol(UnexpectedReply),
    /// An upload or download failed: `failure` says why (the server's code, or
    /// [`MediaFailure::NotSupported`] for a server without media).
    #[error("{reason} ({failure})")]
    Media {
        /// What went wrong, to act on (too large, unknown or expired id, quota, ...).
        failure: MediaFailure,
        /// The server's words, or ours.
        reason: String,
    },
    /// A local file could not be read or written (an upload's source, a download's path).
    #[error("{0}")]
    File(String),
    /// The transfer was cancelled ([`Transfer::cancel`](super::Transfer::cancel)).
    #[error("cancelled")]
    Cancelled,
}

/// Why the client could not use a server, each with what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// A server URL that is not `ws://` or `wss://` (refused by `Client::new`).
    #[error("{url:?} is not a ws:// or wss:// URL")]
    NotWebSocket {
        /// The URL as given.
        url: String,
    },
    /// An extra root certificate of the [`ClientConfig`](super::ClientConfig) is unusable.
    #[error("an extra root certificate is unusable: {reason}")]
    BadRootCertificate {
        /// Why rustls refused it.
        reason: String,
    },
    /// Something answers at the address, but not at this path (HTTP 404): a web server, or
    /// an RTM server asked at another path.
    #[error(
        "{url}: HTTP error: 404 Not Found: nothing answers at this path; an RTM server \
         listens at {path} (e.g. ws://127.0.0.1:7420{path})",
        path = crate::protocol::WS_PATH
    )]
    WrongPath {
        /// The URL that answered 404.
        url: String,
    },
    /// The connection or its handshake failed (refused, unreachable, TLS, an HTTP status):
    /// `reason` is the network layer's words.
    #[error("{url}: {reason}")]
    Failed {
        /// The server tried.
        url: String,
        /// The network layer's words (refused, unreachable, TLS, an HTTP status).
        reason: String,
    },
    /// The socket opened but closed before the login reply (a node going away, or not an
    /// RTM server).
    #[error("{url}: the connection closed before the login reply")]
    ClosedBeforeLogin {
        /// The server tried.
        url: String,
    },
    /// The socket opened but no login reply came within the login timeout.
    #[error("{url}: no login reply within {within_ms} ms")]
    NoLoginReply {
        /// The server tried.
        url: String,
        /// The login timeout that passed.
        within_ms: u64,
    },
    /// Several servers, none usable: why each failed, in the order tried.
    #[error("{}", list(.0))]
    NoServer(Vec<ConnectError>),
}

fn list(errors: &[ConnectError]) -> String {
    let words: Vec<String> = errors.iter().map(ToString::to_string).collect();
    words.join("; ")
}

/// A reply whose result does not have the fields docs/protocol.md promises for its op:
/// the server (or something in between) speaks another protocol or version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the result of {op} {problem}")]
pub struct UnexpectedReply {
    /// The op's wire name (`send_peer`).
    pub op: &'static str,
    /// What is wrong with it, in the decoder's words.
    pub problem: String,
}

impl ClientError {
    /// A media failure with its reason.
    pub(crate) fn media(failure: MediaFailure, reason: impl Into<String>) -> Self {
        ClientError::Media {
            failure,
            reason: reason.into(),
        }
    }

    /// The error for a reply with a non-zero `code` in `family`, with the server's reason
    /// or else Agora's words for the code.
    pub(crate) fn from_code(family: Family, code: u32, reason: Option<String>) -> Self {
        ClientError::Code {
            family,
            code,
            reason: reason.unwrap_or_else(|| family.describe(code).to_string()),
        }
    }

    /// The Agora result code this error stands for, where one applies: the server's code,
    /// 102 for [`NotLoggedIn`](Self::NotLoggedIn), 8 for
    /// [`AlreadyLoggedIn`](Self::AlreadyLoggedIn), the family's timeout code for
    /// [`Timeout`](Self::Timeout) (its failure code where the family has none).
    ///
    /// ```
    /// use rtm::client::ClientError;
    /// use rtm::protocol::Family;
    /// assert_eq!(ClientError::Timeout { family: Family::Peer }.code(), Some(2));
    /// assert_eq!(ClientError::NotLoggedIn.code(), Some(102));
    /// ```
    pub fn code(&self) -> Option<u32> {
        match self {
            ClientError::Code { code, .. } => Some(*code),
            ClientError::NotLoggedIn => Some(codes::NOT_LOGGED_IN),
            ClientError::AlreadyLoggedIn => Some(codes::login::ALREADY_LOGGED_IN),
            ClientError::Timeout { family } => Some(timeout_code(*family)),
            ClientError::Invalid(_)
            | ClientError::ChannelExists(_)
            | ClientError::Disconnected
            | ClientError::Closed
            | ClientError::NoRuntime
            | ClientError::Connect(_)
            | ClientError::Protocol(_)
            | ClientError::Media { .. }
            | ClientError::File(_)
            | ClientError::Cancelled => None,
        }
    }

    /// The family of the code, for [`Code`](Self::Code) and [`Timeout`](Self::Timeout).
    pub fn family(&self) -> Option<Family> {
        match self {
            ClientError::Code { family, .. } | ClientError::Timeout { family } => Some(*family),
            _ => None,
        }
    }
}

/// Agora's timeout code of each family (values from the RTM 1.x SDK's error enums).
fn timeout_code(family: Family) -> u32 {
    match family {
        Family::Login => LOGIN_TIMEOUT_CODE,
        Family::Peer => codes::peer::TIMEOUT,
        Family::ChannelMsg => codes::channel_msg::TIMEOUT,
        Family::Join => codes::join::TIMEOUT,
        Family::Members => codes::members::TIMEOUT,
        // QUERY_PEERS_ONLINE_STATUS_ERR_TIMEOUT, ATTRIBUTE_OPERATION_ERR_TIMEOUT,
        // GET_CHANNEL_MEMBER_COUNT_ERR_TIMEOUT.
        Family::Query | Family::Count => 4,
        Family::Attr => 7,
        Family::Invite => codes::invite::NO_RESPONSE,
        Family::Renew | Family::Ping | Family::Leave | Family::History | Family::Media => {
            family.failure()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_agora() {
        let timeout = |family| ClientError::Timeout { family }.code();
        assert_eq!(timeout(Family::Login), Some(9));
        assert_eq!(timeout(Family::Join), Some(4));
        assert_eq!(timeout(Family::Members), Some(3));
        assert_eq!(timeout(Family::Attr), Some(7));
        assert_eq!(timeout(Family::History), Some(1));
        let cached = ClientError::Code {
            family: Family::Peer,
            code: 4,
            reason: "cached".into(),
        };
        assert_eq!(
            (cached.code(), cached.family()),
            (Some(4), Some(Family::Peer))
        );
        assert_eq!(ClientError::Disconnected.code(), None);
        assert_eq!(ClientError::AlreadyLoggedIn.code(), Some(8));
    }
}

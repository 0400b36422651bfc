//! Result codes of protocol v1, grouped by family, with Agora RTM 1.x's integer values.
//!
//! Every reply carries a `code`; what a number means depends on the op that was asked, so
//! codes live in one module per family and [`Family`] turns a code into human text.
//! Each family also has a typed error (`JoinError`, `LeaveError`, ...: every non-zero
//! code of its table but the shared 101/102) that turns into its wire code in one place,
//! its [`WireCode`] impl: the server passes these, so a JOIN code cannot come back from
//! `leave`. New codes go into their family's module, its error enum and its `WireCode`
//! impl, and into [`Family::describe`].

/// Codes shared by every family: the SDK was not initialised, or the op needs a login.
pub const NOT_INITIALIZED: u32 = 101;
/// Any op other than `login` before a successful login.
pub const NOT_LOGGED_IN: u32 = 102;
/// Code 0 means success in every family.
pub const OK: u32 = 0;

/// `login`, `logout`; also the code of an unknown op (1) and of the `error` event.
pub mod login {
    pub const OK: u32 = 0;
    pub const UNKNOWN: u32 = 1;
    pub const REJECTED: u32 = 2;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const INVALID_APP_ID: u32 = 4;
    pub const INVALID_TOKEN: u32 = 5;
    pub const TOKEN_EXPIRED: u32 = 6;
    pub const ALREADY_LOGGED_IN: u32 = 8;
    pub const TOO_OFTEN: u32 = 10;
}

/// `send_peer`.
pub mod peer {
    pub const RECEIVED_BY_PEER: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const TIMEOUT: u32 = 2;
    pub const PEER_UNREACHABLE: u32 = 3;
    pub const CACHED_BY_SERVER: u32 = 4;
    pub const TOO_OFTEN: u32 = 5;
    pub const INVALID_USER_ID: u32 = 6;
    pub const INVALID_MESSAGE: u32 = 7;
}

/// `send_channel`.
pub mod channel_msg {
    pub const RECEIVED_BY_SERVER: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const TIMEOUT: u32 = 2;
    pub const TOO_OFTEN: u32 = 3;
    pub const INVALID_MESSAGE: u32 = 4;
    pub const NOT_IN_CHANNEL: u32 = 5;
}

/// `join`.
pub mod join {
    pub const OK: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const TIMEOUT: u32 = 4;
    pub const EXCEEDS_LIMIT: u32 = 5;
    pub const ALREADY_JOINED: u32 = 6;
    pub const TOO_OFTEN: u32 = 7;
    pub const SAME_CHANNEL_TOO_OFTEN: u32 = 8;
}

/// `leave`.
pub mod leave {
    pub const OK: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const NOT_IN_CHANNEL: u32 = 3;
}

/// `get_members`.
pub mod members {
    pub const OK: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const TIMEOUT: u32 = 3;
    pub const TOO_OFTEN: u32 = 4;
    pub const NOT_IN_CHANNEL: u32 = 5;
}

/// Presence: `query_peers_online`, `(un)subscribe_peers_online`, `query_subscribed_peers`.
pub mod query {
    pub const OK: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const INVALID_ARGUMENT: u32 = 2;
    pub const TOO_OFTEN: u32 = 5;
    pub const OVERFLOW: u32 = 6;
}

/// User and channel attributes.
pub mod attr {
    pub const OK: u32 = 0;
    pub const FAILURE: u32 = 2;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const SIZE_OVERFLOW: u32 = 4;
    pub const TOO_OFTEN: u32 = 5;
    pub const USER_NOT_FOUND: u32 = 6;
}

/// `get_channel_member_count`.
pub mod count {
    pub const OK: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const INVALID_ARGUMENT: u32 = 2;
    pub const TOO_OFTEN: u32 = 3;
    pub const EXCEEDS_LIMIT: u32 = 5;
}

/// `renew_token`.
pub mod renew {
    pub const OK: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const INVALID_ARGUMENT: u32 = 2;
    pub const TOO_OFTEN: u32 = 4;
    pub const TOKEN_EXPIRED: u32 = 5;
    pub const INVALID_TOKEN: u32 = 6;
}

/// Call invitations; also the `reason` of `invitation_failure`.
pub mod invite {
    pub const OK: u32 = 0;
    pub const PEER_OFFLINE: u32 = 1;
    pub const NO_RESPONSE: u32 = 2;
    pub const EXPIRED: u32 = 3;
    pub const INVALID_ARGUMENT: u32 = 4;
    pub const NOT_FOUND: u32 = 5;
}

/// `history`.
pub mod history {
    pub const OK: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const INVALID_ARGUMENT: u32 = 2;
    pub const NOT_IN_CHANNEL: u32 = 5;
}

/// `media_ticket` (rtm-tui's addition; the uploads and downloads it allows fail with
/// HTTP statuses and [`MediaFailure`](super::media::MediaFailure) codes instead).
pub mod media {
    pub const OK: u32 = 0;
    /// The server keeps no media (also what a v1 server answers: unknown op).
    pub const FAILURE: u32 = 1;
    pub const TOO_OFTEN: u32 = 5;
}

/// Which table of codes a reply's `code` is read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Login,
    Renew,
    /// `ping` has no error codes of its own; it uses 1 for failure like LOGIN.
    Ping,
    Peer,
    ChannelMsg,
    Join,
    Leave,
    Members,
    Query,
    Attr,
    Count,
    Invite,
    History,
    /// `media_ticket`.
    Media,
}

impl Family {
    /// The code this family uses for a request whose parameters are missing or malformed.
    pub fn invalid_argument(self) -> u32 {
        match self {
            Family::Login | Family::Join => login::INVALID_ARGUMENT,
            Family::Ping | Family::ChannelMsg | Family::Leave | Family::Members | Family::Media => {
                1
            }
            Family::Peer => peer::INVALID_MESSAGE,
            Family::Query | Family::Count | Family::Renew | Family::History => 2,
            Family::Attr => attr::INVALID_ARGUMENT,
            Family::Invite => invite::INVALID_ARGUMENT,
        }
    }

    /// The family's generic failure code.
    pub fn failure(self) -> u32 {
        match self {
            Family::Attr => attr::FAILURE,
            Family::Invite => invite::INVALID_ARGUMENT,
            _ => 1,
        }
    }

    /// The family's "too often" (rate limited) code, where it has one.
    pub fn too_often(self) -> Option<u32> {
        match self {
            Family::Login => Some(login::TOO_OFTEN),
            Family::Peer => Some(peer::TOO_OFTEN),
            Family::ChannelMsg => Some(channel_msg::TOO_OFTEN),
            Family::Join => Some(join::TOO_OFTEN),
            Family::Members => Some(members::TOO_OFTEN),
            Family::Query => Some(query::TOO_OFTEN),
            Family::Attr => Some(attr::TOO_OFTEN),
            Family::Count => Some(count::TOO_OFTEN),
            Family::Renew => Some(renew::TOO_OFTEN),
            Family::Media => Some(media::TOO_OFTEN),
            Family::Ping | Family::Leave | Family::Invite | Family::History => None,
        }
    }

    /// Human text for `code` in this family, as Agora's documentation words it.
    pub fn describe(self, code: u32) -> &'static str {
        match (self, code) {
            (_, NOT_INITIALIZED) => "not initialised",
            (_, NOT_LOGGED_IN) => "not logged in",
            (Family::Peer, 0) => "received by peer",
            (Family::ChannelMsg, 0) => "received by server",
            (_, 0) => "ok",
            (Family::Login | Family::Ping, c) => match c {
                login::UNKNOWN => "unknown error",
                login::REJECTED => "rejected by server",
                login::INVALID_ARGUMENT => "invalid argument",
                login::INVALID_APP_ID => "invalid app id",
                login::INVALID_TOKEN => "invalid token",
                login::TOKEN_EXPIRED => "token expired",
                login::ALREADY_LOGGED_IN => "already logged in",
                login::TOO_OFTEN => "logging in too often",
                _ => "unknown code",
            },
            (Family::Renew, c) => match c {
                renew::FAILURE => "failure",
                renew::INVALID_ARGUMENT => "invalid argument",
                renew::TOO_OFTEN => "renewing too often",
                renew::TOKEN_EXPIRED => "token expired",
                renew::INVALID_TOKEN => "invalid token",
                _ => "unknown code",
            },
            (Family::Peer, c) => match c {
                peer::FAILURE => "failure",
                peer::TIMEOUT => "timed out waiting for the peer",
                peer::PEER_UNREACHABLE => "peer unreachable",
                peer::CACHED_BY_SERVER => "cached by server for offline delivery",
                peer::TOO_OFTEN => "sending too often",
                peer::INVALID_USER_ID => "invalid user id",
                peer::INVALID_MESSAGE => "invalid message",
                _ => "unknown code",
            },
            (Family::ChannelMsg, c) => match c {
                channel_msg::FAILURE => "failure",
                channel_msg::TIMEOUT => "timed out",
                channel_msg::TOO_OFTEN => "sending too often",
                channel_msg::INVALID_MESSAGE => "invalid message",
                channel_msg::NOT_IN_CHANNEL => "not in channel",
                _ => "unknown code",
            },
            (Family::Join, c) => match c {
                join::FAILURE => "failure",
                join::INVALID_ARGUMENT => "invalid argument",
                join::TIMEOUT => "timed out",
                join::EXCEEDS_LIMIT => "joined too many channels (20 at most)",
                join::ALREADY_JOINED => "already joined",
                join::TOO_OFTEN => "joining too often",
                join::SAME_CHANNEL_TOO_OFTEN => "joining the same channel too often",
                _ => "unknown code",
            },
            (Family::Leave, c) => match c {
                leave::FAILURE => "failure",
                leave::NOT_IN_CHANNEL => "not in channel",
                _ => "unknown code",
            },
            (Family::Members, c) => match c {
                members::FAILURE => "failure",
                members::TIMEOUT => "timed out",
                members::TOO_OFTEN => "asking too often",
                members::NOT_IN_CHANNEL => "not in channel",
                _ => "unknown code",
            },
            (Family::Query, c) => match c {
                query::FAILURE => "failure",
                query::INVALID_ARGUMENT => "invalid argument",
                query::TOO_OFTEN => "asking too often",
                query::OVERFLOW => "too many subscriptions (512 at most)",
                _ => "unknown code",
            },
            (Family::Attr, c) => match c {
                attr::FAILURE => "failure",
                attr::INVALID_ARGUMENT => "invalid argument",
                attr::SIZE_OVERFLOW => "attributes too large",
                attr::TOO_OFTEN => "writing attributes too often",
                attr::USER_NOT_FOUND => "user not found",
                _ => "unknown code",
            },
            (Family::Count, c) => match c {
                count::FAILURE => "failure",
                count::INVALID_ARGUMENT => "invalid argument",
                count::TOO_OFTEN => "asking too often",
                count::EXCEEDS_LIMIT => "too many channels (32 at most)",
                _ => "unknown code",
            },
            (Family::Invite, c) => match c {
                invite::PEER_OFFLINE => "peer offline",
                invite::NO_RESPONSE => "no response",
                invite::EXPIRED => "invitation expired",
                invite::INVALID_ARGUMENT => "invalid argument",
                invite::NOT_FOUND => "invitation not found",
                _ => "unknown code",
            },
            (Family::Media, c) => match c {
                media::FAILURE => "this server keeps no files or images",
                media::TOO_OFTEN => "asking for media tickets too often",
                _ => "unknown code",
            },
            (Family::History, c) => match c {
                history::FAILURE => "failure",
                history::INVALID_ARGUMENT => "invalid argument",
                history::NOT_IN_CHANNEL => "not in channel",
                _ => "unknown code",
            },
        }
    }
}

/// A typed error of one code family: its wire code and Agora's words for it.
pub trait WireCode: Copy {
    /// The family whose table the code is read against.
    const FAMILY: Family;

    /// The code on the wire.
    fn code(self) -> u32;

    /// Human text for the code, as [`Family::describe`] words it.
    fn describe(self) -> &'static str {
        Self::FAMILY.describe(self.code())
    }
}

/// Why `login` or `logout` failed (LOGIN codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    Unknown,
    Rejected,
    InvalidArgument,
    InvalidAppId,
    InvalidToken,
    TokenExpired,
    AlreadyLoggedIn,
    TooOften,
}

impl WireCode for LoginError {
    const FAMILY: Family = Family::Login;

    fn code(self) -> u32 {
        match self {
            LoginError::Unknown => login::UNKNOWN,
            LoginError::Rejected => login::REJECTED,
            LoginError::InvalidArgument => login::INVALID_ARGUMENT,
            LoginError::InvalidAppId => login::INVALID_APP_ID,
            LoginError::InvalidToken => login::INVALID_TOKEN,
            LoginError::TokenExpired => login::TOKEN_EXPIRED,
            LoginError::AlreadyLoggedIn => login::ALREADY_LOGGED_IN,
            LoginError::TooOften => login::TOO_OFTEN,
        }
    }
}

/// Why `renew_token` failed (RENEW codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewError {
    Failure,
    InvalidArgument,
    TooOften,
    TokenExpired,
    InvalidToken,
}

impl WireCode for RenewError {
    const FAMILY: Family = Family::Renew;

    fn code(self) -> u32 {
        match self {
            RenewError::Failure => renew::FAILURE,
            RenewError::InvalidArgument => renew::INVALID_ARGUMENT,
            RenewError::TooOften => renew::TOO_OFTEN,
            RenewError::TokenExpired => renew::TOKEN_EXPIRED,
            RenewError::InvalidToken => renew::INVALID_TOKEN,
        }
    }
}

/// Why `send_peer` was not received by the peer (PEER codes). "Cached by server" (4) is
/// not here: it is a result, answered with the message's id like 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerError {
    Failure,
    Timeout,
    PeerUnreachable,
    TooOften,
    InvalidUserId,
    InvalidMessage,
}

impl WireCode for PeerError {
    const FAMILY: Family = Family::Peer;

    fn code(self) -> u32 {
        match self {
            PeerError::Failure => peer::FAILURE,
            PeerError::Timeout => peer::TIMEOUT,
            PeerError::PeerUnreachable => peer::PEER_UNREACHABLE,
            PeerError::TooOften => peer::TOO_OFTEN,
            PeerError::InvalidUserId => peer::INVALID_USER_ID,
            PeerError::InvalidMessage => peer::INVALID_MESSAGE,
        }
    }
}

/// Why `send_channel` failed (CHANNEL_MSG codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelMsgError {
    Failure,
    Timeout,
    TooOften,
    InvalidMessage,
    NotInChannel,
}

impl WireCode for ChannelMsgError {
    const FAMILY: Family = Family::ChannelMsg;

    fn code(self) -> u32 {
        match self {
            ChannelMsgError::Failure => channel_msg::FAILURE,
            ChannelMsgError::Timeout => channel_msg::TIMEOUT,
            ChannelMsgError::TooOften => channel_msg::TOO_OFTEN,
            ChannelMsgError::InvalidMessage => channel_msg::INVALID_MESSAGE,
            ChannelMsgError::NotInChannel => channel_msg::NOT_IN_CHANNEL,
        }
    }
}

/// Why `join` failed (JOIN codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    Failure,
    InvalidArgument,
    Timeout,
    ExceedsLimit,
    AlreadyJoined,
    TooOften,
    SameChannelTooOften,
}

impl WireCode for JoinError {
    const FAMILY: Family = Family::Join;

    fn code(self) -> u32 {
        match self {
            JoinError::Failure => join::FAILURE,
            JoinError::InvalidArgument => join::INVALID_ARGUMENT,
            JoinError::Timeout => join::TIMEOUT,
            JoinError::ExceedsLimit => join::EXCEEDS_LIMIT,
            JoinError::AlreadyJoined => join::ALREADY_JOINED,
            JoinError::TooOften => join::TOO_OFTEN,
            JoinError::SameChannelTooOften => join::SAME_CHANNEL_TOO_OFTEN,
        }
    }
}

/// Why `leave` failed (LEAVE codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveError {
    Failure,
    NotInChannel,
}

impl WireCode for LeaveError {
    const FAMILY: Family = Family::Leave;

    fn code(self) -> u32 {
        match self {
            LeaveError::Failure => leave::FAILURE,
            LeaveError::NotInChannel => leave::NOT_IN_CHANNEL,
        }
    }
}

/// Why `get_members` failed (MEMBERS codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembersError {
    Failure,
    Timeout,
    TooOften,
    NotInChannel,
}

impl WireCode for MembersError {
    const FAMILY: Family = Family::Members;

    fn code(self) -> u32 {
        match self {
            MembersError::Failure => members::FAILURE,
            MembersError::Timeout => members::TIMEOUT,
            MembersError::TooOften => members::TOO_OFTEN,
            MembersError::NotInChannel => members::NOT_IN_CHANNEL,
        }
    }
}

/// Why a presence op failed (QUERY codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    Failure,
    InvalidArgument,
    TooOften,
    Overflow,
}

impl WireCode for QueryError {
    const FAMILY: Family = Family::Query;

    fn code(self) -> u32 {
        match self {
            QueryError::Failure => query::FAILURE,
            QueryError::InvalidArgument => query::INVALID_ARGUMENT,
            QueryError::TooOften => query::TOO_OFTEN,
            QueryError::Overflow => query::OVERFLOW,
        }
    }
}

/// Why an attribute op failed (ATTR codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrError {
    Failure,
    InvalidArgument,
    SizeOverflow,
    TooOften,
    UserNotFound,
}

impl WireCode for AttrError {
    const FAMILY: Family = Family::Attr;

    fn code(self) -> u32 {
        match self {
            AttrError::Failure => attr::FAILURE,
            AttrError::InvalidArgument => attr::INVALID_ARGUMENT,
            AttrError::SizeOverflow => attr::SIZE_OVERFLOW,
            AttrError::TooOften => attr::TOO_OFTEN,
            AttrError::UserNotFound => attr::USER_NOT_FOUND,
        }
    }
}

/// Why `get_channel_member_count` failed (COUNT codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountError {
    Failure,
    InvalidArgument,
    TooOften,
    ExceedsLimit,
}

impl WireCode for CountError {
    const FAMILY: Family = Family::Count;

    fn code(self) -> u32 {
        match self {
            CountError::Failure => count::FAILURE,
            CountError::InvalidArgument => count::INVALID_ARGUMENT,
            CountError::TooOften => count::TOO_OFTEN,
            CountError::ExceedsLimit => count::EXCEEDS_LIMIT,
        }
    }
}

/// Why an invitation op failed, or why an invitation ended (INVITE codes; also the
/// `reason` of `invitation_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteError {
    PeerOffline,
    NoResponse,
    Expired,
    InvalidArgument,
    NotFound,
}

impl WireCode for InviteError {
    const FAMILY: Family = Family::Invite;

    fn code(self) -> u32 {
        match self {
            InviteError::PeerOffline => invite::PEER_OFFLINE,
            InviteError::NoResponse => invite::NO_RESPONSE,
            InviteError::Expired => invite::EXPIRED,
            InviteError::InvalidArgument => invite::INVALID_ARGUMENT,
            InviteError::NotFound => invite::NOT_FOUND,
        }
    }
}

/// Why `history` failed (HISTORY codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryError {
    Failure,
    InvalidArgument,
    NotInChannel,
}

impl WireCode for HistoryError {
    const FAMILY: Family = Family::History;

    fn code(self) -> u32 {
        match self {
            HistoryError::Failure => history::FAILURE,
            HistoryError::InvalidArgument => history::INVALID_ARGUMENT,
            HistoryError::NotInChannel => history::NOT_IN_CHANNEL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_codes_by_family() {
        assert_eq!(
            Family::Peer.describe(4),
            "cached by server for offline delivery"
        );
        assert_eq!(Family::Join.describe(6), "already joined");
        assert_eq!(Family::ChannelMsg.describe(0), "received by server");
        assert_eq!(Family::Attr.describe(NOT_LOGGED_IN), "not logged in");
    }

    #[test]
    fn typed_errors_are_their_familys_codes() {
        assert_eq!(JoinError::AlreadyJoined.code(), 6);
        assert_eq!(JoinError::AlreadyJoined.describe(), "already joined");
        assert_eq!(LeaveError::NotInChannel.code(), 3);
        assert_eq!(LeaveError::NotInChannel.describe(), "not in channel");
        assert_eq!(AttrError::Failure.code(), 2);
        assert_eq!(InviteError::Expired.describe(), "invitation expired");
        assert_eq!(
            PeerError::Timeout.describe(),
            "timed out waiting for the peer"
        );
    }
}

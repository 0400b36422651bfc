//! What the app asks of the world and what comes back: a [`Request`] goes out with the
//! [`RequestId`] the app gave it (as [`Effect::Request`](super::action::Effect::Request)),
//! and its answer comes back as
//! [`Action::Done`](super::action::Action::Done) with the same id: a [`Reply`], or a
//! [`Failure`]. The app remembers what each id was for (`app/outbox.rs`), so a request
//! carries only what the event loop needs to make it and a reply only what it learned.
//! A new operation is a [`Request`] variant, its arm in the loop (`session.rs`, `files.rs`,
//! `editor.rs`, `saved_tabs.rs`) and what the app does with the answer (`app/replies.rs`).

use std::fmt;

use crate::protocol::{
    AttributeWrite, ChannelAttribute, HistoryMessage, InvitationAnswer, LoginResult, Message,
    PeerStatus, SendResult,
};

use super::tab::Target;

/// Which request an answer belongs to; unique for the life of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Work whose answer the app waits for: from the server, the disk or `$EDITOR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Log in ([`Reply::LoggedIn`]); the loop sets up a client for `server` first.
    Login {
        server: String,
        app_id: String,
        user: String,
        token: Option<String>,
    },
    Logout,
    /// Renew the session's token with this one, or (`None`) with what `--token-cmd`
    /// prints (the server warned of expiry, or `/renew`).
    RenewToken(Option<String>),
    SendPeer {
        peer: String,
        message: Message,
    },
    SendChannel {
        channel: String,
        message: Message,
    },
    /// Answered with the member count ([`Reply::Joined`]).
    Join(String),
    Leave(String),
    Members(String),
    History {
        target: Target,
        before: Option<u64>,
    },
    QueryPresence(Vec<String>),
    Query(QueryRequest),
    ChangeUserAttributes(AttributeWrite),
    /// A user's attributes, as a line of text.
    GetUserAttributes(String),
    ChangeChannelAttributes {
        channel: String,
        write: AttributeWrite,
    },
    GetChannelAttributes(String),
    Invite(InviteRequest),
    SaveFile {
        path: String,
        data: Vec<u8>,
    },
    /// Read a small file for `/raw` ([`Reply::File`]).
    ReadRawFile(String),
    /// The tabs of the last run of `user` in `app_id` ([`Reply::SavedTabs`]).
    LoadTabs {
        app_id: String,
        user: String,
    },
    /// Hand the terminal to `$EDITOR` on this text; the edited text comes back.
    Editor(String),
}

/// A question to the server whose answer is one line of text in the current tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryRequest {
    /// `query_subscribed_peers`
    Subscribed,
    /// `get_channel_member_count`
    MemberCount(Vec<String>),
    /// `ping`, timed
    Ping,
}

/// What an invitation command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteRequest {
    Send {
        id: String,
        peer: String,
        /// The channel the call is into (`/call bob #room`).
        channel: Option<String>,
        content: String,
    },
    Cancel {
        id: String,
        peer: String,
    },
    Answer {
        answer: InvitationAnswer,
        id: String,
        caller: String,
        response: String,
    },
}

impl InviteRequest {
    /// The other side of the call, whose tab shows how it went.
    pub fn peer(&self) -> &str {
        match self {
            InviteRequest::Send { peer, .. } | InviteRequest::Cancel { peer, .. } => peer,
            InviteRequest::Answer { caller, .. } => caller,
        }
    }
}

/// What a request that succeeded brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done, with nothing to tell (a logout, a leave, a change of attributes).
    Done,
    LoggedIn(LoginResult),
    Sent(SendResult),
    /// The member count of the channel just joined.
    Joined(u64),
    Members(Vec<String>),
    History(Vec<HistoryMessage>),
    Presence(Vec<(String, PeerStatus)>),
    ChannelAttributes(Vec<ChannelAttribute>),
    /// Words for a tab (a query's answer, an invitation sent, a token renewed, a file
    /// saved), or the text back from `$EDITOR`.
    Text(String),
    File(Vec<u8>),
    SavedTabs(Vec<Target>),
}

/// Each [`Reply`] variant's content converts back out of a `Reply` (the app knows which
/// to expect from what it asked); a reply of another kind is handed back.
macro_rules! reply_contents {
    ($($content:ty: $pattern:pat => $value:expr),* $(,)?) => {$(
        impl TryFrom<Reply> for $content {
            type Error = Reply;
            fn try_from(reply: Reply) -> Result<Self, Reply> {
                match reply {
                    $pattern => Ok($value),
                    other => Err(other),
                }
            }
        }
    )*};
}

reply_contents!(
    (): Reply::Done => (),
    LoginResult: Reply::LoggedIn(content) => content,
    SendResult: Reply::Sent(content) => content,
    u64: Reply::Joined(content) => content,
    Vec<String>: Reply::Members(content) => content,
    Vec<HistoryMessage>: Reply::History(content) => content,
    Vec<(String, PeerStatus)>: Reply::Presence(content) => content,
    Vec<ChannelAttribute>: Reply::ChannelAttributes(content) => content,
    String: Reply::Text(content) => content,
    Vec<u8>: Reply::File(content) => content,
    Vec<Target>: Reply::SavedTabs(content) => content,
);

/// The content of the reply expected, or why there is none. A reply of the wrong kind is
/// a bug in the loop; it is shown as a failure rather than ignored.
pub fn expect<T: TryFrom<Reply, Error = Reply>>(
    result: Result<Reply, Failure>,
) -> Result<T, Failure> {
    result.and_then(|reply| {
        T::try_from(reply)
            .map_err(|other| Failure::new(None, format!("unexpected answer {other:?}")))
    })
}

/// Why a request failed: the server's code where there is one, and words for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Option<u32>,
    pub text: String,
}

impl Failure {
    pub fn new(code: Option<u32>, text: impl Into<String>) -> Self {
        Failure {
            code,
            text: text.into(),
        }
    }
}

/// The words only: a result code on screen ("not in channel (5)") is protocol talk; the
/// log has it (`session::failure`).
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

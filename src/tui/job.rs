//! What the app asks of the world and what comes back: a [`Job`] (work for the event
//! loop: a request to the server, a file, `$EDITOR`) goes out with the [`JobId`] the app
//! gave it (as [`Effect::Job`](super::action::Effect::Job)), and its answer comes back as
//! [`Action::Done`](super::action::Action::Done) with the same id: a [`JobOutput`], or a
//! [`Failure`]. The app remembers what each id was for (`app/jobs.rs`), so a job carries
//! only what the event loop needs to do it and an output only what it learned. (The
//! protocol's `Request` and `Reply` are what goes over the wire; a job may make several.)
//! A new operation is a [`Job`] variant, its arm in the loop (`network.rs`, `files.rs`,
//! `editor.rs`, `saved_tabs.rs`) and what the app does with the answer (`app/replies.rs`).

use std::fmt;
use std::path::PathBuf;

use crate::client::ClientError;
use crate::protocol::{
    AttributeWrite, ChannelAttribute, HistoryMessage, InvitationAnswer, LoginResult, Message,
    PeerStatus, SendResult,
};

use super::target::Target;

/// Which job an answer belongs to; unique for the life of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// Work whose answer the app waits for: from the server, the disk or `$EDITOR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Log in ([`JobOutput::LoggedIn`]); the loop sets up a client for `server` first.
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
    /// Answered with the member count ([`JobOutput::Joined`]).
    Join(String),
    Leave(String),
    Members(String),
    History {
        target: Target,
        before: Option<u64>,
    },
    QueryPresence(Vec<String>),
    Query(QueryJob),
    ChangeUserAttributes(AttributeWrite),
    /// A user's attributes, as a line of text.
    GetUserAttributes(String),
    ChangeChannelAttributes {
        channel: String,
        write: AttributeWrite,
    },
    GetChannelAttributes(String),
    Invite(InviteJob),
    /// Write a raw message's bytes called `name` to `path`, or to the downloads
    /// directory without one (`/save`).
    SaveFile {
        path: Option<PathBuf>,
        name: String,
        data: Vec<u8>,
    },
    /// Upload a file (`/file`), answered with the message to send ([`JobOutput::Uploaded`]).
    UploadFile(PathBuf),
    /// Upload an image with a thumbnail made here (`/image`); a file that is not an image
    /// this client can read goes as a file, with a note saying why.
    UploadImage(PathBuf),
    /// Download a file or image called `name` to `path` (a file, or a directory), or to
    /// the downloads directory; answered with words saying where it went.
    Download {
        media_id: String,
        name: String,
        path: Option<PathBuf>,
    },
    /// Read a small file for `/raw` ([`JobOutput::File`]).
    ReadRawFile(String),
    /// The tabs of the last run of `user` in `app_id` ([`JobOutput::SavedTabs`]).
    LoadTabs {
        app_id: String,
        user: String,
    },
    /// Hand the terminal to `$EDITOR` on this text; the edited text comes back.
    Editor(String),
}

/// A question to the server whose answer is one line of text in the current tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryJob {
    /// `query_subscribed_peers`
    Subscribed,
    /// `get_channel_member_count`
    MemberCount(Vec<String>),
    /// `ping`, timed
    Ping,
}

/// What an invitation command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteJob {
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

impl InviteJob {
    /// The other side of the call, whose tab shows how it went.
    pub fn peer(&self) -> &str {
        match self {
            InviteJob::Send { peer, .. } | InviteJob::Cancel { peer, .. } => peer,
            InviteJob::Answer { caller, .. } => caller,
        }
    }
}

/// What a request that succeeded brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutput {
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
    /// An upload is done: the `file` or `image` message to send.
    Uploaded(Message),
}

/// Each [`JobOutput`] variant's content converts back out of a `JobOutput` (the app knows which
/// to expect from what it asked); a reply of another kind is handed back.
macro_rules! reply_contents {
    ($($content:ty: $pattern:pat => $value:expr),* $(,)?) => {$(
        impl TryFrom<JobOutput> for $content {
            type Error = JobOutput;
            fn try_from(reply: JobOutput) -> Result<Self, JobOutput> {
                match reply {
                    $pattern => Ok($value),
                    other => Err(other),
                }
            }
        }
    )*};
}

reply_contents!(
    (): JobOutput::Done => (),
    LoginResult: JobOutput::LoggedIn(content) => content,
    SendResult: JobOutput::Sent(content) => content,
    u64: JobOutput::Joined(content) => content,
    Vec<String>: JobOutput::Members(content) => content,
    Vec<HistoryMessage>: JobOutput::History(content) => content,
    Vec<(String, PeerStatus)>: JobOutput::Presence(content) => content,
    Vec<ChannelAttribute>: JobOutput::ChannelAttributes(content) => content,
    String: JobOutput::Text(content) => content,
    Vec<u8>: JobOutput::File(content) => content,
    Vec<Target>: JobOutput::SavedTabs(content) => content,
    Message: JobOutput::Uploaded(content) => content,
);

/// The content of the reply expected, or why there is none. A reply of the wrong kind is
/// a bug in the loop; it is shown as a failure rather than ignored.
pub fn expect<T: TryFrom<JobOutput, Error = JobOutput>>(
    result: Result<JobOutput, Failure>,
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
/// log has it ([`failure`]).
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A client error as the app shows it: Agora's words for the code, and the code (which
/// only the log shows).
pub fn failure(error: &ClientError) -> Failure {
    tracing::debug!(code = ?error.code(), "{error}");
    match error {
        ClientError::Code { family, code, .. } => Failure::new(Some(*code), family.describe(*code)),
        ClientError::Timeout { .. } => Failure::new(error.code(), "timed out"),
        other => Failure::new(other.code(), other.to_string()),
    }
}

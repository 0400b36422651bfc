//! What can happen to the app: [`Action`]s in (keys, network results, timers) and
//! [`Effect`]s out (requests for the event loop to perform).
//!
//! `App::update` is the only consumer of actions and the only producer of effects, so the
//! state machine is testable without a terminal or a socket. A new key binding is a new
//! [`KeyAction`] (plus a row in `keymap.rs`); a new network operation is a new [`Effect`]
//! and the [`Outcome`] that answers it.

use std::fmt;

use crate::protocol::{
    ChangeReason, ChannelAttribute, ConnectionState, Event, HistoryMessage, LoginResult, Message,
    PeerStatus, SendResult,
};

/// Actions a key can be bound to; their names are what the config's `[keys]` table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAction {
    Submit,
    NewLine,
    Complete,
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    WordBack,
    WordForward,
    KillToEnd,
    KillToStart,
    KillWordBack,
    Up,
    Down,
    NextTab,
    PrevTab,
    NextActivity,
    Switcher,
    PageUp,
    PageDown,
    Help,
    ToggleMembers,
    MembersUp,
    MembersDown,
    ToggleJoins,
    Editor,
    Cancel,
    Redraw,
    Quit,
    /// Answer the call invitation waiting (its prompt names these keys).
    AcceptCall,
    RefuseCall,
    /// Alt-1..9: go to tab N (1-based).
    GoTo(u8),
}

/// One input to the state machine.
#[derive(Debug, Clone)]
pub enum Action {
    /// A bound key.
    Key(KeyAction),
    /// A printable character typed.
    Insert(char),
    /// A bracketed paste, delivered as one insert.
    Paste(String),
    /// Mouse wheel: positive scrolls toward older messages.
    Wheel(i32),
    /// The terminal was resized.
    Resize(u16, u16),
    /// A periodic timer (only running while a countdown is on screen).
    Tick,
    /// The client's connection state changed; `retry_in_ms` counts down while RECONNECTING.
    Connection {
        state: ConnectionState,
        reason: ChangeReason,
        retry_in_ms: Option<u64>,
    },
    /// The client logged in on this server (URL): the one given, or one of those given
    /// (after a failover, another one). Comes just before the CONNECTED it belongs to.
    ConnectedTo(String),
    /// An event from the server.
    Server(Event),
    /// The answer to an [`Effect`].
    Done(Outcome),
    /// A note for the status line (the embedded server started, ...).
    Notice(String),
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

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{} ({code})", self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// A conversation: what a tab shows and what `history` is asked about.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Peer(String),
    Channel(String),
}

impl Target {
    pub fn id(&self) -> &str {
        match self {
            Target::Peer(id) | Target::Channel(id) => id,
        }
    }
}

/// The result of an [`Effect`], fed back as [`Action::Done`].
#[derive(Debug, Clone)]
pub enum Outcome {
    Login(Result<LoginResult, Failure>),
    Logout,
    PeerSent {
        peer: String,
        local_id: u64,
        result: Result<SendResult, Failure>,
    },
    ChannelSent {
        channel: String,
        local_id: u64,
        result: Result<SendResult, Failure>,
    },
    Joined {
        channel: String,
        result: Result<u64, Failure>,
    },
    Left {
        channel: String,
        result: Result<(), Failure>,
    },
    Members {
        channel: String,
        result: Result<Vec<String>, Failure>,
    },
    History {
        target: Target,
        before: Option<u64>,
        result: Result<Vec<HistoryMessage>, Failure>,
    },
    Presence(Result<Vec<(String, PeerStatus)>, Failure>),
    ChannelAttributes {
        channel: String,
        result: Result<Vec<ChannelAttribute>, Failure>,
    },
    /// A request whose answer is only a line of text in a tab (attributes, invitations).
    Info {
        target: Option<Target>,
        result: Result<String, Failure>,
    },
    RawFile {
        target: Target,
        name: String,
        result: Result<Vec<u8>, Failure>,
    },
    /// The `$EDITOR` escape finished with this text.
    Edited(String),
    /// The conversations open at the end of the last run ([`Effect::LoadTabs`]).
    SavedTabs(Vec<Target>),
}

/// What a user's attribute command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrRequest {
    Set(String, String),
    Delete(String),
    Clear,
    Get(String),
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
        content: String,
    },
    Cancel {
        id: String,
        peer: String,
    },
    Accept {
        id: String,
        caller: String,
        response: String,
    },
    Refuse {
        id: String,
        caller: String,
        response: String,
    },
}

/// Work for the event loop: network requests and terminal side effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Login {
        server: String,
        app_id: String,
        user: String,
        token: Option<String>,
    },
    Logout,
    /// While RECONNECTING: try again now (`/reconnect`).
    Reconnect,
    /// Run `--token-cmd` and renew the token with its output (the server warned of expiry).
    RenewToken,
    SendPeer {
        peer: String,
        local_id: u64,
        message: Message,
    },
    SendChannel {
        channel: String,
        local_id: u64,
        message: Message,
    },
    Join(String),
    Leave(String),
    Members(String),
    History {
        target: Target,
        before: Option<u64>,
    },
    QueryPresence(Vec<String>),
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
    UserAttr(AttrRequest),
    Query(QueryRequest),
    ChannelAttr {
        channel: String,
        request: AttrRequest,
    },
    /// Fetch a channel's attributes for its header, without a line in the tab.
    LoadChannelAttributes(String),
    Invite(InviteRequest),
    SaveFile {
        path: String,
        data: Vec<u8>,
    },
    /// Read a small file for `/raw`; answered with [`Outcome::RawFile`].
    ReadRawFile {
        path: String,
        target: Target,
    },
    /// Read the tabs of the last run of `user` in `app_id` (answered with
    /// [`Outcome::SavedTabs`]).
    LoadTabs {
        app_id: String,
        user: String,
    },
    /// Remember the conversations open now, for the next run.
    SaveTabs {
        app_id: String,
        user: String,
        tabs: Vec<Target>,
    },
    Bell,
    /// Clear the terminal and draw everything again (Ctrl-L).
    Repaint,
    Title(String),
    Editor(String),
    Quit,
}

//! The vocabulary the engine and the hub share: a [`Change`] to the shared state, its
//! [`Stamp`], and the [`Outcome`] applying it answers; the ids of nodes and connections;
//! the keys of conversations, invitations and the operator's changes. It lives below
//! both, so that the engine names no type of the hub.

use serde::{Deserialize, Serialize};

use crate::protocol::{ChannelMsgError, InviteError, JoinError, LeaveError, Message, SendResult};

/// A node of the cluster (0 on one node; a random id per process on Redis).
pub type NodeId = u64;

/// A connection anywhere in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId {
    pub node: NodeId,
    pub conn: u64,
}

/// Invitations are keyed by (caller, callee, invitation id).
pub type InvitationKey = (String, String, String);

/// A change to the shared state, as every node applies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// `login` on `conn`; its reply goes out when the change is applied on the origin.
    Login {
        app: String,
        user: String,
        conn: ConnId,
        request_id: u32,
        token_expires_at: Option<u64>,
    },
    Logout {
        app: String,
        user: String,
        conn: ConnId,
    },
    /// A connection ended without logout: the grace period starts.
    Disconnected {
        app: String,
        user: String,
        conn: ConnId,
    },
    SendPeer {
        app: String,
        from: String,
        to: String,
        message: Message,
        offline: bool,
        /// The origin found the whole server's offline cache full when it submitted the
        /// change (`hub/offline.rs`): judged there, over every app it holds, and carried
        /// so that every node decides alike (a node holds only the apps it serves).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        server_cache_full: bool,
        request_id: u32,
        /// The id the engine gave the message before the change (the Redis engine hands
        /// out ids per shard, not in the change stream's order); `None`: stamped when applied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<u64>,
    },
    Ack {
        app: String,
        user: String,
        message_id: u64,
    },
    /// A cached message whose durable write failed goes back out of the cache.
    ForgetCached {
        app: String,
        receiver: String,
        message_id: u64,
    },
    Join {
        app: String,
        user: String,
        channel: String,
    },
    Leave {
        app: String,
        user: String,
        channel: String,
    },
    SendChannel {
        app: String,
        user: String,
        channel: String,
        message: Message,
        /// Sent by the REST API (`server::http`): the sender need not be a member.
        #[serde(default)]
        from_server: bool,
    },
    /// Login or renewal: the token of `user` on `conn` ends at `expires_at`.
    WatchToken {
        app: String,
        user: String,
        conn: ConnId,
        expires_at: Option<u64>,
    },
    /// Timers that change shared state fire on one node (their owner) and come back as
    /// changes; `epoch` tells a stale timer from the current one.
    GraceOver {
        app: String,
        user: String,
        epoch: u64,
    },
    TokenExpired {
        app: String,
        user: String,
        epoch: u64,
    },
    /// A node stopped beating: its connections to `app` are gone, its timers there change
    /// owner (one change per app that names the node: each app's state is its own).
    NodeGone { app: String, node: NodeId },
    /// An operator's change: a kick, with or without a ban (`hub/admin.rs`).
    Admin(AdminChange),
}

impl Change {
    /// A message, its ack, or a cached one's undoing: the bulk of the changes, which
    /// touch neither presence nor membership (so they make no feed events).
    pub fn is_message(&self) -> bool {
        matches!(
            self,
            Change::SendPeer { .. }
                | Change::SendChannel { .. }
                | Change::Ack { .. }
                | Change::ForgetCached { .. }
        )
    }

    /// The app whose state the change is to: each app's changes are ordered on their own
    /// (the Redis engine keeps one stream per app).
    pub fn app(&self) -> &str {
        match self {
            Change::Login { app, .. }
            | Change::Logout { app, .. }
            | Change::Disconnected { app, .. }
            | Change::SendPeer { app, .. }
            | Change::Ack { app, .. }
            | Change::ForgetCached { app, .. }
            | Change::Join { app, .. }
            | Change::Leave { app, .. }
            | Change::SendChannel { app, .. }
            | Change::WatchToken { app, .. }
            | Change::GraceOver { app, .. }
            | Change::TokenExpired { app, .. }
            | Change::NodeGone { app, .. }
            | Change::Admin(AdminChange::Kick { app, .. }) => app,
        }
    }
}

/// Where a change is applied from: who submitted it, the id a message in it gets, and the
/// wall clock it counts with, the same on every node.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    /// The node that submitted the change.
    pub origin: NodeId,
    /// The message id this change was given in the shared order (`None`: the hub's own
    /// counter on one node; on several, a message carries the id its conversation's Redis
    /// gave it in the change itself).
    pub message_id: Option<u64>,
    /// Unix milliseconds at the origin when it submitted the change.
    pub now_ms: u64,
    /// The change's number in its app's order (0 on one node, where the order is the
    /// order of applying): the place of the feed events it makes (`event_feeds.rs`).
    pub number: u64,
}

/// What applying a change answers its origin: one variant per kind of change that can be
/// refused, carrying its family's typed error (`codes::WireCode`), so that a code of one
/// op cannot come back as another's.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing to answer (or answered already, inside the change).
    Done,
    /// `join`: the member count.
    Joined(Result<u64, JoinError>),
    /// `leave`.
    Left(Result<(), LeaveError>),
    /// `send_channel`: the id and timestamp.
    Sent(Result<SendResult, ChannelMsgError>),
    /// `send_peer`.
    Peer(PeerSend),
    /// `invite`, `cancel_invitation`, `accept_invitation`, `refuse_invitation`.
    Invitation(Result<(), InviteError>),
    /// An operator's change (`hub/admin.rs`).
    Admin(AdminOutcome),
    /// The engine could not order the change (Redis away): the family's failure code.
    Unavailable,
}

/// What happened to a `send_peer`.
#[derive(Debug)]
pub enum PeerSend {
    /// Delivered to the receiver's connection; the reply comes with its ack (or timeout).
    AwaitingAck,
    /// Receiver offline and `offline: true`: answered 4 once `committed` resolves.
    Cached {
        result: SendResult,
        committed: tokio::sync::oneshot::Receiver<()>,
    },
    /// Receiver offline: 3.
    Unreachable,
    /// Receiver offline and the offline cache's quota spent (the server's, or the
    /// sender's; `hub/offline.rs`): 3, with why.
    CacheFull(&'static str),
}

/// The conversation key of a peer pair in the history table.
pub fn peer_conversation(a: &str, b: &str) -> String {
    // User ids cannot contain NUL, so the pair is unambiguous.
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("p:{low}\u{0}{high}")
}

/// The conversation key of a channel in the history table.
pub fn channel_conversation(channel: &str) -> String {
    format!("c:{channel}")
}

/// An operator's change to the shared state (see the module header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "admin", rename_all = "snake_case")]
pub enum AdminChange {
    /// Ends `user`'s session now (`kicked` banned, then the user is gone at once);
    /// `ban_until` (unix seconds): the ban written before it (`engine/bans.rs`), which
    /// refuses the user's logins until then; here only for the log.
    Kick {
        app: String,
        user: String,
        ban_until: Option<u64>,
    },
}

/// Which event feed (`event_feeds.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feed {
    Users,
    Channels,
}

/// What an [`AdminChange`] answers its origin.
#[derive(Debug)]
pub enum AdminOutcome {
    /// `Kick`: whether the user was online (or in its grace period).
    Kicked { was_present: bool },
}

/// One event of a feed, with Agora's field names (`user_events`, `channel_events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// The channel (`channel_events` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub user_id: String,
    /// `Login`/`Logout`, or `Join`/`Leave`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix milliseconds of the change (its origin's clock when it submitted it, so every
    /// node records the same).
    pub ms: u64,
}

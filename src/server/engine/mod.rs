//! The engine seam: what this node shares with the others.
//!
//! The hub (`hub/`) keeps everything node-local: this node's connections and their
//! ordered delivery, pending acks, timers. What users on different nodes must agree on
//! (who is online where, channel membership, the offline cache) is, per app, one
//! deterministic state that every node serving the app holds a copy of and changes only
//! by applying [`Change`]s. Attributes are kept apart, per user ([`UserAttributeStore`])
//! and per channel ([`ChannelAttributeStore`]), and so are presence subscriptions
//! ([`SubscriptionStore`], per user), bans ([`BanStore`]), the REST API's event feeds
//! ([`EventFeedStore`]) and pending call invitations ([`InvitationStore`]), so that a
//! node holds none it has no use for. An engine does three things:
//!
//! - [`Engine::submit`] puts a change in its app's order (every node holding the app
//!   applies its changes in that order), and hands it back to this node's hub to apply;
//! - it keeps history (a [`MessageStore`]): appends, reads, and the durable copy of the
//!   offline cache where the order itself is not durable;
//! - it keeps attributes (`user_attributes.rs`, `channel_attributes.rs`), presence
//!   subscriptions (`subscriptions.rs`), bans (`bans.rs`), the event feeds
//!   (`event_feeds.rs`) and pending invitations (`invitations.rs`).
//!
//! Two engines: [`memory`] (one node: a change is applied at once; SQLite keeps history,
//! the offline cache and the id counter) and [`redis`] (several nodes: an app's changes
//! go through its Redis stream, which every node serving the app reads in order; a node
//! holds only the apps it serves; history in sorted sets). Every change names its app
//! ([`Change::app`]), and each app's changes are ordered on their own. Reads (members,
//! counts, presence queries, attributes, history) are answered from this node's copy once
//! it has caught up with the app's stream as it was when the read came
//! ([`Engine::caught_up`]), so a read sees every write answered before it, on any node.
//!
//! The engine sits below the hub and never names it: it drives the node above it through
//! [`Node`] (`node.rs`), and the words both use (a [`Change`], its [`Outcome`], node and
//! connection ids) live in `change.rs`.
//!
//! A new shared op gets a [`Change`] variant and an arm in `Hub::apply` (and, if it can be
//! refused, an `Outcome` variant carrying its family's typed error); node-local work
//! (a reply, an event to a local connection, a timer) happens there only on the nodes it
//! concerns, so the same change applied on every node has each effect once.

pub mod bans;
mod change;
pub mod channel_attributes;
pub mod event_feeds;
mod generations;
pub mod invitations;
pub mod memory;
mod node;
pub mod redis;
pub mod subscriptions;
pub mod user_attributes;

pub use bans::BanStore;
pub use change::*;
pub use channel_attributes::ChannelAttributeStore;
pub use event_feeds::EventFeedStore;
pub use invitations::InvitationStore;
pub use node::{Node, NodeRef, SharedState};
pub use subscriptions::SubscriptionStore;
pub use user_attributes::UserAttributeStore;

use std::future::Future;
use std::pin::Pin;

use crate::protocol::{HistoryMessage, Message};

use super::outbox::ConnHandle;
use super::store::HistoryQuery;

/// A change on its way: applied already (one node), or applied when its turn comes.
pub enum Submitted {
    Applied(Outcome),
    Pending(tokio::sync::oneshot::Receiver<Outcome>),
}

/// A boxed future, for the engine's reads.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A peer or channel message an engine may route itself, outside the shared order (see
/// [`Engine::route_peer`] and [`Engine::route_channel`]).
#[derive(Debug)]
pub struct RoutedMessage<'a> {
    pub app: &'a str,
    pub from: &'a str,
    /// The receiving user, or the channel.
    pub to: &'a str,
    pub message: &'a Message,
    pub server_ts: u64,
    /// Sent by the REST API (`server::http`): a channel's sender need not be a member.
    pub from_server: bool,
}

/// How a routed peer message went, or ended.
#[derive(Debug)]
pub enum PeerRoute {
    /// Handed to the receiver's node; how it ended comes later (`Acked`, or `NotThere`
    /// if the receiver was not there after all).
    Sent(tokio::sync::oneshot::Receiver<PeerRoute>),
    /// The receiver acked it: answer 0 with this id and time.
    Acked(crate::protocol::SendResult),
    /// The receiver is not where this node thought: the message (with the id it already
    /// has) goes through the shared order instead, as `Change::SendPeer`.
    NotThere { message_id: u64 },
    /// The engine could not take it: the family's failure.
    Unavailable,
}

/// Orders changes across nodes and keeps history. See the module header.
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// This node's id in the shared state (0 on one node).
    fn node(&self) -> NodeId;

    /// Puts `change` in the shared order; this node's hub applies it when its turn
    /// comes, with `conn` (the requesting connection, if any) as the origin's.
    fn submit(&self, node: &dyn Node, change: Change, conn: Option<ConnHandle>) -> Submitted;

    /// Resolves once this node has applied every change of `app` (`None`: of every app it
    /// holds) appended before the call, loading the app's state first if this node does
    /// not hold it (`None` returned: always the case, as on one node). Reads wait for it,
    /// so a read never misses a write another node has already answered.
    fn caught_up(&self, node: &dyn Node, app: Option<&str>) -> Option<BoxFuture<()>>;

    /// The next message id, for a change whose stamp carries none (called under the
    /// hub's lock, so ids go in the order changes are applied).
    fn next_message_id(&self) -> u64;

    /// History and the durable offline cache.
    fn messages(&self) -> &dyn MessageStore;

    /// User attributes, kept outside the shared state (`user_attributes.rs`).
    fn user_attributes(&self) -> &dyn UserAttributeStore;

    /// Channel attributes, kept outside the shared state (`channel_attributes.rs`).
    fn channel_attributes(&self) -> &dyn ChannelAttributeStore;

    /// The REST API's event feeds, kept outside the shared state (`event_feeds.rs`).
    fn event_feeds(&self) -> &dyn EventFeedStore;

    /// Pending call invitations, kept outside the shared state (`invitations.rs`).
    fn invitations(&self) -> &dyn InvitationStore;

    /// Presence subscriptions, kept outside the shared state (`subscriptions.rs`).
    fn subscriptions(&self) -> &dyn SubscriptionStore;

    /// Bans, kept outside the shared state (`bans.rs`).
    fn bans(&self) -> &dyn BanStore;

    /// Hands an encoded event to the connection of `to` (app, user) on `node`, another
    /// node of the cluster (one node: there is none), in the order of these calls; with
    /// `expiry`, that node runs the invitation's expiry too. Fire and forget.
    fn deliver_on(
        &self,
        _node: NodeId,
        _to: (&str, &str),
        _line: &str,
        _expiry: Option<invitations::ExpiryWatch>,
    ) {
    }

    /// Identifies the data behind the engine (the login reply's `store`).
    fn store_id(&self) -> String;

    /// Starts the engine's background work with the hub it feeds (readers, heartbeats).
    fn start(&self, node: &dyn Node);

    /// Ends the background work and makes what was written durable.
    fn stop(&self) -> BoxFuture<()>;

    /// Resolves if the engine can no longer work (the server then shuts down).
    fn failed(&self) -> BoxFuture<()>;

    /// Routes a peer message straight to the receiver's node, when the engine does that
    /// (several nodes: only the sender's and the receiver's nodes see it). Resolves once
    /// the message is on its way (`Sent`, then its ack) or with where it should go
    /// instead; the caller awaits one connection's sends in order. `None`: the engine
    /// does not route messages (one node); it goes through the shared order
    /// (`Change::SendPeer`).
    fn route_peer(
        &self,
        _node: &dyn Node,
        _send: &RoutedMessage<'_>,
    ) -> Option<BoxFuture<PeerRoute>> {
        None
    }

    /// The receiver's `ack` of a message routed by [`Engine::route_peer`]: true if it was
    /// one (answered to its sender's node); false: it goes through the shared order.
    fn ack_routed(&self, _app: &str, _user: &str, _message_id: u64) -> bool {
        false
    }

    /// Sends a channel message straight to the nodes with members of the channel, when
    /// the engine does that; resolves with the `send_channel` outcome. `None`: through
    /// the shared order (`Change::SendChannel`).
    fn route_channel(
        &self,
        _node: &dyn Node,
        _send: &RoutedMessage<'_>,
    ) -> Option<BoxFuture<Outcome>> {
        None
    }

    /// Makes this node receive `channel`'s messages before one of its users joins it;
    /// false if it cannot (the Redis holding the channel is away). `None`: nothing to do.
    fn watch_channel(&self, _app: &str, _channel: &str) -> Option<BoxFuture<bool>> {
        None
    }

    /// Changes appended to the shared order that this node has not applied yet, for the
    /// metrics (`None`: there is no shared order, as on one node; the future answers
    /// `None` if it cannot tell).
    fn lag(&self) -> Option<BoxFuture<Option<u64>>> {
        None
    }

    /// Work queued for the store or engine and not yet taken, for the metrics.
    fn queue_depth(&self) -> usize {
        0
    }
}

/// How a compare-and-set write of attributes went (`user_attributes.rs`,
/// `channel_attributes.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// Written.
    Done,
    /// The record changed since it was read: read again.
    Changed,
    /// The record is a later generation's: the writer's user has gone since.
    Stale,
}

/// An attribute store could not be reached (Redis away): the family's failure code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the attribute store is unavailable")]
pub struct Unavailable;

/// Why a page of history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] crate::server::store::StoreError),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis did not answer in time")]
    Timeout,
    #[error("a history entry cannot be read: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// History and the offline cache's durable copy.
pub trait MessageStore: Send + Sync {
    /// Keeps `message` in `conv`'s history (at most `keep`); fire and forget.
    fn append_history(&self, app: &str, conv: &str, message: HistoryMessage, keep: u32);

    /// Makes a cached message durable; resolves `Ok` once it is, `Err` if it cannot be.
    fn cache_offline(
        &self,
        app: &str,
        receiver: &str,
        message: HistoryMessage,
        cap: usize,
    ) -> tokio::sync::oneshot::Receiver<()>;

    /// Forgets delivered or expired cached messages.
    fn drop_offline(&self, app: &str, receiver: &str, message_ids: Vec<u64>);

    /// A page of `conv`'s history.
    fn history(
        &self,
        app: &str,
        conv: &str,
        query: HistoryQuery,
    ) -> BoxFuture<Result<Vec<HistoryMessage>, ReadError>>;
}

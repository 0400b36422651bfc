//! What an engine asks of the node above it: the hub implements [`Node`], so the engine
//! drives this node's copy of the shared state, and hands routed messages to its
//! connections, without naming the hub (the engine sits below it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::change::{Change, NodeId, Outcome, Stamp};
use super::invitations::ExpiryWatch;
use crate::server::config::Config;
use crate::server::outbox::ConnHandle;

/// The node an engine serves, shared with the engine's background tasks.
pub type NodeRef = Arc<dyn Node>;

/// This node as its engine sees it (implemented by the hub, `hub/delivery.rs`).
pub trait Node: Send + Sync + 'static {
    /// The server's settings.
    fn config(&self) -> &Config;

    /// A handle the engine's background tasks keep.
    fn to_ref(&self) -> NodeRef;

    /// Runs `batch` with this node's copy of the shared state locked: changes applied
    /// there are applied in the order `batch` applies them, with nothing in between.
    fn with_state(&self, batch: &mut dyn FnMut(&mut dyn SharedState));

    /// Submits `change` and lets it take its course (a node found gone).
    fn submit_detached(&self, change: Change);

    /// Every node the shared state names, with the apps naming it (the engine watches
    /// that they are alive, and tells each of those apps when one is gone).
    fn nodes_named(&self) -> BTreeMap<NodeId, BTreeSet<String>>;

    /// The node holding `user`'s connection, as this node's copy has it (`None`: not
    /// logged in anywhere, or in its grace period).
    fn locate(&self, app: &str, user: &str) -> Option<NodeId>;

    /// True if `user` is a member of `channel`, as this node's copy has it.
    fn is_member(&self, app: &str, user: &str, channel: &str) -> bool;

    /// Queues an encoded peer event on `to`'s connection if it is on this node; false if
    /// it is not (the sender's node then sends the message another way).
    fn deliver_peer(&self, app: &str, to: &str, line: &Arc<str>) -> bool;

    /// Queues an encoded channel event on every member of `channel` on this node but
    /// `skip` (a message's sender).
    fn deliver_channel(&self, app: &str, channel: &str, skip: Option<&str>, line: &Arc<str>);

    /// True if a member of `channel` has its connection on this node.
    fn has_local_member(&self, app: &str, channel: &str) -> bool;

    /// Runs the expiry of an invitation one of this node's users received from a user on
    /// another node, as the caller's node does: whichever runs it first ends the
    /// invitation (`hub/invitations.rs`).
    fn watch_invitation_expiry(&self, app: &str, expiry: ExpiryWatch);
}

/// This node's copy of the shared state, locked (see [`Node::with_state`]).
pub trait SharedState {
    /// Applies one change in the shared order; `conn` is the requesting connection when
    /// this node submitted it.
    fn apply(&mut self, change: Change, stamp: Stamp, conn: Option<&ConnHandle>) -> Outcome;

    /// Replaces `app`'s state with a snapshot (`None`: empty), closing this node's
    /// connections to the app with `close_code` first; `Err` if the snapshot cannot be
    /// read (the state is then left as it was).
    fn replace(&mut self, app: &str, snapshot: Option<&str>, close_code: u16)
        -> Result<(), String>;

    /// `app`'s state as a snapshot a node can load.
    fn snapshot(&self, app: &str) -> Result<String, String>;

    /// Forgets `app`'s state if this node has no use for it any more (no connection to
    /// it, no timer of it to run); true if it is forgotten (or was not held).
    fn forget_if_unused(&mut self, app: &str) -> bool;
}

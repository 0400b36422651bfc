//! Events for users on other nodes (an invitation's: `hub/invitations.rs`), published to
//! the inbox of the user's node on the Redis its id hashes to, in the order they were
//! given: one task sends them one after the other, so an `invitation_canceled` never
//! overtakes its `invitation_received`. At most [`QUEUE`] wait; past it, or when their
//! Redis does not answer in time, an event is lost and logged (the invitation itself
//! stays in its store, and expires).

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::server::engine::invitations::ExpiryWatch;
use crate::server::engine::NodeId;

use super::feed::{publish_to_inbox, TopicMessage};
use super::shards::shard_of_user;
use super::{lock, stopped, Inner};

/// Events waiting to be published at most.
const QUEUE: usize = 65_536;

/// One event on its way.
struct Outbound {
    shard: usize,
    node: NodeId,
    json: String,
}

/// The queue of events for other nodes, and its receiving end until the task takes it.
pub(super) struct NodeEvents {
    queue: mpsc::Sender<Outbound>,
    taken: Mutex<Option<mpsc::Receiver<Outbound>>>,
}

impl Default for NodeEvents {
    fn default() -> Self {
        let (queue, taken) = mpsc::channel(QUEUE);
        NodeEvents {
            queue,
            taken: Mutex::new(Some(taken)),
        }
    }
}

/// Queues `line` for `user`'s connection on `node` (with the expiry that node runs too).
pub(super) fn send(
    inner: &Inner,
    node: NodeId,
    (app, user): (&str, &str),
    line: &str,
    expiry: Option<ExpiryWatch>,
) {
    let event = TopicMessage::Event {
        app: app.to_string(),
        user: user.to_string(),
        line: line.to_string(),
        expiry,
    };
    let Ok(json) = serde_json::to_string(&event) else {
        return;
    };
    let shard = shard_of_user(inner.shards.len(), app, user);
    let outbound = Outbound { shard, node, json };
    if inner.node_events.queue.try_send(outbound).is_err() {
        tracing::warn!(
            app,
            user,
            "redis engine: too many events for other nodes; one is lost"
        );
    }
}

/// Publishes the queued events in order until the engine stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let Some(mut queue) = lock(&inner.node_events.taken).take() else {
        return;
    };
    loop {
        let next = tokio::select! {
            next = queue.recv() => next,
            () = stopped(&inner) => return,
        };
        let Some(Outbound { shard, node, json }) = next else {
            return;
        };
        let conn = inner.shards[shard].conn.clone();
        if !publish_to_inbox(conn, node, json).await {
            tracing::warn!(
                node,
                "redis engine: an event for another node's user is lost"
            );
        }
    }
}

//! Messages straight to the nodes concerned, over Redis PUB/SUB: a peer message, its ack
//! and its answer touch only the sender's and the receiver's nodes, and a channel message
//! only the nodes with members of the channel (and so does a notifying write of its
//! attributes: `channel_attributes.rs` publishes it on the channel's topic; and an event
//! for a user on another node, an invitation's: `node_events.rs` publishes it to that
//! node's inbox). The change streams (per app: membership, presence; `apps.rs`) carry no
//! messages: messages, the bulk of the traffic, go this way.
//!
//! - **Topics.** Every node listens on its inbox (`rtm:n:<node>`) on every Redis of the
//!   list, and on a channel's topic (`rtm:c:<app>:<channel>`), on the Redis that holds the
//!   channel, while it has local members there: it subscribes before its user's `join`
//!   is submitted (so nothing published after the join's answer is missed), and a sweep
//!   drops topics with no local member left.
//! - **Sending** is one Lua call on the conversation's Redis
//!   ([`ROUTE_LUA`](super::batch::ROUTE_LUA), with the other messages queued for that
//!   Redis meanwhile: `batch.rs`): it takes the message id from that Redis' counter
//!   (`shards.rs`), keeps the message in history and publishes it, atomically, so the
//!   order of the ids is the order every subscriber receives. A peer message goes to the
//!   inbox of the node this node's copy of the shared state names for the receiver; if
//!   nobody listens there, or the receiver has moved on, it goes through the change
//!   stream instead (with the id it already has), which caches it or answers 3 as on one
//!   node.
//! - **Acks** go back to the sender's inbox on the same Redis, and answer the `send_peer`.
//! - **Causality.** A message carries how far its sender's node had read the change
//!   stream; a receiving node that is behind waits until it has read as far (at most
//!   [`SUBMIT_TIMEOUT`]), so nobody gets a message from a member whose `join` it has not
//!   seen yet.
//! - **Redis away.** PUB/SUB delivers at most once: a node whose subscription broke
//!   subscribes again to everything it listens on; what was published meanwhile is in
//!   history (the client library catches up from it after a reconnect). A send to a Redis
//!   that is away is answered with its family's failure code; the other Redis servers'
//!   conversations go on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::PubSubSink;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::protocol::{
    ChannelAttribute, ChannelMsgError, Event, HistoryMessage, Message, SendResult,
};
use crate::server::engine::channel_attributes::updated_event;
use crate::server::engine::invitations::ExpiryWatch;
use crate::server::engine::{
    channel_conversation, peer_conversation, BoxFuture, Node, NodeId, NodeRef, Outcome, PeerRoute,
    RoutedMessage,
};
use crate::server::outbox::ConnHandle;
use crate::server::store::HistoryQuery;

use super::batch::MessageRoute;
use super::shards::{shard_of, Shard};
use super::{lock, pause, stopped, Complaint, Inner, SUBMIT_TIMEOUT};

/// A topic no local member needs is dropped after at least this long (a `join` on its
/// way keeps it).
const WATCH_LINGER: Duration = Duration::from_secs(5);
/// How often pending sends, routed deliveries and topics are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What travels on a topic (a node publishes the first two through
/// [`ROUTE_LUA`](super::batch::ROUTE_LUA), with borrowed fields: [`PeerOut`],
/// [`ChannelOut`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k")]
pub(super) enum TopicMessage {
    /// A peer message, to the receiver's node.
    #[serde(rename = "p")]
    Peer {
        message_id: u64,
        /// The sender's waiting `send_peer`, on its node `o`.
        key: u64,
        o: NodeId,
        /// How far the sender's node had read its app's change stream.
        n: u64,
        app: String,
        from: String,
        to: String,
        message: Message,
        server_ts: u64,
    },
    /// A channel message, to the nodes with members.
    #[serde(rename = "c")]
    Channel {
        message_id: u64,
        n: u64,
        app: String,
        channel: String,
        from: String,
        message: Message,
        server_ts: u64,
    },
    /// The receiver acked a peer message: to the sender's node.
    #[serde(rename = "a")]
    Ack {
        key: u64,
        message_id: u64,
        server_ts: u64,
    },
    /// The receiver was not on the node the message went to: to the sender's node.
    #[serde(rename = "b")]
    Bounce { key: u64, message_id: u64 },
    /// A channel's attributes changed with `notify`: to the nodes with members
    /// (`channel_attributes.rs` publishes it).
    #[serde(rename = "t")]
    Attributes {
        n: u64,
        app: String,
        channel: String,
        attributes: Vec<ChannelAttribute>,
    },
    /// An event for a user on the receiving node (an invitation's: `hub/invitations.rs`),
    /// encoded as it goes out.
    #[serde(rename = "e")]
    Event {
        app: String,
        user: String,
        line: String,
        /// The expiry of the invitation the event brings, which the receiving node runs
        /// too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expiry: Option<ExpiryWatch>,
    },
}

#[derive(Serialize)]
struct PeerOut<'a> {
    k: &'static str,
    key: u64,
    o: NodeId,
    n: u64,
    app: &'a str,
    from: &'a str,
    to: &'a str,
    message: &'a Message,
    server_ts: u64,
}

#[derive(Serialize)]
struct ChannelOut<'a> {
    k: &'static str,
    n: u64,
    app: &'a str,
    channel: &'a str,
    from: &'a str,
    message: &'a Message,
    server_ts: u64,
}

/// A history entry: `HistoryMessage` less its id, which the script writes first.
#[derive(Serialize)]
struct HistoryOut<'a> {
    from: &'a str,
    message: &'a Message,
    server_ts: u64,
}

/// A peer message this node handed to its receiver, until the receiver acks it.
#[derive(Debug)]
struct Routed {
    app: String,
    to: String,
    origin: NodeId,
    key: u64,
    shard: usize,
    server_ts: u64,
    at: Instant,
}

/// A channel topic this node listens on (or is about to).
#[derive(Debug)]
struct Watched {
    app: String,
    channel: String,
    shard: usize,
    since: Instant,
    /// Redis confirmed the subscription (cleared when the subscription breaks).
    confirmed: bool,
    /// The last message id this node handed over from the topic (or, before the first,
    /// the Redis' id counter when the node began listening): after a broken subscription
    /// the node reads what it missed from history, from here on.
    last_id: u64,
}

/// The PUB/SUB side of the engine.
pub struct Feeds {
    /// `send_peer`s of this node waiting for their ack, by key.
    pending: Mutex<HashMap<u64, oneshot::Sender<PeerRoute>>>,
    next_key: AtomicU64,
    /// Peer messages this node delivered and whose ack goes back, by message id.
    routed: Mutex<HashMap<u64, Routed>>,
    /// Channel topics, by topic name.
    watched: Mutex<HashMap<String, Watched>>,
    /// Each Redis' subscription handle, while it is up.
    sinks: Vec<Mutex<Option<PubSubSink>>>,
    /// Whether each Redis' subscription is up.
    up: Vec<watch::Sender<bool>>,
}

impl Feeds {
    pub fn new(shards: usize) -> Self {
        Feeds {
            pending: Mutex::default(),
            next_key: AtomicU64::new(1),
            routed: Mutex::default(),
            watched: Mutex::default(),
            sinks: (0..shards).map(|_| Mutex::new(None)).collect(),
            up: (0..shards).map(|_| watch::channel(false).0).collect(),
        }
    }
}

fn inbox(node: NodeId) -> String {
    format!("rtm:n:{node}")
}

pub(super) fn channel_topic(app: &str, channel: &str) -> String {
    format!("rtm:c:{app}:{channel}")
}

/// JSON of `value` without its opening brace (the script writes it with the id).
fn tail_json(value: &impl Serialize) -> Option<String> {
    let mut json = serde_json::to_string(value).ok()?;
    json.remove(0);
    Some(json)
}

/// Numbers, publishes and keeps one message on `shard` (batched with others:
/// `batch.rs`): the id, and how many nodes received it. Takes the JSON it was given, so
/// a message's body is not copied again on its way to Redis.
async fn route(
    shard: &Shard,
    history_key: String,
    (topic, keep, always_keep): (String, u32, bool),
    (history, published): (String, String),
) -> Result<(u64, u64), String> {
    let route = MessageRoute {
        history_key,
        topic,
        keep,
        always_keep,
        history,
        published,
    };
    shard.router.route(route).await
}

impl Inner {
    /// The Redis holding conversation `conv` of `app`.
    fn shard_for(&self, app: &str, conv: &str) -> &Shard {
        &self.shards[shard_of(self.shards.len(), app, conv)]
    }
}

/// `Engine::route_peer` of the Redis engine: see the module header.
pub fn route_peer(
    inner: &Arc<Inner>,
    hub: &dyn Node,
    send: &RoutedMessage<'_>,
) -> BoxFuture<PeerRoute> {
    let located = hub.locate(send.app, send.to);
    let conv = peer_conversation(send.from, send.to);
    let history = tail_json(&HistoryOut {
        from: send.from,
        message: send.message,
        server_ts: send.server_ts,
    });
    let key = inner.feeds.next_key.fetch_add(1, Ordering::Relaxed);
    let (app, from, to) = (
        send.app.to_string(),
        send.from.to_string(),
        send.to.to_string(),
    );
    let message = send.message.clone();
    let server_ts = send.server_ts;
    let (inner, hub) = (Arc::clone(inner), hub.to_ref());
    Box::pin(async move {
        let Some(history) = history else {
            return PeerRoute::Unavailable;
        };
        let located = if located.is_some() {
            located
        } else {
            // Maybe this node has not read the receiver's login yet.
            super::apps::caught_up(&inner, &*hub, Some(&app)).await;
            hub.locate(&app, &to)
        };
        let shard = inner.shard_for(&app, &conv);
        let history_key = inner.keys.history(&app, &conv);
        let Some(node) = located else {
            // Offline: only an id; the change stream caches it or answers 3.
            let nowhere = (String::new(), 0, false);
            return match route(shard, history_key, nowhere, Default::default()).await {
                Ok((message_id, _)) => PeerRoute::NotThere { message_id },
                Err(_) => PeerRoute::Unavailable,
            };
        };
        if node == inner.node {
            return route_here(
                &inner,
                &*hub,
                shard,
                (&app, &from, &to),
                &message,
                server_ts,
                (history_key, history),
            )
            .await;
        }
        let published = tail_json(&PeerOut {
            k: "p",
            key,
            o: inner.node,
            n: inner.apps.applied(&app),
            app: &app,
            from: &from,
            to: &to,
            message: &message,
            server_ts,
        });
        let Some(published) = published else {
            return PeerRoute::Unavailable;
        };
        let (answer, answered) = oneshot::channel();
        lock(&inner.feeds.pending).insert(key, answer);
        let keep = hub.config().history_limit;
        let routed = route(
            shard,
            history_key,
            (inbox(node), keep, false),
            (history, published),
        )
        .await;
        match routed {
            Ok((_, receivers)) if receivers > 0 => PeerRoute::Sent(answered),
            Ok((message_id, _)) => {
                // Nobody listens on that node's inbox: it is gone.
                lock(&inner.feeds.pending).remove(&key);
                PeerRoute::NotThere { message_id }
            }
            Err(error) => {
                lock(&inner.feeds.pending).remove(&key);
                tracing::debug!(error, "redis engine: a peer message not routed");
                PeerRoute::Unavailable
            }
        }
    })
}

/// A peer message whose receiver is on this node too: Redis gives the id and keeps it in
/// history, nothing is published; this node hands it over and takes the ack itself.
async fn route_here(
    inner: &Arc<Inner>,
    hub: &dyn Node,
    shard: &Shard,
    (app, from, to): (&str, &str, &str),
    message: &Message,
    server_ts: u64,
    (history_key, history): (String, String),
) -> PeerRoute {
    let keep = hub.config().history_limit;
    let counted = route(
        shard,
        history_key,
        (String::new(), keep, true),
        (history, String::new()),
    )
    .await;
    let Ok((message_id, _)) = counted else {
        return PeerRoute::Unavailable;
    };
    let line = ConnHandle::encode_shared(&Event::MessageFromPeer {
        from: from.to_string(),
        message: message.clone(),
        message_id,
        server_ts,
        offline: false,
    });
    let key = inner.feeds.next_key.fetch_add(1, Ordering::Relaxed);
    let (answer, answered) = oneshot::channel();
    lock(&inner.feeds.pending).insert(key, answer);
    let routed = Routed {
        app: app.to_string(),
        to: to.to_string(),
        origin: inner.node,
        key,
        shard: shard.index,
        server_ts,
        at: Instant::now(),
    };
    // Recorded before it is handed over: the ack may come at once.
    lock(&inner.feeds.routed).insert(message_id, routed);
    if hub.deliver_peer(app, to, &line) {
        PeerRoute::Sent(answered)
    } else {
        lock(&inner.feeds.routed).remove(&message_id);
        lock(&inner.feeds.pending).remove(&key);
        PeerRoute::NotThere { message_id }
    }
}

/// `Engine::route_channel` of the Redis engine: see the module header.
pub fn route_channel(
    inner: &Arc<Inner>,
    hub: &dyn Node,
    send: &RoutedMessage<'_>,
) -> BoxFuture<Outcome> {
    let (app, from, channel) = (send.app, send.from, send.to);
    if !send.from_server && !hub.is_member(app, from, channel) {
        return Box::pin(std::future::ready(Outcome::Sent(Err(
            ChannelMsgError::NotInChannel,
        ))));
    }
    let conv = channel_conversation(channel);
    let history_key = inner.keys.history(app, &conv);
    let topic = channel_topic(app, channel);
    let history = tail_json(&HistoryOut {
        from,
        message: send.message,
        server_ts: send.server_ts,
    });
    let published = tail_json(&ChannelOut {
        k: "c",
        n: inner.apps.applied(app),
        app,
        channel,
        from,
        message: send.message,
        server_ts: send.server_ts,
    });
    let shard = shard_of(inner.shards.len(), app, &conv);
    let keep = hub.config().history_limit;
    let server_ts = send.server_ts;
    let inner = Arc::clone(inner);
    Box::pin(async move {
        let (Some(history), Some(published)) = (history, published) else {
            return Outcome::Unavailable;
        };
        let shard = &inner.shards[shard];
        match route(
            shard,
            history_key,
            (topic, keep, true),
            (history, published),
        )
        .await
        {
            Ok((message_id, _)) => Outcome::Sent(Ok(SendResult {
                message_id,
                server_ts,
            })),
            Err(error) => {
                tracing::debug!(error, "redis engine: a channel message not sent");
                Outcome::Unavailable
            }
        }
    })
}

/// `Engine::ack_routed`: answers the sender's node if this node delivered the message.
pub fn ack_routed(inner: &Arc<Inner>, app: &str, user: &str, message_id: u64) -> bool {
    let routed = {
        let mut routed = lock(&inner.feeds.routed);
        match routed.get(&message_id) {
            Some(r) if r.app == app && r.to == user => routed.remove(&message_id),
            _ => None,
        }
    };
    let Some(routed) = routed else {
        return false;
    };
    if routed.origin == inner.node {
        // The sender is here too.
        if let Some(waiting) = lock(&inner.feeds.pending).remove(&routed.key) {
            let _ = waiting.send(PeerRoute::Acked(SendResult {
                message_id,
                server_ts: routed.server_ts,
            }));
        }
        return true;
    }
    let answer = TopicMessage::Ack {
        key: routed.key,
        message_id,
        server_ts: routed.server_ts,
    };
    send_to_node(inner, routed.shard, routed.origin, &answer);
    true
}

/// Publishes `answer` to `origin`'s inbox on `shard`, off the caller's path.
fn send_to_node(inner: &Arc<Inner>, shard: usize, origin: NodeId, answer: &TopicMessage) {
    let Ok(json) = serde_json::to_string(answer) else {
        return;
    };
    let conn = inner.shards[shard].conn.clone();
    tokio::spawn(async move {
        if !publish_to_inbox(conn, origin, json).await {
            tracing::debug!("redis engine: an answer to a sender's node was lost");
        }
    });
}

/// Publishes `json` to `node`'s inbox over `conn`; false if Redis did not take it in
/// time.
pub(super) async fn publish_to_inbox(
    mut conn: redis::aio::ConnectionManager,
    node: NodeId,
    json: String,
) -> bool {
    let mut publish = redis::cmd("PUBLISH");
    publish.arg(inbox(node)).arg(json);
    let published = publish.query_async::<u64>(&mut conn);
    matches!(
        tokio::time::timeout(SUBMIT_TIMEOUT, published).await,
        Ok(Ok(_))
    )
}

/// `Engine::watch_channel`: subscribes to the channel's topic (once) before a join.
pub fn watch_channel(inner: &Arc<Inner>, app: &str, channel: &str) -> BoxFuture<bool> {
    let topic = channel_topic(app, channel);
    let shard = shard_of(inner.shards.len(), app, &channel_conversation(channel));
    {
        let mut watched = lock(&inner.feeds.watched);
        let entry = watched.entry(topic.clone()).or_insert_with(|| Watched {
            app: app.to_string(),
            channel: channel.to_string(),
            shard,
            since: Instant::now(),
            confirmed: false,
            last_id: 0,
        });
        entry.since = Instant::now();
        if entry.confirmed {
            return Box::pin(std::future::ready(true));
        }
    }
    let inner = Arc::clone(inner);
    Box::pin(async move {
        let subscribed = async {
            let mut up = inner.feeds.up[shard].subscribe();
            up.wait_for(|up| *up).await.ok()?;
            // Every message of the channel published after this read has a higher id.
            // Read alongside the subscription (one round trip): a message published in
            // between is skipped as seen, and owed to nobody here, since this node has no
            // member in the channel yet (the join waits for this).
            let mut conn = inner.shards[shard].conn.clone();
            let mut get = redis::cmd("GET");
            get.arg(&inner.keys.mseq);
            let counted = get.query_async::<Option<u64>>(&mut conn);
            let mut sink = lock(&inner.feeds.sinks[shard]).clone()?;
            let (counted, subscribed) = tokio::join!(counted, sink.subscribe(&topic));
            subscribed.ok()?;
            Some(counted.ok()?.unwrap_or(0) * inner.shards.len() as u64 + shard as u64)
        };
        let subscribed_at = tokio::time::timeout(SUBMIT_TIMEOUT, subscribed)
            .await
            .ok()
            .flatten();
        let Some(from_id) = subscribed_at else {
            return false;
        };
        if let Some(entry) = lock(&inner.feeds.watched).get_mut(&topic) {
            entry.confirmed = true;
            entry.last_id = entry.last_id.max(from_id);
        }
        true
    })
}

/// Listens on one Redis: this node's inbox and the channel topics held there; hands what
/// comes to the hub. Subscribes again after the connection breaks.
pub async fn listen(inner: Arc<Inner>, hub: NodeRef, shard: usize) {
    let mut complaint = Complaint::new("listening for messages");
    let feeds = &inner.feeds;
    loop {
        if *inner.stop.borrow() {
            return;
        }
        let connected = tokio::time::timeout(
            SUBMIT_TIMEOUT,
            inner.shards[shard].client.get_async_pubsub(),
        )
        .await;
        let pubsub = match connected {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                complaint.failed(&e);
                if pause(&inner, Duration::from_millis(500)).await {
                    continue;
                }
                return;
            }
            Err(_) => {
                complaint.failed(&"timed out");
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut topics = vec![inbox(inner.node)];
        topics.extend(
            lock(&feeds.watched)
                .iter()
                .filter(|(_, w)| w.shard == shard)
                .map(|(topic, _)| topic.clone()),
        );
        if let Err(e) = sink.subscribe(&topics).await {
            complaint.failed(&e);
            if pause(&inner, Duration::from_millis(500)).await {
                continue;
            }
            return;
        }
        complaint.worked();
        for (topic, watched) in lock(&feeds.watched).iter_mut() {
            if watched.shard == shard && topics.contains(topic) {
                watched.confirmed = true;
            }
        }
        // A Redis that came back empty hands out ids from the start again.
        if let Some(marked) = super::store_lost(&inner, shard).await {
            let (inner, hub) = (Arc::clone(&inner), Arc::clone(&hub));
            tokio::spawn(async move { super::apps::load_again(&inner, &hub, marked).await });
        }
        // What was published while the subscription was down, before what comes now.
        catch_up(&inner, &*hub, shard).await;
        *lock(&feeds.sinks[shard]) = Some(sink);
        feeds.up[shard].send_replace(true);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => receive(&inner, &*hub, shard, message.get_payload_bytes()).await,
                    None => break,
                },
                () = stopped(&inner) => return,
            }
        }
        complaint.failed(&"the subscription broke");
        feeds.up[shard].send_replace(false);
        *lock(&feeds.sinks[shard]) = None;
        for watched in lock(&feeds.watched).values_mut() {
            if watched.shard == shard {
                watched.confirmed = false;
            }
        }
    }
}

/// One message from a topic.
async fn receive(inner: &Arc<Inner>, hub: &dyn Node, shard: usize, payload: &[u8]) {
    let feed: TopicMessage = match serde_json::from_slice(payload) {
        Ok(feed) => feed,
        Err(e) => {
            tracing::warn!(error = %e, "redis engine: a message on a topic cannot be read");
            return;
        }
    };
    match feed {
        TopicMessage::Peer {
            message_id,
            key,
            o,
            n,
            app,
            from,
            to,
            message,
            server_ts,
        } => {
            super::apps::read_as_far_as(inner, &app, n).await;
            let line = ConnHandle::encode_shared(&Event::MessageFromPeer {
                from,
                message,
                message_id,
                server_ts,
                offline: false,
            });
            if hub.deliver_peer(&app, &to, &line) {
                let routed = Routed {
                    app,
                    to,
                    origin: o,
                    key,
                    shard,
                    server_ts,
                    at: Instant::now(),
                };
                lock(&inner.feeds.routed).insert(message_id, routed);
            } else {
                send_to_node(inner, shard, o, &TopicMessage::Bounce { key, message_id });
            }
        }
        TopicMessage::Channel {
            message_id,
            n,
            app,
            channel,
            from,
            message,
            server_ts,
        } => {
            super::apps::read_as_far_as(inner, &app, n).await;
            let message = HistoryMessage {
                message_id,
                from,
                message,
                server_ts,
            };
            hand_over_channel(inner, hub, &app, &channel, message);
        }
        TopicMessage::Ack {
            key,
            message_id,
            server_ts,
        } => {
            if let Some(waiting) = lock(&inner.feeds.pending).remove(&key) {
                let _ = waiting.send(PeerRoute::Acked(SendResult {
                    message_id,
                    server_ts,
                }));
            }
        }
        TopicMessage::Bounce { key, message_id } => {
            if let Some(waiting) = lock(&inner.feeds.pending).remove(&key) {
                let _ = waiting.send(PeerRoute::NotThere { message_id });
            }
        }
        TopicMessage::Attributes {
            n,
            app,
            channel,
            attributes,
        } => {
            super::apps::read_as_far_as(inner, &app, n).await;
            let line = updated_event(&channel, &attributes);
            hub.deliver_channel(&app, &channel, None, &line);
        }
        TopicMessage::Event {
            app,
            user,
            line,
            expiry,
        } => {
            if !hub.deliver_peer(&app, &user, &Arc::from(line)) {
                tracing::debug!(app, user, "redis engine: an event's user is not here");
            }
            if let Some(expiry) = expiry {
                hub.watch_invitation_expiry(&app, expiry);
            }
        }
    }
}

/// Hands a channel message to this node's members, unless it was handed over already
/// (a message read from history after a broken subscription may come again).
fn hand_over_channel(
    inner: &Inner,
    hub: &dyn Node,
    app: &str,
    channel: &str,
    message: HistoryMessage,
) {
    let topic = channel_topic(app, channel);
    if let Some(watched) = lock(&inner.feeds.watched).get_mut(&topic) {
        if message.message_id <= watched.last_id {
            return;
        }
        watched.last_id = message.message_id;
    }
    let line = ConnHandle::encode_shared(&Event::MessageFromChannel {
        channel: channel.to_string(),
        from: message.from.clone(),
        message: message.message,
        message_id: message.message_id,
        server_ts: message.server_ts,
    });
    hub.deliver_channel(app, channel, Some(&message.from), &line);
}

/// Redis `shard` lost its data (`store_lost`): its message ids start over, so the ids
/// its channel topics handed over no longer tell what was seen.
pub(super) fn forget_handed_over(inner: &Inner, shard: usize) {
    for watched in lock(&inner.feeds.watched).values_mut() {
        if watched.shard == shard {
            watched.last_id = 0;
        }
    }
}

/// After the subscription to Redis `shard` broke and came back: every channel topic held
/// there gets, from history, what was published after the last message it handed over.
async fn catch_up(inner: &Inner, hub: &dyn Node, shard: usize) {
    let topics: Vec<(String, String, u64)> = lock(&inner.feeds.watched)
        .values()
        .filter(|w| w.shard == shard && w.last_id > 0)
        .map(|w| (w.app.clone(), w.channel.clone(), w.last_id))
        .collect();
    for (app, channel, after) in topics {
        let query = HistoryQuery {
            before: None,
            after: Some(after),
            limit: hub.config().history_limit.max(1),
        };
        let conv = channel_conversation(&channel);
        match super::read_history(inner, &app, &conv, query).await {
            Ok(missed) => {
                for message in missed {
                    hand_over_channel(inner, hub, &app, &channel, message);
                }
            }
            Err(error) => tracing::warn!(%error, channel, "redis engine: missed messages not read"),
        }
    }
}

/// Forgets what nobody waits for any more and leaves topics with no local member.
pub async fn sweep(inner: Arc<Inner>, hub: NodeRef) {
    let feeds = &inner.feeds;
    let routed_for = hub.config().ack_timeout + SUBMIT_TIMEOUT;
    while pause(&inner, SWEEP_EVERY).await {
        lock(&feeds.pending).retain(|_, waiting| !waiting.is_closed());
        lock(&feeds.routed).retain(|_, routed| routed.at.elapsed() < routed_for);
        let idle: Vec<(String, String, String, usize)> = lock(&feeds.watched)
            .iter()
            .filter(|(_, w)| w.since.elapsed() >= WATCH_LINGER)
            .map(|(topic, w)| (topic.clone(), w.app.clone(), w.channel.clone(), w.shard))
            .collect();
        for (topic, app, channel, shard) in idle {
            if hub.has_local_member(&app, &channel) {
                continue;
            }
            let removed = {
                let mut watched = lock(&feeds.watched);
                // A join may have come meanwhile.
                match watched.get(&topic) {
                    Some(w) if w.since.elapsed() >= WATCH_LINGER => watched.remove(&topic),
                    _ => None,
                }
            };
            if removed.is_some() {
                let sink = lock(&feeds.sinks[shard]).clone();
                if let Some(mut sink) = sink {
                    let _ = tokio::time::timeout(SUBMIT_TIMEOUT, sink.unsubscribe(&topic)).await;
                    // A join that subscribed while this went out must not lose its topic.
                    if lock(&feeds.watched).contains_key(&topic) {
                        let _ = tokio::time::timeout(SUBMIT_TIMEOUT, sink.subscribe(&topic)).await;
                    }
                }
            }
        }
    }
}

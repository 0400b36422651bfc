//! The Redis engine: several nodes share one Redis or several (`serve --engine
//! redis://HOST:PORT/DB[,redis://...]`).
//!
//! Three paths. Changes to the shared state (logins, joins, presence, timers, the
//! offline cache) go through one ordered stream per app, which
//! every node serving that app applies to its copy of the app's state (`apps.rs`);
//! messages (peer messages with their acks, channel messages), the bulk of the traffic,
//! go straight to the nodes concerned over PUB/SUB (`feed.rs`, sent in batches per Redis:
//! `batch.rs`), on the Redis that holds their conversation (`shards.rs`); attributes are
//! one hash per user or channel on the Redis that holds it (`user_attributes.rs`,
//! `channel_attributes.rs`), and so are presence subscriptions (`subscriptions.rs`) and
//! bans (`bans.rs`, one key per banned user, expiring with the ban);
//! pending invitations are one hash per caller (`invitations.rs`), and the REST API's event feeds one sorted set per app and feed
//! (`event_feeds.rs`). Apps and
//! conversations spread over the Redis servers of the list; the first also carries the
//! nodes' heartbeats. Every Redis holds its share of history and hands out the message
//! ids of its conversations.
//!
//! - **Order**: a change is appended to its app's stream by a Lua script that also takes
//!   its number from the app's counter, atomically, so every node applies an app's
//!   changes in one order; the origin's waiting request gets the outcome. A change is in
//!   Redis before anyone is answered: with AOF and `appendfsync always`, a message
//!   answered 4 survives a Redis crash. A message in a change (a cached peer message)
//!   carries the id its conversation's Redis gave it.
//! - **What a node holds**: only the apps it serves (`apps.rs`): an app's state loads
//!   from its snapshot when this node's first user of the app comes, its stream is read
//!   from there, and it is forgotten once the node has no use for it. A node that starts
//!   holds nothing. Snapshots are per app (`serve --snapshot-every`), and trim the app's
//!   stream behind them. A node that finds an app's changes missing (it fell behind a
//!   trim) or its counter gone back (Redis lost its data), or a Redis of the list with a
//!   new store id, reloads: it closes the connections concerned with 1012 (clients
//!   reconnect and log in again) and carries on from the snapshot, or from nothing.
//! - **Liveness**: each node sets `rtm:node:<id>` every [`HEARTBEAT_EVERY`] with a
//!   [`HEARTBEAT_TTL`] expiry. A node that sees another node's key missing for a whole
//!   TTL while its own Redis calls worked, or marked as stopped (a node that stops leaves
//!   `STOPPED_BEAT` there), submits `NodeGone` to each app that names it:
//!   that node's users then go through the grace period like dropped connections (their
//!   channels held, then left), and its grace timers are adopted (an invitation's expiry
//!   runs on the callee's node as well as the caller's: `hub/invitations.rs`).
//! - **History** goes to one sorted set per conversation (`rtm:h:<app>:<conv>`, scored by
//!   message id, trimmed to the cap) on the conversation's Redis: written with the message
//!   itself by `feed.rs`, or for a cached message by a writer task per Redis.
//! - **Redis away**: requests that need it are answered with their family's failure code
//!   after at most [`SUBMIT_TIMEOUT`]; reads of this node's copy go on; every task
//!   reconnects by itself ([`ConnectionManager`]) and the readers resume where they were.
//!   One Redis of several away fails only the apps, conversations and users it holds.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::protocol::HistoryMessage;
use crate::server::config::RedisSettings;
use crate::server::outbox::ConnHandle;
use crate::server::store::HistoryQuery;

use super::invitations::ExpiryWatch;
use super::{
    BanStore, BoxFuture, Change, ChannelAttributeStore, Engine, EventFeedStore, InvitationStore,
    MessageStore, Node, NodeId, NodeRef, Outcome, PeerRoute, ReadError, RoutedMessage, Submitted,
    SubscriptionStore, Unavailable, UserAttributeStore,
};

mod apps;
mod bans;
mod batch;
mod channel_attributes;
mod event_feeds;
mod feed;
mod invitations;
mod node_events;
mod retried;
pub mod shards;
mod subscriptions;
mod user_attributes;

use apps::{AppKeys, Apps, SUBMIT_LUA};
use batch::Router;
use shards::{shard_of, Shard};

/// A request gives up on Redis after this long and is answered with its family's failure.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a node says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A node silent this long (its key expired) is gone.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(5);
/// Changes of an app between snapshots (by default).
pub const SNAPSHOT_EVERY: u64 = 20_000;
/// Longest time between snapshots while changes come.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
/// Changes waiting to be appended at most (past it a request is answered at once with
/// its family's failure: Redis is not keeping up).
const SUBMIT_QUEUE: usize = 65_536;
/// Changes appended in one pipeline at most.
const SUBMIT_BATCH: usize = 512;
/// Pipelines of changes in flight at once.
const SUBMIT_PIPELINES: usize = 8;
/// Changes read from the stream per round trip.
const READ_BATCH: usize = 1024;
/// How long one blocking read waits for changes.
const READ_BLOCK_MS: u64 = 1000;
/// History writes queued for the writer task at most (past it, a write is lost and logged).
const HISTORY_QUEUE: usize = 65_536;
/// Close code for connections of a node that lost its place (WebSocket "service restart").
const CLOSE_RELOAD: u16 = 1012;

/// One change in the stream, with where it comes from.
#[derive(Debug, Serialize, Deserialize)]
struct StreamEntry {
    /// Origin node.
    o: NodeId,
    /// The origin's request number (its waiter).
    r: u64,
    /// The origin's wall clock, unix ms.
    t: u64,
    c: Change,
}

/// The Redis key names.
#[derive(Debug)]
struct Keys {
    store: String,
    node_prefix: String,
    history_prefix: String,
    /// Each Redis' message id counter (`shards.rs`).
    mseq: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Keys {
            store: format!("{prefix}store"),
            node_prefix: format!("{prefix}node:"),
            history_prefix: format!("{prefix}h:"),
            mseq: format!("{prefix}mseq"),
        }
    }

    fn node(&self, node: NodeId) -> String {
        format!("{}{node}", self.node_prefix)
    }

    fn history(&self, app: &str, conv: &str) -> String {
        format!("{}{app}:{conv}", self.history_prefix)
    }
}

/// A request waiting for its change to be applied.
struct Waiter {
    outcome: oneshot::Sender<Outcome>,
    conn: Option<ConnHandle>,
    since: Instant,
}

struct HistoryWrite {
    key: String,
    message: HistoryMessage,
    keep: u32,
}

/// Several nodes on one Redis. See the module header.
pub struct RedisEngine {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeId,
    name: String,
    keys: Keys,
    /// The Redis servers, the first carrying the heartbeats (see `shards.rs`).
    shards: Vec<Shard>,
    /// The first Redis: heartbeats.
    conn: ConnectionManager,
    /// The apps this node holds, each with its stream (`apps.rs`).
    apps: Apps,
    /// Messages straight to the nodes concerned (`feed.rs`).
    feeds: feed::Feeds,
    /// Each Redis' store id (the login reply's `store` joins them).
    shard_stores: Mutex<Vec<String>>,
    /// Changes on their way to their app's stream, sent in pipelines by one task per
    /// Redis.
    outgoing: Vec<mpsc::Sender<Outgoing>>,
    outgoing_queue: Mutex<Vec<mpsc::Receiver<Outgoing>>>,
    waiters: Mutex<HashMap<u64, Waiter>>,
    next_request: AtomicU64,
    store_id: Mutex<String>,
    /// History writes, one queue per Redis.
    history: Vec<mpsc::Sender<HistoryWrite>>,
    history_queue: Mutex<Vec<mpsc::Receiver<HistoryWrite>>>,
    stop: watch::Sender<bool>,
    /// Calls owed to Redis, sent until taken (`retried.rs`).
    retried: retried::Retried,
    /// Feed events on their way to their app's Redis (`event_feeds.rs`).
    event_feeds: event_feeds::FeedQueue,
    /// Events for users on other nodes, in order (`node_events.rs`).
    node_events: node_events::NodeEvents,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("node", &self.inner.node)
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum RedisEngineError {
    #[error("redis at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("no redis server given")]
    NoServer,
}

impl RedisEngine {
    /// Connects to the Redis servers of `settings`. The node holds no app yet: each
    /// loads when its first user here comes (`apps.rs`).
    pub async fn connect(settings: &RedisSettings) -> Result<Self, RedisEngineError> {
        let name = settings.node.as_str();
        if settings.urls.is_empty() {
            return Err(RedisEngineError::NoServer);
        }
        let keys = Keys::new("rtm:");
        let mut shards = Vec::with_capacity(settings.urls.len());
        let mut shard_stores = Vec::with_capacity(settings.urls.len());
        for (index, url) in settings.urls.iter().enumerate() {
            let failed = |source| RedisEngineError::Redis {
                url: url.clone(),
                source,
            };
            let client = redis::Client::open(url.as_str()).map_err(failed)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(SUBMIT_TIMEOUT))
                .set_response_timeout(Some(SUBMIT_TIMEOUT))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            let mut conn = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(failed)?;
            shard_stores.push(store_id(&mut conn, &keys).await.map_err(failed)?);
            let router = Router::start(conn.clone(), keys.mseq.clone(), settings.urls.len(), index);
            shards.push(Shard {
                index,
                url: url.clone(),
                client,
                conn,
                router,
                unanswered_at: Arc::default(),
            });
        }
        let first = shards[0].clone();
        // Below 2^53 (exact in any JSON reader) and never 0 (the single node's id).
        let node = (rand::random::<u64>() >> 11).max(1);
        let (history, history_queue): (Vec<_>, Vec<_>) =
            shards.iter().map(|_| mpsc::channel(HISTORY_QUEUE)).unzip();
        let (outgoing, outgoing_queue): (Vec<_>, Vec<_>) =
            shards.iter().map(|_| mpsc::channel(SUBMIT_QUEUE)).unzip();
        tracing::info!(urls = ?settings.urls, name, node, "joined the cluster");
        let engine = RedisEngine {
            inner: Arc::new(Inner {
                node,
                name: name.to_string(),
                apps: Apps::new("rtm:", shards.len(), settings.snapshot_every.max(1)),
                keys,
                feeds: feed::Feeds::new(shards.len()),
                conn: first.conn,
                shards,
                store_id: Mutex::new(shard_stores.join("+")),
                shard_stores: Mutex::new(shard_stores),
                outgoing,
                outgoing_queue: Mutex::new(outgoing_queue),
                waiters: Mutex::default(),
                next_request: AtomicU64::new(1),
                history,
                history_queue: Mutex::new(history_queue),
                stop: watch::channel(false).0,
                retried: retried::Retried::default(),
                event_feeds: event_feeds::FeedQueue::default(),
                node_events: node_events::NodeEvents::default(),
                tasks: Mutex::default(),
            }),
        };
        Ok(engine)
    }
}

/// The id of the data in this Redis: made once (`SET NX`), new after Redis lost its data.
async fn store_id(conn: &mut ConnectionManager, keys: &Keys) -> redis::RedisResult<String> {
    let fresh = format!("redis-{:016x}", rand::random::<u64>());
    let _: Value = redis::cmd("SET")
        .arg(&keys.store)
        .arg(&fresh)
        .arg("NX")
        .query_async(conn)
        .await?;
    redis::cmd("GET").arg(&keys.store).query_async(conn).await
}

impl Engine for RedisEngine {
    fn node(&self) -> NodeId {
        self.inner.node
    }

    fn submit(&self, node: &dyn Node, change: Change, conn: Option<ConnHandle>) -> Submitted {
        let inner = &self.inner;
        let app = change.app().to_string();
        let request = inner.next_request.fetch_add(1, Ordering::Relaxed);
        let entry = StreamEntry {
            o: inner.node,
            r: request,
            t: crate::protocol::now_ms(),
            c: change,
        };
        let data = match serde_json::to_string(&entry) {
            Ok(data) => data,
            Err(e) => {
                tracing::error!(error = %e, "a change cannot be encoded");
                return Submitted::Applied(Outcome::Unavailable);
            }
        };
        let (outcome, applied) = oneshot::channel();
        lock(&inner.waiters).insert(
            request,
            Waiter {
                outcome,
                conn,
                since: Instant::now(),
            },
        );
        apps::submit(inner, node, &app, request, data);
        Submitted::Pending(applied)
    }

    fn caught_up(&self, node: &dyn Node, app: Option<&str>) -> Option<BoxFuture<()>> {
        Some(apps::caught_up(&self.inner, node, app))
    }

    fn lag(&self) -> Option<BoxFuture<Option<u64>>> {
        let inner = Arc::clone(&self.inner);
        Some(Box::pin(async move { apps::lag(&inner).await }))
    }

    fn next_message_id(&self) -> u64 {
        // Every change applied here carries its number (`apply_entries`).
        tracing::error!("redis engine: a message without an id");
        0
    }

    fn messages(&self) -> &dyn MessageStore {
        self
    }

    fn user_attributes(&self) -> &dyn UserAttributeStore {
        self
    }

    fn channel_attributes(&self) -> &dyn ChannelAttributeStore {
        self
    }

    fn event_feeds(&self) -> &dyn EventFeedStore {
        self
    }

    fn invitations(&self) -> &dyn InvitationStore {
        self
    }

    fn subscriptions(&self) -> &dyn SubscriptionStore {
        self
    }

    fn bans(&self) -> &dyn BanStore {
        self
    }

    fn deliver_on(&self, node: NodeId, to: (&str, &str), line: &str, expiry: Option<ExpiryWatch>) {
        node_events::send(&self.inner, node, to, line, expiry);
    }

    fn queue_depth(&self) -> usize {
        let outgoing = &self.inner.outgoing;
        outgoing
            .iter()
            .map(|queue| queue.max_capacity() - queue.capacity())
            .sum()
    }

    fn store_id(&self) -> String {
        lock(&self.inner.store_id).clone()
    }

    fn start(&self, hub: &dyn Node) {
        let inner = &self.inner;
        let mut tasks = lock(&inner.tasks);
        tasks.push(tokio::spawn(keep_alive(Arc::clone(inner), hub.to_ref())));
        for (shard, queue) in std::mem::take(&mut *lock(&inner.outgoing_queue))
            .into_iter()
            .enumerate()
        {
            tasks.push(tokio::spawn(send_changes(Arc::clone(inner), shard, queue)));
            tasks.push(tokio::spawn(apps::read_streams(
                Arc::clone(inner),
                hub.to_ref(),
                shard,
            )));
        }
        for (shard, queue) in std::mem::take(&mut *lock(&inner.history_queue))
            .into_iter()
            .enumerate()
        {
            tasks.push(tokio::spawn(write_history(Arc::clone(inner), shard, queue)));
        }
        for shard in 0..inner.shards.len() {
            tasks.push(tokio::spawn(feed::listen(
                Arc::clone(inner),
                hub.to_ref(),
                shard,
            )));
        }
        tasks.push(tokio::spawn(feed::sweep(Arc::clone(inner), hub.to_ref())));
        tasks.push(tokio::spawn(retried::run(Arc::clone(inner))));
        tasks.push(tokio::spawn(event_feeds::run(Arc::clone(inner))));
        tasks.push(tokio::spawn(node_events::run(Arc::clone(inner))));
    }

    fn stop(&self) -> BoxFuture<()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            // What this node submitted last (its connections' ends) is applied here first,
            // so that what applying it does on its origin (the feed events) is done.
            let deadline = Instant::now() + SUBMIT_TIMEOUT;
            while !lock(&inner.waiters).is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            inner.stop.send_replace(true);
            let tasks = std::mem::take(&mut *lock(&inner.tasks));
            for task in tasks {
                let _ = task.await;
            }
            // Gone on purpose: the others take over its users' grace at their next beat,
            // not a whole TTL after the key went (`watch_nodes`).
            let mut conn = inner.conn.clone();
            let _: Result<Value, _> = redis::cmd("SET")
                .arg(inner.keys.node(inner.node))
                .arg(STOPPED_BEAT)
                .arg("PX")
                .arg(HEARTBEAT_TTL.as_millis() as u64)
                .query_async(&mut conn)
                .await;
        })
    }

    fn failed(&self) -> BoxFuture<()> {
        // Redis going away is survived (requests fail, tasks reconnect): never fatal.
        Box::pin(std::future::pending())
    }

    fn route_peer(&self, hub: &dyn Node, send: &RoutedMessage<'_>) -> Option<BoxFuture<PeerRoute>> {
        Some(feed::route_peer(&self.inner, hub, send))
    }

    fn ack_routed(&self, app: &str, user: &str, message_id: u64) -> bool {
        feed::ack_routed(&self.inner, app, user, message_id)
    }

    fn route_channel(
        &self,
        hub: &dyn Node,
        send: &RoutedMessage<'_>,
    ) -> Option<BoxFuture<Outcome>> {
        Some(feed::route_channel(&self.inner, hub, send))
    }

    fn watch_channel(&self, app: &str, channel: &str) -> Option<BoxFuture<bool>> {
        Some(feed::watch_channel(&self.inner, app, channel))
    }
}

/// A change encoded for its app's stream, and the request that waits for it.
struct Outgoing {
    request: u64,
    data: String,
    /// Its app's keys.
    keys: Arc<AppKeys>,
}

/// Answers a waiting request with `Unavailable` (its change did not reach Redis).
fn fail_waiter(inner: &Inner, request: u64) {
    if let Some(waiter) = lock(&inner.waiters).remove(&request) {
        let _ = waiter.outcome.send(Outcome::Unavailable);
    }
}

/// Appends queued changes to the stream, as many as are queued in one pipeline (one
/// write, one round trip, and with `appendfsync always` one fsync for the lot). `EVAL`
/// rather than `EVALSHA`: Redis caches the compiled script either way, and a restarted
/// Redis never answers NOSCRIPT in the middle of a pipeline.
async fn send_changes(inner: Arc<Inner>, shard: usize, mut queue: mpsc::Receiver<Outgoing>) {
    use futures_util::stream::{FuturesUnordered, StreamExt as _};
    let mut complaint = Complaint::new("appending changes");
    // Pipelines in flight: the next batch need not wait for the last one's answer (and
    // its fsync). A pipeline's commands are queued on the connection when its future is
    // first polled, which is in the order they are pushed: changes keep their order.
    let mut in_flight = FuturesUnordered::new();
    loop {
        let mut batch = Vec::with_capacity(SUBMIT_BATCH);
        tokio::select! {
            // Pipelines already pushed are polled (and so queued) before the next is made.
            biased;
            Some((sent, batch)) = in_flight.next() => {
                let (sent, batch): (Result<redis::RedisResult<()>, _>, Vec<Outgoing>) = (sent, batch);
                let failure = match sent {
                    Ok(Ok(())) => {
                        complaint.worked();
                        continue;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".to_string(),
                };
                complaint.failed(&failure);
                for change in &batch {
                    fail_waiter(&inner, change.request);
                }
            }
            count = queue.recv_many(&mut batch, SUBMIT_BATCH), if in_flight.len() < SUBMIT_PIPELINES => {
                if count == 0 {
                    break;
                }
                let mut pipe = redis::pipe();
                for change in &batch {
                    pipe.cmd("EVAL")
                        .arg(SUBMIT_LUA)
                        .arg(2)
                        .arg(&change.keys.seq)
                        .arg(&change.keys.log)
                        .arg(&change.data)
                        .ignore();
                }
                let mut conn = inner.shards[shard].conn.clone();
                in_flight.push(async move {
                    let sent = tokio::time::timeout(SUBMIT_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
                    (sent, batch)
                });
            }
            () = stopped(&inner) => break,
        }
    }
    for waiting in std::mem::take(&mut *lock(&inner.waiters)).into_values() {
        let _ = waiting.outcome.send(Outcome::Unavailable);
    }
}

/// Resolves when the engine stops.
async fn stopped(inner: &Inner) {
    let mut stop = inner.stop.subscribe();
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Sleeps `delay` unless the engine stops first; false if it stopped.
async fn pause(inner: &Inner, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stopped(inner) => false,
    }
}

/// Logs a repeated failure at most once per 10 s.
struct Complaint {
    what: &'static str,
    last: Option<Instant>,
    count: u64,
}

impl Complaint {
    fn new(what: &'static str) -> Self {
        Complaint {
            what,
            last: None,
            count: 0,
        }
    }

    fn failed(&mut self, error: &dyn std::fmt::Display) {
        self.count += 1;
        if self
            .last
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(error = %error, times = self.count, "redis engine: {} failed", self.what);
            self.last = Some(Instant::now());
            self.count = 0;
        }
    }

    fn worked(&mut self) {
        if self.last.take().is_some() {
            tracing::info!("redis engine: {} works again", self.what);
        }
        self.count = 0;
    }
}

/// Attributes read from `key`'s hash (`what` names them in the log): an unreadable value
/// is logged and answered as the store being unavailable, the family's failure.
fn attributes_from<T: serde::de::DeserializeOwned>(
    json: &str,
    key: &str,
    what: &'static str,
) -> Result<T, Unavailable> {
    serde_json::from_str(json).map_err(|error| {
        tracing::error!(%error, key, "unreadable {what}");
        Unavailable
    })
}

/// Runs a Redis call with the engine's timeout; a failure is logged and `Unavailable`.
async fn within_timeout<T>(
    what: &'static str,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Unavailable> {
    match tokio::time::timeout(SUBMIT_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::warn!(%error, "redis engine: {what} failed");
            Err(Unavailable)
        }
        Err(_) => {
            tracing::warn!("redis engine: {what} timed out");
            Err(Unavailable)
        }
    }
}

/// Whether Redis `shard` lost its data since this node last looked (its store id is new:
/// it lost the streams and snapshots of its apps and hands out message ids again from the
/// start). If so, records the new id (the login reply's `store` joins them all), forgets
/// what this node counted on there (the feed events queued for it, and the ids its
/// channel topics there handed over: lower ids come now), and marks every app it holds
/// for loading again, at once; returns those apps, which the caller loads again
/// (`apps::load_again`: connections closed with 1012, a new `store`). Asked by the
/// heartbeat, by a subscription that came back, and by an app whose counter went back,
/// so that whichever sees it first starts over, once.
async fn store_lost(inner: &Inner, shard: usize) -> Option<Vec<String>> {
    let mut conn = inner.shards[shard].conn.clone();
    let Ok(Ok(store)) =
        tokio::time::timeout(SUBMIT_TIMEOUT, store_id(&mut conn, &inner.keys)).await
    else {
        return None;
    };
    {
        let mut stores = lock(&inner.shard_stores);
        if stores[shard] == store {
            return None;
        }
        stores[shard] = store;
        *lock(&inner.store_id) = stores.join("+");
    }
    tracing::warn!(
        url = inner.shards[shard].url,
        "redis engine: a redis lost its data; starting over"
    );
    event_feeds::forget_queued_for(&inner.event_feeds, shard);
    feed::forget_handed_over(inner, shard);
    // At once, before the caller's load gets to them: no stream is read on meanwhile.
    Some(apps::mark_all_reloading(inner))
}

/// Checks that the Redis servers still hold their data ([`store_lost`]).
async fn check_shard_stores(inner: &Arc<Inner>, hub: &NodeRef) {
    for shard in 0..inner.shards.len() {
        if let Some(marked) = store_lost(inner, shard).await {
            apps::load_again(inner, hub, marked).await;
        }
    }
}

/// Beats, watches the other nodes' beats, and answers requests whose change never came
/// back in time.
async fn keep_alive(inner: Arc<Inner>, hub: NodeRef) {
    let mut complaint = Complaint::new("the heartbeat");
    // Since when each node the state names has been found without a heartbeat.
    let mut silent: HashMap<NodeId, Instant> = HashMap::new();
    let mut conn = inner.conn.clone();
    loop {
        let beat: redis::RedisResult<Value> = redis::cmd("SET")
            .arg(inner.keys.node(inner.node))
            .arg(&inner.name)
            .arg("PX")
            .arg(HEARTBEAT_TTL.as_millis() as u64)
            .query_async(&mut conn)
            .await;
        match beat {
            Ok(_) => {
                complaint.worked();
                watch_nodes(&inner, &*hub, &mut conn, &mut silent).await;
                check_shard_stores(&inner, &hub).await;
            }
            Err(e) => {
                complaint.failed(&e);
                // Blind to the others while Redis is away: judge nobody on it.
                silent.clear();
            }
        }
        expire_waiters(&inner);
        apps::forget_unused(&inner, &*hub);
        if !pause(&inner, HEARTBEAT_EVERY).await {
            return;
        }
    }
}

/// Submits `NodeGone`, to each app naming it, for every node the state names that has not
/// beaten for a TTL.
async fn watch_nodes(
    inner: &Inner,
    hub: &dyn Node,
    conn: &mut ConnectionManager,
    silent: &mut HashMap<NodeId, Instant>,
) {
    let mut named = hub.nodes_named();
    named.remove(&inner.node);
    silent.retain(|node, _| named.contains_key(node));
    if named.is_empty() {
        return;
    }
    let nodes: Vec<NodeId> = named.keys().copied().collect();
    let keys: Vec<String> = nodes.iter().map(|n| inner.keys.node(*n)).collect();
    let alive: redis::RedisResult<Vec<Option<String>>> =
        redis::cmd("MGET").arg(&keys).query_async(conn).await;
    let Ok(alive) = alive else {
        silent.clear();
        return;
    };
    let now = Instant::now();
    for (node, beat) in nodes.into_iter().zip(alive) {
        let stopped = beat.as_deref() == Some(STOPPED_BEAT);
        if beat.is_some() && !stopped {
            silent.remove(&node);
            continue;
        }
        let since = *silent.entry(node).or_insert(now);
        if stopped || now.duration_since(since) >= HEARTBEAT_TTL {
            tracing::warn!(
                node,
                "redis engine: a node stopped beating; its users are gone"
            );
            silent.remove(&node);
            for app in named.remove(&node).unwrap_or_default() {
                hub.submit_detached(Change::NodeGone { app, node });
            }
        }
    }
}

/// What a node that stops (`Engine::stop`) leaves in its heartbeat key for a TTL: the
/// others declare it gone at once instead of waiting for a missing key to stay missing.
/// No node's name (the key's value while it beats) holds a NUL: `--node-id` comes from
/// the command line, which cannot, and the default name is the host's and the port.
const STOPPED_BEAT: &str = "\0stopped";

/// Answers requests whose change was appended but has not come back in time.
fn expire_waiters(inner: &Inner) {
    let limit = SUBMIT_TIMEOUT * 3;
    let mut waiters = lock(&inner.waiters);
    let expired: Vec<u64> = waiters
        .iter()
        .filter(|(_, w)| w.since.elapsed() >= limit)
        .map(|(request, _)| *request)
        .collect();
    for request in expired {
        if let Some(waiter) = waiters.remove(&request) {
            let _ = waiter.outcome.send(Outcome::Unavailable);
        }
    }
}

/// Writes history in pipelines of what is queued.
async fn write_history(inner: Arc<Inner>, shard: usize, mut queue: mpsc::Receiver<HistoryWrite>) {
    let mut complaint = Complaint::new("writing history");
    let mut conn = inner.shards[shard].conn.clone();
    let mut batch = Vec::with_capacity(256);
    loop {
        batch.clear();
        let received = tokio::select! {
            count = queue.recv_many(&mut batch, 256) => count,
            () = stopped(&inner) => {
                // Write what is queued, then end.
                queue.close();
                queue.recv_many(&mut batch, HISTORY_QUEUE).await
            }
        };
        if received == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        for write in &batch {
            let Ok(json) = serde_json::to_string(&write.message) else {
                continue;
            };
            pipe.zadd(&write.key, json, write.message.message_id)
                .ignore()
                .zremrangebyrank(&write.key, 0, -(write.keep as isize + 1))
                .ignore();
        }
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => complaint.worked(),
            Err(e) => complaint.failed(&e),
        }
        if *inner.stop.borrow() && queue.is_closed() && queue.is_empty() {
            return;
        }
    }
}

impl MessageStore for RedisEngine {
    fn append_history(&self, app: &str, conv: &str, message: HistoryMessage, keep: u32) {
        let write = HistoryWrite {
            key: self.inner.keys.history(app, conv),
            message,
            keep,
        };
        let shard = shard_of(self.inner.shards.len(), app, conv);
        if self.inner.history[shard].try_send(write).is_err() {
            tracing::warn!("redis engine: history queue full; a message is not kept");
        }
    }

    fn cache_offline(
        &self,
        _app: &str,
        _receiver: &str,
        _message: HistoryMessage,
        _cap: usize,
    ) -> oneshot::Receiver<()> {
        // The change that cached it is in Redis already.
        let (done, committed) = oneshot::channel();
        let _ = done.send(());
        committed
    }

    fn drop_offline(&self, _app: &str, _receiver: &str, _message_ids: Vec<u64>) {
        // The ack that dropped it is in Redis already.
    }

    fn history(
        &self,
        app: &str,
        conv: &str,
        query: HistoryQuery,
    ) -> BoxFuture<Result<Vec<HistoryMessage>, ReadError>> {
        Box::pin(read_history(&self.inner, app, conv, query))
    }
}

/// A page of `conv`'s history from the Redis that holds it.
fn read_history(
    inner: &Inner,
    app: &str,
    conv: &str,
    query: HistoryQuery,
) -> impl Future<Output = Result<Vec<HistoryMessage>, ReadError>> + Send + 'static {
    let key = inner.keys.history(app, conv);
    let shard = &inner.shards[shard_of(inner.shards.len(), app, conv)];
    let (asking, mut conn) = (shard.asking(), shard.conn.clone());
    async move {
        // A Redis that just left a read unanswered: fail at once, not after another wait.
        let asking = asking.ok_or(ReadError::Timeout)?;
        let before = query
            .before
            .map_or_else(|| "+inf".to_string(), |id| format!("({id}"));
        // With `after`, the oldest after it; otherwise the newest before `before`.
        let mut zrange = redis::cmd("ZRANGE");
        zrange.arg(&key);
        if let Some(after) = query.after {
            zrange.arg(format!("({after}")).arg(&before).arg("BYSCORE");
        } else {
            zrange.arg(&before).arg("-inf").arg("BYSCORE").arg("REV");
        }
        zrange.arg("LIMIT").arg(0).arg(query.limit);
        let read = zrange.query_async::<Vec<String>>(&mut conn);
        let answer = tokio::time::timeout(SUBMIT_TIMEOUT, read)
            .await
            .map_err(|_| ReadError::Timeout)?;
        let entries = answer?;
        asking.answered();
        let mut messages = entries
            .iter()
            .map(|json| serde_json::from_str::<HistoryMessage>(json))
            .collect::<Result<Vec<_>, _>>()?;
        if query.after.is_none() {
            messages.reverse();
        }
        Ok(messages)
    }
}

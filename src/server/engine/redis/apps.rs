//! The shared state's order, one stream per app: a node holds an app's state only while
//! it has a use for it, and reads only the streams of the apps it holds.
//!
//! - **Keys**, on the Redis the app hashes to (`shards.rs`): `rtm:app:<app>:log` (the
//!   stream of its changes), `rtm:app:<app>:seq` (their counter) and
//!   `rtm:app:<app>:snapshot` (the latest snapshot of the app's state, with the stream
//!   position it was taken at). Apps spread over the Redis servers of the list; nothing
//!   of the shared state is on a Redis for every app.
//! - **Loading**: the first change submitted for an app, or the first read of it, starts
//!   loading it: its snapshot, then its stream from there. Changes submitted meanwhile
//!   wait, in order, and are appended once it is loaded; reads wait for it. A node that
//!   starts holds nothing: there is no world snapshot.
//! - **Reading**: one task per Redis reads the streams of the apps held there with one
//!   blocking `XREAD`; when that set changes it starts its read over on a new
//!   connection (a blocked read holds its connection).
//! - **Snapshots**: after [`super::SNAPSHOT_EVERY`] changes of an app (or
//!   [`super::SNAPSHOT_INTERVAL`] with changes), the node that applied them stores the
//!   app's state and trims its stream up to the previous snapshot.
//! - **Forgetting**: an app this node has not used for [`FORGET_AFTER`] and has no use
//!   for (no connection to it, no timer of it to run: the hub judges,
//!   `SharedState::forget_if_unused`) is dropped, and its stream no longer read.
//! - **Losing the place**: a stream that does not follow on (its counter went back: Redis
//!   lost its data; changes missing: this node fell behind a trim) reloads that app: its
//!   connections here close with 1012 and its clients log in again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::server::engine::{BoxFuture, Node, NodeRef, SharedState, Stamp};

use super::shards::shard_of_app;
use super::{
    fail_waiter, lock, pause, stopped, Complaint, Inner, Outgoing, StreamEntry, CLOSE_RELOAD,
    READ_BATCH, READ_BLOCK_MS, SNAPSHOT_INTERVAL, SUBMIT_TIMEOUT,
};

/// An app unused this long, with no use left on this node, is forgotten.
/// Longer than a change can wait for its outcome (`expire_waiters`), so no change in
/// flight is lost with the app.
pub const FORGET_AFTER: Duration = Duration::from_secs(10);
/// Changes of an app that wait for it to load at most (past it: the family's failure).
const HELD_MAX: usize = 4096;

/// Appends a change with the next number, atomically.
pub const SUBMIT_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], '*', 'n', n, 'd', ARGV[1])
return n
";

/// Stores a snapshot if newer than the stored one, then trims the stream up to the
/// previous snapshot's position.
const SNAPSHOT_LUA: &str = r"
local current = redis.call('HGET', KEYS[1], 'n')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
local previous = redis.call('HGET', KEYS[1], 'id')
redis.call('HSET', KEYS[1], 'n', ARGV[1], 'id', ARGV[2], 'state', ARGV[3])
if previous then redis.call('XTRIM', KEYS[2], 'MINID', previous) end
return 1
";

/// The keys of one app's order.
#[derive(Debug)]
pub struct AppKeys {
    pub log: String,
    pub seq: String,
    pub snapshot: String,
}

impl AppKeys {
    fn new(prefix: &str, app: &str) -> Self {
        AppKeys {
            log: format!("{prefix}app:{app}:log"),
            seq: format!("{prefix}app:{app}:seq"),
            snapshot: format!("{prefix}app:{app}:snapshot"),
        }
    }
}

/// Where this node is in an app's stream.
#[derive(Debug, Clone)]
struct Position {
    /// The last stream id applied ("0-0" before the first).
    id: String,
    /// The number of the last change applied (0 before the first).
    n: u64,
}

impl Position {
    fn start() -> Self {
        Position {
            id: "0-0".into(),
            n: 0,
        }
    }
}

/// One app this node holds, or is loading.
struct AppStream {
    shard: usize,
    keys: Arc<AppKeys>,
    /// Changes submitted while the app loads, in order (`None`: loaded).
    held: Option<Vec<Outgoing>>,
    position: Position,
    /// The number of the last change applied, for reads and messages waiting on it.
    applied: watch::Sender<u64>,
    /// `None` while loading, then whether it loaded.
    loaded: watch::Sender<Option<bool>>,
    /// When the next snapshot is due.
    snapshot_at_n: u64,
    snapshot_at: Instant,
    /// Last submitted to or read.
    used: Instant,
}

/// The apps this node holds. See the module header.
pub struct Apps {
    prefix: String,
    shards: usize,
    snapshot_every: u64,
    held: Mutex<HashMap<String, AppStream>>,
    /// Per Redis: bumped when the apps read there change.
    changed: Vec<watch::Sender<u64>>,
}

impl Apps {
    pub fn new(prefix: &str, shards: usize, snapshot_every: u64) -> Self {
        Apps {
            prefix: prefix.to_string(),
            shards,
            snapshot_every,
            held: Mutex::default(),
            changed: (0..shards).map(|_| watch::channel(0).0).collect(),
        }
    }

    /// The Redis holding `app`'s order.
    pub fn shard_of_app(&self, app: &str) -> usize {
        shard_of_app(self.shards, app)
    }

    /// The number of the last change of `app` applied here (0: none, or not held).
    pub fn applied(&self, app: &str) -> u64 {
        lock(&self.held)
            .get(app)
            .map_or(0, |stream| *stream.applied.borrow())
    }

    fn changed(&self, shard: usize) {
        self.changed[shard].send_modify(|generation| *generation += 1);
    }

    /// Starts loading `app` unless held; the loaded-watch to wait on.
    fn hold(
        &self,
        inner: &Arc<Inner>,
        hub: impl FnOnce() -> NodeRef,
        app: &str,
        first: Option<Outgoing>,
    ) -> watch::Receiver<Option<bool>> {
        let mut held = lock(&self.held);
        if let Some(stream) = held.get_mut(app) {
            stream.used = Instant::now();
            return stream.loaded.subscribe();
        }
        let shard = self.shard_of_app(app);
        let now = Instant::now();
        let stream = AppStream {
            shard,
            keys: Arc::new(AppKeys::new(&self.prefix, app)),
            held: Some(first.into_iter().collect()),
            position: Position::start(),
            applied: watch::channel(0).0,
            loaded: watch::channel(None).0,
            snapshot_at_n: 0,
            snapshot_at: now,
            used: now,
        };
        let loaded = stream.loaded.subscribe();
        held.insert(app.to_string(), stream);
        drop(held);
        tokio::spawn(load(Arc::clone(inner), hub(), app.to_string(), false));
        loaded
    }
}

/// Puts a change in `app`'s order: appended at once if the app is loaded, after it loads
/// otherwise (loading it if this node does not hold it).
pub fn submit(inner: &Arc<Inner>, node: &dyn Node, app: &str, request: u64, data: String) {
    let apps = &inner.apps;
    {
        let mut held = lock(&apps.held);
        if let Some(stream) = held.get_mut(app) {
            stream.used = Instant::now();
            let outgoing = Outgoing {
                request,
                data,
                keys: Arc::clone(&stream.keys),
            };
            match &mut stream.held {
                // Under the lock, so that the app's changes queue in the order submitted.
                None => return send(inner, stream.shard, outgoing),
                Some(waiting) if waiting.len() < HELD_MAX => return waiting.push(outgoing),
                Some(_) => {
                    drop(held);
                    tracing::warn!(
                        app,
                        "redis engine: too many changes wait for an app to load"
                    );
                    return fail_waiter(inner, outgoing.request);
                }
            }
        }
    }
    let outgoing = Outgoing {
        request,
        data,
        keys: Arc::new(AppKeys::new(&apps.prefix, app)),
    };
    apps.hold(inner, || node.to_ref(), app, Some(outgoing));
}

/// Queues a change for its Redis' appender (`send_changes`).
fn send(inner: &Inner, shard: usize, outgoing: Outgoing) {
    let request = outgoing.request;
    if inner.outgoing[shard].try_send(outgoing).is_err() {
        tracing::warn!("redis engine: too many changes waiting for redis; one refused");
        fail_waiter(inner, request);
    }
}

/// Loads (or, `reload`, loads again) `app`: its snapshot, then its stream from there.
/// The changes held meanwhile go out in order; if Redis cannot be read they fail.
async fn load(inner: Arc<Inner>, hub: NodeRef, app: String, reload: bool) {
    let shard = inner.apps.shard_of_app(&app);
    let keys = AppKeys::new(&inner.apps.prefix, &app);
    let mut conn = inner.shards[shard].conn.clone();
    let read = tokio::time::timeout(
        SUBMIT_TIMEOUT,
        redis::cmd("HGETALL")
            .arg(&keys.snapshot)
            .query_async::<HashMap<String, String>>(&mut conn),
    )
    .await;
    let fields = match read {
        Ok(Ok(fields)) => fields,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_string(),
            };
            tracing::warn!(
                app,
                error = why,
                "redis engine: an app's state cannot be loaded"
            );
            return not_loaded(&inner, &app);
        }
    };
    let (mut snapshot, mut position) = (None, Position::start());
    if let (Some(n), Some(id), Some(state)) =
        (fields.get("n"), fields.get("id"), fields.get("state"))
    {
        if let Ok(n) = n.parse() {
            snapshot = Some(state.as_str());
            position = Position { id: id.clone(), n };
        } else {
            tracing::error!(
                app,
                n,
                "redis engine: a snapshot's position is unreadable; starting the app empty"
            );
        }
    }
    let mut replaced = Ok(());
    hub.with_state(&mut |state| {
        replaced = state.replace(&app, snapshot, CLOSE_RELOAD);
        if replaced.is_err() {
            // Replacing with nothing cannot fail to read.
            let _ = state.replace(&app, None, CLOSE_RELOAD);
        }
    });
    if let Err(why) = replaced {
        tracing::error!(
            app,
            why,
            "redis engine: an app's snapshot is unreadable; starting it empty"
        );
        position = Position::start();
    }
    let refused: Vec<u64> = {
        let mut held = lock(&inner.apps.held);
        let Some(stream) = held.get_mut(&app) else {
            return;
        };
        stream.snapshot_at_n = position.n;
        stream.snapshot_at = Instant::now();
        stream.applied.send_replace(position.n);
        stream.position = position;
        stream.loaded.send_replace(Some(true));
        // Queued before the lock is let go: a change submitted from now on goes after
        // them (a drop's `Disconnected` after the `Login` that waited for the load).
        let queue = &inner.outgoing[shard];
        stream
            .held
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|outgoing| {
                let request = outgoing.request;
                queue.try_send(outgoing).err().map(|_| request)
            })
            .collect()
    };
    if reload {
        tracing::info!(app, "redis engine: an app's state reloaded");
    }
    if !refused.is_empty() {
        tracing::warn!("redis engine: too many changes waiting for redis; some refused");
    }
    for request in refused {
        fail_waiter(&inner, request);
    }
    inner.apps.changed(shard);
}

/// `app` could not be loaded: what waited for it fails, and the next use tries again.
fn not_loaded(inner: &Inner, app: &str) {
    let Some(stream) = lock(&inner.apps.held).remove(app) else {
        return;
    };
    stream.loaded.send_replace(Some(false));
    for outgoing in stream.held.unwrap_or_default() {
        fail_waiter(inner, outgoing.request);
    }
    inner.apps.changed(stream.shard);
}

/// Marks `app` as being loaded again: its changes submitted meanwhile wait, and its
/// stream is not applied until the load reads on from the snapshot. False if this node
/// does not hold it.
fn mark_reloading(held: &mut HashMap<String, AppStream>, app: &str) -> bool {
    let Some(stream) = held.get_mut(app) else {
        return false;
    };
    stream.held.get_or_insert_with(Vec::new);
    stream.loaded.send_replace(None);
    true
}

/// Loads `app` again from its snapshot (this node lost its place in its stream); its
/// changes submitted meanwhile wait.
pub async fn reload(inner: &Arc<Inner>, hub: &NodeRef, app: &str) {
    if mark_reloading(&mut lock(&inner.apps.held), app) {
        load(Arc::clone(inner), Arc::clone(hub), app.to_string(), true).await;
    }
}

/// Marks every app this node holds as being loaded again, all at once (a Redis lost its
/// data: `store_lost`), so that none is read on meanwhile, found out of step, and
/// reloaded a second time (which would close again the connections of the clients that
/// had just logged in after the first). Returns their names.
pub fn mark_all_reloading(inner: &Inner) -> Vec<String> {
    let mut held = lock(&inner.apps.held);
    let names: Vec<String> = held.keys().cloned().collect();
    for app in &names {
        mark_reloading(&mut held, app);
    }
    names
}

/// Loads again the apps [`mark_all_reloading`] marked (a Redis lost its data: its
/// message ids start over).
pub async fn load_again(inner: &Arc<Inner>, hub: &NodeRef, marked: Vec<String>) {
    for app in marked {
        load(Arc::clone(inner), Arc::clone(hub), app, true).await;
    }
}

/// `Engine::caught_up`: waits until this node applied every change of `app` (`None`: of
/// every app it holds) appended so far, loading the app first if needed.
pub fn caught_up(inner: &Arc<Inner>, node: &dyn Node, app: Option<&str>) -> BoxFuture<()> {
    let waits: Vec<_> = match app {
        Some(app) => {
            let loaded = inner.apps.hold(inner, || node.to_ref(), app, None);
            vec![caught_up_on(Arc::clone(inner), app.to_string(), loaded)]
        }
        // Every app held (the metrics): none counts as used for it.
        None => lock(&inner.apps.held)
            .iter()
            .map(|(app, stream)| {
                let loaded = stream.loaded.subscribe();
                caught_up_on(Arc::clone(inner), app.clone(), loaded)
            })
            .collect(),
    };
    Box::pin(async move {
        let all = futures_util::future::join_all(waits);
        if tokio::time::timeout(SUBMIT_TIMEOUT, all).await.is_err() {
            tracing::debug!("redis engine: a read goes on without catching up");
        }
    })
}

async fn caught_up_on(inner: Arc<Inner>, app: String, mut loaded: watch::Receiver<Option<bool>>) {
    if !matches!(
        loaded.wait_for(Option::is_some).await.as_deref(),
        Ok(Some(true))
    ) {
        return;
    }
    let Some((shard, keys, mut applied)) = lock(&inner.apps.held)
        .get(&app)
        .map(|s| (s.shard, Arc::clone(&s.keys), s.applied.subscribe()))
    else {
        return;
    };
    let Some(target) = appended(inner.as_ref(), shard, &keys).await else {
        return;
    };
    let _ = applied.wait_for(|n| *n >= target).await;
}

/// How many changes `keys`' app has in its stream on Redis `shard` (`None`: Redis cannot
/// tell in time, or did not a moment ago: `Shard::asking`).
async fn appended(inner: &Inner, shard: usize, keys: &AppKeys) -> Option<u64> {
    let shard = &inner.shards[shard];
    let asking = shard.asking()?;
    let mut conn = shard.conn.clone();
    let mut get = redis::cmd("GET");
    get.arg(&keys.seq);
    let read = get.query_async::<Option<u64>>(&mut conn);
    // An error counts as no answer too: the client's own timeout may come first.
    let appended = tokio::time::timeout(SUBMIT_TIMEOUT, read)
        .await
        .ok()?
        .ok()?;
    asking.answered();
    Some(appended.unwrap_or(0))
}

/// Waits (a little) until this node has read `app`'s stream as far as `n`.
pub async fn read_as_far_as(inner: &Inner, app: &str, n: u64) {
    let Some(mut applied) = lock(&inner.apps.held)
        .get(app)
        .map(|s| s.applied.subscribe())
    else {
        return;
    };
    if *applied.borrow() >= n {
        return;
    }
    let _ = tokio::time::timeout(SUBMIT_TIMEOUT, applied.wait_for(|a| *a >= n)).await;
}

/// `Engine::lag`: changes appended to the streams of the apps held here and not applied
/// yet (`None`: Redis cannot tell).
pub async fn lag(inner: &Inner) -> Option<u64> {
    let held: Vec<(usize, Arc<AppKeys>, u64)> = lock(&inner.apps.held)
        .values()
        .filter(|s| s.held.is_none())
        .map(|s| (s.shard, Arc::clone(&s.keys), *s.applied.borrow()))
        .collect();
    // Asked at once: one connection per Redis pipelines them.
    let reads = held.iter().map(|(shard, keys, applied)| async move {
        Some(
            appended(inner, *shard, keys)
                .await?
                .saturating_sub(*applied),
        )
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .sum()
}

/// Forgets the apps unused for [`FORGET_AFTER`] that the hub has no use for any more.
pub fn forget_unused(inner: &Inner, hub: &dyn Node) {
    let idle: Vec<String> = lock(&inner.apps.held)
        .iter()
        .filter(|(_, s)| s.held.is_none() && s.used.elapsed() >= FORGET_AFTER)
        .map(|(app, _)| app.clone())
        .collect();
    for app in idle {
        let mut forgotten = None;
        hub.with_state(&mut |state| {
            // Under the state's lock: nothing of the app is applied meanwhile.
            let mut held = lock(&inner.apps.held);
            let idle = held
                .get(&app)
                .is_some_and(|s| s.held.is_none() && s.used.elapsed() >= FORGET_AFTER);
            if idle && state.forget_if_unused(&app) {
                forgotten = held.remove(&app).map(|s| s.shard);
            }
        });
        if let Some(shard) = forgotten {
            tracing::debug!(
                app,
                "redis engine: an app this node no longer serves is forgotten"
            );
            inner.apps.changed(shard);
        }
    }
}

/// A connection for blocking reads (never shared: a blocked read holds it).
async fn reader_connection(
    inner: &Inner,
    shard: usize,
) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(SUBMIT_TIMEOUT))
        .set_response_timeout(Some(Duration::from_millis(READ_BLOCK_MS) + SUBMIT_TIMEOUT));
    inner.shards[shard]
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Reads the streams of the apps held on Redis `shard`, in order, and applies every
/// change; see the module header.
pub async fn read_streams(inner: Arc<Inner>, hub: NodeRef, shard: usize) {
    let mut complaint = Complaint::new("reading the change streams");
    let mut connection: Option<MultiplexedConnection> = None;
    let mut changed = inner.apps.changed[shard].subscribe();
    loop {
        if *inner.stop.borrow() {
            return;
        }
        changed.mark_unchanged();
        // The apps read here, and where each is.
        let reading: Vec<(String, String, String)> = lock(&inner.apps.held)
            .iter()
            .filter(|(_, s)| s.shard == shard && s.held.is_none())
            .map(|(app, s)| (app.clone(), s.keys.log.clone(), s.position.id.clone()))
            .collect();
        if reading.is_empty() {
            tokio::select! {
                _ = changed.changed() => continue,
                () = stopped(&inner) => return,
            }
        }
        let mut conn = match connection.take() {
            Some(conn) => conn,
            None => match reader_connection(&inner, shard).await {
                Ok(conn) => conn,
                Err(e) => {
                    complaint.failed(&e);
                    if pause(&inner, Duration::from_millis(500)).await {
                        continue;
                    }
                    return;
                }
            },
        };
        let mut xread = redis::cmd("XREAD");
        xread
            .arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS");
        for (_, log, _) in &reading {
            xread.arg(log);
        }
        for (_, _, from) in &reading {
            xread.arg(from);
        }
        let read = tokio::select! {
            read = xread.query_async::<Value>(&mut conn) => read,
            // The apps changed: read again, on a new connection (this one is blocked).
            _ = changed.changed() => continue,
            () = stopped(&inner) => return,
        };
        let streams = match read.and_then(|value| parse_streams(&value)) {
            Ok(streams) => streams,
            Err(e) => {
                complaint.failed(&e);
                if pause(&inner, Duration::from_millis(500)).await {
                    continue;
                }
                return;
            }
        };
        complaint.worked();
        connection = Some(conn);
        for (log, entries) in streams {
            let Some((app, _, _)) = reading.iter().find(|(_, l, _)| *l == log) else {
                continue;
            };
            if let Err(reason) = apply_entries(&inner, &*hub, app, &entries) {
                // A counter gone back may be its Redis' data lost: then every app there
                // starts over, and the message ids with them.
                if let Some(marked) = super::store_lost(&inner, shard).await {
                    load_again(&inner, &hub, marked).await;
                    continue;
                }
                tracing::warn!(app, reason, "redis engine: reloading an app's state");
                reload(&inner, &hub, app).await;
                continue;
            }
            if let Some(keys) = snapshot_due(&inner, app) {
                take_snapshot(&inner, &*hub, app, &keys).await;
            }
        }
    }
}

/// One raw entry of a stream: its id, its number and its data.
type RawEntry = (String, u64, String);

/// The streams of an XREAD reply, each with its entries (none when the block timed out).
fn parse_streams(value: &Value) -> redis::RedisResult<Vec<(String, Vec<RawEntry>)>> {
    let bad = |what: &str| unexpected("unexpected XREAD reply", what);
    let mut parsed = Vec::new();
    match value {
        Value::Nil => {}
        Value::Array(streams) => {
            for stream in streams {
                let Value::Array(parts) = stream else {
                    return Err(bad("a stream is not an array"));
                };
                let key: String =
                    redis::from_redis_value_ref(parts.first().ok_or_else(|| bad("no key"))?)?;
                let entries = parts.get(1).ok_or_else(|| bad("no entries"))?;
                parsed.push((key, parse_stream_entries(entries)?));
            }
        }
        Value::Map(map) => {
            for (key, entries) in map {
                let key: String = redis::from_redis_value_ref(key)?;
                parsed.push((key, parse_stream_entries(entries)?));
            }
        }
        _ => return Err(bad("not an array")),
    }
    Ok(parsed)
}

/// A reply that is not what was asked for.
fn unexpected(kind: &'static str, what: &str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Parse, kind, what.to_string()))
}

fn parse_stream_entries(entries: &Value) -> redis::RedisResult<Vec<RawEntry>> {
    let bad = |what: &str| unexpected("unexpected stream entry", what);
    let Value::Array(entries) = entries else {
        return Err(bad("entries not an array"));
    };
    let mut parsed = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(parts) = entry else {
            return Err(bad("entry not an array"));
        };
        let id: String = redis::from_redis_value_ref(parts.first().ok_or_else(|| bad("no id"))?)?;
        let fields: HashMap<String, String> =
            redis::from_redis_value_ref(parts.get(1).ok_or_else(|| bad("no fields"))?)?;
        let n = fields
            .get("n")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("no number"))?;
        let data = fields.get("d").cloned().ok_or_else(|| bad("no data"))?;
        parsed.push((id, n, data));
    }
    Ok(parsed)
}

/// Applies a batch of `app`'s changes under one lock; `Err` when the stream does not
/// follow on from here.
fn apply_entries(
    inner: &Inner,
    hub: &dyn Node,
    app: &str,
    entries: &[RawEntry],
) -> Result<(), &'static str> {
    let mut result = Ok(());
    hub.with_state(&mut |state| result = apply_locked(inner, state, app, entries));
    result
}

/// [`apply_entries`] with the state locked.
fn apply_locked(
    inner: &Inner,
    state: &mut dyn SharedState,
    app: &str,
    entries: &[RawEntry],
) -> Result<(), &'static str> {
    let mut held = lock(&inner.apps.held);
    let Some(stream) = held.get_mut(app) else {
        // Forgotten meanwhile.
        return Ok(());
    };
    if stream.held.is_some() {
        // Being reloaded: the reload reads on from its snapshot.
        return Ok(());
    }
    let position = &mut stream.position;
    for (id, n, data) in entries {
        let (id, n) = (id.clone(), *n);
        if stream_id(&id) <= stream_id(&position.id) {
            // Read from where the app was before a reload that has moved it on since.
            continue;
        }
        if position.n > 0 && n <= position.n {
            return Err("the change counter went back: redis lost its data");
        }
        if position.n > 0 && n != position.n + 1 {
            return Err("changes are missing: this node fell behind a trim");
        }
        *position = Position { id, n };
        let entry: StreamEntry = match serde_json::from_str(data) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::error!(app, n, error = %e, "redis engine: a change cannot be read; skipped");
                continue;
            }
        };
        let waiter = (entry.o == inner.node)
            .then(|| lock(&inner.waiters).remove(&entry.r))
            .flatten();
        let stamp = Stamp {
            origin: entry.o,
            message_id: None,
            now_ms: entry.t,
            number: n,
        };
        let conn = waiter.as_ref().and_then(|w| w.conn.as_ref());
        let outcome = state.apply(entry.c, stamp, conn);
        if let Some(waiter) = waiter {
            let _ = waiter.outcome.send(outcome);
        }
    }
    stream.applied.send_replace(position.n);
    Ok(())
}

/// A stream entry id ("ms-seq") as numbers, to compare; a malformed one sorts first.
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// The keys of `app` if a snapshot of it is due.
fn snapshot_due(inner: &Inner, app: &str) -> Option<Arc<AppKeys>> {
    let held = lock(&inner.apps.held);
    let stream = held.get(app)?;
    let n = stream.position.n;
    let due = n >= stream.snapshot_at_n + inner.apps.snapshot_every
        || (n > stream.snapshot_at_n && stream.snapshot_at.elapsed() >= SNAPSHOT_INTERVAL);
    due.then(|| Arc::clone(&stream.keys))
}

/// Stores this node's copy of `app`'s state at its position (if newer than the stored
/// one) and trims its stream up to the previous snapshot.
async fn take_snapshot(inner: &Inner, hub: &dyn Node, app: &str, keys: &AppKeys) {
    let mut taken = None;
    hub.with_state(&mut |state| {
        // The position is read under the state's lock: the snapshot is the state there.
        let mut held = lock(&inner.apps.held);
        let Some(stream) = held.get_mut(app) else {
            return;
        };
        stream.snapshot_at_n = stream.position.n;
        stream.snapshot_at = Instant::now();
        taken = Some((stream.position.clone(), state.snapshot(app)));
    });
    let (position, state) = match taken {
        Some((position, Ok(json))) => (position, json),
        Some((_, Err(e))) => {
            tracing::error!(app, error = %e, "redis engine: an app's state cannot be encoded");
            return;
        }
        None => return,
    };
    let mut conn = inner.shards[inner.apps.shard_of_app(app)].conn.clone();
    let stored = Script::new(SNAPSHOT_LUA)
        .key(&keys.snapshot)
        .key(&keys.log)
        .arg(position.n)
        .arg(&position.id)
        .arg(state)
        .invoke_async::<i64>(&mut conn)
        .await;
    match stored {
        Ok(1) => tracing::debug!(app, n = position.n, "redis engine: snapshot stored"),
        Ok(_) => {}
        Err(e) => tracing::warn!(app, error = %e, "redis engine: snapshot not stored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_as_numbers() {
        assert!(stream_id("1700000000000-10") > stream_id("1700000000000-9"));
        assert!(stream_id("1700000000001-0") > stream_id("1700000000000-99"));
        assert_eq!(stream_id("0-0"), (0, 0));
        assert!(stream_id("5-1") > stream_id("0-0"));
    }
}

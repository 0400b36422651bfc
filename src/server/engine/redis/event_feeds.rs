//! The REST API's event feeds in Redis: one sorted set per app and feed
//! (`rtm:ev:<app>:users`, `rtm:ev:<app>:channels`) on the app's Redis, scored by each
//! event's place (`engine/event_feeds.rs`), so a feed hands its events out in the order
//! of its app's changes whichever node recorded them, and no node holds them.
//!
//! Recording goes through one task per node: events queue per feed (at most
//! [`FEED_CAP`] each, the oldest going first, as in the feed itself), and each round
//! sends every feed's queue in one script call per feed, pipelined per Redis; a Redis
//! away keeps its queues and is tried again every second (`retried::next_round`), so no
//! event is lost to an outage that ends, and a node that stops sends what it has first
//! (`RedisEngine::stop` waits for its own changes to be applied before). Lost: the events
//! of a change whose node had it in the stream but had not applied it when it died. A
//! member is the event's place and its JSON, so an event sent twice (its answer lost) is
//! kept once, unless a pull took it in between.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};

use redis::Script;
use tokio::sync::Notify;

use crate::server::engine::event_feeds::{keep_the_newest, EventFeedStore, FEED_CAP};
use crate::server::engine::{BoxFuture, Feed, FeedEvent, Unavailable};

use super::retried::next_round;
use super::{lock, within_timeout, Complaint, Inner, RedisEngine, SUBMIT_TIMEOUT};

/// Adds `place, member` pairs (ARGV[2..]) and keeps the newest ARGV[1] by place. (Lua's
/// `unpack` takes at most 7,999 values: a feed's backlog of [`FEED_CAP`] events is half
/// that.)
const RECORD_LUA: &str = r"
redis.call('ZADD', KEYS[1], unpack(ARGV, 2))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[1]) + 1))
return 0
";

/// Returns and removes the ARGV[1] oldest.
const TAKE_LUA: &str = r"
local taken = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #taken > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #taken - 1) end
return taken
";

const _: () = assert!(2 * FEED_CAP < 7_999);

static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE_LUA));

fn key(app: &str, feed: Feed) -> String {
    let name = match feed {
        Feed::Users => "users",
        Feed::Channels => "channels",
    };
    format!("rtm:ev:{app}:{name}")
}

/// Events recorded here and not yet taken by their Redis, per feed key.
#[derive(Debug, Default)]
pub(super) struct FeedQueue {
    queued: Mutex<HashMap<String, FeedBacklog>>,
    added: Notify,
}

#[derive(Debug, Default)]
struct FeedBacklog {
    shard: usize,
    /// (place, member), oldest first.
    events: VecDeque<(u64, String)>,
}

impl EventFeedStore for RedisEngine {
    fn record(&self, app: &str, feed: Feed, place: u64, event: FeedEvent) {
        let Ok(json) = serde_json::to_string(&event) else {
            return;
        };
        let shard = self.inner.apps.shard_of_app(app);
        let queue = &self.inner.event_feeds;
        let mut queued = lock(&queue.queued);
        let entry = queued.entry(key(app, feed)).or_default();
        entry.shard = shard;
        entry.events.push_back((place, format!("{place}:{json}")));
        keep_the_newest(&mut entry.events);
        drop(queued);
        queue.added.notify_one();
    }

    fn take(
        &self,
        app: &str,
        feed: Feed,
        max: usize,
    ) -> BoxFuture<Result<Vec<FeedEvent>, Unavailable>> {
        let mut conn = self.inner.shards[self.inner.apps.shard_of_app(app)]
            .conn
            .clone();
        let key = key(app, feed);
        Box::pin(async move {
            let mut call = TAKE.prepare_invoke();
            call.key(&key).arg(max);
            let taken: Vec<String> =
                within_timeout("taking feed events", call.invoke_async(&mut conn)).await?;
            Ok(taken
                .iter()
                .filter_map(|member| {
                    let event = member
                        .split_once(':')
                        .and_then(|(_, json)| serde_json::from_str(json).ok());
                    if event.is_none() {
                        tracing::warn!(key, member, "an unreadable feed event is dropped");
                    }
                    event
                })
                .collect())
        })
    }
}

/// Sends the queued events (see the module header) until the engine stops, and what is
/// queued then once more.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut complaint = Complaint::new("recording feed events");
    loop {
        let failed = send_round(&inner).await;
        if failed {
            complaint.failed(&"a redis did not take them; trying again");
        } else {
            complaint.worked();
        }
        if !next_round(&inner, &inner.event_feeds.added, failed).await {
            send_round(&inner).await;
            return;
        }
    }
}

/// Sends every queued event: per Redis one pipeline of `EVAL`s (not `EVALSHA`: a
/// restarted Redis never answers NOSCRIPT in the middle of one), all Redis at once, so
/// one that does not answer delays no other. True if one did not take its events (they
/// are queued again).
async fn send_round(inner: &Inner) -> bool {
    let taken: Vec<(String, FeedBacklog)> = lock(&inner.event_feeds.queued).drain().collect();
    let mut pipes: HashMap<usize, (redis::Pipeline, Vec<(String, FeedBacklog)>)> = HashMap::new();
    for (key, queued) in taken {
        let (pipe, sent) = pipes
            .entry(queued.shard)
            .or_insert_with(|| (redis::pipe(), Vec::new()));
        let call = pipe
            .cmd("EVAL")
            .arg(RECORD_LUA)
            .arg(1)
            .arg(&key)
            .arg(FEED_CAP);
        for (place, member) in &queued.events {
            call.arg(place).arg(member);
        }
        call.ignore();
        sent.push((key, queued));
    }
    let sends = pipes.into_iter().map(|(shard, (pipe, sent))| {
        let mut conn = inner.shards[shard].conn.clone();
        async move {
            let done = tokio::time::timeout(SUBMIT_TIMEOUT, pipe.query_async::<()>(&mut conn));
            (matches!(done.await, Ok(Ok(()))), sent)
        }
    });
    let mut failed = false;
    for (taken, sent) in futures_util::future::join_all(sends).await {
        if !taken {
            failed = true;
            put_back(&inner.event_feeds, sent);
        }
    }
    failed
}

/// Forgets the events queued for Redis `shard`, which lost its data: their places count
/// from before, above those of the changes to come, and would sort after them.
pub(super) fn forget_queued_for(queue: &FeedQueue, shard: usize) {
    lock(&queue.queued).retain(|_, queued| queued.shard != shard);
}

/// Queues events a Redis did not take again, before those recorded since.
fn put_back(queue: &FeedQueue, sent: Vec<(String, FeedBacklog)>) {
    let mut queued = lock(&queue.queued);
    for (key, mut old) in sent {
        let entry = queued.entry(key).or_default();
        entry.shard = old.shard;
        old.events.append(&mut entry.events);
        entry.events = old.events;
        keep_the_newest(&mut entry.events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(places: std::ops::Range<u64>) -> FeedBacklog {
        FeedBacklog {
            shard: 1,
            events: places.map(|p| (p, p.to_string())).collect(),
        }
    }

    #[test]
    fn events_a_redis_did_not_take_go_back_before_the_newer_ones_within_the_cap() {
        let queue = FeedQueue::default();
        lock(&queue.queued).insert("k".into(), queued(10..12));
        put_back(&queue, vec![("k".into(), queued(0..10))]);
        let places: Vec<u64> = lock(&queue.queued)["k"]
            .events
            .iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(places, (0..12).collect::<Vec<_>>());
        // Past the cap the oldest go, as in the feed itself.
        put_back(&queue, vec![("k".into(), queued(0..FEED_CAP as u64))]);
        let queued = lock(&queue.queued);
        assert_eq!(queued["k"].events.len(), FEED_CAP);
        assert_eq!(queued["k"].events.back().map(|e| e.0), Some(11));
        assert_eq!(queued["k"].shard, 1);
    }
}

//! Message routes batched per Redis: every peer and channel message of this node that goes
//! through one Redis (its id, its history entry, its publication: [`ROUTE_LUA`]) waits in
//! one bounded queue, and one task sends what has gathered as one script call.
//!
//! A Redis call costs far more than the work it asks for (reading and parsing the request,
//! setting up the script, writing the answer: about 30 µs of Redis CPU at 2,000 calls a
//! second on our test box, against about 4 µs for the commands themselves), so a call
//! per message made a cluster spend twice what one node spends on a peer round trip.
//!
//! - **When a batch goes.** While messages come one at a time (the last call took one,
//!   and none came while it was under way), a message goes at once, alone: a quiet node,
//!   or one connection sending as fast as its answers come, waits for nothing. Once they
//!   come faster than calls go (a call took several, or more came while it was under way),
//!   a message waits until [`WINDOW`] after the previous call, or until [`MAX_BATCH`]
//!   have gathered: at most [`WINDOW`] more latency (small beside the 20 ms write delay
//!   of events), and one connection's sends, which wait for their answers, go at most
//!   one per window (500 a second, beside a default limit of 60).
//!   Tried and not kept (2026-12-08): a window growing with the number of Redis servers
//!   (2 ms per server), so that a node's calls over two Redis are as full as over one.
//!   Over two Redis it cut Redis' CPU per peer round trip from about 37 to 23-27 µs, but
//!   one connection's sends go one call after another (`session/peer.rs` keeps their
//!   order), so at 4 ms a sender could no longer send 200 a second: the bench's p99 went
//!   from 25 ms to 300 ms.
//! - **Order.** The script numbers the messages in the order they were queued, and
//!   publishes each before numbering the next: the order of ids is still the order every
//!   subscriber receives, and one conversation's messages from this node keep the order
//!   they were sent in.
//! - **Bounds.** At most [`QUEUE`] messages wait; past it a send is answered at once with
//!   its family's failure (Redis is not keeping up), as it is after [`SUBMIT_TIMEOUT`].

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::SUBMIT_TIMEOUT;

/// The longest a message waits for others to go with it, once messages come faster than
/// calls go.
pub const WINDOW: Duration = Duration::from_millis(2);
/// Messages in one call at most.
pub const MAX_BATCH: usize = 64;
/// Messages waiting for their call at most.
pub const QUEUE: usize = 4_096;

/// For each message `i` (`KEYS[1 + i]` its history): takes the next id of this Redis
/// (`KEYS[1]` counts them; `ARGV[1]` Redis servers in the list, this one `ARGV[2]`),
/// publishes it on its topic (`ARGV` from `3 + 5(i - 1)`: topic, how many entries the
/// history keeps, the history entry, the published message, whether to keep it even if
/// nobody received it) and keeps it in history: for a peer message only if someone
/// received it. The JSON of the history entry and of the published message come without
/// their opening brace, which the script writes with the id. Returns, per message, the
/// id and how many nodes received it.
pub const ROUTE_LUA: &str = r#"
local out = {}
local count, index = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS - 1 do
  local at = 2 + (i - 1) * 5
  local id = redis.call('INCR', KEYS[1]) * count + index
  local head = string.format('{"message_id":%d,', id)
  local receivers = 0
  if ARGV[at + 1] ~= '' then
    receivers = redis.call('PUBLISH', ARGV[at + 1], head .. ARGV[at + 4])
  end
  local keep = tonumber(ARGV[at + 2])
  if keep > 0 and (receivers > 0 or ARGV[at + 5] == '1') then
    redis.call('ZADD', KEYS[1 + i], id, head .. ARGV[at + 3])
    redis.call('ZREMRANGEBYRANK', KEYS[1 + i], 0, -(keep + 1))
  end
  out[2 * i - 1] = id
  out[2 * i] = receivers
end
return out
"#;

/// One message to number, publish and keep.
#[derive(Debug)]
pub struct MessageRoute {
    pub history_key: String,
    /// Where it is published (`""`: nowhere, only numbered and kept).
    pub topic: String,
    /// History entries its conversation keeps (0: not kept).
    pub keep: u32,
    /// Kept even if nobody received it (channel messages, and peer messages handed over
    /// on this node).
    pub always_keep: bool,
    /// The history entry and the published message, without their opening brace.
    pub history: String,
    pub published: String,
}

/// Its id, and how many nodes received it.
pub type RouteAnswer = Result<(u64, u64), String>;

type Waiting = (MessageRoute, oneshot::Sender<RouteAnswer>);

/// The queue of one Redis' routes; cloning it shares the queue.
#[derive(Clone)]
pub struct Router {
    queue: mpsc::Sender<Waiting>,
}

impl Router {
    /// Starts the task that sends the routes of the Redis behind `conn`, `index` of
    /// `count` servers, whose id counter is `mseq`. It ends when the last clone is dropped.
    pub fn start(conn: ConnectionManager, mseq: String, count: usize, index: usize) -> Router {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(send_batches(waiting, conn, mseq, (count, index)));
        Router { queue }
    }

    /// Numbers, publishes and keeps `route`, with the messages queued beside it.
    pub async fn route(&self, route: MessageRoute) -> RouteAnswer {
        let (answer, answered) = oneshot::channel();
        if self.queue.try_send((route, answer)).is_err() {
            return Err("too many messages waiting for Redis".into());
        }
        match tokio::time::timeout(SUBMIT_TIMEOUT, answered).await {
            Ok(Ok(routed)) => routed,
            Ok(Err(_)) => Err("the engine stopped".into()),
            Err(_) => Err("timed out".into()),
        }
    }
}

async fn send_batches(
    mut waiting: mpsc::Receiver<Waiting>,
    mut conn: ConnectionManager,
    mseq: String,
    (count, index): (usize, usize),
) {
    static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ROUTE_LUA));
    let mut last_call: Option<Instant> = None;
    let mut busy = false;
    let mut batch: Vec<Waiting> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = waiting.recv().await {
        batch.push(first);
        // Busy: the others that will come within the window go with this one.
        let deadline = last_call.map(|at| at + WINDOW).filter(|_| busy);
        if let Some(deadline) = deadline.filter(|d| *d > Instant::now()) {
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, waiting.recv()).await {
                    Ok(Some(next)) => batch.push(next),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        last_call = Some(Instant::now());
        let mut invocation = SCRIPT.prepare_invoke();
        invocation.key(&mseq).arg(count).arg(index);
        for (route, _) in &batch {
            invocation
                .key(&route.history_key)
                .arg(&route.topic)
                .arg(route.keep)
                .arg(&route.history)
                .arg(&route.published)
                .arg(if route.always_keep { "1" } else { "0" });
        }
        let call = invocation.invoke_async::<Vec<u64>>(&mut conn);
        let answer = match tokio::time::timeout(SUBMIT_TIMEOUT, call).await {
            Ok(Ok(answer)) if answer.len() == 2 * batch.len() => Ok(answer),
            Ok(Ok(answer)) => Err(format!(
                "{} answers to {} messages",
                answer.len(),
                batch.len()
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        let sent = batch.len();
        for (i, (_, answered)) in batch.drain(..).enumerate() {
            let routed = match &answer {
                Ok(pairs) => Ok((pairs[2 * i], pairs[2 * i + 1])),
                Err(e) => Err(e.clone()),
            };
            let _ = answered.send(routed);
        }
        // Messages come faster than calls go: several went in this one, or more came
        // while it was under way.
        busy = sent > 1 || !waiting.is_empty();
    }
}

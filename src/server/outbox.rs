//! The bounded outbox of one connection, and the cheap handle others use to reach it.
//!
//! Anyone (the connection's own session, the hub fanning out, timers) appends encoded JSON
//! lines; appending never waits. The connection's writer task drains the queue in batches.
//! Replies are urgent (a client may be waiting on each): the writer sends them at once,
//! with whatever else is queued. Events alone may wait up to the server's write delay so
//! that several share one write (see `connection::write_loop`).
//!
//! Bounds ([`OutboxLimits`]) are about lag over time and the server's total, not a tight
//! byte count: a reader that keeps draining survives any burst the rate limits allow.
//! A connection is cut off when a write has been blocked for `stall` (10 s: the client
//! takes nothing; `connection::write_loop` times it out), or when a push finds it past
//! its soft bound (1 MiB or 8192 objects) and either no write completed for `stall` or
//! all outboxes together hold `total_max_bytes` (the server's budget); it never holds
//! more than `max_bytes` (64 MiB). A cut-off connection's queue is freed at once; a slow
//! consumer never slows the senders down.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;
use tokio::sync::{watch, Notify};

use crate::protocol::{encode, Event, Reply};

/// Whether a connection should keep running, and how it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    Open,
    /// Send what is queued, then a close frame with this code and reason.
    Close(u16, String),
    /// Drop the socket now (slow consumer, dead peer, write error).
    Abort,
}

/// Objects queued that are written without waiting for the write delay: a connection
/// this busy gains little from waiting longer, and its latency would grow.
pub(super) const WRITE_NOW_OBJECTS: usize = 8;

/// Memory a queued object takes besides its bytes: its shared string's header, its
/// slot in the queue, the allocator's rounding. Counted, so that the bounds are about
/// real memory also for many small objects (40,000 replies to pings).
const OBJECT_OVERHEAD_BYTES: usize = 48;

/// What a queued object counts for against the bounds.
fn cost(line: &str) -> usize {
    line.len() + OBJECT_OVERHEAD_BYTES
}

/// How a queued object counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An event: counts toward the bound, may wait for the write delay.
    Event,
    /// A reply: counts toward the bound, written at once.
    Reply,
    /// The login backlog: exempt from the bound.
    Exempt,
}

/// How far a connection may fall behind; see the module header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Past this many queued bytes (or `soft_items` objects) the writer must be making progress.
    pub soft_bytes: usize,
    pub soft_items: usize,
    /// A connection over its soft bound whose writer completed no write for this long is cut off.
    pub stall: Duration,
    /// Never more than this queued for one connection.
    pub max_bytes: usize,
    /// All outboxes of the server together: past it, connections over their soft bound are cut off.
    pub total_max_bytes: usize,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            soft_bytes: 1024 * 1024,
            soft_items: 8192,
            stall: Duration::from_secs(10),
            max_bytes: 64 * 1024 * 1024,
            total_max_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Bytes queued in every outbox of a server (each connection adds and takes its own).
pub(super) type QueuedTotal = Arc<AtomicUsize>;

#[derive(Debug)]
struct Queue {
    lines: VecDeque<(Arc<str>, Kind)>,
    /// When the writer last completed a write, or the queue last went from empty to not.
    progress: Instant,
    /// Replies queued (the writer sends at once while there is one).
    replies: usize,
    /// Bytes of the bounded objects queued.
    bytes: usize,
    /// Bytes and count of the exempt objects queued: kept apart so that a large backlog
    /// does not make the next reply or event trip the bound.
    exempt_bytes: usize,
    exempt_items: usize,
    close: Option<(u16, String)>,
}

impl Queue {
    fn new() -> Queue {
        Queue {
            lines: VecDeque::new(),
            progress: Instant::now(),
            replies: 0,
            bytes: 0,
            exempt_bytes: 0,
            exempt_items: 0,
            close: None,
        }
    }

    /// Why one more bounded object of `len` bytes must cut the connection off, if it must.
    fn refuses(&self, len: usize, limits: &OutboxLimits, total: usize) -> Option<&'static str> {
        let bytes = self.bytes + len;
        let items = self.lines.len() - self.exempt_items + 1;
        if bytes > limits.max_bytes {
            return Some("its queue reached the per-connection maximum");
        }
        if bytes <= limits.soft_bytes && items <= limits.soft_items {
            return None;
        }
        if total + len > limits.total_max_bytes {
            Some("the server's queue budget is spent while it is past its soft bound")
        } else if self.progress.elapsed() >= limits.stall {
            Some("it has taken nothing for the stall time")
        } else {
            None
        }
    }
}

/// What the writer takes from the outbox at once.
#[derive(Debug, Default)]
pub struct Drained {
    /// Objects joined with `\n` (one WebSocket text frame); empty if nothing was queued.
    pub batch: String,
    /// Close frame to send after the batch.
    pub close: Option<(u16, String)>,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    queue: Mutex<Queue>,
    wake_writer: Notify,
    /// Woken when the writer took from the queue (a reader paused on the bound waits on it).
    room: Notify,
    closing: watch::Sender<Closing>,
    closed: AtomicBool,
    limits: Arc<OutboxLimits>,
    total: QueuedTotal,
    /// The code of the last reply queued, plus one (0: none since the last take), for the
    /// metrics of requests by op and code.
    last_code: std::sync::atomic::AtomicU64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let queue = self
            .queue
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.total.fetch_sub(queue.bytes, Ordering::Relaxed);
    }
}

/// Cheap handle to one connection's outbox.
#[derive(Debug, Clone)]
pub struct ConnHandle(Arc<Conn>);

impl ConnHandle {
    pub fn new(id: u64, limits: Arc<OutboxLimits>, total: QueuedTotal) -> Self {
        let (closing, _) = watch::channel(Closing::Open);
        ConnHandle(Arc::new(Conn {
            id,
            queue: Mutex::new(Queue::new()),
            wake_writer: Notify::new(),
            room: Notify::new(),
            closing,
            closed: AtomicBool::new(false),
            limits,
            total,
            last_code: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Unique id of the connection within this server run.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves a queue that is still consistent.
        self.0
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues one encoded event. Past the bound the connection is aborted instead.
    pub fn push_line(&self, line: Arc<str>) {
        self.push(line, Kind::Event);
    }

    /// Queues without the bound: for the cached-message backlog at login, which is
    /// bounded by its own cap (200 messages) and must not cost the receiver its connection.
    pub fn push_line_unbounded(&self, line: Arc<str>) {
        self.push(line, Kind::Exempt);
    }

    fn push(&self, line: Arc<str>, kind: Kind) {
        if self.is_closed() {
            return;
        }
        let (refused, wake) = {
            let mut queue = self.queue();
            let was_empty = queue.lines.is_empty();
            if was_empty {
                queue.progress = Instant::now();
            }
            if kind == Kind::Exempt {
                queue.exempt_bytes += cost(&line);
                queue.exempt_items += 1;
                queue.lines.push_back((line, kind));
                (None, true)
            } else if let Some(why) = queue.refuses(
                cost(&line),
                &self.0.limits,
                self.0.total.load(Ordering::Relaxed),
            ) {
                (Some((why, queue.bytes)), false)
            } else {
                queue.bytes += cost(&line);
                self.0.total.fetch_add(cost(&line), Ordering::Relaxed);
                if kind == Kind::Reply {
                    queue.replies += 1;
                }
                queue.lines.push_back((line, kind));
                // An event behind others waits for the write delay anyway: waking the
                // writer for each would cost a task wake-up per delivery for nothing.
                let wake =
                    was_empty || kind == Kind::Reply || queue.lines.len() >= WRITE_NOW_OBJECTS;
                (None, wake)
            }
        };
        if let Some((why, queued)) = refused {
            tracing::warn!(
                conn = self.id(),
                queued,
                "the client does not keep up: {why}; disconnecting it"
            );
            self.abort();
        } else if wake {
            self.0.wake_writer.notify_one();
        }
    }

    /// Queues a reply (written at once).
    pub fn send_reply(&self, reply: &Reply) {
        self.0
            .last_code
            .store(u64::from(reply.code) + 1, Ordering::Relaxed);
        self.push(encode(reply).into(), Kind::Reply);
    }

    /// The code of the last reply queued since the last call, if any.
    pub fn take_reply_code(&self) -> Option<u32> {
        match self.0.last_code.swap(0, Ordering::Relaxed) {
            0 => None,
            code => Some((code - 1) as u32),
        }
    }

    /// True when the writer should not wait for more: a reply is queued (its client may
    /// be waiting on it), or `WRITE_NOW_OBJECTS` objects are.
    pub fn worth_writing_now(&self) -> bool {
        let queue = self.queue();
        queue.replies > 0 || queue.lines.len() >= WRITE_NOW_OBJECTS
    }

    /// Queues an event.
    pub fn send_event(&self, event: &Event) {
        self.push_line(encode(event).into());
    }

    /// Encodes anything serializable once, for fan-out to many outboxes.
    pub fn encode_shared<T: Serialize>(item: &T) -> Arc<str> {
        encode(item).into()
    }

    /// Sends what is queued, then a close frame; the connection ends.
    pub fn close(&self, code: u16, reason: &str) {
        if self.0.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.queue().close = Some((code, reason.to_string()));
        self.0.wake_writer.notify_one();
        self.0
            .closing
            .send_replace(Closing::Close(code, reason.to_string()));
    }

    /// Drops the connection without further writes (and what was queued for it).
    pub fn abort(&self) {
        {
            let mut queue = self.queue();
            self.0.total.fetch_sub(queue.bytes, Ordering::Relaxed);
            queue.lines.clear();
            queue.bytes = 0;
            queue.replies = 0;
            queue.exempt_bytes = 0;
            queue.exempt_items = 0;
        }
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.closing.send_replace(Closing::Abort);
        self.0.wake_writer.notify_one();
    }

    /// True once `close` or `abort` was called: nothing more is queued.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::SeqCst)
    }

    /// Watches how the connection ends (for the reader loop).
    pub fn closing(&self) -> watch::Receiver<Closing> {
        self.0.closing.subscribe()
    }

    /// How the connection is ending right now.
    pub fn closing_state(&self) -> Closing {
        self.0.closing.borrow().clone()
    }

    /// Waits until something was queued (or a close was requested).
    pub async fn wait_for_work(&self) {
        self.0.wake_writer.notified().await;
    }

    /// Takes queued objects up to about `max_batch_bytes` (at least one), joined with `\n`
    /// as docs/protocol.md's batched frames; the close frame comes once the queue is empty.
    pub fn drain(&self, max_batch_bytes: usize) -> Drained {
        let mut queue = self.queue();
        let mut batch = String::new();
        while let Some((line, _)) = queue.lines.front() {
            if !batch.is_empty() && batch.len() + line.len() + 1 > max_batch_bytes {
                break;
            }
            let (line, kind) = queue.lines.pop_front().expect("front exists");
            match kind {
                Kind::Exempt => {
                    queue.exempt_bytes -= cost(&line);
                    queue.exempt_items -= 1;
                }
                Kind::Reply => {
                    queue.replies -= 1;
                    queue.bytes -= cost(&line);
                    self.0.total.fetch_sub(cost(&line), Ordering::Relaxed);
                }
                Kind::Event => {
                    queue.bytes -= cost(&line);
                    self.0.total.fetch_sub(cost(&line), Ordering::Relaxed);
                }
            }
            if !batch.is_empty() {
                batch.push('\n');
            }
            batch.push_str(&line);
        }
        let close = if queue.lines.is_empty() {
            queue.close.take()
        } else {
            None
        };
        drop(queue);
        self.0.room.notify_waiters();
        Drained { batch, close }
    }

    /// True while the queue holds more than its soft bound (the login backlog aside): the
    /// connection's reader stops taking requests until the writer has made room, so a
    /// client that sends without reading cannot make the server queue without end.
    pub fn over_soft_bound(&self) -> bool {
        let queue = self.queue();
        let limits = &self.0.limits;
        queue.bytes > limits.soft_bytes
            || queue.lines.len() - queue.exempt_items > limits.soft_items
    }

    /// Waits until the writer takes from the queue, or `within` passes.
    pub async fn wait_for_room(&self, within: Duration) {
        let _ = tokio::time::timeout(within, self.0.room.notified()).await;
    }

    /// The writer completed a write: the connection is making progress.
    pub fn wrote(&self) {
        self.queue().progress = Instant::now();
    }

    /// Takes every queued object (for unit tests of `handle`).
    pub fn take_lines(&self) -> Vec<String> {
        let mut queue = self.queue();
        self.0.total.fetch_sub(queue.bytes, Ordering::Relaxed);
        queue.bytes = 0;
        queue.replies = 0;
        queue.exempt_bytes = 0;
        queue.exempt_items = 0;
        queue
            .lines
            .drain(..)
            .map(|(line, _)| line.to_string())
            .collect()
    }
}

impl PartialEq for ConnHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(soft_bytes: usize, soft_items: usize) -> Arc<OutboxLimits> {
        limits_up_to(soft_bytes, soft_items, 1000)
    }

    fn limits_up_to(soft_bytes: usize, soft_items: usize, max_bytes: usize) -> Arc<OutboxLimits> {
        Arc::new(OutboxLimits {
            soft_bytes,
            soft_items,
            stall: Duration::from_secs(10),
            max_bytes,
            total_max_bytes: 1000,
        })
    }

    fn conn(id: u64, limits: Arc<OutboxLimits>) -> ConnHandle {
        ConnHandle::new(id, limits, QueuedTotal::default())
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_soft_bound_a_connection_must_make_progress() {
        let conn = conn(1, limits(20, 10));
        conn.push_line("{\"a\":1}".into());
        conn.push_line("{\"b\":2}".into());
        let drained = conn.drain(1024);
        assert_eq!(drained.batch, "{\"a\":1}\n{\"b\":2}");
        assert!(drained.close.is_none());
        // Over the soft bound, but the writer made progress a moment ago: kept.
        for _ in 0..5 {
            conn.push_line("{\"c\":3}".into());
        }
        assert_eq!(conn.closing_state(), Closing::Open);
        // A writer that keeps writing keeps the connection, whatever the queue.
        tokio::time::advance(Duration::from_secs(9)).await;
        conn.wrote();
        tokio::time::advance(Duration::from_secs(9)).await;
        conn.push_line("{\"d\":4}".into());
        assert_eq!(conn.closing_state(), Closing::Open);
        // Nothing taken for the stall time: cut off, and its queue freed.
        tokio::time::advance(Duration::from_secs(2)).await;
        conn.push_line("{\"e\":5}".into());
        assert_eq!(conn.closing_state(), Closing::Abort);
        assert!(conn.is_closed());
        assert_eq!(conn.0.total.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_per_connection_maximum_and_the_server_budget_hold() {
        let line: Arc<str> = "x".repeat(50).into();
        // An object counts its bytes and its overhead.
        assert_eq!(cost(&line), 50 + OBJECT_OVERHEAD_BYTES);
        let shared = limits_up_to(cost("{}") + 10, 100, 4 * cost(&line));
        let total = QueuedTotal::default();
        let a = ConnHandle::new(1, shared.clone(), total.clone());
        let b = ConnHandle::new(2, shared.clone(), total.clone());
        // Never more than max_bytes (4 lines) for one connection, progress or not.
        for _ in 0..4 {
            a.push_line(line.clone());
        }
        assert_eq!(a.closing_state(), Closing::Open);
        a.push_line(line.clone());
        assert_eq!(a.closing_state(), Closing::Abort);
        assert_eq!(total.load(Ordering::Relaxed), 0, "its queue was freed");
        // The budget: with 990 bytes queued elsewhere, a connection over its soft bound goes.
        total.fetch_add(990, Ordering::Relaxed);
        b.push_line("{}".into());
        assert_eq!(b.closing_state(), Closing::Open, "under its soft bound");
        b.push_line(line.clone());
        assert_eq!(b.closing_state(), Closing::Abort);
    }

    #[tokio::test]
    async fn close_after_queue() {
        let conn = conn(2, limits(1024, 10));
        conn.push_line("{}".into());
        conn.close(1000, "bye");
        let drained = conn.drain(1);
        assert_eq!(drained.batch, "{}");
        assert_eq!(drained.close, Some((1000, "bye".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn exempt_backlog_does_not_count_toward_the_bound() {
        let conn = conn(3, limits(20, 2));
        for _ in 0..10 {
            conn.push_line_unbounded("{\"backlog\":1234567}".into());
        }
        conn.push_line("{\"a\":1}".into());
        conn.push_line("{\"b\":2}".into());
        assert_eq!(conn.closing_state(), Closing::Open);
        assert_eq!(conn.drain(1 << 20).batch.lines().count(), 12);
        conn.push_line("{\"c\":3}".into());
        conn.push_line("{\"d\":4}".into());
        assert_eq!(conn.closing_state(), Closing::Open);
    }
}

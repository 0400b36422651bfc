//! The bounded outbox of one connection, and the cheap handle others use to reach it.
//!
//! Anyone (the connection's own session, the hub fanning out, timers) appends encoded JSON
//! lines; appending never waits. The connection's writer task drains the queue in batches.
//! Replies are urgent (a client may be waiting on each): the writer sends them at once,
//! with whatever else is queued. Events alone may wait up to the server's write delay so
//! that several share one write (see `connection::write_loop`).
//! When the queue passes its byte or item bound the connection is cut off (a slow consumer
//! must not grow memory or slow the senders down).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

#[derive(Debug, Default)]
struct Queue {
    lines: VecDeque<(Arc<str>, Kind)>,
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
    closing: watch::Sender<Closing>,
    closed: AtomicBool,
    max_bytes: usize,
    max_items: usize,
}

/// Cheap handle to one connection's outbox.
#[derive(Debug, Clone)]
pub struct ConnHandle(Arc<Conn>);

impl ConnHandle {
    pub fn new(id: u64, max_bytes: usize, max_items: usize) -> Self {
        let (closing, _) = watch::channel(Closing::Open);
        ConnHandle(Arc::new(Conn {
            id,
            queue: Mutex::new(Queue::default()),
            wake_writer: Notify::new(),
            closing,
            closed: AtomicBool::new(false),
            max_bytes,
            max_items,
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
        let overflow = {
            let mut queue = self.queue();
            if kind == Kind::Exempt {
                queue.exempt_bytes += line.len();
                queue.exempt_items += 1;
                queue.lines.push_back((line, kind));
                false
            } else if queue.bytes + line.len() > self.0.max_bytes
                || queue.lines.len() - queue.exempt_items >= self.0.max_items
            {
                true
            } else {
                queue.bytes += line.len();
                if kind == Kind::Reply {
                    queue.replies += 1;
                }
                queue.lines.push_back((line, kind));
                false
            }
        };
        if overflow {
            tracing::warn!(
                conn = self.id(),
                "outbox full: the client does not keep up; disconnecting it"
            );
            self.abort();
        } else {
            self.0.wake_writer.notify_one();
        }
    }

    /// Queues a reply (written at once).
    pub fn send_reply(&self, reply: &Reply) {
        self.push(encode(reply).into(), Kind::Reply);
    }

    /// True when the writer should not wait for more: a reply is queued (its client may
    /// be waiting on it), or `enough` objects are.
    pub fn worth_writing_now(&self, enough: usize) -> bool {
        let queue = self.queue();
        queue.replies > 0 || queue.lines.len() >= enough
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

    /// Drops the connection without further writes.
    pub fn abort(&self) {
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
    /// as protocol.md's batched frames; the close frame comes once the queue is empty.
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
                    queue.exempt_bytes -= line.len();
                    queue.exempt_items -= 1;
                }
                Kind::Reply => {
                    queue.replies -= 1;
                    queue.bytes -= line.len();
                }
                Kind::Event => queue.bytes -= line.len(),
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
        Drained { batch, close }
    }

    /// Takes every queued object (for unit tests of `handle`).
    pub fn take_lines(&self) -> Vec<String> {
        let mut queue = self.queue();
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

    #[test]
    fn batches_and_bounds() {
        let conn = ConnHandle::new(1, 20, 10);
        conn.push_line("{\"a\":1}".into());
        conn.push_line("{\"b\":2}".into());
        let drained = conn.drain(1024);
        assert_eq!(drained.batch, "{\"a\":1}\n{\"b\":2}");
        assert!(drained.close.is_none());
        conn.push_line("{\"c\":3}".into());
        conn.push_line("{\"d\":4}".into());
        conn.push_line("{\"e\":5}".into());
        assert_eq!(conn.closing_state(), Closing::Abort);
        assert!(conn.is_closed());
    }

    #[test]
    fn close_after_queue() {
        let conn = ConnHandle::new(2, 1024, 10);
        conn.push_line("{}".into());
        conn.close(1000, "bye");
        let drained = conn.drain(1);
        assert_eq!(drained.batch, "{}");
        assert_eq!(drained.close, Some((1000, "bye".into())));
    }

    #[test]
    fn exempt_backlog_does_not_count_toward_the_bound() {
        let conn = ConnHandle::new(3, 20, 2);
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

//! The hub's timers: ack timeouts, grace periods, member-count throttles, token and
//! invitation expiry (an empty channel's attributes expire in the engine's store). One task runs them all from a `DelayQueue`, so a timer
//! costs an entry, not a task, and cancelling one (an ack that arrived, a token renewed)
//! removes its entry at once: nothing per message outlives its ack.
//!
//! A callback runs on the timer task with no lock held and gets the context the task was
//! spawned with (the hub, which owns the timers: the wheel names no hub type); it takes
//! the hub's lock itself. At shutdown ([`Timers::stop`]) the task ends and every pending
//! callback is dropped without running; timers started afterwards never run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use tokio_util::time::delay_queue::{DelayQueue, Key};

type Callback<C> = Box<dyn FnOnce(&C) + Send>;

/// Longest delay a timer waits: `DelayQueue` panics past about 2.2 years (2^36 ms), so a
/// longer delay (a token valid for years, a setting out of range) is cut to this. A
/// caller whose deadline may lie further (`Hub::watch_token`) checks when it fires.
pub const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The queue and the keys of the timers still pending, by timer id (a `Key` is reused
/// once its entry is gone, so handles hold ids).
struct Wheel<C> {
    queue: DelayQueue<(u64, Callback<C>)>,
    keys: HashMap<u64, Key>,
    next_id: u64,
    stopped: bool,
}

impl<C> Default for Wheel<C> {
    fn default() -> Self {
        Wheel {
            queue: DelayQueue::new(),
            keys: HashMap::new(),
            next_id: 0,
            stopped: false,
        }
    }
}

fn lock<C>(wheel: &Mutex<Wheel<C>>) -> MutexGuard<'_, Wheel<C>> {
    wheel
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every timer of one hub; callbacks get a `&C`.
pub struct Timers<C> {
    wheel: Arc<Mutex<Wheel<C>>>,
    stop: Arc<tokio::sync::Notify>,
}

impl<C> Default for Timers<C> {
    fn default() -> Self {
        Timers {
            wheel: Arc::default(),
            stop: Arc::default(),
        }
    }
}

impl<C> Clone for Timers<C> {
    fn clone(&self) -> Self {
        Timers {
            wheel: Arc::clone(&self.wheel),
            stop: Arc::clone(&self.stop),
        }
    }
}

impl<C> std::fmt::Debug for Timers<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers")
            .field("pending", &lock(&self.wheel).keys.len())
            .finish_non_exhaustive()
    }
}

/// Cancels one timer; dropping it does not.
pub struct TimerHandle<C> {
    id: u64,
    wheel: Arc<Mutex<Wheel<C>>>,
}

impl<C> Clone for TimerHandle<C> {
    fn clone(&self) -> Self {
        TimerHandle {
            id: self.id,
            wheel: Arc::clone(&self.wheel),
        }
    }
}

impl<C> std::fmt::Debug for TimerHandle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<C> TimerHandle<C> {
    /// Cancels the timer if it has not run yet.
    pub fn abort(&self) {
        let mut wheel = lock(&self.wheel);
        if let Some(key) = wheel.keys.remove(&self.id) {
            wheel.queue.try_remove(&key);
        }
    }
}

impl<C: Send + Sync + 'static> Timers<C> {
    fn wheel(&self) -> MutexGuard<'_, Wheel<C>> {
        lock(&self.wheel)
    }

    /// Runs `then` on the context after `delay` (counted from now, at most [`MAX_DELAY`]),
    /// unless cancelled first.
    pub fn start(&self, delay: Duration, then: impl FnOnce(&C) + Send + 'static) -> TimerHandle<C> {
        let delay = delay.min(MAX_DELAY);
        let mut wheel = self.wheel();
        let id = wheel.next_id;
        wheel.next_id += 1;
        if !wheel.stopped {
            let key = wheel.queue.insert((id, Box::new(then)), delay);
            wheel.keys.insert(id, key);
        }
        TimerHandle {
            id,
            wheel: Arc::clone(&self.wheel),
        }
    }

    /// Timers pending now.
    pub fn pending(&self) -> usize {
        self.wheel().keys.len()
    }

    /// Ends the timer task and drops every pending timer unrun.
    pub fn stop(&self) {
        let mut wheel = self.wheel();
        wheel.stopped = true;
        wheel.queue.clear();
        wheel.keys.clear();
        drop(wheel);
        self.stop.notify_one();
    }

    /// The task that runs due timers; it holds `context` until [`Timers::stop`].
    pub fn spawn(&self, context: C) {
        let timers = self.clone();
        tokio::spawn(async move {
            loop {
                let due = std::future::poll_fn(|cx| match timers.wheel().queue.poll_expired(cx) {
                    // Empty: the queue keeps the waker and an insert wakes it.
                    Poll::Ready(None) => Poll::Pending,
                    other => other,
                });
                let expired = tokio::select! {
                    expired = due => expired,
                    () = timers.stop.notified() => return,
                };
                let Some(expired) = expired else { continue };
                let (id, then) = expired.into_inner();
                timers.wheel().keys.remove(&id);
                then(&context);
            }
        });
    }
}

//! What lets a bench worker send its next operation ([`Pace`]: a rate, a window of
//! replies, or a [`Flow`] over a channel's deliveries), its turns, and the merge of the
//! workers' tallies at the end. Shared by the connection workloads (`workload.rs`) and
//! the media workload (`media.rs`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{Recorder, Tally};

/// What lets a sender send its next request.
pub(super) enum Pace {
    /// A ticker: send at a fixed rate, whatever the replies do.
    Rate(tokio::time::Interval),
    /// At most this many requests awaiting their replies.
    InFlight(usize),
    /// At most the flow's window of channel messages that some member has not received.
    Flow(Arc<Flow>),
}

impl Pace {
    /// `per_second` paced (starting at `phase` of its period), else `saturated`.
    pub(super) fn new(per_second: f64, phase: f64, saturated: Pace) -> Pace {
        pacer(per_second, phase).map_or(saturated, Pace::Rate)
    }

    /// Resolves when request number `n` may be sent.
    pub(super) async fn ready(&mut self, n: u64, outstanding: usize) {
        match self {
            Pace::Rate(ticker) => {
                ticker.tick().await;
            }
            Pace::InFlight(window) if outstanding < *window => {}
            Pace::InFlight(_) => std::future::pending().await,
            Pace::Flow(flow) => flow.window_open(n).await,
        }
    }
}

/// A ticker for `per_second` sends (none for 0: saturated), started at `phase` (0..1) of
/// its period so that many paced connections do not send in lockstep.
fn pacer(per_second: f64, phase: f64) -> Option<tokio::time::Interval> {
    (per_second > 0.0).then(|| {
        let period = Duration::from_secs_f64(1.0 / per_second);
        let start = tokio::time::Instant::now() + period.mul_f64(phase.clamp(0.0, 1.0));
        let mut ticker = tokio::time::interval_at(start, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    })
}

/// Arrivals of one channel's messages: a saturated sender waits until fewer than
/// `window` of its messages are still missing at some member.
pub(super) struct Flow {
    pub(super) receivers: u32,
    window: u64,
    /// Arrivals per message, in a ring indexed by sequence number.
    arrivals: Vec<AtomicU32>,
    /// Messages that reached every receiver (they complete in order: each member
    /// receives a channel's messages in order).
    complete: AtomicU64,
    progressed: Notify,
}

impl Flow {
    pub(super) fn new(receivers: u32, window: u32) -> Flow {
        Flow {
            receivers,
            window: u64::from(window.max(1)),
            arrivals: (0..window.max(1)).map(|_| AtomicU32::new(0)).collect(),
            complete: AtomicU64::new(0),
            progressed: Notify::new(),
        }
    }

    pub(super) fn arrived(&self, seq: u64) {
        let slot = &self.arrivals[(seq % self.window) as usize];
        if slot.fetch_add(1, Ordering::SeqCst) + 1 == self.receivers {
            slot.store(0, Ordering::SeqCst);
            self.complete.fetch_add(1, Ordering::SeqCst);
            self.progressed.notify_waiters();
        }
    }

    /// Resolves once message `seq` may be sent.
    async fn window_open(&self, seq: u64) {
        loop {
            let progressed = self.progressed.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if self.complete.load(Ordering::SeqCst) + self.window > seq {
                return;
            }
            progressed.await;
        }
    }
}

/// Waits until `pace` allows one more operation of a worker that does one at a time;
/// false once the run is over (its duration, or a stop).
pub(super) async fn next_turn(pace: &mut Pace, deadline: Instant, tally: &Tally) -> bool {
    if Instant::now() >= deadline || *tally.stop.borrow() {
        return false;
    }
    tokio::time::timeout_at(deadline.into(), pace.ready(0, 0))
        .await
        .is_ok()
}

/// Waits for every worker and merges its tally into the run's.
pub(super) async fn merge_all(recorder: &Recorder, workers: Vec<tokio::task::JoinHandle<Tally>>) {
    for worker in workers {
        if let Ok(tally) = worker.await {
            recorder.merge(tally);
        }
    }
}

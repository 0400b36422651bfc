//! What one update asks of the event loop ([`Effect`]s), and the jobs still waiting for an
//! answer: each [`Job`] gets a fresh [`JobId`] and is kept (with a [`Pending`] note where
//! the job alone does not say what to do with the answer), so the answer is matched by id
//! and never by what it says.
//! Components that ask for something take `&mut Jobs`; `App::update` hands the effects
//! to the loop.

use std::collections::{HashMap, VecDeque};

use crate::tui::action::Effect;
use crate::tui::job::{Job, JobId};
use crate::tui::target::Target;

/// What the app keeps beside a job waiting for its answer, where the job alone does not
/// say what to do with the answer. Most jobs need nothing (`Jobs::ask`): their answer is
/// handled by what they asked (`replies.rs`), and a new job is one [`Job`] variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Our message with `local_id` in the tab of the job's conversation.
    Send { local_id: u64 },
    /// What the tab says of the channel's attributes when they arrive.
    Attributes(AttributesShown),
    /// Words for the tab of this conversation (opened if need be), not the active tab.
    LineTo(Target),
    /// `/file`, `/image`: the message to send to `target` once `name` is uploaded.
    Upload { target: Target, name: String },
    /// `/save` of a file or image: words for the tab of `target` (the active one if none).
    Download { target: Option<Target> },
    /// `/raw`: the file's bytes, to send to `target` as `name`.
    RawFile { target: Target, name: String },
}

/// What a tab says of a channel's attributes that arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributesShown {
    /// Nothing: they go to the header (a join, a reconnect).
    Header,
    /// All of them, as a line (`/cattr`).
    List,
    /// What changed, if the change's event has not said it already (our own write).
    Changes,
}

/// `get_members` asked at most this many times per [`MEMBERS_WINDOW_MS`]: the server's
/// limit (docs/protocol.md: 5 per 2 s), with a little room for the clock's drift.
const MEMBERS_PER_WINDOW: usize = 5;
const MEMBERS_WINDOW_MS: u64 = 2_100;

/// The effects of the update under way, and the requests waiting for answers.
#[derive(Debug, Default)]
pub struct Jobs {
    effects: Vec<Effect>,
    /// Each job waiting for its answer, with what the app keeps beside it.
    pending: HashMap<JobId, (Job, Option<Pending>)>,
    next_id: u64,
    /// When the last `get_members` went out (at most [`MEMBERS_PER_WINDOW`] kept).
    members_sent: VecDeque<u64>,
    /// Channels whose members are asked for once the limit allows (a reconnect with many
    /// channels, several joins at once), oldest first.
    members_later: VecDeque<String>,
}

impl Jobs {
    /// Queues an effect that nobody waits an answer for.
    pub fn push(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Queues `job`; its answer comes back with the job (`answered`).
    pub fn ask(&mut self, job: Job) {
        self.queue(job, None);
    }

    /// Queues `job`, keeping `pending` beside it for its answer; the job's id is for what
    /// follows it before the answer (a transfer's progress).
    pub fn ask_with(&mut self, pending: Pending, job: Job) -> JobId {
        self.queue(job, Some(pending))
    }

    fn queue(&mut self, job: Job, pending: Option<Pending>) -> JobId {
        self.next_id += 1;
        let id = JobId(self.next_id);
        self.pending.insert(id, (job.clone(), pending));
        self.effects.push(Effect::Job(id, job));
        id
    }

    /// Asks for `channel`'s members now, or as soon as the server's rate limit allows
    /// (see [`Jobs::release_paced`]), so that many channels at once get no "too often".
    pub fn ask_members(&mut self, channel: String, now_ms: u64) {
        if self.members_later.contains(&channel) {
            return;
        }
        self.members_later.push_back(channel);
        self.release_paced(now_ms);
    }

    /// Sends the `get_members` that the rate limit allows now.
    pub fn release_paced(&mut self, now_ms: u64) {
        while let Some(&oldest) = self.members_sent.front() {
            if now_ms.saturating_sub(oldest) < MEMBERS_WINDOW_MS {
                break;
            }
            self.members_sent.pop_front();
        }
        while self.members_sent.len() < MEMBERS_PER_WINDOW {
            let Some(channel) = self.members_later.pop_front() else {
                break;
            };
            self.members_sent.push_back(now_ms);
            self.ask(Job::Members(channel));
        }
    }

    /// True while some `get_members` waits for the rate limit (the loop then ticks).
    pub fn has_paced(&self) -> bool {
        !self.members_later.is_empty()
    }

    /// The job of `id` and what was kept beside it; `None` for an id answered already or
    /// never asked.
    pub fn answered(&mut self, id: JobId) -> Option<(Job, Option<Pending>)> {
        self.pending.remove(&id)
    }

    /// The effects queued since the last call.
    pub fn take(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members_asked(jobs: &mut Jobs) -> Vec<String> {
        jobs.take()
            .into_iter()
            .filter_map(|effect| match effect {
                Effect::Job(_, Job::Members(channel)) => Some(channel),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn members_of_many_channels_are_asked_within_the_servers_limit() {
        let mut jobs = Jobs::default();
        for n in 0..8 {
            jobs.ask_members(format!("c{n}"), 1_000);
        }
        assert_eq!(members_asked(&mut jobs), ["c0", "c1", "c2", "c3", "c4"]);
        assert!(jobs.has_paced());
        jobs.release_paced(2_000);
        assert!(
            members_asked(&mut jobs).is_empty(),
            "still within the window"
        );
        jobs.release_paced(1_000 + MEMBERS_WINDOW_MS);
        assert_eq!(members_asked(&mut jobs), ["c5", "c6", "c7"]);
        assert!(!jobs.has_paced());
        // A channel asked again while it waits is asked once.
        for n in 0..5 {
            jobs.ask_members(format!("d{n}"), 10_000);
        }
        for _ in 0..3 {
            jobs.ask_members("again".into(), 10_000);
        }
        assert_eq!(members_asked(&mut jobs).len(), 5);
        jobs.release_paced(10_000 + MEMBERS_WINDOW_MS);
        assert_eq!(members_asked(&mut jobs), ["again"]);
    }
}

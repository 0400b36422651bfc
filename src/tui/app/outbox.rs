//! What one update asks of the event loop ([`Effect`]s), and the requests still waiting
//! for an answer: each [`Request`] gets a fresh [`RequestId`] and a [`Pending`] note of
//! what its answer is for, so the answer is matched by id and never by what it says.
//! Components that ask for something take `&mut Outbox`; `App::update` hands the effects
//! to the loop.

use std::collections::HashMap;

use super::super::action::Effect;
use super::super::request::{Request, RequestId};
use super::super::tab::Target;

/// What the answer to a request is for: what the app must remember to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Login,
    Logout,
    /// Our message with `local_id` in the tab of `target`.
    Send {
        target: Target,
        local_id: u64,
    },
    Join(String),
    Leave(String),
    Members(String),
    History {
        target: Target,
        before: Option<u64>,
    },
    /// `/who`: the answer goes to the active tab and the peer tabs' headers.
    Presence,
    /// A channel's attributes for its header; `show` says what the tab says of them.
    ChannelAttributes {
        channel: String,
        show: AttributesShown,
    },
    ChannelAttributesChanged(String),
    /// Words for the tab of this conversation (opened if need be), or the active tab.
    Line(Option<Target>),
    /// `/raw`: the file's bytes, to send to `target` as `name`.
    RawFile {
        target: Target,
        name: String,
    },
    SavedTabs,
    /// `$EDITOR` on `draft`, which comes back to the input line if the editor fails.
    Editor {
        draft: String,
    },
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

/// The effects of the update under way, and the requests waiting for answers.
#[derive(Debug, Default)]
pub struct Outbox {
    effects: Vec<Effect>,
    pending: HashMap<RequestId, Pending>,
    next_id: u64,
}

impl Outbox {
    /// Queues an effect that nobody waits an answer for.
    pub fn push(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Queues `request`, remembering that its answer is for `pending`.
    pub fn ask(&mut self, pending: Pending, request: Request) {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.pending.insert(id, pending);
        self.effects.push(Effect::Request(id, request));
    }

    /// What the answer of `id` is for; `None` for an id answered already or never asked.
    pub fn answered(&mut self, id: RequestId) -> Option<Pending> {
        self.pending.remove(&id)
    }

    /// The effects queued since the last call.
    pub fn take(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }
}

//! Call invitations: the one ringing here (until answered, canceled or expired) and the
//! calls we placed that are not answered yet. The prompt that shows a ringing call is an
//! [`Overlay`](super::overlay::Overlay); the lines in the peer's tab are the app's.

use std::collections::HashMap;

use crate::protocol::InvitationAnswer;
use crate::tui::job::InviteJob;

/// Invitations expire this long after they arrive (docs/protocol.md).
pub const INVITATION_TTL_MS: u64 = 60_000;

/// An incoming call invitation waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: String,
    pub caller: String,
    pub content: String,
    pub channel: Option<String>,
    pub expires_at: u64,
}

/// The calls in progress, both ways.
#[derive(Debug, Default)]
pub struct Calls {
    /// The invitation ringing here.
    pub incoming: Option<Invitation>,
    /// Calls we placed and that are not answered yet: peer → invitation id.
    outgoing: HashMap<String, String>,
    /// Makes our invitation ids unique within a run.
    placed: u64,
}

impl Calls {
    /// An invitation arrived; it replaces one still ringing.
    pub fn ring(&mut self, invitation: Invitation) {
        self.incoming = Some(invitation);
    }

    /// The ringing invitation once it has expired at `now`, no longer ringing.
    pub fn expire(&mut self, now: u64) -> Option<Invitation> {
        if self.incoming.as_ref()?.expires_at > now {
            return None;
        }
        self.incoming.take()
    }

    /// Accepts or refuses the ringing invitation; `None` when nothing rings.
    pub fn answer(&mut self, answer: InvitationAnswer, response: String) -> Option<InviteJob> {
        let Invitation { id, caller, .. } = self.incoming.take()?;
        Some(InviteJob::Answer {
            answer,
            id,
            caller,
            response,
        })
    }

    /// Places a call to `peer` (into `channel`, if given), with an id made of who calls, when, and a counter.
    pub fn place(
        &mut self,
        me: &str,
        now: u64,
        peer: String,
        channel: Option<String>,
        content: String,
    ) -> InviteJob {
        self.placed += 1;
        let id = format!("{me}-{now}-{}", self.placed);
        self.outgoing.insert(peer.clone(), id.clone());
        InviteJob::Send {
            id,
            peer,
            channel,
            content,
        }
    }

    /// Cancels our call to `peer`, if one is waiting.
    pub fn hang_up(&mut self, peer: &str) -> Option<InviteJob> {
        let id = self.outgoing.remove(peer)?;
        Some(InviteJob::Cancel {
            id,
            peer: peer.to_string(),
        })
    }

    /// `callee` answered our call.
    pub fn answered(&mut self, callee: &str) {
        self.outgoing.remove(callee);
    }

    /// `caller` canceled their call; `true` when it was the one ringing here.
    pub fn canceled(&mut self, caller: &str) -> bool {
        let ringing = self.incoming.as_ref().is_some_and(|i| i.caller == caller);
        if ringing {
            self.incoming = None;
        }
        ringing
    }

    /// Invitation `id` failed, ours or theirs; `true` when it was the one ringing here.
    pub fn failed(&mut self, id: &str) -> bool {
        self.outgoing.retain(|_, placed| placed != id);
        let ringing = self.incoming.as_ref().is_some_and(|i| i.id == id);
        if ringing {
            self.incoming = None;
        }
        ringing
    }
}

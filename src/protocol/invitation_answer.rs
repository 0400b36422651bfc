//! [`InvitationAnswer`]: a callee accepts or refuses a call invitation. One model for
//! both answers: the op the callee sends, the event the caller gets, and the words for it.

use serde::{Deserialize, Serialize};

use super::event::Event;
use super::request::Op;

/// How a callee answers an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationAnswer {
    Accept,
    Refuse,
}

impl InvitationAnswer {
    /// The op that answers `caller`'s invitation `invitation_id` with `response`.
    pub fn op(self, invitation_id: String, caller: String, response: String) -> Op {
        match self {
            InvitationAnswer::Accept => Op::AcceptInvitation {
                invitation_id,
                caller,
                response,
            },
            InvitationAnswer::Refuse => Op::RefuseInvitation {
                invitation_id,
                caller,
                response,
            },
        }
    }

    /// The event the caller gets when `callee` answered this way.
    pub fn event(self, invitation_id: String, callee: String, response: String) -> Event {
        match self {
            InvitationAnswer::Accept => Event::InvitationAccepted {
                invitation_id,
                callee,
                response,
            },
            InvitationAnswer::Refuse => Event::InvitationRefused {
                invitation_id,
                callee,
                response,
            },
        }
    }

    /// "accepted" or "refused".
    pub fn past_tense(self) -> &'static str {
        match self {
            InvitationAnswer::Accept => "accepted",
            InvitationAnswer::Refuse => "refused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_has_its_op_and_event() {
        let op = InvitationAnswer::Refuse.op("i".into(), "alice".into(), "busy".into());
        assert_eq!(op.name(), "refuse_invitation");
        let event = InvitationAnswer::Accept.event("i".into(), "bob".into(), String::new());
        assert_eq!(event.name(), "invitation_accepted");
        assert_eq!(InvitationAnswer::Refuse.past_tense(), "refused");
    }
}

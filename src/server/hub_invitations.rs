//! The hub's call invitations: pending ones, their answers and their expiry.
//!
//! Same rules as `hub.rs`: every method takes the state lock, never awaits, and appends
//! to outboxes inside the critical section. Results are `Result<_, u32>` with the code of
//! the op's family; `session_extra.rs` validates input and turns them into replies.

use crate::protocol::codes::invite;
use crate::protocol::Event;

use super::hub::{App, Hub};
use super::hub_presence::conn_of;
use super::outbox::ConnHandle;

/// Invitations are keyed by (caller, callee, invitation id).
pub type InvitationKey = (String, String, String);

/// A pending invitation; `epoch` tells its expiry timer apart from a reused id's.
#[derive(Debug)]
pub struct Invitation {
    pub epoch: u64,
}

/// The answer to an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Refuse,
}

/// Removes a pending invitation; its app, or INVITE's "not found".
fn take_invitation<'a>(
    state: &'a mut super::hub::State,
    app: &str,
    (caller, callee, invitation_id): (&str, &str, &str),
) -> Result<&'a mut App, u32> {
    let app_state = state.apps.get_mut(app).ok_or(invite::NOT_FOUND)?;
    let key = (
        caller.to_string(),
        callee.to_string(),
        invitation_id.to_string(),
    );
    app_state
        .invitations
        .remove(&key)
        .ok_or(invite::NOT_FOUND)?;
    Ok(app_state)
}

impl Hub {
    /// `invite`: delivers `invitation_received` to an online callee and starts the expiry.
    pub fn invite(
        &self,
        app: &str,
        caller: &str,
        event: &Event,
        callee: &str,
        invitation_id: &str,
    ) -> Result<(), u32> {
        let mut state = self.lock();
        let epoch = state.next_epoch();
        let app_state = state.apps.entry(app.to_string()).or_default();
        let callee_conn = conn_of(app_state, callee)
            .cloned()
            .ok_or(invite::PEER_OFFLINE)?;
        let key = (
            caller.to_string(),
            callee.to_string(),
            invitation_id.to_string(),
        );
        if app_state.invitations.contains_key(&key) {
            return Err(invite::INVALID_ARGUMENT);
        }
        // A cap per caller, so that no one can flood a callee's outbox with invitations.
        let pending = app_state
            .invitations
            .keys()
            .filter(|k| k.0 == caller)
            .count();
        if pending >= self.config().max_pending_invitations {
            return Err(invite::INVALID_ARGUMENT);
        }
        app_state
            .invitations
            .insert(key.clone(), Invitation { epoch });
        callee_conn.send_event(event);
        let app = app.to_string();
        self.after(self.config().invitation_timeout, move |hub| {
            hub.invitation_expired(&app, &key, epoch);
        });
        Ok(())
    }

    fn invitation_expired(&self, app: &str, key: &InvitationKey, epoch: u64) {
        let mut state = self.lock();
        let Some(app_state) = state.apps.get_mut(app) else {
            return;
        };
        if app_state.invitations.get(key).map(|i| i.epoch) != Some(epoch) {
            return;
        }
        app_state.invitations.remove(key);
        let line = ConnHandle::encode_shared(&Event::InvitationFailure {
            invitation_id: key.2.clone(),
            reason: invite::EXPIRED,
        });
        for user in [&key.0, &key.1] {
            if let Some(conn) = conn_of(app_state, user) {
                conn.push_line(line.clone());
            }
        }
    }

    /// `cancel_invitation` by the caller: the callee gets `invitation_canceled`.
    pub fn cancel_invitation(
        &self,
        app: &str,
        caller: &str,
        callee: &str,
        invitation_id: &str,
    ) -> Result<(), u32> {
        let mut state = self.lock();
        let app_state = take_invitation(&mut state, app, (caller, callee, invitation_id))?;
        if let Some(conn) = conn_of(app_state, callee) {
            conn.send_event(&Event::InvitationCanceled {
                invitation_id: invitation_id.to_string(),
                caller: caller.to_string(),
            });
        }
        Ok(())
    }

    /// `accept_invitation` / `refuse_invitation` by the callee: the caller hears the answer.
    pub fn answer_invitation(
        &self,
        app: &str,
        callee: &str,
        caller: &str,
        invitation_id: &str,
        (answer, response): (Answer, String),
    ) -> Result<(), u32> {
        let mut state = self.lock();
        let app_state = take_invitation(&mut state, app, (caller, callee, invitation_id))?;
        let conn = conn_of(app_state, caller).ok_or(invite::PEER_OFFLINE)?;
        let invitation_id = invitation_id.to_string();
        let callee = callee.to_string();
        conn.send_event(&match answer {
            Answer::Accept => Event::InvitationAccepted {
                invitation_id,
                callee,
                response,
            },
            Answer::Refuse => Event::InvitationRefused {
                invitation_id,
                callee,
                response,
            },
        });
        Ok(())
    }
}

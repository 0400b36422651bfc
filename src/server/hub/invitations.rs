//! The hub's call invitations: pending ones, their answers and their expiry.
//!
//! Same rules as the hub's (`hub/mod.rs`): changes are applied under the state lock, never await, and
//! append to outboxes inside the critical section. Results carry the INVITE family's
//! typed error (`InviteError`); `session/invitations.rs` validates input and turns them
//! into replies.

use crate::protocol::{Event, InvitationAnswer, InviteError, WireCode};

use crate::server::engine::{Change, InvitationKey, NodeId};
use crate::server::outbox::ConnHandle;

use super::state::{Here, PendingInvitation, State, Tenant};
use super::Hub;

/// Removes a pending invitation; its app.
fn take_invitation<'a>(
    state: &'a mut State,
    app: &str,
    (caller, callee, invitation_id): (&str, &str, &str),
) -> Result<&'a mut Tenant, InviteError> {
    let app_state = state.apps().get_mut(app).ok_or(InviteError::NotFound)?;
    let key = (
        caller.to_string(),
        callee.to_string(),
        invitation_id.to_string(),
    );
    app_state
        .invitations
        .remove(&key)
        .ok_or(InviteError::NotFound)?;
    Ok(app_state)
}

impl Hub {
    /// `invite`: delivers `invitation_received` to an online callee and starts the
    /// expiry (on the origin).
    pub(super) fn invite(
        &self,
        state: &mut State,
        app: &str,
        key: InvitationKey,
        (content, channel): (String, Option<String>),
        here: Here,
    ) -> Result<(), InviteError> {
        let epoch = state.next_epoch(app, here.stamp.now_ms);
        let app_state = state.apps().entry(app.to_string()).or_default();
        let callee_conn = app_state
            .conn_of(&key.1)
            .cloned()
            .ok_or(InviteError::PeerOffline)?;
        if app_state.invitations.contains_key(&key) {
            return Err(InviteError::InvalidArgument);
        }
        // A cap per caller, so that no one can flood a callee's outbox with invitations.
        let pending = app_state
            .invitations
            .keys()
            .filter(|k| k.0 == key.0)
            .count();
        if pending >= self.config().max_pending_invitations {
            return Err(InviteError::InvalidArgument);
        }
        let owner = here.stamp.origin;
        app_state
            .invitations
            .insert(key.clone(), PendingInvitation { epoch, owner });
        callee_conn.send_event(&Event::InvitationReceived {
            invitation_id: key.2.clone(),
            caller: key.0.clone(),
            content,
            channel,
        });
        if here.origin {
            self.start_invitation_expiry(app, key, epoch);
        }
        Ok(())
    }

    fn start_invitation_expiry(&self, app: &str, key: InvitationKey, epoch: u64) {
        let change = Change::InvitationExpired {
            app: app.to_string(),
            key,
            epoch,
        };
        self.change_after(self.config().invitation_timeout, change);
    }
}

/// The expiry timers `node` ran (it is gone) are the origin's now, from the start.
pub(super) fn adopt_expiries(
    hub: &Hub,
    app_state: &mut Tenant,
    app: &str,
    node: NodeId,
    here: Here,
) {
    for (key, invitation) in &mut app_state.invitations {
        if invitation.owner == node {
            invitation.owner = here.stamp.origin;
            if here.origin {
                hub.start_invitation_expiry(app, key.clone(), invitation.epoch);
            }
        }
    }
}

/// An invitation's expiry timer fired: both sides hear of it, if it is still pending.
pub(super) fn invitation_expired(state: &mut State, app: &str, key: &InvitationKey, epoch: u64) {
    let Some(app_state) = state.apps().get_mut(app) else {
        return;
    };
    if app_state.invitations.get(key).map(|i| i.epoch) != Some(epoch) {
        return;
    }
    app_state.invitations.remove(key);
    let line = ConnHandle::encode_shared(&Event::InvitationFailure {
        invitation_id: key.2.clone(),
        reason: InviteError::Expired.code(),
    });
    for user in [&key.0, &key.1] {
        if let Some(conn) = app_state.conn_of(user) {
            conn.push_line(&line);
        }
    }
}

/// `cancel_invitation` by the caller: the callee gets `invitation_canceled`.
pub(super) fn cancel_invitation(
    state: &mut State,
    app: &str,
    (caller, callee, invitation_id): (&str, &str, &str),
) -> Result<(), InviteError> {
    let app_state = take_invitation(state, app, (caller, callee, invitation_id))?;
    if let Some(conn) = app_state.conn_of(callee) {
        conn.send_event(&Event::InvitationCanceled {
            invitation_id: invitation_id.to_string(),
            caller: caller.to_string(),
        });
    }
    Ok(())
}

/// `accept_invitation` / `refuse_invitation` by the callee: the caller hears the answer.
pub(super) fn answer_invitation(
    state: &mut State,
    app: &str,
    (caller, callee, invitation_id): (&str, &str, &str),
    (answer, response): (InvitationAnswer, String),
) -> Result<(), InviteError> {
    let app_state = take_invitation(state, app, (caller, callee, invitation_id))?;
    let conn = app_state.conn_of(caller).ok_or(InviteError::PeerOffline)?;
    let invitation_id = invitation_id.to_string();
    let callee = callee.to_string();
    conn.send_event(&answer.event(invitation_id, callee, response));
    Ok(())
}

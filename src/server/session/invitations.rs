//! `handle`'s call invitations (INVITE codes): `invite` and `cancel_invitation` by the
//! caller, `accept_invitation` and `refuse_invitation` by the callee.
//!
//! Pending invitations, their events and their expiry are the hub's
//! (`hub_invitations.rs`).

use crate::protocol::limits::{
    validate_channel_id, validate_user_id, MAX_INVITATION_ID_BYTES, MAX_INVITATION_PAYLOAD_BYTES,
};
use crate::protocol::InviteError;

use super::super::engine::Change;
use super::super::hub::Outcome;
use super::super::hub_invitations::Answer;
use super::Ask;

/// An invitation id (1..64 bytes), a valid peer id, and a payload of at most 8 KiB.
fn check_invitation(invitation_id: &str, peer: &str, payload: &str) -> Result<(), String> {
    if invitation_id.is_empty() || invitation_id.len() > MAX_INVITATION_ID_BYTES {
        return Err(format!(
            "invitation id must be 1 to {MAX_INVITATION_ID_BYTES} bytes"
        ));
    }
    validate_user_id(peer).map_err(|e| e.to_string())?;
    if payload.len() > MAX_INVITATION_PAYLOAD_BYTES {
        return Err(format!(
            "content and response are at most {MAX_INVITATION_PAYLOAD_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Submits an invitation change and answers 0 or its INVITE code.
async fn submit(ask: &Ask<'_>, change: Change) {
    match ask.submit(change).await {
        Outcome::Invitation(result) => ask.ok_or_refuse(result),
        other => ask.unavailable(&other),
    }
}

/// `invite`: `content` (and a channel, if given) to an online callee.
pub(super) async fn invite(
    ask: &mut Ask<'_>,
    (invitation_id, callee): (String, String),
    content: String,
    channel: Option<String>,
) {
    if let Err(why) = check_invitation(&invitation_id, &callee, &content) {
        return ask.refuse_why(InviteError::InvalidArgument, why);
    }
    if let Some(Err(e)) = channel.as_deref().map(validate_channel_id) {
        return ask.refuse_why(InviteError::InvalidArgument, e.to_string());
    }
    // INVITE has no "too often": 4 (invalid argument) with a reason that says so.
    if !ask.session.limits.invitations.allow(ask.now) {
        return ask.refuse_why(InviteError::InvalidArgument, "invitations too often");
    }
    let change = Change::Invite {
        app: ask.me.app.clone(),
        caller: ask.me.user.clone(),
        callee,
        invitation_id,
        content,
        channel,
    };
    submit(ask, change).await;
}

/// `cancel_invitation` by its caller.
pub(super) async fn cancel(ask: &Ask<'_>, invitation_id: String, callee: String) {
    if let Err(why) = check_invitation(&invitation_id, &callee, "") {
        return ask.refuse_why(InviteError::InvalidArgument, why);
    }
    let change = Change::CancelInvitation {
        app: ask.me.app.clone(),
        caller: ask.me.user.clone(),
        callee,
        invitation_id,
    };
    submit(ask, change).await;
}

/// `accept_invitation` or `refuse_invitation` by its callee, with a `response`.
pub(super) async fn answer(
    ask: &Ask<'_>,
    answer: Answer,
    (invitation_id, caller): (String, String),
    response: String,
) {
    if let Err(why) = check_invitation(&invitation_id, &caller, &response) {
        return ask.refuse_why(InviteError::InvalidArgument, why);
    }
    let change = Change::AnswerInvitation {
        app: ask.me.app.clone(),
        callee: ask.me.user.clone(),
        caller,
        invitation_id,
        answer,
        response,
    };
    submit(ask, change).await;
}

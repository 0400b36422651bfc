//! `handle`'s call invitations (INVITE codes): `invite` and `cancel_invitation` by the
//! caller, `accept_invitation` and `refuse_invitation` by the callee.
//!
//! Pending invitations, their events and their expiry are the hub's
//! (`hub/invitations.rs`).

use crate::protocol::{InvitationAnswer, InviteError};

use super::Ask;
use crate::server::engine::Change;
use crate::server::engine::Outcome;

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
    answer: InvitationAnswer,
    (invitation_id, caller): (String, String),
    response: String,
) {
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

//! `handle`'s call invitations (INVITE codes): `invite` and `cancel_invitation` by the
//! caller, `accept_invitation` and `refuse_invitation` by the callee.
//!
//! Pending invitations, their events and their expiry are the hub's
//! (`hub/invitations.rs`, over the engine's store).

use crate::protocol::{InvitationAnswer, InviteError};

use super::Ask;
use crate::server::engine::Outcome;

/// Answers 0 or the invitation's INVITE code.
fn answer_outcome(ask: &Ask<'_>, outcome: Outcome) {
    match outcome {
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
    let key = (ask.me.user.clone(), callee, invitation_id);
    let outcome = ask.hub.invite(&ask.me.app, key, (content, channel)).await;
    answer_outcome(ask, outcome);
}

/// `cancel_invitation` by its caller.
pub(super) async fn cancel(ask: &Ask<'_>, invitation_id: String, callee: String) {
    let key = (ask.me.user.clone(), callee, invitation_id);
    let outcome = ask.hub.cancel_invitation(&ask.me.app, key).await;
    answer_outcome(ask, outcome);
}

/// `accept_invitation` or `refuse_invitation` by its callee, with a `response`.
pub(super) async fn answer(
    ask: &Ask<'_>,
    answer: InvitationAnswer,
    (invitation_id, caller): (String, String),
    response: String,
) {
    let key = (caller, ask.me.user.clone(), invitation_id);
    let outcome = ask
        .hub
        .answer_invitation(&ask.me.app, key, (answer, response))
        .await;
    answer_outcome(ask, outcome);
}

//! Cases for call invitations: received, accepted, refused, canceled; codes; expiry.

use serde_json::json;

use super::{case, refusal, Case, CaseResult, Ctx, Expect, TIMER_SLACK};
use crate::qa::raw::RawConn;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case("invite.accept", "the callee gets invitation_received; accept_invitation sends invitation_accepted to the caller", invite_accept),
        case("invite.refuse", "refuse_invitation sends invitation_refused with the response to the caller", invite_refuse),
        case("invite.cancel", "cancel_invitation sends invitation_canceled to the callee", invite_cancel),
        refusal("invite.peer_offline", "inviting an offline user answers 1", 1, |cx| json!({"op": "invite", "invitation_id": cx.user("inv"), "callee": cx.user("nobody"), "content": ""})),
        case("invite.not_found", "accepting, refusing or canceling an unknown invitation answers 5", invite_not_found),
        case("invite.invalid", "content over 8 KiB answers 4", invite_invalid),
        case("invite.expiry", "an unanswered invitation fails for both sides: invitation_failure with reason 3", invite_expiry).slow(),
    ]
}

/// Alice invites Bob; returns both connections, their ids and the invitation id, after
/// Bob has received the invitation with its content and channel.
async fn invited(cx: &Ctx) -> Result<(RawConn, String, RawConn, String, String), super::CaseError> {
    let (mut alice, alice_id, mut bob, bob_id) = cx.pair().await?;
    let invitation = format!("{}-call", cx.user("inv"));
    let channel = cx.channel("call");
    alice.ok(json!({"op": "invite", "invitation_id": invitation, "callee": bob_id, "content": "ring", "channel": channel})).await?;
    bob.event("invitation_received", json!({"invitation_id": invitation, "caller": alice_id, "content": "ring", "channel": channel})).await?;
    Ok((alice, alice_id, bob, bob_id, invitation))
}

/// Bob answers Alice's invitation with `op` (`accept_invitation`, `refuse_invitation`) and
/// `response`; Alice must get `event` carrying that response.
async fn answered(cx: &Ctx, op: &str, response: &str, event: &str) -> CaseResult {
    let (mut alice, alice_id, mut bob, bob_id, invitation) = invited(cx).await?;
    bob.ok(
        json!({"op": op, "invitation_id": invitation, "caller": alice_id, "response": response}),
    )
    .await?;
    alice
        .event(
            event,
            json!({"invitation_id": invitation, "callee": bob_id, "response": response}),
        )
        .await?;
    Ok(())
}

async fn invite_accept(cx: Ctx) -> CaseResult {
    answered(&cx, "accept_invitation", "on my way", "invitation_accepted").await
}

async fn invite_refuse(cx: Ctx) -> CaseResult {
    answered(&cx, "refuse_invitation", "busy", "invitation_refused").await
}

async fn invite_cancel(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id, mut bob, bob_id, invitation) = invited(&cx).await?;
    alice
        .ok(json!({"op": "cancel_invitation", "invitation_id": invitation, "callee": bob_id}))
        .await?;
    bob.event(
        "invitation_canceled",
        json!({"invitation_id": invitation, "caller": alice_id}),
    )
    .await?;
    Ok(())
}

async fn invite_not_found(cx: Ctx) -> CaseResult {
    let (_alice, alice_id, mut bob, _) = cx.pair().await?;
    let never = cx.user("never-sent");
    for answer in ["accept_invitation", "refuse_invitation"] {
        bob.code(
            json!({"op": answer, "invitation_id": never, "caller": alice_id, "response": ""}),
            5,
        )
        .await?;
    }
    bob.code(
        json!({"op": "cancel_invitation", "invitation_id": never, "callee": alice_id}),
        5,
    )
    .await?;
    Ok(())
}

async fn invite_invalid(cx: Ctx) -> CaseResult {
    let (mut alice, _, _bob, bob_id) = cx.pair().await?;
    let content = "c".repeat(8 * 1024 + 1);
    alice
        .code(
            json!({"op": "invite", "invitation_id": cx.user("inv"), "callee": bob_id, "content": content}),
            4,
        )
        .await?;
    Ok(())
}

async fn invite_expiry(cx: Ctx) -> CaseResult {
    let wait = cx.timing().invite_expiry + TIMER_SLACK;
    cx.need_time(wait)?;
    let (mut alice, _, mut bob, _, invitation) = invited(&cx).await?;
    cx.waiting_for("the invitation expiry", cx.timing().invite_expiry);
    for (who, conn) in [("caller", &mut alice), ("callee", &mut bob)] {
        let failure = conn
            .next_event(wait, |e| {
                e["event"] == "invitation_failure" && e["invitation_id"] == json!(invitation)
            })
            .await;
        match failure {
            Some(e) if e["reason"] == json!(3) => {}
            Some(e) => fail!("the {who} got {e}; reason 3 (expired) expected"),
            None => fail!(
                "the {who} got no invitation_failure within the expiry + {}s",
                TIMER_SLACK.as_secs()
            ),
        }
    }
    Ok(())
}

//! Cases for the envelope and framing: malformed input, unknown ops and fields, batches,
//! invalid parameters, and the 64 KiB object limit.

use serde_json::{json, Value};

use super::{case, refusal, Case, CaseResult, Ctx, Expect, EVENT_TIMEOUT};
use crate::qa::raw::{Closure, REPLY_TIMEOUT};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "frame.unparsable_json",
            "unparsable JSON gets an error event with code 1; the connection stays open",
            unparsable,
        ),
        case(
            "frame.not_an_object",
            "a JSON value that is not an object gets an error event with code 1",
            not_object,
        ),
        case(
            "frame.missing_id",
            "a request without id gets an error event with code 1",
            missing_id,
        ),
        refusal(
            "frame.unknown_op",
            "an unknown op is answered with code 1",
            1,
            |_| json!({"op": "teleport", "to": "mars"}),
        ),
        case(
            "frame.unknown_fields",
            "unknown fields are ignored",
            unknown_fields,
        ),
        case(
            "frame.batch",
            "several objects in one frame, separated by newlines, are each answered",
            batch,
        ),
        case(
            "frame.one_reply_per_request",
            "every request gets exactly one reply",
            one_reply,
        ),
        case(
            "frame.invalid_params",
            "a known op with missing parameters gets its family's invalid-argument code",
            invalid_params,
        ),
        case(
            "frame.too_large",
            "an object over 64 KiB is answered with close code 1009",
            too_large,
        ),
    ]
}

/// Sends `frame` and expects an `error` event with code 1, then checks the connection works.
async fn expect_error_event(cx: &Ctx, frame: &str) -> CaseResult {
    let (mut conn, _) = cx.fresh("alice").await?;
    conn.send_text(frame)?;
    let event = conn.event("error", json!({})).await?;
    ensure!(
        event["code"] == json!(1),
        "error event has code {}, not 1",
        event["code"]
    );
    ensure!(
        event["reason"].is_string(),
        "error event has no reason: {event}"
    );
    conn.ok(json!({"op": "ping"})).await?;
    Ok(())
}

async fn unparsable(cx: Ctx) -> CaseResult {
    expect_error_event(&cx, "{\"id\": 1, \"op\": \"ping\"").await
}

async fn not_object(cx: Ctx) -> CaseResult {
    expect_error_event(&cx, "[1, 2, 3]").await
}

async fn missing_id(cx: Ctx) -> CaseResult {
    expect_error_event(&cx, "{\"op\": \"ping\"}").await
}

async fn unknown_fields(cx: Ctx) -> CaseResult {
    let user = cx.user("alice");
    let mut conn = cx.connect(&user).await?;
    let mut login = cx.login_op(&user).await?;
    login["client_flavour"] = json!({"nested": [1, 2]});
    conn.ok(login).await?;
    conn.ok(json!({"op": "ping", "future_field": true})).await?;
    Ok(())
}

async fn batch(cx: Ctx) -> CaseResult {
    let (mut conn, _) = cx.fresh("alice").await?;
    let replies = conn.start_batch(vec![
        json!({"op": "join", "channel": cx.channel("a")}),
        json!({"op": "ping"}),
        json!({"op": "join", "channel": cx.channel("b")}),
    ])?;
    let replies = super::wait_all(replies).await?;
    super::all_answered(&replies, 0, "a request of a batch")
}

async fn invalid_params(cx: Ctx) -> CaseResult {
    let (mut conn, _) = cx.fresh("alice").await?;
    conn.code(json!({"op": "join"}), 3).await?;
    conn.code(json!({"op": "query_peers_online"}), 2).await?;
    conn.code(
        json!({"op": "set_user_attributes", "attributes": "not a map"}),
        3,
    )
    .await?;
    conn.code(json!({"op": "history", "channel": 5}), 2).await?;
    Ok(())
}

async fn too_large(cx: Ctx) -> CaseResult {
    let (mut conn, _) = cx.fresh("alice").await?;
    let padding = "x".repeat(65 * 1024);
    let big: Value = json!({"id": 99, "op": "ping", "padding": padding});
    conn.send_text(big.to_string())?;
    match conn.wait_closed(EVENT_TIMEOUT + REPLY_TIMEOUT).await {
        Closure::CloseFrame(Some(1009)) => Ok(()),
        Closure::CloseFrame(code) => fail!("closed with code {code:?}, not 1009"),
        Closure::Dropped => fail!("the connection dropped without a close frame (1009 expected)"),
        Closure::Open => fail!("the connection stayed open after a 65 KiB object"),
    }
}

async fn one_reply(cx: Ctx) -> CaseResult {
    let (mut conn, _) = cx.fresh("alice").await?;
    let mut ops = vec![json!({"op": "ping"}); 20];
    ops.push(json!({"op": "join", "channel": cx.channel("room")}));
    ops.push(json!({"op": "teleport"}));
    conn.call_all(ops).await?;
    // Anything owed to the requests above is queued before this reply.
    conn.ok(json!({"op": "ping"})).await?;
    let stray = conn.stray_replies();
    ensure!(
        stray == 0,
        "{stray} replies arrived that no request was waiting for (duplicates?)"
    );
    Ok(())
}

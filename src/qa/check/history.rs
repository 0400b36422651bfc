//! Cases for `history`: peer and channel conversations, before/after/limit, codes.

use serde_json::{json, Value};

use super::{case, refusal, text, Case, CaseError, CaseResult, Ctx, Expect};
use crate::qa::raw::RawConn;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "history.peer",
            "history of a peer conversation lists messages oldest first; limit keeps the newest",
            history_peer,
        ),
        case(
            "history.channel.paging",
            "channel history pages with before and after by message id",
            history_paging,
        ),
        case(
            "history.invalid",
            "limit 0 or over 100, or both/neither of peer and channel, answer 2",
            history_invalid,
        ),
        refusal(
            "history.not_in_channel",
            "history of a channel not joined answers 5",
            5,
            |cx| json!({"op": "history", "channel": cx.channel("never")}),
        ),
    ]
}

/// Sends the `history` request `op` and expects its messages to be texts `expected`, in
/// that order; returns the reply. `what` describes the request in the failure.
async fn expect_texts(
    conn: &mut RawConn,
    op: Value,
    expected: &[&str],
    what: &str,
) -> Result<Value, CaseError> {
    let reply = conn.ok(op).await?;
    let texts: Vec<&str> = reply["messages"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|m| m["message"]["text"].as_str().unwrap_or("?"))
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        texts == expected,
        "{what} lists {texts:?}; {expected:?} expected"
    );
    Ok(reply)
}

async fn history_peer(cx: Ctx) -> CaseResult {
    let (mut alice, _, _bob, bob_id) = cx.pair().await?;
    for n in 0..3 {
        alice
            .ok(json!({"op": "send_peer", "to": bob_id, "message": text(&format!("p{n}"))}))
            .await?;
    }
    let all = json!({"op": "history", "peer": bob_id});
    let all = expect_texts(&mut alice, all, &["p0", "p1", "p2"], "peer history").await?;
    let m = &all["messages"][0];
    ensure!(
        m["message_id"].is_u64() && m["server_ts"].is_u64() && m["from"].is_string(),
        "history entry lacks fields: {m}"
    );
    let newest = json!({"op": "history", "peer": bob_id, "limit": 2});
    expect_texts(&mut alice, newest, &["p1", "p2"], "peer history, limit 2,").await?;
    Ok(())
}

async fn history_paging(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let (mut alice, _) = cx.fresh("alice").await?;
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    let mut ids = Vec::new();
    for n in 0..5 {
        let reply = alice.ok(json!({"op": "send_channel", "channel": channel, "message": text(&format!("c{n}"))})).await?;
        ids.push(reply["message_id"].clone());
    }
    let before = json!({"op": "history", "channel": channel, "before": ids[3], "limit": 2});
    expect_texts(
        &mut alice,
        before,
        &["c1", "c2"],
        "history before c3, limit 2,",
    )
    .await?;
    let after = json!({"op": "history", "channel": channel, "after": ids[1], "limit": 2});
    expect_texts(
        &mut alice,
        after,
        &["c2", "c3"],
        "history after c1, limit 2,",
    )
    .await?;
    Ok(())
}

async fn history_invalid(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let (mut alice, _) = cx.fresh("alice").await?;
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    let peer = cx.user("bob");
    for op in [
        json!({"op": "history", "channel": channel, "limit": 0}),
        json!({"op": "history", "channel": channel, "limit": 101}),
        json!({"op": "history", "channel": channel, "peer": peer}),
        json!({"op": "history"}),
    ] {
        alice.code(op, 2).await?;
    }
    Ok(())
}

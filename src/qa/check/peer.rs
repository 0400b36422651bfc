//! Cases for peer messages: delivery and its fields, the ack semantics behind code 0,
//! codes 2/3/4/6/7, offline caching and its bound, ordering, message ids, rate limits.

use std::time::Duration;

use serde_json::{json, Value};

use super::{
    all_answered, carries, case, message_ids, text, Case, CaseResult, Ctx, Expect, QUIET,
    TIMER_SLACK,
};
use crate::qa::raw::{code_of, RawError, REPLY_TIMEOUT};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case("peer.send.received", "send_peer to an online user answers 0; the peer gets message_from_peer with from, message, message_id, offline false", received),
        case("peer.send.raw", "a raw message keeps its data and description end to end", raw_message),
        case("peer.send.waits_for_ack", "send_peer answers 0 only after the receiver's ack", waits_for_ack),
        case("peer.send.ack_timeout", "no ack within the ack timeout answers 2", ack_timeout).slow(),
        case("peer.send.unreachable", "send_peer to an offline user without offline answers 3", unreachable),
        case("peer.send.invalid_user", "send_peer to an invalid user id answers 6", invalid_user),
        case("peer.send.invalid_message", "an empty or over-32-KiB message answers 7", invalid_message),
        case("peer.offline.cached", "offline send to an offline user answers 4; the messages arrive after its login, offline true, oldest first", cached),
        case("peer.offline.survives_restart", "cached messages are stored durably: they arrive after a server restart", survives_restart).alone(),
        case("peer.offline.limit", "at most 200 cached messages per receiver, the oldest dropped", cache_limit).slow(),
        case("peer.order", "messages between two users arrive in the order the server answered them, with increasing message ids", order),
        case("peer.rate_limit", "more than 180 sends per 3 s answer 5", rate_limit),
    ]
}

async fn received(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id, mut bob, bob_id) = cx.pair().await?;
    let reply = alice
        .ok(json!({"op": "send_peer", "to": bob_id, "message": text("hello bob")}))
        .await?;
    let Some(id) = reply["message_id"].as_u64() else {
        fail!("send_peer reply has no message_id: {reply}")
    };
    ensure!(id < 1 << 53, "message_id {id} is not below 2^53");
    ensure!(
        reply["server_ts"].is_u64(),
        "send_peer reply has no server_ts: {reply}"
    );
    let event = bob
        .event("message_from_peer", json!({"from": alice_id}))
        .await?;
    carries(&event, &text("hello bob"), "the message")?;
    ensure!(
        event["message_id"] == json!(id),
        "event message_id {} differs from the reply's {id}",
        event["message_id"]
    );
    ensure!(
        event["offline"] == json!(false),
        "online delivery has offline = {}",
        event["offline"]
    );
    ensure!(
        event["server_ts"].is_u64(),
        "event has no server_ts: {event}"
    );
    Ok(())
}

async fn raw_message(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id, mut bob, bob_id) = cx.pair().await?;
    let message = json!({"type": "raw", "data": "AAEC/w==", "description": "four bytes"});
    alice
        .ok(json!({"op": "send_peer", "to": bob_id, "message": message}))
        .await?;
    let event = bob
        .event("message_from_peer", json!({"from": alice_id}))
        .await?;
    carries(&event, &message, "the raw message")
}

async fn waits_for_ack(cx: Ctx) -> CaseResult {
    let (mut alice, _, mut bob, bob_id) = cx.pair().await?;
    bob.set_auto_ack(false);
    let mut pending =
        alice.start(json!({"op": "send_peer", "to": bob_id, "message": text("ack me")}))?;
    let event = bob.event("message_from_peer", json!({})).await?;
    // Listen no longer than a quarter of the ack timeout: the ack below must reach the
    // server well before the timeout answers 2, however short the server's timer.
    match pending.wait(QUIET.min(cx.timing().ack_timeout / 4)).await {
        Err(RawError::Timeout { .. }) => {}
        Ok(reply) => fail!("send_peer answered {reply} before the receiver acknowledged"),
        Err(e) => return Err(e.into()),
    }
    bob.notice(&json!({"op": "ack", "message_id": event["message_id"]}))?;
    let reply = pending.wait(REPLY_TIMEOUT).await?;
    ensure!(
        code_of(&reply) == 0,
        "after the ack, send_peer answered {reply}; expected 0"
    );
    Ok(())
}

async fn ack_timeout(cx: Ctx) -> CaseResult {
    let wait = cx.timing().ack_timeout + TIMER_SLACK;
    cx.need_time(wait)?;
    let (mut alice, _, bob, bob_id) = cx.pair().await?;
    bob.set_auto_ack(false);
    cx.waiting_for("the ack timeout", cx.timing().ack_timeout);
    let reply = alice
        .call_within(
            json!({"op": "send_peer", "to": bob_id, "message": text("never acked")}),
            wait,
        )
        .await?;
    ensure!(
        code_of(&reply) == 2,
        "an unacknowledged send_peer answered {reply}; expected 2 (timeout)"
    );
    Ok(())
}

async fn unreachable(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let nobody = cx.user("nobody");
    alice
        .code(
            json!({"op": "send_peer", "to": nobody, "message": text("hi")}),
            3,
        )
        .await?;
    alice
        .code(
            json!({"op": "send_peer", "to": nobody, "message": text("hi"), "offline": false}),
            3,
        )
        .await?;
    Ok(())
}

async fn invalid_user(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    for bad in ["null", " space", &"x".repeat(65)] {
        alice
            .code(
                json!({"op": "send_peer", "to": bad, "message": text("hi")}),
                6,
            )
            .await?;
    }
    Ok(())
}

async fn invalid_message(cx: Ctx) -> CaseResult {
    let (mut alice, _, _bob, bob_id) = cx.pair().await?;
    alice
        .code(
            json!({"op": "send_peer", "to": bob_id, "message": text("")}),
            7,
        )
        .await?;
    let long = "x".repeat(32 * 1024 + 1);
    alice
        .code(
            json!({"op": "send_peer", "to": bob_id, "message": text(&long)}),
            7,
        )
        .await?;
    Ok(())
}

async fn send_offline(
    alice: &mut crate::qa::raw::RawConn,
    to: &str,
    body: &str,
) -> Result<Value, super::CaseError> {
    alice
        .code(
            json!({"op": "send_peer", "to": to, "message": text(body), "offline": true}),
            4,
        )
        .await
}

async fn cached(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id) = cx.fresh("alice").await?;
    let bob_id = cx.user("bob");
    for n in 0..3 {
        send_offline(&mut alice, &bob_id, &format!("cached {n}")).await?;
    }
    let mut bob = cx.login(&bob_id).await?;
    let got = bob
        .events("message_from_peer", json!({"from": alice_id}), 3)
        .await?;
    for (n, event) in got.iter().enumerate() {
        carries(event, &text(&format!("cached {n}")), "a cached message")?;
        ensure!(
            event["offline"] == json!(true),
            "a cached message arrived with offline = {}",
            event["offline"]
        );
    }
    Ok(())
}

/// Offline sends per step while filling the cache, and the pause after a step: no 3 s
/// hold more than two steps (134 sends), under the 180-per-3-s send limit.
const CACHE_FILL_STEP: usize = 67;
const CACHE_FILL_PAUSE: Duration = Duration::from_millis(1600);

async fn cache_limit(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id) = cx.fresh("alice").await?;
    let bob_id = cx.user("bob");
    let total = 201;
    for first in (0..total).step_by(CACHE_FILL_STEP) {
        if first > 0 {
            tokio::time::sleep(CACHE_FILL_PAUSE).await;
        }
        let sends = (first..total.min(first + CACHE_FILL_STEP))
            .map(|n| json!({"op": "send_peer", "to": bob_id, "message": text(&format!("m{n}")), "offline": true}))
            .collect();
        let replies = alice.call_all(sends).await?;
        all_answered(&replies, 4, "an offline send")?;
    }
    let mut bob = cx.login(&bob_id).await?;
    let got = bob
        .events("message_from_peer", json!({"from": alice_id}), 200)
        .await?;
    // m0 was dropped for the 201st.
    carries(&got[0], &text("m1"), "the oldest cached message")?;
    carries(&got[199], &text("m200"), "the newest cached message")
}

async fn order(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id, mut bob, bob_id) = cx.pair().await?;
    let count = 20;
    let sends = (0..count)
        .map(|n| json!({"op": "send_peer", "to": bob_id, "message": text(&format!("n{n}"))}))
        .collect();
    let replies = alice.call_all(sends).await?;
    all_answered(&replies, 0, "a send_peer")?;
    let mut answered = message_ids(&replies);
    answered.sort_unstable();
    let got = bob
        .events("message_from_peer", json!({"from": alice_id}), count)
        .await?;
    let got_ids = message_ids(&got);
    ensure!(
        got_ids == answered,
        "arrival order {got_ids:?} differs from answer order {answered:?}"
    );
    ensure!(
        got_ids.windows(2).all(|w| w[0] < w[1]),
        "message ids do not increase: {got_ids:?}"
    );
    Ok(())
}

async fn rate_limit(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let nobody = cx.user("nobody");
    let sends = vec![json!({"op": "send_peer", "to": nobody, "message": text("x")}); 200];
    let replies = alice.call_all(sends).await?;
    // Sends within the limit reach nobody (3); the rest are refused as too often (5).
    super::rate_limited(&replies, 3, 5, 20, "200 sends at once")
}

async fn survives_restart(cx: Ctx) -> CaseResult {
    if cx.restart_server_available() {
        let (mut alice, alice_id) = cx.fresh("alice").await?;
        let bob_id = cx.user("bob");
        send_offline(&mut alice, &bob_id, "kept across a restart").await?;
        alice.drop_abruptly();
        cx.restart_server().await?;
        let mut bob = cx.login_after_restart(&bob_id).await?;
        bob.event(
            "message_from_peer",
            json!({"from": alice_id, "message": text("kept across a restart"), "offline": true}),
        )
        .await?;
        Ok(())
    } else {
        cx.restart_server().await
    }
}

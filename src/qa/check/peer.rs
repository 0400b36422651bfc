//! Cases for peer messages: delivery and its fields, the ack semantics behind code 0,
//! codes 2/3/4/6/7, offline caching and its bound, ordering, message ids, rate limits.

use serde_json::{json, Value};

use super::{case, text, Case, CaseResult, Ctx, Expect, QUIET, TIMER_SLACK};
use crate::qa::raw::{code_of, RawError, REPLY_TIMEOUT};

pub fn cases() -> Vec<Case> {
    vec![
        case("peer.send.received", "send_peer to an online user answers 0; the peer gets message_from_peer with from, message, message_id, offline false", received),
        case("peer.send.raw", "a raw message keeps its data and description end to end", raw_message),
        case("peer.send.waits_for_ack", "send_peer answers 0 only after the receiver's ack", waits_for_ack),
        case("peer.send.ack_timeout", "no ack within the ack timeout answers 2", ack_timeout),
        case("peer.send.unreachable", "send_peer to an offline user without offline answers 3", unreachable),
        case("peer.send.invalid_user", "send_peer to an invalid user id answers 6", invalid_user),
        case("peer.send.invalid_message", "an empty or over-32-KiB message answers 7", invalid_message),
        case("peer.offline.cached", "offline send to an offline user answers 4; the messages arrive after its login, offline true, oldest first", cached),
        case("peer.offline.survives_restart", "cached messages are stored durably: they arrive after a server restart", survives_restart),
        case("peer.offline.limit", "at most 200 cached messages per receiver, the oldest dropped", cache_limit),
        case("peer.order", "messages between two users arrive in the order the server answered them, with increasing message ids", order),
        case("peer.rate_limit", "more than 180 sends per 3 s answer 5", rate_limit),
    ]
}

async fn pair(
    cx: &Ctx,
) -> Result<
    (
        crate::qa::raw::RawConn,
        String,
        crate::qa::raw::RawConn,
        String,
    ),
    super::CaseError,
> {
    let (alice, alice_id) = cx.fresh("alice").await?;
    let (bob, bob_id) = cx.fresh("bob").await?;
    Ok((alice, alice_id, bob, bob_id))
}

async fn received(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id, mut bob, bob_id) = pair(&cx).await?;
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
    ensure!(
        event["message"] == text("hello bob"),
        "message arrived as {}",
        event["message"]
    );
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
    let (mut alice, alice_id, mut bob, bob_id) = pair(&cx).await?;
    let message = json!({"type": "raw", "data": "AAEC/w==", "description": "four bytes"});
    alice
        .ok(json!({"op": "send_peer", "to": bob_id, "message": message}))
        .await?;
    let event = bob
        .event("message_from_peer", json!({"from": alice_id}))
        .await?;
    ensure!(
        event["message"] == message,
        "raw message arrived as {}",
        event["message"]
    );
    Ok(())
}

async fn waits_for_ack(cx: Ctx) -> CaseResult {
    let (mut alice, _, mut bob, bob_id) = pair(&cx).await?;
    bob.set_auto_ack(false);
    let mut pending =
        alice.start(json!({"op": "send_peer", "to": bob_id, "message": text("ack me")}))?;
    let event = bob.event("message_from_peer", json!({})).await?;
    match pending.wait(QUIET).await {
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
    let (mut alice, _, bob, bob_id) = pair(&cx).await?;
    bob.set_auto_ack(false);
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
    let (mut alice, _, _bob, bob_id) = pair(&cx).await?;
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
    let bob = cx.login(&bob_id).await?;
    let got = collect_peer(bob, &alice_id, 3).await?;
    for (n, event) in got.iter().enumerate() {
        ensure!(
            event["message"] == text(&format!("cached {n}")),
            "cached message {n} arrived as {}",
            event["message"]
        );
        ensure!(
            event["offline"] == json!(true),
            "a cached message arrived with offline = {}",
            event["offline"]
        );
    }
    Ok(())
}

/// Takes `count` message_from_peer events from `from`, in arrival order.
async fn collect_peer(
    mut conn: crate::qa::raw::RawConn,
    from: &str,
    count: usize,
) -> Result<Vec<Value>, super::CaseError> {
    let mut got = Vec::with_capacity(count);
    for n in 0..count {
        match conn
            .next_event(super::EVENT_TIMEOUT, |e| {
                e["event"] == "message_from_peer" && e["from"] == from
            })
            .await
        {
            Some(event) => got.push(event),
            None => fail!("only {n} of {count} peer messages arrived"),
        }
    }
    Ok(got)
}

/// Sends per pacing step, to stay under the 180-per-3-s send limit while filling the cache.
const PACED_BATCH: usize = 40;

async fn cache_limit(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id) = cx.fresh("alice").await?;
    let bob_id = cx.user("bob");
    let total = 201;
    let mut sent = 0;
    while sent < total {
        let step = PACED_BATCH.min(total - sent);
        let mut pending = Vec::with_capacity(step);
        for n in sent..sent + step {
            pending.push(alice.start(json!({"op": "send_peer", "to": bob_id, "message": text(&format!("m{n}")), "offline": true}))?);
        }
        for mut reply in pending {
            let reply = reply.wait(REPLY_TIMEOUT).await?;
            ensure!(
                code_of(&reply) == 4,
                "offline send answered {reply}; expected 4"
            );
        }
        sent += step;
        // Pace: 40 per second keeps well below 180 per 3 s.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let mut bob = cx.login(&bob_id).await?;
    let first = bob
        .event("message_from_peer", json!({"from": alice_id}))
        .await?;
    ensure!(
        first["message"] == text("m1"),
        "the oldest cached message is {}; m0 should have been dropped for the 201st",
        first["message"]
    );
    let rest = collect_peer(bob, &alice_id, 199).await?;
    ensure!(
        rest.last().is_some_and(|e| e["message"] == text("m200")),
        "the newest cached message did not arrive last"
    );
    Ok(())
}

async fn order(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id, bob, bob_id) = pair(&cx).await?;
    let count = 20;
    let mut pending = Vec::new();
    for n in 0..count {
        pending.push(
            alice.start(
                json!({"op": "send_peer", "to": bob_id, "message": text(&format!("n{n}"))}),
            )?,
        );
    }
    let mut ids = Vec::new();
    for mut reply in pending {
        let reply = reply.wait(REPLY_TIMEOUT).await?;
        ensure!(code_of(&reply) == 0, "send_peer answered {reply}");
        ids.push(reply["message_id"].as_u64().unwrap_or(0));
    }
    let got = collect_peer(bob, &alice_id, count).await?;
    let got_ids: Vec<u64> = got
        .iter()
        .map(|e| e["message_id"].as_u64().unwrap_or(0))
        .collect();
    let mut answered = ids.clone();
    answered.sort_unstable();
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

//! Cases for presence: queries, subscriptions and their events (online, unreachable during
//! the grace period, offline), limits and the rate limit.

use serde_json::json;

use super::{case, Case, CaseResult, Ctx, Expect, TIMER_SLACK};
use crate::qa::raw::RawConn;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "presence.query",
            "query_peers_online answers online/offline per peer, in the order asked",
            query,
        ),
        case(
            "presence.query.invalid",
            "query_peers_online with 0 or more than 256 peers, or subscribing to none, answers 2",
            query_invalid,
        ),
        case(
            "presence.subscribe.initial",
            "subscribe_peers_online sends peers_online_status with the current states",
            subscribe_initial,
        ),
        case(
            "presence.subscribe.changes",
            "subscribers see a peer go online and, after logout, offline",
            subscribe_changes,
        ),
        case(
            "presence.subscribed_list",
            "query_subscribed_peers lists subscriptions; unsubscribe_peers_online removes them",
            subscribed_list,
        ),
        case(
            "presence.overflow",
            "more than 512 subscriptions answer 6",
            overflow,
        ),
        case(
            "presence.dropped",
            "a dropped user is offline to queries at once and unreachable to subscribers",
            dropped,
        ),
        case(
            "presence.offline_after_grace",
            "after the grace period subscribers see offline",
            offline_after_grace,
        )
        .slow(),
        case(
            "presence.rate_limit",
            "more than 10 presence queries per 5 s answer 5",
            rate_limit,
        ),
        case(
            "presence.logout_ends_subscriptions",
            "logout clears the user's presence subscriptions: logged in again, query_subscribed_peers lists none",
            logout_ends_subscriptions,
        ),
    ]
}

async fn logout_ends_subscriptions(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id, _bob, bob_id) = cx.pair().await?;
    subscribe(&mut alice, &bob_id, "online").await?;
    alice.ok(json!({"op": "logout"})).await?;
    let mut again = cx.login(&alice_id).await?;
    let reply = again.ok(json!({"op": "query_subscribed_peers"})).await?;
    ensure!(
        reply["peers"].as_array().is_some_and(Vec::is_empty),
        "after logout and a new login, query_subscribed_peers answered {reply}; no peers expected"
    );
    Ok(())
}

async fn query(cx: Ctx) -> CaseResult {
    let (mut alice, _, _bob, bob_id) = cx.pair().await?;
    let carol = cx.user("carol");
    let reply = alice
        .ok(json!({"op": "query_peers_online", "peers": [carol, bob_id]}))
        .await?;
    let Some(peers) = reply["peers"].as_object() else {
        fail!("reply has no peers object: {reply}")
    };
    let listed: Vec<(&String, &serde_json::Value)> = peers.iter().collect();
    ensure!(
        listed == vec![(&carol, &json!("offline")), (&bob_id, &json!("online"))],
        "query answered {}; expected carol offline then bob online, in that order",
        reply["peers"]
    );
    Ok(())
}

async fn query_invalid(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    alice
        .code(json!({"op": "query_peers_online", "peers": []}), 2)
        .await?;
    let many: Vec<String> = (0..257).map(|n| cx.user(&n.to_string())).collect();
    alice
        .code(json!({"op": "query_peers_online", "peers": many}), 2)
        .await?;
    alice
        .code(json!({"op": "subscribe_peers_online", "peers": []}), 2)
        .await?;
    Ok(())
}

async fn subscribe_initial(cx: Ctx) -> CaseResult {
    let (mut alice, _, _bob, bob_id) = cx.pair().await?;
    let carol = cx.user("carol");
    alice
        .ok(json!({"op": "subscribe_peers_online", "peers": [bob_id, carol]}))
        .await?;
    alice
        .event(
            "peers_online_status",
            json!({"peers": {bob_id: "online", carol: "offline"}}),
        )
        .await?;
    Ok(())
}

/// Waits for a `peers_online_status` event on `conn` saying `user` is `state`.
async fn status(conn: &mut RawConn, user: &str, state: &str) -> CaseResult {
    conn.event("peers_online_status", json!({"peers": {user: state}}))
        .await?;
    Ok(())
}

/// Subscribes `conn` to `user` and waits for the first status, `state`.
async fn subscribe(conn: &mut RawConn, user: &str, state: &str) -> CaseResult {
    conn.ok(json!({"op": "subscribe_peers_online", "peers": [user]}))
        .await?;
    status(conn, user, state).await
}

async fn subscribe_changes(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let carol = cx.user("carol");
    subscribe(&mut alice, &carol, "offline").await?;
    let mut carol_conn = cx.login(&carol).await?;
    status(&mut alice, &carol, "online").await?;
    carol_conn.ok(json!({"op": "logout"})).await?;
    status(&mut alice, &carol, "offline").await
}

async fn subscribed_list(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let (bob, carol) = (cx.user("bob"), cx.user("carol"));
    alice
        .ok(json!({"op": "subscribe_peers_online", "peers": [bob, carol]}))
        .await?;
    let reply = alice.ok(json!({"op": "query_subscribed_peers"})).await?;
    let mut listed: Vec<String> =
        serde_json::from_value(reply["peers"].clone()).unwrap_or_default();
    listed.sort();
    let mut expected = vec![bob.clone(), carol.clone()];
    expected.sort();
    ensure!(
        listed == expected,
        "subscribed peers are {listed:?}; expected {expected:?}"
    );
    alice
        .ok(json!({"op": "unsubscribe_peers_online", "peers": [bob]}))
        .await?;
    alice
        .ok_with(
            json!({"op": "query_subscribed_peers"}),
            "peers",
            json!([carol]),
        )
        .await?;
    Ok(())
}

async fn overflow(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let first: Vec<String> = (0..300).map(|n| cx.user(&format!("a{n}"))).collect();
    let second: Vec<String> = (0..300).map(|n| cx.user(&format!("b{n}"))).collect();
    alice
        .ok(json!({"op": "subscribe_peers_online", "peers": first}))
        .await?;
    alice
        .code(json!({"op": "subscribe_peers_online", "peers": second}), 6)
        .await?;
    Ok(())
}

async fn dropped(cx: Ctx) -> CaseResult {
    let (mut alice, _, bob, bob_id) = cx.pair().await?;
    subscribe(&mut alice, &bob_id, "online").await?;
    bob.drop_abruptly();
    status(&mut alice, &bob_id, "unreachable").await?;
    let reply = alice
        .ok(json!({"op": "query_peers_online", "peers": [bob_id]}))
        .await?;
    ensure!(
        reply["peers"][&bob_id] == "offline",
        "a dropped user queries as {}; expected offline at once",
        reply["peers"][&bob_id]
    );
    Ok(())
}

async fn offline_after_grace(cx: Ctx) -> CaseResult {
    let wait = cx.timing().grace + TIMER_SLACK;
    cx.need_time(wait)?;
    let (mut alice, _, bob, bob_id) = cx.pair().await?;
    subscribe(&mut alice, &bob_id, "online").await?;
    bob.drop_abruptly();
    cx.waiting_for("the end of the grace period", cx.timing().grace);
    let offline = alice
        .next_event(wait, |e| {
            e["event"] == "peers_online_status" && e["peers"][&bob_id] == "offline"
        })
        .await;
    ensure!(
        offline.is_some(),
        "no offline status for a dropped user within grace + {}s",
        TIMER_SLACK.as_secs()
    );
    Ok(())
}

async fn rate_limit(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let bob = cx.user("bob");
    let queries = vec![json!({"op": "query_peers_online", "peers": [bob]}); 12];
    let replies = alice.call_all(queries).await?;
    super::rate_limited(&replies, 0, 5, 1, "12 presence queries at once")
}

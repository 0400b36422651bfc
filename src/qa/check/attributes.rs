//! Cases for user and channel attributes: set/add/delete/clear/get, notifications, size
//! and form limits, writes by non-members, the expiry of an empty channel's attributes,
//! and the write rate limit.

use serde_json::{json, Value};

use super::{case, refusal, Case, CaseResult, Ctx, Expect, QUIET, TIMER_SLACK};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case("attr.channel.non_member", "channel attributes are readable and writable without membership; members are notified", channel_non_member),
        case("attr.channel.expiry", "a channel's attributes go 5 minutes after its last member left", channel_expiry).slow(),
        case("attr.user.set_get", "set_user_attributes replaces the set; others read it with get_user_attributes (all or some keys)", user_set_get),
        case("attr.user.update_delete_clear", "add_or_update_user_attributes merges, delete_user_attributes removes keys, clear_user_attributes empties", user_update_delete_clear),
        refusal("attr.user.not_found", "get_user_attributes of a user not logged in answers 6", 6, |cx| json!({"op": "get_user_attributes", "user": cx.user("ghost")})),
        refusal("attr.user.invalid", "an empty key answers 3", 3, |_| json!({"op": "set_user_attributes", "attributes": {"": "v"}})),
        case("attr.user.size", "a value over 8 KiB, 33 keys, or over 16 KiB in all answer 4", user_size),
        case("attr.channel.notify", "set_channel_attributes and add_or_update_channel_attributes with notify send channel_attributes_updated with the full list to members; get_channel_attributes reads them", channel_notify),
        case("attr.channel.no_notify", "channel attribute writes without notify send no event", channel_no_notify),
        case("attr.channel.delete_clear", "delete_channel_attributes and clear_channel_attributes remove attributes", channel_delete_clear),
        case("attr.channel.size", "channel attributes over 32 KiB in all answer 4", channel_size),
        case("attr.rate_limit", "more than 10 attribute writes per 5 s answer 5", rate_limit),
    ]
}

async fn user_set_get(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id, mut bob, _) = cx.pair().await?;
    alice
        .ok(json!({"op": "set_user_attributes", "attributes": {"old": "x"}}))
        .await?;
    alice
        .ok(json!({"op": "set_user_attributes", "attributes": {"mood": "happy", "city": "Oslo"}}))
        .await?;
    // The second set replaces the first.
    let all = json!({"op": "get_user_attributes", "user": alice_id});
    bob.ok_with(all, "attributes", json!({"mood": "happy", "city": "Oslo"}))
        .await?;
    let some = json!({"op": "get_user_attributes", "user": alice_id, "keys": ["city"]});
    bob.ok_with(some, "attributes", json!({"city": "Oslo"}))
        .await?;
    Ok(())
}

async fn user_update_delete_clear(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id) = cx.fresh("alice").await?;
    let get = json!({"op": "get_user_attributes", "user": alice_id});
    alice
        .ok(json!({"op": "set_user_attributes", "attributes": {"a": "1", "b": "2"}}))
        .await?;
    alice
        .ok(json!({"op": "add_or_update_user_attributes", "attributes": {"b": "20", "c": "3"}}))
        .await?;
    let merged = json!({"a": "1", "b": "20", "c": "3"});
    alice.ok_with(get.clone(), "attributes", merged).await?;
    alice
        .ok(json!({"op": "delete_user_attributes", "keys": ["a", "c"]}))
        .await?;
    alice
        .ok_with(get.clone(), "attributes", json!({"b": "20"}))
        .await?;
    alice.ok(json!({"op": "clear_user_attributes"})).await?;
    alice.ok_with(get, "attributes", json!({})).await?;
    Ok(())
}

async fn user_size(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let big = "v".repeat(8 * 1024 + 1);
    alice
        .code(
            json!({"op": "set_user_attributes", "attributes": {"k": big}}),
            4,
        )
        .await?;
    let many: serde_json::Map<String, Value> =
        (0..33).map(|n| (format!("k{n}"), json!("v"))).collect();
    alice
        .code(json!({"op": "set_user_attributes", "attributes": many}), 4)
        .await?;
    let chunk = "w".repeat(6 * 1024);
    alice.code(json!({"op": "set_user_attributes", "attributes": {"a": chunk, "b": chunk, "c": chunk}}), 4).await?;
    Ok(())
}

async fn channel_non_member(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let (mut alice, _, mut bob, bob_id) = cx.pair().await?;
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    bob.ok(json!({"op": "set_channel_attributes", "channel": channel, "attributes": {"topic": "tea"}, "notify": true})).await?;
    let event = alice
        .event("channel_attributes_updated", json!({"channel": channel}))
        .await?;
    ensure!(
        event["attributes"][0]["updated_by"] == json!(bob_id),
        "a non-member's write notified {event}; updated_by {bob_id} expected"
    );
    let reply = bob
        .ok(json!({"op": "get_channel_attributes", "channel": channel}))
        .await?;
    ensure!(
        reply["attributes"][0]["value"] == "tea",
        "a non-member read {reply}; topic=tea expected"
    );
    Ok(())
}

async fn channel_expiry(cx: Ctx) -> CaseResult {
    let ttl = cx.timing().attribute_expiry;
    cx.need_time(ttl + TIMER_SLACK)?;
    let channel = cx.channel("room");
    let (mut alice, _, mut bob, _) = cx.pair().await?;
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    alice.ok(json!({"op": "set_channel_attributes", "channel": channel, "attributes": {"topic": "tea"}, "notify": false})).await?;
    alice.ok(json!({"op": "leave", "channel": channel})).await?;
    let get = json!({"op": "get_channel_attributes", "channel": channel});
    // Well before the expiry they are still there.
    let kept = bob.ok(get.clone()).await?;
    ensure!(
        kept["attributes"].as_array().is_some_and(|l| l.len() == 1),
        "right after the last member left the attributes are {}; they should stay until the expiry",
        kept["attributes"]
    );
    cx.waiting_for("the channel attributes' expiry", ttl);
    tokio::time::sleep(ttl + TIMER_SLACK).await;
    let gone = bob.ok(get).await?;
    ensure!(
        gone["attributes"].as_array().is_some_and(Vec::is_empty),
        "{}s after the last member left the attributes are {}; none expected",
        (ttl + TIMER_SLACK).as_secs(),
        gone["attributes"]
    );
    Ok(())
}

async fn joined_pair(
    cx: &Ctx,
    channel: &str,
) -> Result<(crate::qa::raw::RawConn, String, crate::qa::raw::RawConn), super::CaseError> {
    let (mut alice, alice_id, mut bob, _) = cx.pair().await?;
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    bob.ok(json!({"op": "join", "channel": channel})).await?;
    Ok((alice, alice_id, bob))
}

async fn channel_notify(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let (mut alice, alice_id, mut bob) = joined_pair(&cx, &channel).await?;
    alice.ok(json!({"op": "set_channel_attributes", "channel": channel, "attributes": {"topic": "tea"}, "notify": true})).await?;
    let event = bob
        .event("channel_attributes_updated", json!({"channel": channel}))
        .await?;
    let list = &event["attributes"];
    ensure!(
        list.as_array().is_some_and(|l| l.len() == 1) && list[0]["key"] == "topic" && list[0]["value"] == "tea" && list[0]["updated_by"] == json!(alice_id) && list[0]["updated_ts"].is_u64(),
        "channel_attributes_updated carries {list}; expected [topic=tea by {alice_id} with updated_ts]"
    );
    alice.ok(json!({"op": "add_or_update_channel_attributes", "channel": channel, "attributes": {"mood": "calm"}, "notify": true})).await?;
    let event = bob
        .event("channel_attributes_updated", json!({"channel": channel}))
        .await?;
    ensure!(
        event["attributes"].as_array().is_some_and(|l| l.len() == 2),
        "after add_or_update the event lists {}; the full list of 2 expected",
        event["attributes"]
    );
    let reply = bob
        .ok(json!({"op": "get_channel_attributes", "channel": channel, "keys": ["mood"]}))
        .await?;
    ensure!(
        reply["attributes"]
            .as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["value"] == "calm"),
        "get_channel_attributes [mood] answered {}",
        reply["attributes"]
    );
    Ok(())
}

async fn channel_no_notify(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let (mut alice, _, mut bob) = joined_pair(&cx, &channel).await?;
    alice.ok(json!({"op": "set_channel_attributes", "channel": channel, "attributes": {"topic": "tea"}, "notify": false})).await?;
    bob.no_event(
        "channel_attributes_updated",
        json!({"channel": channel}),
        QUIET,
    )
    .await
}

async fn channel_delete_clear(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let (mut alice, _, _bob) = joined_pair(&cx, &channel).await?;
    alice.ok(json!({"op": "set_channel_attributes", "channel": channel, "attributes": {"a": "1", "b": "2"}})).await?;
    alice
        .ok(json!({"op": "delete_channel_attributes", "channel": channel, "keys": ["a"]}))
        .await?;
    let reply = alice
        .ok(json!({"op": "get_channel_attributes", "channel": channel}))
        .await?;
    let keys: Vec<&Value> = reply["attributes"]
        .as_array()
        .map(|l| l.iter().map(|a| &a["key"]).collect())
        .unwrap_or_default();
    ensure!(
        keys == vec![&json!("b")],
        "after deleting a, keys are {keys:?}"
    );
    alice
        .ok(json!({"op": "clear_channel_attributes", "channel": channel}))
        .await?;
    let get = json!({"op": "get_channel_attributes", "channel": channel});
    alice.ok_with(get, "attributes", json!([])).await?;
    Ok(())
}

async fn channel_size(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let (mut alice, _, _bob) = joined_pair(&cx, &channel).await?;
    let chunk = "z".repeat(7 * 1024);
    let attrs: serde_json::Map<String, Value> =
        (0..5).map(|n| (format!("k{n}"), json!(chunk))).collect();
    alice
        .code(
            json!({"op": "set_channel_attributes", "channel": channel, "attributes": attrs}),
            4,
        )
        .await?;
    Ok(())
}

async fn rate_limit(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let writes = (0..12)
        .map(|n| json!({"op": "add_or_update_user_attributes", "attributes": {"n": n.to_string()}}))
        .collect();
    let replies = alice.call_all(writes).await?;
    super::rate_limited(&replies, 0, 5, 1, "12 attribute writes at once")
}

//! Cases for channels: join/leave and their codes, member events and counts, channel
//! messages (delivery, no echo, order, fan-out), the grace period after a dropped
//! connection, and the join and send rate limits.

use std::time::Duration;

use serde_json::{json, Value};

use super::{
    carries, case, message_ids, refusal, text, Case, CaseResult, Ctx, Expect, EVENT_TIMEOUT, QUIET,
    TIMER_SLACK,
};
use futures_util::StreamExt as _;

use crate::qa::raw::RawConn;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "join.ok",
            "join answers 0 with member_count; members already there get member_joined",
            join_ok,
        ),
        case(
            "join.already_joined",
            "joining a joined channel answers 6",
            already_joined,
        ),
        case(
            "join.invalid_channel",
            "a channel id breaking the id rules answers 3",
            invalid_channel,
        ),
        case("join.limit", "a 21st joined channel answers 5", join_limit),
        case(
            "join.same_channel_rate",
            "more than 2 joins of one channel per 5 s answer 8",
            same_channel_rate,
        ),
        case(
            "join.rate_limit",
            "more than 50 joins per 3 s answer 7",
            join_rate,
        ),
        case(
            "leave.ok",
            "leave answers 0; the others get member_left",
            leave_ok,
        ),
        refusal(
            "leave.not_in_channel",
            "leaving a channel not joined answers 3",
            3,
            |cx| json!({"op": "leave", "channel": cx.channel("never")}),
        ),
        case(
            "channel.send.received",
            "send_channel answers 0 with message_id; members get message_from_channel",
            send_ok,
        ),
        case(
            "channel.send.no_echo",
            "the sender of a channel message does not receive it back",
            no_echo,
        ),
        refusal(
            "channel.send.not_in_channel",
            "send_channel to a channel not joined answers 5",
            5,
            |cx| json!({"op": "send_channel", "channel": cx.channel("never"), "message": text("hi")}),
        ),
        case(
            "channel.send.invalid_message",
            "an empty or over-32-KiB channel message answers 4",
            send_invalid,
        ),
        case(
            "channel.send.fanout",
            "every other member receives a channel message exactly once",
            fanout,
        ),
        case(
            "channel.order",
            "channel messages arrive in the order the server answered them, ids increasing",
            order,
        ),
        case(
            "channel.rate_limit",
            "more than 180 sends per 3 s answer 3",
            send_rate,
        ),
        case(
            "members.ok",
            "get_members lists the channel's members",
            members_ok,
        ),
        refusal(
            "members.not_in_channel",
            "get_members of a channel not joined answers 5",
            5,
            |cx| json!({"op": "get_members", "channel": cx.channel("never")}),
        ),
        case(
            "count.ok",
            "get_channel_member_count counts members; an unknown channel counts 0",
            count_ok,
        ),
        case(
            "members.rate_limit",
            "more than 5 get_members per 2 s answer 4",
            members_rate,
        ),
        case(
            "count.rate_limit",
            "more than 1 get_channel_member_count per s answers 3",
            count_rate,
        ),
        case(
            "event.member_events_cut_off",
            "member_joined and member_left are not sent in channels of more than 512 members",
            member_events_cut_off,
        )
        // Hundreds of members and their events load the server enough to stretch other
        // cases' bursts past their rate windows: it runs by itself, after them.
        .alone()
        .taking(3 * fill_time()),
        case(
            "history.catch_up_after_reconnect",
            "a client back from a dropped connection fetches the channel messages it missed with history after the last id it saw",
            catch_up_after_reconnect,
        ),
        refusal(
            "count.invalid",
            "get_channel_member_count with no channels answers 2",
            2,
            |_| json!({"op": "get_channel_member_count", "channels": []}),
        ),
        refusal(
            "count.limit",
            "get_channel_member_count with more than 32 channels answers 5",
            5,
            |cx| {
                let channels: Vec<String> = (0..33).map(|n| cx.channel(&n.to_string())).collect();
                json!({"op": "get_channel_member_count", "channels": channels})
            },
        ),
        case(
            "event.member_count_updated",
            "members get member_count_updated with the new count",
            count_event,
        ),
        case(
            "grace.rejoin_silent",
            "a user who drops and rejoins within the grace period causes no leave/join events",
            rejoin_silent,
        ),
        case(
            "grace.member_left_after",
            "after the grace period the others get member_left",
            left_after_grace,
        )
        .slow(),
    ]
}

/// Logs in `roles` and joins them all to `channel`, in order.
async fn members_of(
    cx: &Ctx,
    channel: &str,
    roles: &[&str],
) -> Result<Vec<(RawConn, String)>, super::CaseError> {
    let mut members = Vec::new();
    for role in roles {
        let (mut conn, user) = cx.fresh(role).await?;
        conn.ok(json!({"op": "join", "channel": channel})).await?;
        members.push((conn, user));
    }
    Ok(members)
}

async fn join_ok(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let (mut alice, _, mut bob, bob_id) = cx.pair().await?;
    let first = alice.ok(json!({"op": "join", "channel": channel})).await?;
    ensure!(
        first["member_count"] == json!(1),
        "first join: member_count {}, not 1",
        first["member_count"]
    );
    let second = bob.ok(json!({"op": "join", "channel": channel})).await?;
    ensure!(
        second["member_count"] == json!(2),
        "second join: member_count {}, not 2",
        second["member_count"]
    );
    alice
        .event("member_joined", json!({"channel": channel, "user": bob_id}))
        .await?;
    Ok(())
}

async fn already_joined(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice"]).await?;
    members[0]
        .0
        .code(json!({"op": "join", "channel": channel}), 6)
        .await?;
    Ok(())
}

async fn invalid_channel(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    for bad in ["null", " lead", "tab\t", &"c".repeat(65)] {
        alice.code(json!({"op": "join", "channel": bad}), 3).await?;
    }
    Ok(())
}

async fn join_limit(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    for n in 0..20 {
        alice
            .ok(json!({"op": "join", "channel": cx.channel(&n.to_string())}))
            .await?;
    }
    alice
        .code(json!({"op": "join", "channel": cx.channel("21st")}), 5)
        .await?;
    Ok(())
}

async fn same_channel_rate(cx: Ctx) -> CaseResult {
    let channel = cx.channel("busy");
    let (mut alice, _) = cx.fresh("alice").await?;
    for _ in 0..2 {
        alice.ok(json!({"op": "join", "channel": channel})).await?;
        alice.ok(json!({"op": "leave", "channel": channel})).await?;
    }
    alice
        .code(json!({"op": "join", "channel": channel}), 8)
        .await?;
    Ok(())
}

async fn join_rate(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    // Pipelined join/leave pairs: all 55 joins reach the server well within 3 s, however
    // slow the machine, and leaving keeps the 20-channel limit out of the way.
    let mut joins = Vec::new();
    let mut leaves = Vec::new();
    for n in 0..55 {
        let channel = cx.channel(&n.to_string());
        joins.push(alice.start(json!({"op": "join", "channel": channel}))?);
        leaves.push(alice.start(json!({"op": "leave", "channel": channel}))?);
    }
    let replies = super::wait_all(joins).await?;
    super::wait_all(leaves).await?;
    super::rate_limited(&replies, 0, 7, 1, "55 joins at once")
}

async fn leave_ok(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob"]).await?;
    let (mut bob, bob_id) = members.pop().expect("two members");
    bob.ok(json!({"op": "leave", "channel": channel})).await?;
    members[0]
        .0
        .event("member_left", json!({"channel": channel, "user": bob_id}))
        .await?;
    Ok(())
}

async fn send_ok(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob"]).await?;
    let alice_id = members[0].1.clone();
    let reply = members[0]
        .0
        .ok(json!({"op": "send_channel", "channel": channel, "message": text("hi all")}))
        .await?;
    ensure!(
        reply["message_id"].as_u64().is_some_and(|id| id < 1 << 53),
        "send_channel reply has no valid message_id: {reply}"
    );
    ensure!(
        reply["server_ts"].is_u64(),
        "send_channel reply has no server_ts: {reply}"
    );
    let event = members[1]
        .0
        .event(
            "message_from_channel",
            json!({"channel": channel, "from": alice_id}),
        )
        .await?;
    carries(&event, &text("hi all"), "the channel message")?;
    ensure!(
        event["message_id"] == reply["message_id"],
        "event message_id {} differs from the reply's {}",
        event["message_id"],
        reply["message_id"]
    );
    Ok(())
}

async fn no_echo(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob"]).await?;
    members[0]
        .0
        .ok(json!({"op": "send_channel", "channel": channel, "message": text("echo?")}))
        .await?;
    // Bob's copy proves delivery has happened; the sender's would have come as quickly.
    members[1]
        .0
        .event("message_from_channel", json!({"channel": channel}))
        .await?;
    members[0]
        .0
        .no_event("message_from_channel", json!({"channel": channel}), QUIET)
        .await
}

async fn send_invalid(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice"]).await?;
    let conn = &mut members[0].0;
    conn.code(
        json!({"op": "send_channel", "channel": channel, "message": text("")}),
        4,
    )
    .await?;
    let long = "y".repeat(32 * 1024 + 1);
    conn.code(
        json!({"op": "send_channel", "channel": channel, "message": text(&long)}),
        4,
    )
    .await?;
    Ok(())
}

async fn fanout(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob", "carol", "dave"]).await?;
    members[0]
        .0
        .ok(json!({"op": "send_channel", "channel": channel, "message": text("to all")}))
        .await?;
    for (conn, user) in &mut members[1..] {
        conn.event(
            "message_from_channel",
            json!({"channel": channel, "message": text("to all")}),
        )
        .await?;
        if conn
            .no_event(
                "message_from_channel",
                json!({"channel": channel}),
                Duration::ZERO,
            )
            .await
            .is_err()
        {
            fail!("{user} received the channel message more than once");
        }
    }
    let late = members[1]
        .0
        .no_event("message_from_channel", json!({"channel": channel}), QUIET)
        .await;
    ensure!(late.is_ok(), "a member received the channel message twice");
    Ok(())
}

async fn order(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob", "carol"]).await?;
    let per_sender = 15;
    let mut pending = Vec::new();
    for n in 0..per_sender {
        for (sender, (conn, _)) in members.iter_mut().take(2).enumerate() {
            let body = format!("s{sender}-{n}");
            pending.push(conn.start(
                json!({"op": "send_channel", "channel": channel, "message": text(&body)}),
            )?);
        }
    }
    let replies = super::wait_all(pending).await?;
    super::all_answered(&replies, 0, "a send_channel")?;
    let mut answered = message_ids(&replies);
    answered.sort_unstable();
    let got = members[2]
        .0
        .events(
            "message_from_channel",
            json!({"channel": channel}),
            answered.len(),
        )
        .await?;
    let got_ids = message_ids(&got);
    ensure!(
        got_ids == answered,
        "arrival order {got_ids:?} differs from the answered ids {answered:?}"
    );
    for sender in 0..2 {
        let prefix = format!("s{sender}-");
        let bodies: Vec<&Value> = got
            .iter()
            .map(|e| &e["message"]["text"])
            .filter(|t| t.as_str().is_some_and(|t| t.starts_with(&prefix)))
            .collect();
        let expected: Vec<Value> = (0..per_sender)
            .map(|n| json!(format!("{prefix}{n}")))
            .collect();
        ensure!(
            bodies.iter().copied().eq(expected.iter()),
            "sender {sender}'s messages arrived as {bodies:?}"
        );
    }
    Ok(())
}

async fn send_rate(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice"]).await?;
    let sends = vec![json!({"op": "send_channel", "channel": channel, "message": text("x")}); 200];
    let replies = members[0].0.call_all(sends).await?;
    super::rate_limited(&replies, 0, 3, 20, "200 channel sends at once")
}

async fn members_ok(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob"]).await?;
    let reply = members[0]
        .0
        .ok(json!({"op": "get_members", "channel": channel}))
        .await?;
    let Some(list) = reply["members"].as_array() else {
        fail!("get_members reply has no members: {reply}")
    };
    for (_, user) in &members {
        ensure!(
            list.contains(&json!(user)),
            "get_members {list:?} lacks {user}"
        );
    }
    ensure!(
        list.len() == 2,
        "get_members lists {} members, not 2",
        list.len()
    );
    Ok(())
}

async fn count_ok(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let empty = cx.channel("empty");
    let mut members = members_of(&cx, &channel, &["alice", "bob"]).await?;
    let count = json!({"op": "get_channel_member_count", "channels": [channel, empty]});
    members[0]
        .0
        .ok_with(count, "counts", json!({channel: 2, empty: 0}))
        .await?;
    Ok(())
}

async fn members_rate(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice"]).await?;
    let asks = vec![json!({"op": "get_members", "channel": channel}); 8];
    let replies = members[0].0.call_all(asks).await?;
    super::rate_limited(&replies, 0, 4, 3, "8 get_members at once")
}

async fn count_rate(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let asks = vec![json!({"op": "get_channel_member_count", "channels": [cx.channel("room")]}); 3];
    let replies = alice.call_all(asks).await?;
    super::rate_limited(&replies, 0, 3, 2, "3 get_channel_member_count at once")
}

/// Members past which member events stop ([`MAX_LISTED_MEMBERS`]).
const CUT_OFF: usize = crate::protocol::limits::MAX_LISTED_MEMBERS;

/// How long [`CUT_OFF`] logins take at the run's login pace.
fn fill_time() -> Duration {
    Duration::from_secs((CUT_OFF / super::LOGINS_PER_SECOND) as u64)
}

async fn member_events_cut_off(cx: Ctx) -> CaseResult {
    // CUT_OFF + 1 logins at the run's login pace.
    let fill = fill_time();
    cx.need_time(fill + TIMER_SLACK)?;
    let channel = cx.channel("big");
    let (mut watcher, _) = cx.fresh("watcher").await?;
    watcher
        .ok(json!({"op": "join", "channel": channel}))
        .await?;
    // Fill the channel to the cut-off: CUT_OFF - 1 more members, each seen joining.
    cx.waiting_for("the channel to fill at the login pace", fill);
    // CUT_OFF - 1 more members, some at once (a token command, if any, runs for each).
    let crowd: Vec<RawConn> = futures_util::stream::iter(1..CUT_OFF)
        .map(|n| {
            let (cx, channel) = (&cx, &channel);
            async move {
                let (mut member, _) = cx.fresh(&format!("m{n}")).await?;
                member.ok(json!({"op": "join", "channel": channel})).await?;
                Ok::<_, super::CaseError>(member)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    // Up to the cut-off, each join is seen.
    for seen in 0..CUT_OFF - 1 {
        if let Err(error) = watcher
            .event("member_joined", json!({"channel": channel}))
            .await
        {
            fail!(
                "{seen} member_joined for {} joins up to {CUT_OFF} members: {error:?}",
                CUT_OFF - 1
            );
        }
    }
    // One more: the channel now has more than CUT_OFF members.
    let (mut last, last_id) = cx.fresh("last").await?;
    let reply = last.ok(json!({"op": "join", "channel": channel})).await?;
    ensure!(
        reply["member_count"] == json!(CUT_OFF + 1),
        "the join of member {} answered member_count {}",
        CUT_OFF + 1,
        reply["member_count"]
    );
    watcher
        .no_event(
            "member_joined",
            json!({"channel": channel, "user": last_id}),
            QUIET,
        )
        .await?;
    last.ok(json!({"op": "leave", "channel": channel})).await?;
    watcher
        .no_event(
            "member_left",
            json!({"channel": channel, "user": last_id}),
            QUIET,
        )
        .await?;
    drop(crowd);
    Ok(())
}

async fn catch_up_after_reconnect(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob"]).await?;
    let (bob, bob_id) = members.pop().expect("two members");
    let alice = &mut members[0].0;
    let seen = alice
        .ok(json!({"op": "send_channel", "channel": channel, "message": text("before")}))
        .await?;
    let Some(seen_id) = seen["message_id"].as_u64() else {
        fail!("send_channel answered no message_id: {seen}")
    };
    bob.drop_abruptly();
    let mut missed = Vec::new();
    for n in 0..3 {
        let reply = alice
            .ok(json!({"op": "send_channel", "channel": channel, "message": text(&format!("missed {n}"))}))
            .await?;
        missed.push(reply["message_id"].clone());
    }
    // Bob comes back within the grace period, rejoins and asks for what came after.
    let mut again = cx.login(&bob_id).await?;
    again.ok(json!({"op": "join", "channel": channel})).await?;
    let reply = again
        .ok(json!({"op": "history", "channel": channel, "after": seen_id}))
        .await?;
    let got: Vec<Value> = reply["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| m["message_id"].clone()).collect())
        .unwrap_or_default();
    ensure!(
        got == missed,
        "history after {seen_id} lists {got:?}; the 3 messages sent while away ({missed:?}) expected, oldest first"
    );
    Ok(())
}

async fn count_event(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob"]).await?;
    // Counts are coalesced to one a second: allow for that.
    let seen = members[0]
        .0
        .next_event(EVENT_TIMEOUT, |e| {
            e["event"] == "member_count_updated"
                && e["channel"] == json!(channel)
                && e["count"] == json!(2)
        })
        .await;
    ensure!(
        seen.is_some(),
        "no member_count_updated with count 2 within {}s",
        EVENT_TIMEOUT.as_secs()
    );
    Ok(())
}

async fn rejoin_silent(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob"]).await?;
    let (bob, bob_id) = members.pop().expect("two members");
    members[0]
        .0
        .event("member_joined", json!({"channel": channel, "user": bob_id}))
        .await?;
    // What may wait (a new connection, the run's login pace) comes before the drop, so
    // that the rejoin fits in a short grace period on a busy machine too.
    let mut again = cx.connect(&bob_id).await?;
    let login = cx.login_op(&bob_id).await?;
    bob.drop_abruptly();
    again.ok(login).await?;
    again.ok(json!({"op": "join", "channel": channel})).await?;
    let alice = &mut members[0].0;
    alice
        .no_event(
            "member_left",
            json!({"channel": channel, "user": bob_id}),
            QUIET,
        )
        .await?;
    alice
        .no_event(
            "member_joined",
            json!({"channel": channel, "user": bob_id}),
            Duration::ZERO,
        )
        .await
}

async fn left_after_grace(cx: Ctx) -> CaseResult {
    let wait = cx.timing().grace + TIMER_SLACK;
    cx.need_time(wait)?;
    let channel = cx.channel("room");
    let mut members = members_of(&cx, &channel, &["alice", "bob"]).await?;
    let (bob, bob_id) = members.pop().expect("two members");
    bob.drop_abruptly();
    cx.waiting_for("the end of the grace period", cx.timing().grace);
    let alice = &mut members[0].0;
    let left = alice
        .next_event(wait, |e| {
            e["event"] == "member_left" && e["user"] == json!(bob_id)
        })
        .await;
    ensure!(
        left.is_some(),
        "no member_left for a dropped user within grace + {}s",
        TIMER_SLACK.as_secs()
    );
    Ok(())
}

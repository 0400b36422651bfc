//! Several nodes on one Redis behave as one server: `rtm-tui serve --engine redis://...
//! --node-id ID` processes (`support::cluster`), users on different nodes, raw protocol
//! connections (`rtm::qa::raw::RawConn`: it acknowledges peer messages as client
//! libraries do, and never panics on its own).
//!
//! Peer messages with their codes and the offline cache, channels (membership, counts,
//! one order for everyone, history), remote-login kicks, presence, attributes and
//! invitations, all across nodes; a node killed with SIGKILL; Redis killed and restarted
//! on its append-only file; and the whole `rtm-tui check` suite with its users spread
//! over two nodes. Every wait has a bound; nothing sleeps to wait for an effect.

use std::time::Duration;

use crate::support;
use crate::support::cluster::{Cluster, Redis};
use crate::support::raw::{join, send_channel, Expect};
use crate::support::{text, WAIT};
use rtm::qa::raw::{code_of, Closure, RawConn};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The app every user logs in to (the nodes run in open mode on loopback).
const APP: &str = "cluster";
/// The reconnect grace period of the nodes in the node-death test and the conformance
/// run (`serve --grace`, in seconds; docs/protocol.md's is 30): seconds to wait, not a minute.
const GRACE: Duration = Duration::from_secs(2);
/// How long the cluster may take to notice that a node died (and that its users are
/// gone): a generous bound, what docs/protocol.md gives a silent connection before it counts
/// as dead.
const NODE_DOWN_WAIT: Duration = Duration::from_secs(30);
/// Slack on top of a server timer before a test gives up on its effect.
const SLACK: Duration = Duration::from_secs(5);
/// While Redis is down, a send must still be answered within this (with a failure).
const OUTAGE_ANSWER: Duration = Duration::from_secs(5);
/// How long the nodes may take to recover once Redis is back.
const RECOVERY_WAIT: Duration = Duration::from_secs(30);
/// Pause between two attempts of an exchange that is expected to work again soon.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

// ---- raw protocol helpers -------------------------------------------------------------

/// Connects to `url` and logs `user` in, or says why not.
async fn try_login(url: &str, user: &str) -> Result<RawConn, String> {
    let mut conn = RawConn::connect(url, user, None)
        .await
        .map_err(|e| e.to_string())?;
    let reply = conn
        .call_within(json!({"op": "login", "app_id": APP, "user": user}), WAIT)
        .await
        .map_err(|e| e.to_string())?;
    if code_of(&reply) == 0 {
        Ok(conn)
    } else {
        Err(format!("login answered {reply}"))
    }
}

/// Connects to `url` and logs `user` in; panics unless the login answers 0.
async fn login(url: &str, user: &str) -> RawConn {
    try_login(url, user)
        .await
        .unwrap_or_else(|e| panic!("login of {user} on {url}: {e}"))
}

/// Two nodes on one Redis, with alice logged in on n1 and bob on n2.
async fn alice_on_n1_bob_on_n2() -> (Cluster, RawConn, RawConn) {
    let cluster = Cluster::start(2).await;
    let alice = login(&cluster.url(0), "alice").await;
    let bob = login(&cluster.url(1), "bob").await;
    (cluster, alice, bob)
}

/// Waits for the peer message `body` that alice sent while `conn`'s user was offline.
async fn expect_cached_from_alice(conn: &mut RawConn, body: &str) {
    let got = conn
        .expect_event_with(
            "message_from_peer",
            json!({"from": "alice", "offline": true}),
        )
        .await;
    assert_eq!(got["message"], text(body));
}

fn send_peer(to: &str, body: &str, offline: bool) -> Value {
    json!({"op": "send_peer", "to": to, "message": text(body), "offline": offline})
}

fn message_id(value: &Value) -> u64 {
    value["message_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no message_id in {value}"))
}

/// A channel message as the tests compare them: (message id, sender, text).
fn channel_message(value: &Value) -> (u64, String, String) {
    (
        message_id(value),
        value["from"].as_str().unwrap_or_default().to_string(),
        value["message"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The next `count` channel messages `conn` receives, in arrival order.
async fn channel_messages(conn: &mut RawConn, count: usize) -> Vec<(u64, String, String)> {
    let mut received = Vec::with_capacity(count);
    for _ in 0..count {
        let message = conn
            .expect_event_with("message_from_channel", json!({}))
            .await;
        received.push(channel_message(&message));
    }
    received
}

/// A sorted member list from `get_members`.
async fn members(conn: &mut RawConn, channel: &str) -> Vec<String> {
    let reply = conn
        .ok(json!({"op": "get_members", "channel": channel}))
        .await;
    let mut members: Vec<String> = reply["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in {reply}"))
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect();
    members.sort();
    members
}

// ---- the harness itself ---------------------------------------------------------------

/// Needs no engine: Redis starts on a free port, answers PING, and keeps what it
/// acknowledged across a SIGKILL and a restart on the same port (append-only file).
#[tokio::test]
async fn redis_answers_ping_and_keeps_its_data_across_a_kill_and_restart() {
    let mut redis = Redis::start().await;
    assert!(redis.ping().await);
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(
        redis.command(&["SET", "greeting", "hello there"]).await,
        "+OK"
    );
    assert_eq!(redis.command(&["GET", "greeting"]).await, "hello there");

    redis.kill().await;
    assert!(!redis.ping().await, "a killed Redis still answers");
    redis.restart().await;
    assert!(redis.ping().await);
    assert_eq!(redis.command(&["GET", "greeting"]).await, "hello there");
    assert_eq!(redis.command(&["GET", "nothing"]).await, "(nil)");
    // A restart of a running one works too.
    redis.restart().await;
    assert_eq!(redis.command(&["GET", "greeting"]).await, "hello there");
}

// ---- across nodes ---------------------------------------------------------------------

/// a. alice on n1, bob on n2: 0 once bob's client acknowledged; ids grow within the
/// conversation whichever node sends; to an offline user 3, or 4 when cached, and the
/// cache is delivered at the next login on any node, oldest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_messages_cross_nodes_with_acks_and_the_offline_cache() {
    let (cluster, mut alice, mut bob) = alice_on_n1_bob_on_n2().await;
    let (n1, n2) = (cluster.url(0), cluster.url(1));

    let sent = alice.ok(send_peer("bob", "hello bob", false)).await;
    let got = bob
        .expect_event_with(
            "message_from_peer",
            json!({"from": "alice", "offline": false}),
        )
        .await;
    assert_eq!(got["message"], text("hello bob"));
    assert_eq!(got["message_id"], sent["message_id"]);
    let answer = bob.ok(send_peer("alice", "hi alice", false)).await;
    let got = alice
        .expect_event_with("message_from_peer", json!({"from": "bob"}))
        .await;
    assert_eq!(got["message"], text("hi alice"));
    assert!(
        message_id(&answer) > message_id(&sent),
        "ids of one conversation must grow across nodes: {answer} after {sent}"
    );

    // bob logs out of n2: unreachable at once, cached on request, delivered when he logs
    // in again, this time on n1.
    bob.ok(json!({"op": "logout"})).await;
    assert_eq!(alice.code(send_peer("bob", "still there?", false)).await, 3);
    let bodies = ["first", "second", "third"];
    for body in bodies {
        assert_eq!(alice.code(send_peer("bob", body, true)).await, 4);
    }
    let mut bob = login(&n1, "bob").await;
    for body in bodies {
        let got = bob.expect_event_with("message_from_peer", json!({})).await;
        assert_eq!(
            (&got["from"], &got["message"], &got["offline"]),
            (&json!("alice"), &text(body), &json!(true)),
            "cached messages arrive oldest first: {got}"
        );
    }

    // carol was never online: cached by n1, delivered by n2.
    assert_eq!(alice.code(send_peer("carol", "welcome", true)).await, 4);
    let mut carol = login(&n2, "carol").await;
    expect_cached_from_alice(&mut carol, "welcome").await;
}

/// b. alice (n1), bob (n2), carol (n1) and dave (n2) in one channel: joins are seen and
/// counted alike from both nodes; messages sent at once from two nodes reach every member
/// in one order with growing ids, and history from either node returns that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_spans_nodes_with_one_order_for_everyone() {
    let (cluster, mut alice, mut bob) = alice_on_n1_bob_on_n2().await;
    let (n1, n2) = (cluster.url(0), cluster.url(1));
    let room = "room";
    let mut carol = login(&n1, "carol").await;
    let mut dave = login(&n2, "dave").await;

    assert_eq!(alice.ok(join(room)).await["member_count"], 1);
    assert_eq!(bob.ok(join(room)).await["member_count"], 2);
    alice
        .expect_event_with("member_joined", json!({"channel": room, "user": "bob"}))
        .await;
    assert_eq!(carol.ok(join(room)).await["member_count"], 3);
    for conn in [&mut alice, &mut bob] {
        conn.expect_event_with("member_joined", json!({"channel": room, "user": "carol"}))
            .await;
    }
    assert_eq!(dave.ok(join(room)).await["member_count"], 4);
    for conn in [&mut alice, &mut bob, &mut carol] {
        conn.expect_event_with("member_joined", json!({"channel": room, "user": "dave"}))
            .await;
    }
    let everyone = ["alice", "bob", "carol", "dave"].map(String::from).to_vec();
    for conn in [&mut alice, &mut bob] {
        let counts = conn
            .ok(json!({"op": "get_channel_member_count", "channels": [room]}))
            .await;
        assert_eq!(counts["counts"][room], 4, "{counts}");
        assert_eq!(members(conn, room).await, everyone);
    }

    // alice (n1) and bob (n2) send at the same time, pipelined.
    let mut pending = Vec::new();
    for i in 0..5 {
        for (conn, name) in [(&mut alice, "alice"), (&mut bob, "bob")] {
            let body = format!("{name} {i}");
            let reply = conn.start(send_channel(room, &body)).expect("send");
            pending.push((name, body, reply));
        }
    }
    let mut sent = Vec::new();
    for (name, body, mut reply) in pending {
        let reply = reply.wait(WAIT).await.expect("send_channel answered");
        assert_eq!(code_of(&reply), 0, "{name}: {reply}");
        sent.push((message_id(&reply), name.to_string(), body));
    }
    for name in ["alice", "bob"] {
        let ids: Vec<u64> = sent.iter().filter(|m| m.1 == name).map(|m| m.0).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{name}: {ids:?}");
    }

    // carol (n1) and dave (n2) get all ten in one same order, ids growing, as answered.
    let order = channel_messages(&mut carol, 10).await;
    assert_eq!(
        channel_messages(&mut dave, 10).await,
        order,
        "dave and carol disagree"
    );
    assert!(
        order.windows(2).all(|w| w[0].0 < w[1].0),
        "ids must grow in delivery order: {order:?}"
    );
    let mut answered = sent.clone();
    answered.sort();
    assert_eq!(
        order, answered,
        "delivered messages differ from those answered"
    );
    // The senders get the other's messages, in that order, and not their own.
    let from = |name: &str| -> Vec<(u64, String, String)> {
        order.iter().filter(|m| m.1 == name).cloned().collect()
    };
    assert_eq!(channel_messages(&mut alice, 5).await, from("bob"));
    assert_eq!(channel_messages(&mut bob, 5).await, from("alice"));

    // History is the same from either node.
    for conn in [&mut carol, &mut dave] {
        let reply = conn
            .ok(json!({"op": "history", "channel": room, "limit": 50}))
            .await;
        let history: Vec<(u64, String, String)> = reply["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("no messages in {reply}"))
            .iter()
            .map(channel_message)
            .collect();
        assert_eq!(history, order, "history from {}", conn.label());
    }
}

/// c. A user who logs in on another node kicks the older connection (remote_login), in
/// both directions, and messages follow the newest one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_another_node_kicks_the_older_connection() {
    let cluster = Cluster::start(2).await;
    let (n1, n2) = (cluster.url(0), cluster.url(1));
    let mut alice = login(&n1, "alice").await;
    let mut first = login(&n1, "bob").await;
    let mut second = login(&n2, "bob").await;
    first
        .expect_event_with("kicked", json!({"reason": "remote_login"}))
        .await;
    assert_ne!(
        first.wait_closed(WAIT).await,
        Closure::Open,
        "kicked but not closed"
    );

    alice
        .ok(send_peer("bob", "to your newest login", false))
        .await;
    let got = second
        .expect_event_with("message_from_peer", json!({"from": "alice"}))
        .await;
    assert_eq!(got["message"], text("to your newest login"));

    let mut third = login(&n1, "bob").await;
    second
        .expect_event_with("kicked", json!({"reason": "remote_login"}))
        .await;
    assert_ne!(second.wait_closed(WAIT).await, Closure::Open);
    alice.ok(send_peer("bob", "and again", false)).await;
    third
        .expect_event_with("message_from_peer", json!({"from": "alice"}))
        .await;
}

/// d. Presence across nodes: a query from n2 sees alice on n1 online; a subscriber on n2
/// sees her go offline at logout and online again at her next login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_seen_from_the_other_node() {
    let (cluster, mut alice, mut bob) = alice_on_n1_bob_on_n2().await;
    let n1 = cluster.url(0);

    let reply = bob
        .ok(json!({"op": "query_peers_online", "peers": ["alice", "carol"]}))
        .await;
    assert_eq!(
        reply["peers"],
        json!({"alice": "online", "carol": "offline"})
    );

    bob.ok(json!({"op": "subscribe_peers_online", "peers": ["alice"]}))
        .await;
    bob.expect_event_with("peers_online_status", json!({"peers": {"alice": "online"}}))
        .await;
    alice.ok(json!({"op": "logout"})).await;
    bob.expect_event_with(
        "peers_online_status",
        json!({"peers": {"alice": "offline"}}),
    )
    .await;
    let reply = bob
        .ok(json!({"op": "query_peers_online", "peers": ["alice"]}))
        .await;
    assert_eq!(reply["peers"]["alice"], "offline");

    let _alice = login(&n1, "alice").await;
    bob.expect_event_with("peers_online_status", json!({"peers": {"alice": "online"}}))
        .await;
}

/// e. User attributes set on n1 are read on n2; channel attributes set on n2 with notify
/// reach members on n1, and read the same there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_are_shared_between_nodes() {
    let (_cluster, mut alice, mut bob) = alice_on_n1_bob_on_n2().await;

    alice
        .ok(json!({"op": "set_user_attributes", "attributes": {"mood": "happy", "city": "Oslo"}}))
        .await;
    let reply = bob
        .ok(json!({"op": "get_user_attributes", "user": "alice"}))
        .await;
    assert_eq!(
        reply["attributes"],
        json!({"mood": "happy", "city": "Oslo"})
    );
    alice
        .ok(json!({"op": "add_or_update_user_attributes", "attributes": {"mood": "sleepy"}}))
        .await;
    let reply = bob
        .ok(json!({"op": "get_user_attributes", "user": "alice", "keys": ["mood"]}))
        .await;
    assert_eq!(reply["attributes"], json!({"mood": "sleepy"}));

    let room = "room";
    alice.ok(join(room)).await;
    bob.ok(join(room)).await;
    bob.ok(json!({"op": "set_channel_attributes", "channel": room,
               "attributes": {"topic": "rust"}, "notify": true}))
        .await;
    let update = alice
        .expect_event_with("channel_attributes_updated", json!({"channel": room}))
        .await;
    let attributes = update["attributes"].as_array().expect("attribute list");
    assert_eq!(attributes.len(), 1, "{update}");
    assert_eq!(
        (
            &attributes[0]["key"],
            &attributes[0]["value"],
            &attributes[0]["updated_by"]
        ),
        (&json!("topic"), &json!("rust"), &json!("bob")),
        "{update}"
    );
    let read = alice
        .ok(json!({"op": "get_channel_attributes", "channel": room}))
        .await;
    assert_eq!(read["attributes"], update["attributes"]);
}

/// f. Invitations from n1 to a callee on n2: accepted, refused and canceled, each outcome
/// reaching the other side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_cross_nodes() {
    let (_cluster, mut alice, mut bob) = alice_on_n1_bob_on_n2().await;

    // Each outcome in turn: alice rings bob, then one of them ends the call and the other
    // one hears of it.
    for (call, answer, response, outcome) in [
        (
            "call-1",
            "accept_invitation",
            "coming",
            "invitation_accepted",
        ),
        ("call-2", "refuse_invitation", "busy", "invitation_refused"),
        ("call-3", "cancel_invitation", "", "invitation_canceled"),
    ] {
        alice
            .ok(json!({"op": "invite", "invitation_id": call, "callee": "bob", "content": "ring"}))
            .await;
        let received = json!({"invitation_id": call, "caller": "alice", "content": "ring"});
        bob.expect_event_with("invitation_received", received).await;
        if answer == "cancel_invitation" {
            alice
                .ok(json!({"op": answer, "invitation_id": call, "callee": "bob"}))
                .await;
            let canceled = json!({"invitation_id": call, "caller": "alice"});
            bob.expect_event_with(outcome, canceled).await;
        } else {
            let mut end = json!({"op": answer, "invitation_id": call, "caller": "alice"});
            end["response"] = json!(response);
            bob.ok(end).await;
            let answered = json!({"invitation_id": call, "callee": "bob", "response": response});
            alice.expect_event_with(outcome, answered).await;
        }
    }
}

/// The channel of the node-death tests.
const ROOM: &str = "room";

/// Two nodes with `grace`: alice on n1 and bob on n2, both in [`ROOM`], alice following
/// bob's presence (he is online to her).
async fn bob_in_alices_room_on_the_other_node(grace: Duration) -> (Cluster, RawConn, RawConn) {
    let grace = grace.as_secs().to_string();
    let cluster = Cluster::start_with(2, &["--grace", &grace]).await;
    let room = ROOM;
    let mut alice = login(&cluster.url(0), "alice").await;
    let mut bob = login(&cluster.url(1), "bob").await;
    alice.ok(join(room)).await;
    bob.ok(join(room)).await;
    alice
        .expect_event_with("member_joined", json!({"channel": room, "user": "bob"}))
        .await;
    alice
        .ok(json!({"op": "subscribe_peers_online", "peers": ["bob"]}))
        .await;
    alice
        .expect_event_with("peers_online_status", json!({"peers": {"bob": "online"}}))
        .await;
    (cluster, alice, bob)
}

/// The presence event telling `alice` that bob is no longer online (unreachable during
/// his grace, or offline), within `within`.
async fn bob_no_longer_online(alice: &mut RawConn, within: Duration) -> Option<Value> {
    alice
        .next_event(within, |e| {
            e["event"] == "peers_online_status"
                && e["peers"].get("bob").is_some_and(|s| s != "online")
        })
        .await
}

/// g. n2 dies (SIGKILL) while bob, on it, shares a channel with alice on n1: the cluster
/// notices, bob is offline to queries (a message to him answers 3, or 4 cached), and
/// after the grace alice gets member_left; bob logs in on n1 and chats again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_takes_its_users_offline_and_they_come_back_elsewhere() {
    let (mut cluster, mut alice, mut bob) = bob_in_alices_room_on_the_other_node(GRACE).await;
    let (n1, room) = (cluster.url(0), ROOM);

    cluster.nodes[1].kill().await;
    assert_ne!(
        bob.wait_closed(WAIT).await,
        Closure::Open,
        "bob's node is gone"
    );

    // The cluster notices: bob is no longer online to his subscribers (unreachable during
    // the grace, or offline)...
    let within = NODE_DOWN_WAIT + SLACK;
    let Some(gone) = bob_no_longer_online(&mut alice, within).await else {
        panic!("bob still online to alice {within:?} after his node died");
    };
    // ...offline to queries at once, so a message to him is unreachable, or cached.
    let reply = alice
        .ok(json!({"op": "query_peers_online", "peers": ["bob"]}))
        .await;
    assert_eq!(reply["peers"]["bob"], "offline", "{reply}");
    assert_eq!(
        alice.code(send_peer("bob", "are you there?", false)).await,
        3
    );
    assert_eq!(alice.code(send_peer("bob", "for later", true)).await, 4);

    // After the grace he leaves the channel for good, and subscribers see him offline.
    alice
        .expect_event_within(
            "member_left",
            json!({"channel": room, "user": "bob"}),
            GRACE + SLACK,
        )
        .await;
    if gone["peers"]["bob"] != "offline" {
        alice
            .expect_event_within(
                "peers_online_status",
                json!({"peers": {"bob": "offline"}}),
                SLACK,
            )
            .await;
    }
    let counts = alice
        .ok(json!({"op": "get_channel_member_count", "channels": [room]}))
        .await;
    assert_eq!(counts["counts"][room], 1, "{counts}");

    // bob comes back on n1: his cached message, the channel, peer messages all work.
    let mut bob = login(&n1, "bob").await;
    expect_cached_from_alice(&mut bob, "for later").await;
    assert_eq!(bob.ok(join(room)).await["member_count"], 2);
    alice
        .expect_event_with("member_joined", json!({"channel": room, "user": "bob"}))
        .await;
    bob.ok(send_channel(room, "I'm back")).await;
    let got = alice
        .expect_event_with(
            "message_from_channel",
            json!({"channel": room, "from": "bob"}),
        )
        .await;
    assert_eq!(got["message"], text("I'm back"));
    alice.ok(send_peer("bob", "welcome back", false)).await;
}

/// bob's connection to n2 drops (his grace runs on n2), he is back on n1 within the grace
/// without rejoining the channel, then n2 dies: once it is found gone its grace timers
/// move to a live node, bob's included although he is online elsewhere, so he still
/// leaves the channel he did not rejoin (nobody ran his grace's end before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grace_left_on_a_dead_node_ends_elsewhere_for_a_user_back_on_another() {
    let (mut cluster, mut alice, bob) =
        bob_in_alices_room_on_the_other_node(Duration::from_secs(3)).await;
    let (n1, room) = (cluster.url(0), ROOM);

    // The drop is applied (n2 runs the grace), then bob is back on n1, then n2 dies.
    drop(bob);
    bob_no_longer_online(&mut alice, WAIT)
        .await
        .expect("bob's drop reaches alice");
    let _bob = login(&n1, "bob").await;
    alice
        .expect_event_with("peers_online_status", json!({"peers": {"bob": "online"}}))
        .await;
    cluster.nodes[1].kill().await;

    alice
        .expect_event_within(
            "member_left",
            json!({"channel": room, "user": "bob"}),
            NODE_DOWN_WAIT + Duration::from_secs(3) + SLACK,
        )
        .await;
    let counts = alice
        .ok(json!({"op": "get_channel_member_count", "channels": [room]}))
        .await;
    assert_eq!(counts["counts"][room], 1, "{counts}");
}

/// A node stopped as an operator stops it (SIGTERM) tells the others it is gone as it
/// goes: they take over its users' grace at their next beat, not a whole heartbeat TTL
/// after its key went, so bob leaves alice's channel about a grace after his node
/// stopped (it was two TTLs of heartbeat and a grace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_hands_its_users_grace_over_at_once() {
    let (mut cluster, mut alice, _bob) = bob_in_alices_room_on_the_other_node(GRACE).await;
    let room = ROOM;

    let stopping = Instant::now();
    cluster.nodes[1].terminate().await;
    // From its exit: within the grace, a beat and some room for a busy box; the
    // heartbeat's TTL and a beat (6 s, as for a node that died) would not fit.
    let within = GRACE + Duration::from_secs(4);
    let left = alice
        .next_event(within, |e| {
            e["event"] == "member_left" && e["channel"] == room && e["user"] == "bob"
        })
        .await;
    assert!(
        left.is_some(),
        "bob did not leave {room} within {within:?} of his node's stop"
    );
    assert!(
        stopping.elapsed() + Duration::from_millis(100) >= GRACE,
        "bob left after {:?}, before the grace was over",
        stopping.elapsed()
    );
}

/// h. Redis dies (SIGKILL) and comes back on its append-only file: meanwhile a send is
/// answered promptly with a failure code rather than left hanging; afterwards the nodes
/// recover by themselves (a peer message between the two nodes gets through again, with
/// re-logins where a node dropped a connection), and what was cached before survived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_ride_out_a_redis_restart() {
    let mut cluster = Cluster::start(2).await;
    let (n1, n2) = (cluster.url(0), cluster.url(1));
    let mut alice = login(&n1, "alice").await;
    let mut bob = login(&n2, "bob").await;
    alice.ok(send_peer("bob", "before", false)).await;
    bob.expect_event_with("message_from_peer", json!({"from": "alice"}))
        .await;
    assert_eq!(alice.code(send_peer("carol", "kept", true)).await, 4);

    cluster.redis.kill().await;
    let started = Instant::now();
    let reply = alice
        .call_within(send_peer("bob", "during the outage", false), OUTAGE_ANSWER)
        .await
        .unwrap_or_else(|e| {
            panic!("with Redis down, send_peer was not answered within {OUTAGE_ANSWER:?}: {e}")
        });
    assert_ne!(
        code_of(&reply),
        0,
        "with Redis down, send_peer answered {reply} after {:?}",
        started.elapsed()
    );

    cluster.redis.restart().await;
    let deadline = Instant::now() + RECOVERY_WAIT;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Err(why) = exchange_after_outage(&mut alice, &n1, &mut bob, &n2, attempt).await else {
            break;
        };
        assert!(
            Instant::now() < deadline,
            "no peer message crossed nodes within {RECOVERY_WAIT:?} of Redis's return \
             ({attempt} attempts); the last: {why}"
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }

    let mut carol = login(&n2, "carol").await;
    let got = carol
        .expect_event_with(
            "message_from_peer",
            json!({"from": "alice", "offline": true}),
        )
        .await;
    assert_eq!(got["message"], text("kept"), "the cache did not survive");
}

/// h'. Redis hangs (SIGSTOP: a network cut, a hung host) rather than dies, keeping its
/// connections: the first read that waits to catch up gives up after the timeout and
/// answers from the node's copy, and the reads after it answer at once; a logout that
/// cannot be confirmed is answered 1 and closes its connection (Redis applies it when it
/// answers again: the session must not stay logged in where the others count it out).
/// Once Redis answers again, alice is offline for bob and logs in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_keeps_reads_prompt_and_an_unconfirmed_logout_closes_its_connection() {
    let (cluster, mut alice, mut bob) = alice_on_n1_bob_on_n2().await;
    let n1 = cluster.url(0);
    alice.ok(join("room")).await;
    bob.ok(join("room")).await;
    let get_members = json!({"op": "get_members", "channel": "room"});

    cluster.redis.pause();
    let first = bob
        .call_within(get_members.clone(), OUTAGE_ANSWER)
        .await
        .expect("a read is answered while Redis hangs");
    assert_eq!(code_of(&first), 0, "{first}");
    let started = Instant::now();
    assert_eq!(members(&mut bob, "room").await, ["alice", "bob"]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the read after the first that gave up waited {:?} for the hung Redis",
        started.elapsed()
    );
    let reply = alice
        .call_within(json!({"op": "logout"}), OUTAGE_ANSWER)
        .await
        .expect("the logout is answered while Redis hangs");
    assert_eq!(code_of(&reply), 1, "{reply}");
    assert_eq!(
        alice.wait_closed(WAIT).await,
        Closure::CloseFrame(Some(1011)),
        "an unconfirmed logout closes its connection"
    );
    // History lives in Redis: a failure, in words a client can act on (the Redis
    // client's own are for the node's log).
    let reply = bob
        .call_within(
            json!({"op": "history", "channel": "room", "limit": 5}),
            OUTAGE_ANSWER,
        )
        .await
        .expect("history is answered while Redis hangs");
    assert_eq!(code_of(&reply), 1, "{reply}");
    assert_eq!(
        reply["reason"], "the shared engine is unavailable; try again",
        "{reply}"
    );

    cluster.redis.resume();
    let deadline = Instant::now() + RECOVERY_WAIT;
    loop {
        let reply = bob
            .ok(json!({"op": "query_peers_online", "peers": ["alice"]}))
            .await;
        if reply["peers"]["alice"] == "offline" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice still {reply} for bob {RECOVERY_WAIT:?} after Redis answered again"
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    let mut alice = login(&n1, "alice").await;
    assert_eq!(alice.ok(join("room")).await["member_count"], 2);
}

/// One try at alice (n1) → bob (n2) after the outage, logging either in again first if a
/// node dropped its connection: Ok once the send answers 0 and bob has the message.
async fn exchange_after_outage(
    alice: &mut RawConn,
    n1: &str,
    bob: &mut RawConn,
    n2: &str,
    attempt: u32,
) -> Result<(), String> {
    for (conn, url, user) in [(&mut *alice, n1, "alice"), (&mut *bob, n2, "bob")] {
        if conn.closure() != Closure::Open {
            *conn = try_login(url, user).await?;
        }
    }
    let body = format!("after the outage {attempt}");
    let reply = alice
        .call_within(send_peer("bob", &body, false), WAIT)
        .await
        .map_err(|e| format!("send_peer: {e}"))?;
    if code_of(&reply) != 0 {
        return Err(format!("send_peer answered {reply}"));
    }
    bob.next_event(WAIT, |e| {
        e["event"] == "message_from_peer" && e["message"] == text(&body)
    })
    .await
    .map(drop)
    .ok_or_else(|| format!("bob did not get {body:?}"))
}

/// i. The whole conformance suite with the users of every case spread over two nodes
/// passes: the nodes run with short timers (grace, ack timeout, invitation expiry) and
/// the suite is told so (seconds in all). Only the token cases (no certificate here) and
/// the restart case (no restart command) skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_across_two_nodes() {
    conformance_across_two_nodes(1).await;
}

/// The same over two Redis servers: channels, users and conversations spread over both
/// (`serve --engine A,B`), and every rule still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_across_two_nodes_and_two_redis_servers() {
    conformance_across_two_nodes(2).await;
}

/// The whole `check` suite with its users spread over two nodes on `redis_servers` Redis.
async fn conformance_across_two_nodes(redis_servers: usize) {
    let grace = GRACE.as_secs().to_string();
    let timers = [
        "--grace",
        &grace,
        "--ack-timeout",
        "1",
        "--invite-expiry",
        "2",
        "--attribute-expiry",
        "2",
        "--media-expiry",
        "2",
        // Both `serve` and `check` take it: the rest.* cases run too.
        "--api-key",
        "qa:s3cret",
    ];
    let cluster = Cluster::start_sharded(2, redis_servers, &timers).await;
    let (n1, n2) = (cluster.url(0), cluster.url(1));
    let mut args = vec!["check", "--server", &n1, "--server", &n2];
    args.extend(timers);
    let report = support::check_passes(&args, Duration::from_secs(600)).await;
    let cases = report["cases"].as_array().expect("cases");
    // Skipped only for what this run does not give: tokens, a restart command, time.
    let skipped_otherwise: Vec<String> = cases
        .iter()
        .filter(|c| c["outcome"] == "skip")
        .filter(|c| {
            let reason = c["reason"].as_str().unwrap_or("");
            !["--token-cmd", "--restart-cmd"]
                .iter()
                .any(|flag| reason.contains(flag))
        })
        .map(|c| format!("{}: {}", c["name"], c["reason"]))
        .collect();
    assert!(skipped_otherwise.is_empty(), "{skipped_otherwise:?}");
    assert_eq!(report["servers"], json!([n1, n2]));
}

/// A node started after the others stored snapshots and trimmed the app's change stream
/// loads the app's latest snapshot when its first user comes, and reads on: it knows the
/// channel, its members and attributes, and its users join in as if it had been there all
/// along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_loads_the_snapshot_and_reads_on() {
    let mut cluster = Cluster::start_with(1, &["--snapshot-every", "5"]).await;
    let room = "room";
    let mut alice = login(&cluster.url(0), "alice").await;
    alice.ok(join(room)).await;
    alice
        .ok(json!({"op": "set_channel_attributes", "channel": room,
               "attributes": {"topic": "snapshots"}, "notify": false}))
        .await;
    let mut sent = Vec::new();
    for n in 0..30 {
        sent.push(message_id(
            &alice.ok(send_channel(room, &format!("m{n}"))).await,
        ));
    }
    // Snapshots went in and the stream was trimmed behind them (the count is read after
    // a snapshot round, which follows the batch that made it due).
    let deadline = Instant::now() + WAIT;
    let length = loop {
        let length: u64 = cluster
            .redis
            .command(&["XLEN", &format!("rtm:app:{APP}:log")])
            .await
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap_or(u64::MAX);
        if length < 30 || Instant::now() > deadline {
            break length;
        }
        alice.ok(json!({"op": "ping"})).await;
    };
    assert!(
        length < 30,
        "the stream holds {length} changes: never trimmed"
    );

    let redis_url = cluster.redis.url();
    cluster
        .nodes
        .push(support::cluster::Node::start(&redis_url, "n2", &[]).await);
    let mut bob = login(&cluster.url(1), "bob").await;
    assert_eq!(bob.ok(join(room)).await["member_count"], 2);
    alice
        .expect_event_with("member_joined", json!({"channel": room, "user": "bob"}))
        .await;
    assert_eq!(members(&mut bob, room).await, ["alice", "bob"]);
    let attributes = bob
        .ok(json!({"op": "get_channel_attributes", "channel": room}))
        .await;
    assert_eq!(
        attributes["attributes"][0]["value"], "snapshots",
        "{attributes}"
    );
    // Ids go on increasing across the snapshot.
    let next = message_id(&bob.ok(send_channel(room, "after")).await);
    assert!(next > *sent.last().unwrap());
    let history = bob
        .ok(json!({"op": "history", "channel": room, "limit": 3}))
        .await;
    let ids: Vec<u64> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(message_id)
        .collect();
    assert_eq!(ids, [sent[28], sent[29], next], "{history}");
}

/// Redis loses its data (FLUSHALL stands for a restart without persistence): the change
/// counter starts over, every node notices, closes its connections with 1012 and starts
/// from an empty state; the clients log in again and chat as before, under a new store id,
/// in a channel too (its message ids start over lower than those the nodes handed over
/// before, and are not taken for seen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_start_over_when_redis_lost_its_data() {
    let (cluster, mut alice, mut bob) = alice_on_n1_bob_on_n2().await;
    let (n1, n2) = (cluster.url(0), cluster.url(1));
    assert_eq!(alice.code(send_peer("bob", "before", false)).await, 0);
    let room = "room";
    alice.ok(join(room)).await;
    bob.ok(join(room)).await;
    for i in 0..5 {
        alice.ok(send_channel(room, &format!("before {i}"))).await;
    }
    assert_eq!(channel_messages(&mut bob, 5).await.len(), 5);
    let first_store = cluster.redis.command(&["GET", "rtm:store"]).await;

    assert_eq!(cluster.redis.command(&["FLUSHALL"]).await, "+OK");
    // The next change makes every node see the counter gone back.
    let _ = alice
        .call_within(json!({"op": "join", "channel": "after"}), WAIT)
        .await;
    for conn in [&mut alice, &mut bob] {
        assert_eq!(
            conn.wait_closed(WAIT).await,
            Closure::CloseFrame(Some(1012)),
            "a node that lost its state closes its connections for a fresh login"
        );
    }
    let mut alice = login(&n1, "alice").await;
    let mut bob = login(&n2, "bob").await;
    let reply = bob
        .ok(json!({"op": "query_peers_online", "peers": ["alice"]}))
        .await;
    assert_eq!(reply["peers"]["alice"], "online", "{reply}");
    assert_eq!(alice.code(send_peer("bob", "after", false)).await, 0);
    bob.expect_event_with("message_from_peer", json!({"from": "alice"}))
        .await;
    alice.ok(join(room)).await;
    bob.ok(join(room)).await;
    let sent = alice.ok(send_channel(room, "after")).await;
    let got = channel_messages(&mut bob, 1).await;
    assert_eq!(
        got,
        vec![(message_id(&sent), "alice".to_string(), "after".to_string())],
        "a channel message after the data loss reaches the member on the other node"
    );
    let second_store = cluster.redis.command(&["GET", "rtm:store"]).await;
    assert_ne!(
        first_store, second_store,
        "clients learn that ids started over"
    );
}

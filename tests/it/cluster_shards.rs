//! Several nodes over several Redis servers (`serve --engine A,B`): the data of a channel
//! or a conversation lives on one Redis of the list, a node listens only to the channels
//! its own users are in, and one Redis going away fails only what it holds.
//!
//! Real `redis-server` processes and real `rtm-tui serve` nodes (`support::cluster`),
//! raw protocol connections; every wait has a bound.

use std::time::Duration;

use crate::support::cluster::{Cluster, Redis};
use crate::support::raw::{join, named, send_channel, Expect};
use crate::support::{text, WAIT};
use rtm::qa::check::rest::{Api, Auth};
use rtm::qa::raw::{code_of, RawConn};
use rtm::server::{shard_of_app, shard_of_channel, shard_of_peers, shard_of_user};
use serde_json::json;
use tokio::time::Instant;

/// The app every user logs in to (the nodes run in open mode on loopback).
const APP: &str = "cluster";
/// A node drops a channel's topic a few seconds after its last member left (the
/// engine's linger plus a sweep): a generous bound.
const TOPIC_DROPPED_WAIT: Duration = Duration::from_secs(20);
/// With one Redis down, a send to what it holds must still be answered within this.
const OUTAGE_ANSWER: Duration = Duration::from_secs(5);
/// How long the nodes may take to use a Redis again once it is back.
const RECOVERY_WAIT: Duration = Duration::from_secs(30);
/// How often a test looks at Redis again for a change only polling can see.
const POLL: Duration = Duration::from_millis(100);

async fn login(url: &str, user: &str) -> RawConn {
    let mut conn = RawConn::connect(url, user, None)
        .await
        .unwrap_or_else(|e| panic!("connect {user} to {url}: {e}"));
    let reply = conn
        .call_within(json!({"op": "login", "app_id": APP, "user": user}), WAIT)
        .await
        .unwrap_or_else(|e| panic!("login of {user}: {e}"));
    assert_eq!(code_of(&reply), 0, "login of {user}: {reply}");
    conn
}

/// The first of `prefix0`, `prefix1`, ... that Redis `shard` of `count` holds.
fn channel_on(shard: usize, count: usize, prefix: &str) -> String {
    (0..1000)
        .map(|i| format!("{prefix}{i}"))
        .find(|channel| shard_of_channel(count, APP, channel) == shard)
        .expect("some name lands on every shard")
}

/// How many nodes listen to `channel`'s topic on `redis`.
async fn listeners(redis: &Redis, channel: &str) -> u64 {
    let topic = format!("rtm:c:{APP}:{channel}");
    let reply = redis.command(&["PUBSUB", "NUMSUB", &topic]).await;
    // "topic\ncount" as the support client prints an array's last element.
    reply
        .lines()
        .last()
        .and_then(|n| n.trim_start_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("PUBSUB NUMSUB answered {reply:?}"))
}

/// Polls `count` until it gives `want`, or panics after `within` saying how many `what`.
async fn wait_for_count(what: &str, want: u64, within: Duration, count: impl AsyncFn() -> u64) {
    let deadline = Instant::now() + within;
    loop {
        let now = count().await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {now}, {want} expected after {within:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls until `channel`'s topic on `redis` has `want` listeners, or panics.
async fn wait_for_listeners(redis: &Redis, channel: &str, want: u64, within: Duration) {
    let what = format!("nodes listening to {channel}");
    wait_for_count(&what, want, within, async || {
        listeners(redis, channel).await
    })
    .await;
}

/// A node listens to a channel only while one of its users is in it: alice's node from
/// her join, bob's from his join until a little after he left; and a message reaches
/// both nodes' members with one id in one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_listens_to_a_channel_only_while_its_users_are_in_it() {
    let cluster = Cluster::start_sharded(2, 2, &[]).await;
    let room = channel_on(1, 2, "room");
    let holder = &cluster.shards[0];
    let mut alice = login(&cluster.url(0), "alice").await;
    let mut bob = login(&cluster.url(1), "bob").await;
    assert_eq!(listeners(holder, &room).await, 0, "nobody is in {room} yet");
    alice.ok(join(&room)).await;
    assert_eq!(listeners(holder, &room).await, 1, "alice's node listens");
    assert_eq!(
        listeners(&cluster.redis, &room).await,
        0,
        "the other Redis does not carry {room}"
    );
    bob.ok(join(&room)).await;
    assert_eq!(listeners(holder, &room).await, 2, "bob's node listens too");
    let sent = alice.ok(send_channel(&room, "hello")).await;
    let got = bob
        .expect_event_with("message_from_channel", json!({"channel": room}))
        .await;
    assert_eq!(got["message"], text("hello"));
    assert_eq!(got["message_id"], sent["message_id"]);
    bob.ok(json!({"op": "leave", "channel": room})).await;
    wait_for_listeners(holder, &room, 1, TOPIC_DROPPED_WAIT).await;
    // alice's node still gets what is said there.
    let mut carol = login(&cluster.url(0), "carol").await;
    carol.ok(join(&room)).await;
    carol.ok(send_channel(&room, "still here")).await;
    let got = alice
        .expect_event_with("message_from_channel", json!({"from": "carol"}))
        .await;
    assert_eq!(got["message"], text("still here"));
}

/// Message ids come from the Redis that holds the conversation: unique across the two,
/// and growing within each channel and each pair of users, whichever Redis it is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_unique_across_redis_servers_and_grow_per_conversation() {
    let cluster = Cluster::start_sharded(2, 2, &[]).await;
    let rooms = [channel_on(0, 2, "even"), channel_on(1, 2, "odd")];
    let mut alice = login(&cluster.url(0), "alice").await;
    let mut bob = login(&cluster.url(1), "bob").await;
    for room in &rooms {
        alice.ok(join(room)).await;
        bob.ok(join(room)).await;
    }
    let mut all = std::collections::BTreeSet::new();
    for room in &rooms {
        let mut last = 0;
        for n in 0..5 {
            let id = alice.ok(send_channel(room, &format!("m{n}"))).await["message_id"]
                .as_u64()
                .expect("message_id");
            assert!(id > last, "{room}: id {id} after {last}");
            assert!(all.insert(id), "id {id} given twice");
            last = id;
        }
    }
    let mut last = 0;
    for n in 0..5 {
        let reply = alice
            .ok(json!({"op": "send_peer", "to": "bob", "message": text(&format!("p{n}"))}))
            .await;
        let id = reply["message_id"].as_u64().expect("message_id");
        assert!(id > last && all.insert(id), "peer id {id} after {last}");
        last = id;
        bob.expect_event_with("message_from_peer", json!({"message_id": id}))
            .await;
    }
}

/// Script calls Redis has run (`INFO commandstats`: EVALSHA and EVAL).
async fn script_calls(redis: &Redis) -> u64 {
    let info = redis.command(&["INFO", "commandstats"]).await;
    info.lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .filter_map(|line| {
            line.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Many senders at once reach Redis in batches (`engine/redis/batch.rs`): fewer script
/// calls than messages, while the member on the other node still gets every message once,
/// each sender's in the order sent, all with ids that grow in the order received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_many_senders_go_to_redis_in_batches_and_in_order() {
    const SENDERS: usize = 20;
    const EACH: usize = 10;
    let cluster = Cluster::start_with(2, &["--no-rate-limits"]).await;
    let mut bob = login(&cluster.url(1), "bob").await;
    bob.ok(join("burst")).await;
    let mut senders = Vec::new();
    for n in 0..SENDERS {
        let mut sender = login(&cluster.url(0), &format!("s{n}")).await;
        sender.ok(join("burst")).await;
        senders.push(sender);
    }
    let before = script_calls(&cluster.redis).await;
    let sending = senders.into_iter().enumerate().map(|(n, mut sender)| {
        tokio::spawn(async move {
            for m in 0..EACH {
                sender
                    .ok(send_channel("burst", &format!("s{n} m{m}")))
                    .await;
            }
            sender
        })
    });
    let _senders = futures_util::future::join_all(sending).await;
    let mut next_of_sender = [0usize; SENDERS];
    let mut last_id = 0;
    for received in 0..SENDERS * EACH {
        let event = bob
            .next_event(WAIT, named("message_from_channel"))
            .await
            .unwrap_or_else(|| panic!("bob got {received} of {} messages", SENDERS * EACH));
        let id = event["message_id"].as_u64().expect("message_id");
        assert!(id > last_id, "id {id} after {last_id}: {event}");
        last_id = id;
        let from: usize = event["from"].as_str().unwrap()[1..].parse().unwrap();
        let text = format!("s{from} m{}", next_of_sender[from]);
        assert_eq!(event["message"]["text"], text, "{event}");
        next_of_sender[from] += 1;
    }
    let calls = script_calls(&cluster.redis).await - before;
    assert!(
        calls < (SENDERS * EACH * 3 / 4) as u64,
        "{calls} script calls for {} messages",
        SENDERS * EACH
    );
}

/// One Redis of two killed: the channel and the pair of users it holds are answered with
/// their family's failure code promptly, while the channel and pair on the other Redis go
/// on; once it is back, its channel works again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_down_fails_only_what_it_holds() {
    let mut cluster = Cluster::start_sharded(2, 2, &[]).await;
    let kept = channel_on(0, 2, "kept");
    let lost = channel_on(1, 2, "lost");
    // A pair of users on each Redis: alice and one of bob0, bob1, ...
    let peer_on = |shard| {
        (0..1000)
            .map(|i| format!("bob{i}"))
            .find(|bob| shard_of_peers(2, APP, "alice", bob) == shard)
            .expect("some name lands on every shard")
    };
    let (bob_kept, bob_lost) = (peer_on(0), peer_on(1));
    let mut alice = login(&cluster.url(0), "alice").await;
    let mut bob = login(&cluster.url(1), &bob_kept).await;
    let _other_bob = login(&cluster.url(1), &bob_lost).await;
    for room in [&kept, &lost] {
        alice.ok(join(room)).await;
        bob.ok(join(room)).await;
    }

    cluster.shards[0].kill().await;
    let started = Instant::now();
    let void = send_channel(&lost, "into the void");
    fails_while_down(&mut alice, void, 1, "a channel message").await;
    let peer = json!({"op": "send_peer", "to": bob_lost, "message": text("lost")});
    fails_while_down(&mut alice, peer, 1, "a peer message").await;
    assert!(started.elapsed() < OUTAGE_ANSWER * 2);
    // The other Redis' channel and pair go on as if nothing happened.
    let sent = alice.ok(send_channel(&kept, "still fine")).await;
    let got = bob
        .expect_event_with("message_from_channel", json!({"channel": kept}))
        .await;
    assert_eq!(got["message_id"], sent["message_id"]);
    alice
        .ok(json!({"op": "send_peer", "to": bob_kept, "message": text("fine too")}))
        .await;
    bob.expect_event_with("message_from_peer", json!({"from": "alice"}))
        .await;

    cluster.shards[0].restart().await;
    until_it_works(&mut alice, send_channel(&lost, "back"), &lost).await;
    let got = bob
        .next_event(WAIT, |e| {
            e["event"] == "message_from_channel" && e["message"] == text("back")
        })
        .await;
    assert!(got.is_some(), "bob got the message once its Redis was back");
}

/// Sends `request` from `conn` and asserts that it is answered within [`OUTAGE_ANSWER`]
/// with `code`, its family's failure (`what` names what was asked of the Redis that is
/// down).
async fn fails_while_down(conn: &mut RawConn, request: serde_json::Value, code: u32, what: &str) {
    let reply = conn
        .call_within(request, OUTAGE_ANSWER)
        .await
        .unwrap_or_else(|e| panic!("{what} on the Redis that is down is answered: {e:?}"));
    assert_eq!(
        code_of(&reply),
        code,
        "{what}: the family's failure: {reply}"
    );
}

/// Sends `request` from `conn` again and again until it is answered 0, or panics after
/// [`RECOVERY_WAIT`] saying that `what` (what the Redis that was down holds) still fails.
async fn until_it_works(conn: &mut RawConn, request: serde_json::Value, what: &str) {
    let deadline = Instant::now() + RECOVERY_WAIT;
    loop {
        let reply = conn
            .call_within(request.clone(), WAIT)
            .await
            .expect("answered");
        if code_of(&reply) == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{what} still fails: {reply}");
        tokio::time::sleep(POLL).await;
    }
}

/// The first of `prefix0`, `prefix1`, ... whose shared state Redis `shard` of `count` holds.
fn app_on(shard: usize, count: usize, prefix: &str) -> String {
    (0..1000)
        .map(|i| format!("{prefix}{i}"))
        .find(|app| shard_of_app(count, app) == shard)
        .expect("some name lands on every shard")
}

async fn login_to(url: &str, app: &str, user: &str) -> RawConn {
    let mut conn = RawConn::connect(url, user, None).await.unwrap();
    let reply = conn
        .call_within(json!({"op": "login", "app_id": app, "user": user}), WAIT)
        .await
        .unwrap();
    assert_eq!(code_of(&reply), 0, "login of {user} to {app}: {reply}");
    conn
}

/// A node's `rtm_apps` gauge: how many apps' shared state it holds.
async fn apps_held(url: &str) -> u64 {
    let api = Api::from_ws_url(url, Auth::None).unwrap();
    let (status, text) = api
        .raw(&Auth::None, "GET", "/metrics", Vec::new())
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix("rtm_apps "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rtm_apps in {text}"))
}

/// Polls a node's `rtm_apps` until it is `want`, or panics.
async fn wait_for_apps_held(url: &str, want: u64, within: Duration) {
    let what = format!("apps held by {url}");
    wait_for_count(&what, want, within, async || apps_held(url).await).await;
}

/// Whether `key` exists on `redis`.
async fn exists(redis: &Redis, key: &str) -> bool {
    redis.command(&["EXISTS", key]).await.trim() == ":1"
}

/// Polls until `key` is gone from `redis` (`what` names it), or panics after [`WAIT`].
async fn wait_until_gone(redis: &Redis, key: &str, what: &str) {
    wait_for_count(what, 0, WAIT, async || u64::from(exists(redis, key).await)).await;
}

/// Asserts that the key of `ids[i]` (as `key` names it) is on Redis `i` of two, and not
/// on the other.
async fn assert_each_on_its_redis(
    cluster: &Cluster,
    key: impl Fn(&str) -> String,
    ids: [&String; 2],
) {
    for (shard, (mine, other)) in [(ids[0], ids[1]), (ids[1], ids[0])].into_iter().enumerate() {
        let redis = cluster.redis_server(shard);
        assert!(exists(redis, &key(mine)).await, "{} on {shard}", key(mine));
        assert!(
            !exists(redis, &key(other)).await,
            "{} not on {shard}",
            key(other)
        );
    }
}

/// Every change in `app`'s stream (on the first Redis), as the support client prints it.
async fn stream_of(cluster: &Cluster, app: &str) -> String {
    let key = format!("rtm:app:{app}:log");
    cluster
        .redis_server(0)
        .command(&["XRANGE", &key, "-", "+"])
        .await
}

/// `app`'s stream holds `present` (it is the stream the app's changes go to) and not
/// `absent`, which lives on its own Redis instead (`what` names it in a failure).
async fn assert_stream_without(
    cluster: &Cluster,
    app: &str,
    present: Option<&str>,
    (absent, what): (&str, &str),
) {
    let stream = stream_of(cluster, app).await;
    if let Some(present) = present {
        assert!(stream.contains(present), "the app's stream: {stream}");
    }
    assert!(
        !stream.contains(absent),
        "{what} in the app's stream: {stream}"
    );
}

/// Each app's changes go to a stream on the Redis its id hashes to, and a node holds only
/// the apps its users are in: it loads one when its first user of it logs in (seeing
/// what the other node's users did there), holds nothing when it starts (no world
/// snapshot), and forgets an app a while after its last user there left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_spread_over_the_redis_servers_and_a_node_holds_only_those_it_serves() {
    let mut cluster = Cluster::start_sharded(2, 2, &[]).await;
    let (first, second) = (app_on(0, 2, "first"), app_on(1, 2, "second"));
    let mut alice = login_to(&cluster.url(0), &first, "alice").await;
    alice.ok(join("room")).await;
    let _carol = login_to(&cluster.url(1), &second, "carol").await;
    let stream = |app: &str| format!("rtm:app:{app}:log");
    assert_each_on_its_redis(&cluster, stream, [&first, &second]).await;
    wait_for_apps_held(&cluster.url(0), 1, WAIT).await;
    wait_for_apps_held(&cluster.url(1), 1, WAIT).await;

    // Bob's login on the second node loads the first app there, with alice in it.
    let mut bob = login_to(&cluster.url(1), &first, "bob").await;
    let online = bob
        .ok(json!({"op": "query_peers_online", "peers": ["alice"]}))
        .await;
    assert_eq!(online["peers"]["alice"], "online", "{online}");
    assert_eq!(bob.ok(join("room")).await["member_count"], 2);
    alice
        .expect_event_with("member_joined", json!({"channel": "room", "user": "bob"}))
        .await;
    wait_for_apps_held(&cluster.url(1), 2, WAIT).await;

    // A node that starts holds nothing until one of its users comes.
    let engine = cluster.engine();
    cluster
        .nodes
        .push(crate::support::cluster::Node::start(&engine, "n3", &[]).await);
    wait_for_apps_held(&cluster.url(2), 0, WAIT).await;

    // Bob leaves: a while later his node forgets the first app (alice's does not).
    bob.ok(json!({"op": "logout"})).await;
    wait_for_apps_held(&cluster.url(1), 1, Duration::from_secs(30)).await;
    assert_eq!(apps_held(&cluster.url(0)).await, 1);
}

/// The first of `prefix0`, `prefix1`, ... that Redis `shard` of `count` holds in `app`.
fn channel_of_app_on(shard: usize, count: usize, app: &str, prefix: &str) -> String {
    (0..1000)
        .map(|i| format!("{prefix}{i}"))
        .find(|channel| shard_of_channel(count, app, channel) == shard)
        .expect("some name lands on every shard")
}

/// One Redis of two killed fails only the apps whose change streams it holds: their
/// joins and logins get the family's failure code promptly, while an app on the other
/// Redis logs in and joins as if nothing happened; once it is back, the first app works
/// again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_down_fails_only_the_apps_it_holds() {
    let mut cluster = Cluster::start_sharded(2, 2, &[]).await;
    // Heartbeats live on the first Redis: the second is the one killed.
    let (kept, lost) = (app_on(0, 2, "kept"), app_on(1, 2, "lost"));
    let kept_room = channel_of_app_on(0, 2, &kept, "room");
    let lost_room = channel_of_app_on(0, 2, &lost, "room");
    let mut alice = login_to(&cluster.url(0), &kept, "alice").await;
    let mut carol = login_to(&cluster.url(1), &lost, "carol").await;

    cluster.shards[0].kill().await;
    let started = Instant::now();
    fails_while_down(&mut carol, join(&lost_room), 1, "a join in the app").await;
    assert!(started.elapsed() < OUTAGE_ANSWER, "{:?}", started.elapsed());
    let mut dave = RawConn::connect(&cluster.url(0), "dave", None)
        .await
        .unwrap();
    let reply = dave
        .call_within(
            json!({"op": "login", "app_id": lost, "user": "dave"}),
            OUTAGE_ANSWER * 2,
        )
        .await
        .expect("a login to the app whose Redis is down is answered");
    assert_eq!(code_of(&reply), 1, "LOGIN failure: {reply}");
    // The other app goes on: a join, and a new login on either node.
    assert_eq!(alice.ok(join(&kept_room)).await["member_count"], 1);
    let mut bob = login_to(&cluster.url(1), &kept, "bob").await;
    assert_eq!(bob.ok(join(&kept_room)).await["member_count"], 2);
    alice
        .expect_event_with(
            "member_joined",
            json!({"channel": kept_room, "user": "bob"}),
        )
        .await;

    cluster.shards[0].restart().await;
    until_it_works(&mut carol, join(&lost_room), &lost).await;
}

/// The first of `prefix0`, `prefix1`, ... whose own keys (attributes) Redis `shard` of
/// `count` holds in `app`.
fn user_of_app_on(shard: usize, count: usize, app: &str, prefix: &str) -> String {
    (0..1000)
        .map(|i| format!("{prefix}{i}"))
        .find(|user| shard_of_user(count, app, user) == shard)
        .expect("some name lands on every shard")
}

/// An app whose stream (like the heartbeats) is on the first of two Redis, named from
/// `prefix`, and two of its users: `kept`, whose own keys are on that Redis, and `lost`,
/// whose are on the second (the one a test kills).
fn app_with_a_user_on_each_redis(prefix: &str) -> (String, String, String) {
    let app = app_on(0, 2, prefix);
    let kept = user_of_app_on(0, 2, &app, "kept");
    let lost = user_of_app_on(1, 2, &app, "lost");
    (app, kept, lost)
}

/// The attributes `reader` gets for `user` (asserting the read is answered 0).
async fn attributes_of(reader: &mut RawConn, user: &str) -> serde_json::Value {
    let reply = reader
        .ok(json!({"op": "get_user_attributes", "user": user}))
        .await;
    reply["attributes"].clone()
}

/// User attributes are not shared state: each user's live in a hash on the Redis its id
/// hashes to, never in the app's change stream, so a node keeps none of them and reads
/// another node's user's from that Redis; with that Redis away only its users' attribute
/// reads and writes fail (ATTR 2, its failure, promptly); a logout, or the end of the
/// grace period after a drop, deletes the hash (once that Redis is back, if it was away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_attributes_live_on_their_users_redis_not_in_the_shared_state() {
    let mut cluster = Cluster::start_sharded(2, 2, &["--grace", "1"]).await;
    // The app's stream and the heartbeats on the first Redis; one user on each.
    let (app, kept, lost) = app_with_a_user_on_each_redis("attrs");
    let mut kept_conn = login_to(&cluster.url(0), &app, &kept).await;
    let mut lost_conn = login_to(&cluster.url(1), &app, &lost).await;
    let mut bob = login_to(&cluster.url(1), &app, "bob").await;
    let set = |pairs: serde_json::Value| json!({"op": "set_user_attributes", "attributes": pairs});
    kept_conn.ok(set(json!({"mood": "calm-and-kept"}))).await;
    lost_conn.ok(set(json!({"seat": "3"}))).await;

    let hash = |user: &str| format!("rtm:ua:{app}:{user}");
    assert_each_on_its_redis(&cluster, hash, [&kept, &lost]).await;
    let write = ("calm-and-kept", "an attribute write");
    assert_stream_without(&cluster, &app, Some("login"), write).await;
    // Bob, on the other node, reads kept's attributes from kept's Redis.
    assert_eq!(
        attributes_of(&mut bob, &kept).await,
        json!({"mood": "calm-and-kept"})
    );

    cluster.shards[0].kill().await;
    let started = Instant::now();
    let write = set(json!({"seat": "4"}));
    fails_while_down(&mut lost_conn, write, 2, "a write of user attributes").await;
    let read = json!({"op": "get_user_attributes", "user": lost});
    fails_while_down(&mut bob, read, 2, "a read of user attributes").await;
    assert!(
        started.elapsed() < OUTAGE_ANSWER * 2,
        "{:?}",
        started.elapsed()
    );
    // The users on the other Redis go on.
    kept_conn.ok(set(json!({"mood": "still-calm"}))).await;
    assert_eq!(
        attributes_of(&mut bob, &kept).await,
        json!({"mood": "still-calm"})
    );

    cluster.shards[0].restart().await;
    until_it_works(&mut lost_conn, set(json!({"seat": "5"})), &lost).await;
    assert_eq!(attributes_of(&mut bob, &lost).await, json!({"seat": "5"}));

    // A logout forgets the attributes: the hash goes. So does the end of the grace
    // period after a dropped connection (on the node that runs its timer).
    kept_conn.ok(json!({"op": "logout"})).await;
    bob.ok(set(json!({"seat": "7"}))).await;
    drop(bob);
    for (user, what) in [
        (&kept, "after a logout"),
        (&"bob".to_string(), "after the grace"),
    ] {
        let key = format!("rtm:ua:{app}:{user}");
        let redis = cluster.redis_server(shard_of_user(2, &app, user));
        wait_until_gone(redis, &key, &format!("{user}'s attribute hash {what}")).await;
    }

    // A logout while the user's Redis is away: the delete is sent again until it takes.
    cluster.shards[0].kill().await;
    lost_conn.ok(json!({"op": "logout"})).await;
    cluster.shards[0].restart().await;
    let key = format!("rtm:ua:{app}:{lost}");
    let redis = cluster.redis_server(1);
    assert!(exists(redis, &key).await, "kept across the restart");
    wait_until_gone(redis, &key, "lost's attribute hash, logged out while away").await;
}

/// The PTTL of `key` on `redis` (-1: no expiry, -2: no key).
async fn ttl_ms(redis: &Redis, key: &str) -> i64 {
    let reply = redis.command(&["PTTL", key]).await;
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("PTTL answered {reply:?}"))
}

/// Channel attributes are not shared state either: each channel's live in a hash on the
/// Redis that holds the channel, a notifying write reaches the members on the other node
/// through the channel's topic, the hash expires by Redis' own clock once the channel is
/// empty (and not while it has members, nor when it emptied while that Redis was away,
/// once it is back), and with that Redis away only its channels' attribute reads and
/// writes fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_attributes_live_on_their_channels_redis_and_expire_there() {
    let mut cluster = Cluster::start_sharded(2, 2, &["--attribute-expiry", "2"]).await;
    let app = app_on(0, 2, "cattrs");
    let kept = channel_of_app_on(0, 2, &app, "kept");
    let lost = channel_of_app_on(1, 2, &app, "lost");
    let mut alice = login_to(&cluster.url(0), &app, "alice").await;
    let mut bob = login_to(&cluster.url(1), &app, "bob").await;
    for room in [&kept, &lost] {
        alice.ok(join(room)).await;
        bob.ok(join(room)).await;
    }
    let set = |channel: &str, value: &str| {
        json!({"op": "set_channel_attributes", "channel": channel,
               "attributes": {"topic": value}, "notify": true})
    };
    alice.ok(set(&kept, "kept-topic")).await;
    let event = bob
        .expect_event_with("channel_attributes_updated", json!({"channel": kept}))
        .await;
    assert_eq!(event["attributes"][0]["value"], "kept-topic", "{event}");
    assert_eq!(event["attributes"][0]["updated_by"], "alice", "{event}");
    alice.ok(set(&lost, "lost-topic")).await;

    let hash = |channel: &str| format!("rtm:ca:{app}:{channel}");
    assert_each_on_its_redis(&cluster, hash, [&kept, &lost]).await;
    for (shard, room) in [(0, &kept), (1, &lost)] {
        let redis = cluster.redis_server(shard);
        let ttl = ttl_ms(redis, &format!("rtm:ca:{app}:{room}")).await;
        assert_eq!(ttl, -1, "{room} has members: no expiry");
    }
    let write = ("kept-topic", "an attribute write");
    assert_stream_without(&cluster, &app, Some("join"), write).await;

    cluster.shards[0].kill().await;
    let started = Instant::now();
    fails_while_down(
        &mut bob,
        set(&lost, "void"),
        2,
        "a write of channel attributes",
    )
    .await;
    let read = json!({"op": "get_channel_attributes", "channel": lost});
    fails_while_down(&mut bob, read, 2, "a read of channel attributes").await;
    assert!(
        started.elapsed() < OUTAGE_ANSWER * 2,
        "{:?}",
        started.elapsed()
    );
    bob.ok(set(&kept, "still-kept")).await;
    let read = bob
        .ok(json!({"op": "get_channel_attributes", "channel": kept}))
        .await;
    assert_eq!(read["attributes"][0]["value"], "still-kept", "{read}");
    cluster.shards[0].restart().await;
    until_it_works(&mut bob, set(&lost, "back"), &lost).await;

    // Everyone leaves the kept channel: its hash expires (2 s here) by Redis' clock.
    alice.ok(json!({"op": "leave", "channel": kept})).await;
    bob.ok(json!({"op": "leave", "channel": kept})).await;
    let key = format!("rtm:ca:{app}:{kept}");
    let redis = cluster.redis_server(0);
    wait_until_gone(redis, &key, "the empty channel's attribute hash").await;
    let read = alice
        .ok(json!({"op": "get_channel_attributes", "channel": kept}))
        .await;
    assert_eq!(read["attributes"], json!([]), "{read}");

    // The lost channel empties while its Redis is away: told once it is back, its hash
    // expires there too.
    cluster.shards[0].kill().await;
    alice.ok(json!({"op": "leave", "channel": lost})).await;
    bob.ok(json!({"op": "leave", "channel": lost})).await;
    cluster.shards[0].restart().await;
    let key = format!("rtm:ca:{app}:{lost}");
    let redis = cluster.redis_server(1);
    assert!(exists(redis, &key).await, "kept across the restart");
    wait_until_gone(redis, &key, "the lost channel's hash, emptied while away").await;
}

/// The REST API key of the feed test's nodes.
const API_KEY: &str = "ops:s3cret";

/// Pulls `app`'s `feed` through `api` until each user of `want` got its events of the
/// kinds given, in that order (the feeds are for polling: an event comes a moment after
/// its change).
async fn pull_until(api: &Api, app: &str, feed: &str, want: &[(&str, &[&str])]) {
    let path = Api::rtm_path(app, &format!("vendor/{feed}"));
    let deadline = Instant::now() + WAIT;
    let mut pulled = Vec::new();
    loop {
        let answer = api.call("GET", &path, None).await.unwrap();
        assert!(matches!(answer.status, 200 | 429), "GET {path}: {answer:?}");
        pulled.extend(
            answer.body["events"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        let kinds_of = |user: &str| -> Vec<String> {
            let mine = pulled.iter().filter(|e| e["user_id"] == user);
            mine.filter_map(|e| e["type"].as_str().map(str::to_string))
                .collect()
        };
        if want.iter().all(|(user, kinds)| kinds_of(user) == *kinds) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{feed}: {pulled:?}, not {want:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The REST API's event feeds live on their app's Redis (a sorted set per app and feed,
/// `rtm:ev:<app>:users` and `:channels`), not in the shared state: no change carries
/// them and a pull is no change either. Events recorded by either node come out of a
/// pull on either node in the order of the app's changes, once; with the app's Redis
/// down its pulls answer 503 promptly while another app's go on, and work again once it
/// is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_feeds_live_on_their_apps_redis_in_the_order_of_its_changes() {
    let mut cluster = Cluster::start_sharded(2, 2, &["--api-key", API_KEY]).await;
    let (kept, lost) = (app_on(0, 2, "feeds"), app_on(1, 2, "feeds"));
    let api = |n: usize| Api::from_ws_url(&cluster.url(n), Auth::Basic(API_KEY.into())).unwrap();
    let (n1, n2) = (api(0), api(1));
    // alice on n1 and bob on n2 take turns: each node records its own users' events.
    let mut alice = login_to(&cluster.url(0), &kept, "alice").await;
    let mut bob = login_to(&cluster.url(1), &kept, "bob").await;
    alice.ok(join("hall")).await;
    bob.ok(join("hall")).await;
    alice.ok(json!({"op": "leave", "channel": "hall"})).await;
    bob.ok(json!({"op": "logout"})).await;
    let mut carol = login_to(&cluster.url(0), &lost, "carol").await;
    carol.ok(join("hall")).await;

    for feed in ["users", "channels"] {
        let key = |app: &str| format!("rtm:ev:{app}:{feed}");
        for (shard, app) in [(0, &kept), (1, &lost)] {
            wait_for_count(&key(app), 1, WAIT, async || {
                u64::from(exists(cluster.redis_server(shard), &key(app)).await)
            })
            .await;
        }
        assert_each_on_its_redis(&cluster, key, [&kept, &lost]).await;
    }
    assert_stream_without(&cluster, &kept, None, ("Login", "a feed event")).await;

    // Once the four channel events are in, one pull on n2 takes both nodes' events, in
    // the order of the changes; n1 then has none of them.
    let channel_feed = format!("rtm:ev:{kept}:channels");
    wait_for_count("channel events recorded", 4, WAIT, async || {
        let count = cluster
            .redis_server(0)
            .command(&["ZCARD", &channel_feed])
            .await;
        count.trim().trim_start_matches(':').parse().unwrap_or(0)
    })
    .await;
    let path = Api::rtm_path(&kept, "vendor/channel_events");
    let channels = n2.call("GET", &path, None).await.unwrap();
    let order: Vec<(String, String)> = channels.body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{channels:?}"))
        .iter()
        .map(|e| {
            (
                e["user_id"].as_str().unwrap().into(),
                e["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("alice", "Join"),
        ("bob", "Join"),
        ("alice", "Leave"),
        ("bob", "Leave"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(u, k)| (u.to_string(), k.to_string()))
        .collect();
    assert_eq!(order, expected, "{channels:?}");
    let again = n1.call("GET", &path, None).await.unwrap();
    assert_eq!(
        again.body["events"],
        json!([]),
        "pulled on n2, again on n1: {again:?}"
    );
    let login_logout: &[&str] = &["Login", "Logout"];
    pull_until(
        &n1,
        &kept,
        "user_events",
        &[("alice", &["Login"]), ("bob", login_logout)],
    )
    .await;

    // The lost app's Redis goes: its pulls fail at once, the kept app's go on.
    cluster.shards[0].kill().await;
    let started = Instant::now();
    let lost_path = Api::rtm_path(&lost, "vendor/user_events");
    let down = n1.call("GET", &lost_path, None).await.unwrap();
    assert_eq!(down.status, 503, "{down:?}");
    assert!(started.elapsed() < OUTAGE_ANSWER, "{:?}", started.elapsed());
    alice.ok(json!({"op": "logout"})).await;
    pull_until(&n2, &kept, "user_events", &[("alice", &["Logout"])]).await;

    cluster.shards[0].restart().await;
    let deadline = Instant::now() + RECOVERY_WAIT;
    loop {
        let back = n1.call("GET", &lost_path, None).await.unwrap();
        if back.status == 200 {
            let got = back.body["events"].as_array().cloned().unwrap_or_default();
            assert!(
                got.iter()
                    .any(|e| e["user_id"] == "carol" && e["type"] == "Login"),
                "{back:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "pulls still fail: {back:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// How long an invitation waits for its answer in the invitation test (`serve
/// --invite-expiry`).
const INVITE_EXPIRY: Duration = Duration::from_secs(8);
/// How long the cluster may take to notice a killed node (its heartbeat's TTL and more).
const NODE_DOWN_WAIT: Duration = Duration::from_secs(30);

/// Pending invitations live in a hash per caller on the caller's Redis, not in the shared
/// state: an invitation crosses nodes without being a change of the app (its stream
/// holds none), one that nobody closed (both nodes running its expiry died) stops
/// counting a minute after its expiry, with the caller's Redis down only that caller's
/// invitations fail (4, promptly) while another caller's go on, and when the caller's
/// node is killed with an invitation pending, the callee's node runs its expiry too: the
/// callee hears it expired, on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_live_on_their_callers_redis_and_expire_when_its_node_dies() {
    let expiry = INVITE_EXPIRY.as_secs().to_string();
    let mut cluster = Cluster::start_sharded(2, 2, &["--invite-expiry", &expiry]).await;
    let (app, kept, lost) = app_with_a_user_on_each_redis("calls");
    let mut kept_conn = login_to(&cluster.url(0), &app, &kept).await;
    let mut lost_conn = login_to(&cluster.url(0), &app, &lost).await;
    let mut bob = login_to(&cluster.url(1), &app, "bob").await;
    let invite =
        |id: &str| json!({"op": "invite", "invitation_id": id, "callee": "bob", "content": "ring"});
    // Left by nodes long gone: expired two minutes ago, never closed.
    let kept_hash = format!("rtm:inv:{app}:{kept}");
    let redis = cluster.redis_server(0);
    redis
        .command(&["HSET", &kept_hash, "bob\u{0}k0", "7:1000"])
        .await;
    kept_conn.ok(invite("k0")).await;
    kept_conn.ok(invite("k1")).await;
    lost_conn.ok(invite("l1")).await;
    for (caller, id) in [(&kept, "k1"), (&lost, "l1")] {
        let received = json!({"invitation_id": id, "caller": caller});
        bob.expect_event_with("invitation_received", received).await;
    }
    let hash = |caller: &str| format!("rtm:inv:{app}:{caller}");
    assert_each_on_its_redis(&cluster, hash, [&kept, &lost]).await;
    assert_stream_without(&cluster, &app, None, ("invit", "an invitation")).await;
    // Answered from the other node: the caller hears it, and the invitation is closed.
    bob.ok(json!({"op": "refuse_invitation", "invitation_id": "k1", "caller": kept, "response": "busy"}))
        .await;
    kept_conn
        .expect_event_with(
            "invitation_refused",
            json!({"invitation_id": "k1", "callee": "bob"}),
        )
        .await;
    let again = json!({"op": "accept_invitation", "invitation_id": "k1", "caller": kept});
    assert_eq!(
        code_of(&bob.call_within(again, WAIT).await.unwrap()),
        5,
        "NOT_FOUND"
    );

    // The lost caller's Redis goes: its invitations fail at once, the kept caller's go on.
    cluster.shards[0].kill().await;
    let started = Instant::now();
    fails_while_down(
        &mut lost_conn,
        invite("l2"),
        4,
        "an invitation of its caller",
    )
    .await;
    assert!(started.elapsed() < OUTAGE_ANSWER, "{:?}", started.elapsed());
    kept_conn.ok(invite("k2")).await;
    let received = json!({"invitation_id": "k2", "caller": kept});
    bob.expect_event_with("invitation_received", received).await;
    cluster.shards[0].restart().await;
    until_it_works(
        &mut lost_conn,
        invite("l3"),
        "an invitation once its Redis is back",
    )
    .await;

    // The callers' node dies with k3 pending: n2, bob's, runs k3's expiry too, so bob
    // hears it expired when it would have.
    let invited_at = Instant::now();
    kept_conn.ok(invite("k3")).await;
    let received = json!({"invitation_id": "k3", "caller": kept});
    bob.expect_event_with("invitation_received", received).await;
    cluster.nodes[0].kill().await;
    let expired = json!({"invitation_id": "k3"});
    let failure = tokio::time::timeout(
        NODE_DOWN_WAIT.max(INVITE_EXPIRY) + WAIT,
        bob.expect_event_with("invitation_failure", expired),
    )
    .await
    .expect("bob hears that k3 expired");
    assert_eq!(failure["reason"], 3, "EXPIRED: {failure}");
    assert!(
        invited_at.elapsed() + Duration::from_secs(1) >= INVITE_EXPIRY,
        "expired after {:?}, before its time",
        invited_at.elapsed()
    );
}

/// A node stopped as an operator stops it (SIGTERM) records what its users' ends make
/// before it goes: bob's `Logout` is in the user feed, pulled from the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_records_its_users_logouts_first() {
    let mut cluster = Cluster::start_with(2, &["--api-key", API_KEY]).await;
    let app = "stopping";
    let n1 = Api::from_ws_url(&cluster.url(0), Auth::Basic(API_KEY.into())).unwrap();
    let _alice = login_to(&cluster.url(0), app, "alice").await;
    let _bob = login_to(&cluster.url(1), app, "bob").await;
    pull_until(
        &n1,
        app,
        "user_events",
        &[("alice", &["Login"]), ("bob", &["Login"])],
    )
    .await;
    cluster.nodes[1].terminate().await;
    pull_until(&n1, app, "user_events", &[("bob", &["Logout"])]).await;
}

/// The `peers_online_status` event `conn` gets next for `peer`, as its state.
async fn status_event(conn: &mut RawConn, peer: &str) -> serde_json::Value {
    let event = conn.expect_event("peers_online_status").await;
    event["peers"][peer].clone()
}

/// Presence subscriptions are no change to the shared state: each user's live in a hash
/// on the Redis its id hashes to (the app's stream holds no subscribe), and its events
/// come from the node holding the subscriber. A subscriber that moves to the other node
/// within the grace keeps its subscriptions there (and its events follow it, from that
/// node); with its Redis down only its subscribes fail (QUERY 1, promptly) while a user
/// on the other Redis goes on; a logout deletes the hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_subscriptions_live_on_their_users_redis_and_follow_them_to_another_node() {
    let mut cluster = Cluster::start_sharded(2, 2, &["--grace", "10"]).await;
    let (app, kept, lost) = app_with_a_user_on_each_redis("subs");
    let subscribe =
        |peers: serde_json::Value| json!({"op": "subscribe_peers_online", "peers": peers});
    let mut kept_conn = login_to(&cluster.url(0), &app, &kept).await;
    let mut lost_conn = login_to(&cluster.url(1), &app, &lost).await;
    kept_conn.ok(subscribe(json!(["bob", "carol"]))).await;
    assert_eq!(status_event(&mut kept_conn, "bob").await, "offline");
    lost_conn.ok(subscribe(json!(["bob"]))).await;
    assert_eq!(status_event(&mut lost_conn, "bob").await, "offline");

    let hash = |user: &str| format!("rtm:sub:{app}:{user}");
    assert_each_on_its_redis(&cluster, hash, [&kept, &lost]).await;
    assert_stream_without(&cluster, &app, Some("login"), ("subscribe", "a subscribe")).await;

    // bob comes on node 1: both subscribers hear it, each from its own node.
    let mut bob = login_to(&cluster.url(1), &app, "bob").await;
    assert_eq!(status_event(&mut kept_conn, "bob").await, "online");
    assert_eq!(status_event(&mut lost_conn, "bob").await, "online");

    // kept drops and logs in again on node 1 within the grace: its subscriptions came
    // along, and bob's logout reaches it there.
    kept_conn.drop_abruptly();
    let mut kept_conn = login_to(&cluster.url(1), &app, &kept).await;
    let subscribed = kept_conn.ok(json!({"op": "query_subscribed_peers"})).await;
    assert_eq!(subscribed["peers"], json!(["bob", "carol"]));
    bob.ok(json!({"op": "logout"})).await;
    assert_eq!(status_event(&mut kept_conn, "bob").await, "offline");
    assert_eq!(status_event(&mut lost_conn, "bob").await, "offline");

    // lost's Redis (the second, `shards[0]`) down: its subscribes fail at once, kept's
    // go on.
    cluster.shards[0].kill().await;
    let started = Instant::now();
    let carol = subscribe(json!(["carol"]));
    fails_while_down(&mut lost_conn, carol.clone(), 1, "a subscribe").await;
    assert!(started.elapsed() < OUTAGE_ANSWER, "{:?}", started.elapsed());
    kept_conn.ok(subscribe(json!(["dave"]))).await;
    assert_eq!(status_event(&mut kept_conn, "dave").await, "offline");
    cluster.shards[0].restart().await;
    until_it_works(&mut lost_conn, carol, &lost).await;

    // A logout forgets them: the hash goes.
    kept_conn.ok(json!({"op": "logout"})).await;
    let key = format!("rtm:sub:{app}:{kept}");
    wait_until_gone(
        cluster.redis_server(0),
        &key,
        "kept's subscriptions after a logout",
    )
    .await;
}

/// An operator call on `url`'s REST API for `app` (customer key [`BAN_KEY`]).
async fn operator(
    url: &str,
    (method, app, tail): (&str, &str, &str),
    body: Option<serde_json::Value>,
) -> rtm::qa::check::rest::Answer {
    let api = Api::from_ws_url(url, Auth::Basic(BAN_KEY.into())).unwrap();
    api.call(method, &Api::rtm_path(app, tail), body.as_ref())
        .await
        .unwrap()
}

const BAN_KEY: &str = "ops:s3cret";

/// The code a login of `user` to `app` on `url` is answered with.
async fn login_code(url: &str, app: &str, user: &str) -> u32 {
    let mut conn = RawConn::connect(url, user, None).await.unwrap();
    let reply = conn
        .call_within(
            json!({"op": "login", "app_id": app, "user": user}),
            OUTAGE_ANSWER,
        )
        .await
        .unwrap_or_else(|e| panic!("the login of {user} is answered: {e:?}"));
    code_of(&reply)
}

/// Bans are not shared state: each banned user's is one key on the Redis its id hashes
/// to, expiring with the ban (none for a ban without end); the kick goes through the
/// app's order and reaches the user's node, and both nodes refuse the user's logins (2).
/// With one Redis down only its users' logins and unbans fail (LOGIN 1, HTTP 503,
/// promptly); the other's ban holds and its other users log in; once it is back, an
/// unban answered on one node lets the user in on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_live_on_their_users_redis_and_expire_there() {
    let mut cluster = Cluster::start_sharded(2, 2, &["--api-key", BAN_KEY]).await;
    let (app, kept, lost) = app_with_a_user_on_each_redis("bans");
    let mut kept_conn = login_to(&cluster.url(1), &app, &kept).await;
    // 0 seconds: a ban without end.
    let ban = |seconds: u64| Some(json!({"duration_seconds": seconds}));
    let kept_ban = format!("users/{kept}/ban");
    let lost_ban = format!("users/{lost}/ban");
    let answer = operator(&cluster.url(0), ("POST", &app, &kept_ban), ban(600)).await;
    assert_eq!(answer.body["kicked"], true, "{:?}", answer.body);
    kept_conn
        .expect_event_with("kicked", json!({"reason": "banned"}))
        .await;
    let answer = operator(&cluster.url(0), ("POST", &app, &lost_ban), ban(0)).await;
    assert_eq!(answer.body["kicked"], false, "{:?}", answer.body);

    let key = |user: &str| format!("rtm:ban:{app}:{user}");
    assert_each_on_its_redis(&cluster, key, [&kept, &lost]).await;
    let ttl = ttl_ms(cluster.redis_server(0), &key(&kept)).await;
    assert!(
        (590_000..=600_000).contains(&ttl),
        "kept's ban expires with it: {ttl}"
    );
    assert_eq!(ttl_ms(cluster.redis_server(1), &key(&lost)).await, -1);
    for node in 0..2 {
        for user in [&kept, &lost] {
            assert_eq!(
                login_code(&cluster.url(node), &app, user).await,
                2,
                "{user} on {node}"
            );
        }
    }

    // lost's Redis (the second, `shards[0]`) down.
    cluster.shards[0].kill().await;
    let started = Instant::now();
    assert_eq!(
        login_code(&cluster.url(0), &app, &lost).await,
        1,
        "lost's login"
    );
    let answer = operator(&cluster.url(0), ("DELETE", &app, &lost_ban), None).await;
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert!(
        started.elapsed() < OUTAGE_ANSWER * 2,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        login_code(&cluster.url(1), &app, &kept).await,
        2,
        "kept's ban holds"
    );
    let other = user_of_app_on(0, 2, &app, "other");
    login_to(&cluster.url(1), &app, &other).await;
    cluster.shards[0].restart().await;

    // Back: lost is still banned; an unban on node 0 lets it in on node 1 at once.
    let deadline = Instant::now() + RECOVERY_WAIT;
    while login_code(&cluster.url(1), &app, &lost).await != 2 {
        assert!(Instant::now() < deadline, "lost's Redis is not back");
        tokio::time::sleep(POLL).await;
    }
    let answer = operator(&cluster.url(0), ("DELETE", &app, &lost_ban), None).await;
    assert_eq!(answer.body["was_banned"], true, "{:?}", answer.body);
    assert!(!exists(cluster.redis_server(1), &key(&lost)).await);
    login_to(&cluster.url(1), &app, &lost).await;
}

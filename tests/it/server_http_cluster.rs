//! The HTTP API on two nodes over one Redis (real `serve --engine` processes): a REST
//! send on one node reaches a user on the other with the same answers, kick and ban reach
//! the user's node, the event feeds cover the cluster and a pull removes events
//! everywhere, and `rtm-tui check --api-key` passes with its users and REST calls spread
//! over the two nodes.

use std::time::Duration;

use serde_json::{json, Value};

use rtm::qa::check::rest::{Answer, Api, Auth};

use crate::server_http_api::expect_code;
use crate::support::cluster::Cluster;
use crate::support::raw::{self, Expect as _};
use crate::support::{self, text, WAIT};

const KEY: &str = "ops:s3cret";
const APP: &str = "cluster";

async fn two_nodes() -> (Cluster, Api, Api) {
    let cluster = Cluster::start_with(2, &["--api-key", KEY, "--ack-timeout", "1"]).await;
    let api = |n: usize| Api::from_ws_url(&cluster.url(n), Auth::Basic(KEY.into())).unwrap();
    let (n1, n2) = (api(0), api(1));
    (cluster, n1, n2)
}

async fn call(api: &Api, method: &str, tail: &str, body: Option<Value>) -> Answer {
    api.call(method, &Api::rtm_path(APP, tail), body.as_ref())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_sends_kicks_and_feeds_cross_nodes() {
    let (cluster, _n1, n2) = two_nodes().await;
    let mut bob = raw::login(&cluster.url(0), APP, "bob").await;
    bob.ok(raw::join("news")).await;
    // A peer message sent on n2, delivered and acked on n1.
    let send = {
        let n2 = n2.clone();
        tokio::spawn(async move {
            let body = json!({"destination": "bob", "payload": "across"});
            call(
                &n2,
                "POST",
                "users/backend/peer_messages?wait_for_ack=true",
                Some(body),
            )
            .await
        })
    };
    let event = bob
        .expect_event_with(
            "message_from_peer",
            json!({"from": "backend", "message": text("across")}),
        )
        .await;
    bob.ack(event["message_id"].as_u64().unwrap());
    let answer = tokio::time::timeout(WAIT, send).await.unwrap().unwrap();
    expect_code(&answer, 200, "message_delivered");
    // A channel message sent on n2 reaches the member on n1.
    let body = json!({"channel_name": "news", "payload": "for all"});
    let answer = call(&n2, "POST", "users/backend/channel_messages", Some(body)).await;
    expect_code(&answer, 200, "message_sent");
    bob.expect_event_with(
        "message_from_channel",
        json!({"from": "backend", "message": text("for all")}),
    )
    .await;
    // Operator queries on n2 see bob on n1.
    let online = call(&n2, "GET", "users/online?user_ids=bob", None).await;
    assert_eq!(
        online.body["online"],
        json!({"bob": true}),
        "{:?}",
        online.body
    );
    // The feeds on n2 hold bob's login and join on n1; a pull empties them everywhere.
    let users = call(&n2, "GET", "vendor/user_events", None).await;
    let has = |answer: &Answer, kind: &str| {
        answer.body["events"].as_array().is_some_and(|events| {
            events
                .iter()
                .any(|e| e["user_id"] == "bob" && e["type"] == kind)
        })
    };
    assert!(has(&users, "Login"), "{:?}", users.body);
    let channels = call(&n2, "GET", "vendor/channel_events", None).await;
    assert!(has(&channels, "Join"), "{:?}", channels.body);
    let n1 = Api::from_ws_url(&cluster.url(0), Auth::Basic(KEY.into())).unwrap();
    let again = call(&n1, "GET", "vendor/user_events", None).await;
    assert!(
        !has(&again, "Login"),
        "pulled on n2, still on n1: {:?}",
        again.body
    );
    // A ban on n2 kicks bob off n1 and refuses his logins on either node.
    let answer = call(
        &n2,
        "POST",
        "users/bob/ban",
        Some(json!({"duration_seconds": 600})),
    )
    .await;
    assert_eq!(answer.body["kicked"], true, "{:?}", answer.body);
    bob.expect_event_with("kicked", json!({"reason": "banned"}))
        .await;
    for node in 0..2 {
        let mut again = raw::connect(&cluster.url(node)).await;
        let code = again
            .code(json!({"op": "login", "app_id": APP, "user": "bob"}))
            .await;
        assert_eq!(code, 2, "node {node}");
    }
    let answer = call(&n1, "DELETE", "users/bob/ban", None).await;
    assert_eq!(answer.body["was_banned"], true, "{:?}", answer.body);
    // The unban was answered on n1; a login on n2 right after sees it.
    let _bob = raw::login(&cluster.url(1), APP, "bob").await;
    // Each node's metrics: the users of the whole cluster, and how far behind it is.
    let (status, text) = n1
        .raw(&Auth::None, "GET", "/metrics", Vec::new())
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("rtm_users_logged_in 1"), "{text}");
    assert!(text.contains("rtm_engine_lag "), "{text}");
}

/// `rtm-tui check --api-key` with the users of each case on both nodes and the REST
/// calls on the second: every rest case passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_api_key_passes_across_two_nodes() {
    let (cluster, _, _) = two_nodes().await;
    let (n1, n2) = (cluster.url(0), cluster.url(1));
    let args = [
        "check",
        "--server",
        &n1,
        "--server",
        &n2,
        "--api-key",
        KEY,
        "--filter",
        "rest.",
        "--ack-timeout",
        "1",
    ];
    let report = support::check_passes(&args, Duration::from_secs(180)).await;
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.len() >= 10, "{report}");
    assert!(cases.iter().all(|c| c["outcome"] == "pass"), "{report}");
}

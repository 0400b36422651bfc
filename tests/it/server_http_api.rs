//! The server's HTTP side over real HTTP: Agora's REST API, kick and ban, health and
//! metrics, bad input, `--api-key` and `--admin-listen` on a real `serve` process, and
//! `rtm-tui check --api-key` against our server.

use std::time::Duration;

use serde_json::{json, Value};

use rtm::qa::check::rest::{Answer, Api, Auth};
use rtm::server::Config;

use crate::support::raw::{self, Expect as _};
use crate::support::{self, text, WAIT};

const KEY: &str = "ops:s3cret";
const APP: &str = "restapp";

fn config() -> Config {
    let mut config = Config::ephemeral();
    config.api_keys = vec![KEY.parse().unwrap()];
    config.apps.add_spec(APP);
    config.apps.open = false;
    config.ack_timeout = Duration::from_millis(800);
    config
}

fn api_of(url: &str) -> Api {
    Api::from_ws_url(url, Auth::Basic(KEY.into())).unwrap()
}

async fn call(api: &Api, method: &str, path: &str, body: Option<Value>) -> Answer {
    api.call(method, path, body.as_ref()).await.unwrap()
}

/// Asserts an answer's status and Agora `code`.
pub fn expect_code(answer: &Answer, status: u16, code: &str) {
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (status, Some(code)),
        "{:?}",
        answer.body
    );
}

fn path(tail: &str) -> String {
    Api::rtm_path(APP, tail)
}

fn peer(to: &str, payload: &str, offline: bool) -> Value {
    json!({"destination": to, "enable_offline_messaging": offline, "payload": payload})
}

#[tokio::test]
async fn a_peer_message_from_the_api_is_delivered_and_acked() {
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let send = {
        let api = api.clone();
        tokio::spawn(async move {
            call(
                &api,
                "POST",
                &path("users/backend/peer_messages?wait_for_ack=true"),
                Some(peer("bob", "hi bob", false)),
            )
            .await
        })
    };
    let event = bob
        .expect_event_with(
            "message_from_peer",
            json!({"from": "backend", "message": text("hi bob")}),
        )
        .await;
    // Not answered before the ack.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!send.is_finished(), "answered before the receiver acked");
    bob.ack(event["message_id"].as_u64().unwrap());
    let answer = tokio::time::timeout(WAIT, send).await.unwrap().unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["result"], "success");
    assert_eq!(answer.body["code"], "message_delivered");
    assert!(answer.body["request_id"].is_string());
    // Without an ack the wait ends with the ack timeout.
    let answer = call(
        &api,
        "POST",
        &path("users/backend/peer_messages?wait_for_ack=true"),
        Some(peer("bob", "ignored", false)),
    )
    .await;
    expect_code(&answer, 200, "message_timeout");
    // Without the wait: at once.
    let answer = call(
        &api,
        "POST",
        &path("users/backend/peer_messages"),
        Some(peer("bob", "quick", false)),
    )
    .await;
    expect_code(&answer, 200, "message_sent");
    bob.expect_event_with("message_from_peer", json!({"message": text("quick")}))
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn offline_receivers_get_agoras_answers_and_the_cache() {
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let url = path("users/backend/peer_messages?wait_for_ack=true");
    let answer = call(&api, "POST", &url, Some(peer("carol", "lost", false))).await;
    assert_eq!(
        (
            answer.status,
            answer.body["result"].clone(),
            answer.body["code"].clone()
        ),
        (200, json!("failed"), json!("message_offline"))
    );
    let answer = call(&api, "POST", &url, Some(peer("carol", "kept", true))).await;
    expect_code(&answer, 200, "message_cached");
    let mut carol = raw::login(&server.url(), APP, "carol").await;
    carol
        .expect_event_with(
            "message_from_peer",
            json!({"from": "backend", "message": text("kept"), "offline": true}),
        )
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_channel_message_needs_no_membership() {
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    bob.ok(raw::join("news")).await;
    let body = json!({"channel_name": "news", "payload": "extra!"});
    let answer = call(
        &api,
        "POST",
        &path("users/backend/channel_messages"),
        Some(body),
    )
    .await;
    expect_code(&answer, 200, "message_sent");
    bob.expect_event_with(
        "message_from_channel",
        json!({"channel": "news", "from": "backend", "message": text("extra!")}),
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_are_401_and_nothing_is_done() {
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let url = path("users/backend/peer_messages");
    for auth in [
        Auth::None,
        Auth::Basic("ops:wrong".into()),
        Auth::Basic("other:s3cret".into()),
    ] {
        let answer = api
            .call_as(&auth, "POST", &url, Some(&peer("bob", "no", false)))
            .await
            .unwrap();
        assert_eq!(answer.status, 401, "{auth:?}: {:?}", answer.body);
        assert_eq!(answer.body["result"], "failed");
    }
    let kick = path("users/bob/kick");
    assert_eq!(
        api.call_as(&Auth::None, "POST", &kick, None)
            .await
            .unwrap()
            .status,
        401
    );
    bob.assert_no_event("message_from_peer").await;
    bob.ok(json!({"op": "ping"})).await; // still logged in
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_authenticates_its_own_user_only() {
    const CERT_APP: &str = "0123456789abcdef0123456789abcdef";
    const CERT: &str = "fedcba9876543210fedcba9876543210";
    let mut config = config();
    config.apps.add_spec(&format!("{CERT_APP}:{CERT}"));
    let server = support::start_server(config).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let token = rtm::token::build_rtm_token_007(CERT_APP, CERT, "backend", now, now, 600);
    let api = Api::from_ws_url(
        &server.url(),
        Auth::Token {
            token,
            uid: "backend".into(),
        },
    )
    .unwrap();
    let mine = Api::rtm_path(CERT_APP, "users/backend/peer_messages");
    let answer = call(&api, "POST", &mine, Some(peer("bob", "x", false))).await;
    expect_code(&answer, 200, "message_offline");
    let other = Api::rtm_path(CERT_APP, "users/mallory/peer_messages");
    assert_eq!(
        call(&api, "POST", &other, Some(peer("bob", "x", false)))
            .await
            .status,
        403
    );
    // Operator calls need a customer key.
    assert_eq!(
        call(
            &api,
            "POST",
            &Api::rtm_path(CERT_APP, "users/bob/kick"),
            None
        )
        .await
        .status,
        403
    );
    // A token that does not verify is 401, and so is a token of an app without
    // certificate (it proves nothing).
    let forged = Auth::Token {
        token: "007eJxTYJgfake".into(),
        uid: "backend".into(),
    };
    let body = peer("bob", "x", false);
    let refused = api.call_as(&forged, "POST", &mine, Some(&body)).await;
    assert_eq!(refused.unwrap().status, 401);
    let plain = Api::rtm_path(APP, "users/backend/peer_messages");
    assert_eq!(
        call(&api, "POST", &plain, Some(peer("bob", "x", false)))
            .await
            .status,
        401
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_the_documented_status_and_the_server_serves_on() {
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let url = path("users/backend/peer_messages");
    let status = |answer: Answer| {
        (
            answer.status,
            answer.body["code"].as_str().unwrap_or_default().to_string(),
        )
    };
    let (code, _) = api
        .raw(&api.auth, "POST", &url, b"{nope".to_vec())
        .await
        .unwrap();
    assert_eq!(code, 400);
    assert_eq!(
        status(
            call(
                &api,
                "POST",
                &url,
                Some(json!({"payload": "no destination"}))
            )
            .await
        )
        .0,
        400
    );
    assert_eq!(
        status(call(&api, "POST", &url, Some(peer(" bad", "x", false))).await),
        (400, "invalid_destination".into())
    );
    assert_eq!(
        status(
            call(
                &api,
                "POST",
                &path("users/null/peer_messages"),
                Some(peer("bob", "x", false))
            )
            .await
        ),
        (400, "invalid_user_id".into())
    );
    assert_eq!(
        status(
            call(
                &api,
                "POST",
                &url,
                Some(peer("bob", &"x".repeat(33 * 1024), false))
            )
            .await
        ),
        (400, "invalid_payload".into())
    );
    let (code, _) = api
        .raw(&api.auth, "POST", &url, vec![b' '; 2 * 1024 * 1024])
        .await
        .unwrap();
    assert_eq!(code, 413);
    let unknown = Api::rtm_path("otherapp", "vendor/user_events");
    assert_eq!(
        status(call(&api, "GET", &unknown, None).await),
        (404, "unknown_app".into())
    );
    assert_eq!(
        call(&api, "GET", &path("no/such/thing"), None).await.status,
        404
    );
    assert_eq!(call(&api, "GET", "/nowhere", None).await.status, 404);
    // The WebSocket path is untouched.
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    bob.ok(json!({"op": "ping"})).await;
    server.shutdown().await;
}

/// The event feeds allow 10 pulls a second per app (Agora's); the messaging calls' 500
/// work the same way (`http::Family`).
#[tokio::test]
async fn a_flood_past_the_limit_is_429() {
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let url = path("vendor/user_events");
    let calls = (0..40).map(|_| {
        let (api, url) = (api.clone(), url.clone());
        tokio::spawn(async move {
            api.call("GET", &url, None)
                .await
                .map(|a| (a.status, a.body))
        })
    });
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap().unwrap());
    }
    let limited: Vec<&Value> = statuses
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, b)| b)
        .collect();
    assert!(limited.len() >= 10, "{} limited", limited.len());
    assert!(statuses.iter().all(|(s, _)| *s == 200 || *s == 429));
    assert_eq!(limited[0]["code"], "too_many_requests");
    // The server serves on: health, and the API after the window.
    let health = api
        .call_as(&Auth::None, "GET", "/healthz", None)
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn kick_ban_and_unban() {
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let answer = call(&api, "POST", &path("users/alice/kick"), None).await;
    assert_eq!(
        (answer.status, answer.body["kicked"].clone()),
        (200, json!(true)),
        "{:?}",
        answer.body
    );
    alice
        .expect_event_with("kicked", json!({"reason": "banned"}))
        .await;
    alice.expect_end().await;
    // Kicked, not banned.
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let answer = call(
        &api,
        "POST",
        &path("users/alice/ban"),
        Some(json!({"duration_seconds": 3600})),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(
        answer.body["banned_until"].as_u64().is_some(),
        "{:?}",
        answer.body
    );
    alice
        .expect_event_with("kicked", json!({"reason": "banned"}))
        .await;
    let mut again = raw::connect(&server.url()).await;
    let reply = again
        .request(json!({"op": "login", "app_id": APP, "user": "alice"}))
        .await;
    assert_eq!(reply["code"], 2, "{reply}");
    assert!(
        reply["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("banned"),
        "{reply}"
    );
    let answer = call(&api, "DELETE", &path("users/alice/ban"), None).await;
    assert_eq!(answer.body["was_banned"], true, "{:?}", answer.body);
    again
        .ok(json!({"op": "login", "app_id": APP, "user": "alice"}))
        .await;
    // A ban of someone offline holds too; an unknown user is not "kicked".
    let answer = call(&api, "POST", &path("users/zed/ban"), None).await;
    assert_eq!(answer.body["kicked"], false, "{:?}", answer.body);
    let mut zed = raw::connect(&server.url()).await;
    assert_eq!(
        zed.code(json!({"op": "login", "app_id": APP, "user": "zed"}))
            .await,
        2
    );
    server.shutdown().await;
}

#[tokio::test]
async fn operator_queries_and_event_feeds() {
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.ok(raw::join("room")).await;
    let online = call(
        &api,
        "GET",
        &path("users/online?user_ids=alice,ghost"),
        None,
    )
    .await;
    assert_eq!(
        online.body["online"],
        json!({"alice": true, "ghost": false}),
        "{:?}",
        online.body
    );
    let members = call(&api, "GET", &path("channels/room/members"), None).await;
    assert_eq!(
        (
            members.body["members"].clone(),
            members.body["count"].clone()
        ),
        (json!(["alice"]), json!(1))
    );
    let count = call(&api, "GET", &path("channels/room/member_count"), None).await;
    assert_eq!(count.body["count"], 1);
    alice.ok(json!({"op": "leave", "channel": "room"})).await;
    alice.ok(json!({"op": "logout"})).await;
    let users = call(&api, "GET", &path("vendor/user_events"), None).await;
    let kinds = |answer: &Answer, field: &str| -> Vec<(String, String)> {
        answer.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["user_id"].as_str().unwrap().to_string(),
                    e[field].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        kinds(&users, "type"),
        [
            ("alice".to_string(), "Login".to_string()),
            ("alice".into(), "Logout".into())
        ],
        "{:?}",
        users.body
    );
    assert!(users.body["events"][0]["ms"].as_u64().is_some());
    let channels = call(&api, "GET", &path("vendor/channel_events"), None).await;
    assert_eq!(
        kinds(&channels, "type"),
        [
            ("alice".to_string(), "Join".to_string()),
            ("alice".into(), "Leave".into())
        ],
        "{:?}",
        channels.body
    );
    assert_eq!(channels.body["events"][0]["group_id"], "room");
    // A pull removes what it returns.
    let again = call(&api, "GET", &path("vendor/user_events"), None).await;
    assert_eq!(again.body["events"], json!([]));
    server.shutdown().await;
}

#[tokio::test]
async fn history_query_handle_and_count() {
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let _bob = raw::login(&server.url(), APP, "bob").await;
    alice.ok(raw::join("log")).await;
    for n in 0..3 {
        alice.ok(raw::send_channel("log", &format!("c{n}"))).await;
    }
    call(
        &api,
        "POST",
        &path("users/alice/peer_messages"),
        Some(peer("bob", "p0", false)),
    )
    .await;
    let query = json!({"filter": {"source": "alice", "destination": "log"}, "limit": 2, "order": "asc", "offset": 1});
    let answer = call(&api, "POST", &path("message/history/query"), Some(query)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let location = answer.body["location"].as_str().unwrap().to_string();
    assert!(
        location.starts_with("~/rtm/message/history/query/"),
        "{location}"
    );
    let page_path = path(location.trim_start_matches("~/rtm/"));
    let page = tokio::time::timeout(WAIT, async {
        loop {
            let page = call(&api, "GET", &page_path, None).await;
            if page.body["messages"]
                .as_array()
                .is_some_and(|m| m.len() == 2)
            {
                break page;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let payloads: Vec<&str> = page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].as_str().unwrap())
        .collect();
    assert_eq!(payloads, ["c1", "c2"]);
    assert_eq!(page.body["messages"][0]["message_type"], "channel_message");
    let count = call(
        &api,
        "GET",
        &path("message/history/count?source=alice&destination=bob"),
        None,
    )
    .await;
    assert_eq!(count.body["count"], 1, "{:?}", count.body);
    let bad = call(&api, "GET", &path("message/history/query/garbage"), None).await;
    assert_eq!(bad.status, 404);
    let bad_time = json!({"filter": {"destination": "log", "start_time": "yesterday"}});
    assert_eq!(
        call(&api, "POST", &path("message/history/query"), Some(bad_time))
            .await
            .status,
        400
    );
    server.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let mut config = config();
    config.api_keys.clear(); // health and metrics need no key; the API is then off
    let server = support::start_server(config).await;
    let api = Api::from_ws_url(&server.url(), Auth::None).unwrap();
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.ok(raw::join("room")).await;
    assert_eq!(call(&api, "GET", "/healthz", None).await.status, 200);
    let ready = call(&api, "GET", "/readyz", None).await;
    assert_eq!(
        (ready.status, ready.body["status"].clone()),
        (200, json!("ready"))
    );
    let (status, text) = api
        .raw(&Auth::None, "GET", "/metrics", Vec::new())
        .await
        .unwrap();
    assert_eq!(status, 200);
    for expected in [
        "rtm_users_logged_in 1",
        "rtm_channels 1",
        r#"rtm_requests_total{op="join",code="0"} 1"#,
        "rtm_request_duration_seconds_bucket",
        "rtm_bytes_out_total",
        "rtm_engine_up 1",
        "rtm_engine_queue_depth",
        "rtm_connections",
        r#"rtm_http_requests_total{route="readyz",status="200"} 1"#,
    ] {
        assert!(text.contains(expected), "{expected} not in:\n{text}");
    }
    let off = call(&api, "GET", &path("vendor/user_events"), None).await;
    expect_code(&off, 404, "api_disabled");
    server.shutdown().await;
}

/// `serve --api-key --admin-listen`: the API on the main listener, health and metrics on
/// the admin listener alone.
#[tokio::test]
async fn a_serve_process_with_api_key_and_admin_listen() {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
        .args([
            "serve",
            "--ephemeral",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            KEY,
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    let main = next().await;
    let admin = next().await;
    let ws = main.split_whitespace().last().unwrap().to_string();
    let admin = admin
        .split_whitespace()
        .last()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let api = api_of(&ws);
    let admin_api = Api {
        authority: admin,
        auth: Auth::None,
    };
    assert_eq!(call(&admin_api, "GET", "/healthz", None).await.status, 200);
    let (status, text) = admin_api
        .raw(&Auth::None, "GET", "/metrics", Vec::new())
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("rtm_connections"), "{text}");
    assert_eq!(call(&api, "GET", "/healthz", None).await.status, 404);
    assert_eq!(
        call(
            &admin_api,
            "GET",
            &Api::rtm_path("any", "vendor/user_events"),
            None
        )
        .await
        .status,
        404
    );
    let events = call(
        &api,
        "GET",
        &Api::rtm_path("any", "vendor/user_events"),
        None,
    )
    .await;
    assert_eq!(events.status, 200, "{:?}", events.body);
    let mut bob = raw::login(&ws, "any", "bob").await;
    bob.ok(json!({"op": "ping"})).await;
}

/// `rtm-tui check --api-key` against our server: every rest case passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_api_key_passes_the_rest_cases() {
    let mut config = crate::qa_check::short_timers();
    config.api_keys = vec![KEY.parse().unwrap()];
    let server = support::start_server(config).await;
    let url = server.url();
    let report = support::check_passes(
        &[
            "check",
            "--server",
            &url,
            "--api-key",
            KEY,
            "--filter",
            "rest.",
            "--ack-timeout",
            "0.8",
        ],
        Duration::from_secs(120),
    )
    .await;
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.len() >= 10, "{report}");
    assert!(cases.iter().all(|c| c["outcome"] == "pass"), "{report}");
    server.shutdown().await;
}

/// What the chat client sees (it runs on the client library): a REST peer message arrives
/// as any other and the client's own ack makes it `message_delivered`; a ban takes the
/// client to ABORTED with BANNED_BY_SERVER.
#[tokio::test]
async fn the_client_library_gets_rest_messages_and_bans() {
    use rtm::client::ClientEvent;
    use rtm::protocol::{ChangeReason, ConnectionState, Event};
    use support::client::{expect_server_event, fast_config, logged_in};
    let server = support::start_server(config()).await;
    let api = api_of(&server.url());
    let mut client_config = fast_config(&server.url());
    client_config.app_id = APP.into();
    let (_client, mut events) = logged_in(client_config, "alice").await;
    let url = path("users/backend/peer_messages?wait_for_ack=true");
    let answer = call(
        &api,
        "POST",
        &url,
        Some(peer("alice", "hello from the back end", false)),
    )
    .await;
    expect_code(&answer, 200, "message_delivered");
    let event = expect_server_event(&mut events, "the REST message", |e| {
        matches!(e, Event::MessageFromPeer { .. })
    })
    .await;
    let Event::MessageFromPeer { from, message, .. } = event else {
        unreachable!()
    };
    assert_eq!(
        (from.as_str(), message),
        (
            "backend",
            rtm::protocol::Message::text("hello from the back end")
        )
    );
    call(
        &api,
        "POST",
        &path("users/alice/ban"),
        Some(json!({"duration_seconds": 60})),
    )
    .await;
    let state = loop {
        match support::client::next_event(&mut events).await {
            ClientEvent::StateChanged { state, reason, .. } => break (state, reason),
            ClientEvent::Server(_) => {}
        }
    };
    assert_eq!(
        state,
        (ConnectionState::Aborted, ChangeReason::BannedByServer)
    );
    server.shutdown().await;
}

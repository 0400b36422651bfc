//! Logins to apps with a certificate, over real WebSockets, raw JSON: 006 and 007 tokens
//! minted by our builder and by Agora's official builders (npm `agora-token`, PyPI
//! `agora-token-builder`) log in; forged, foreign, expired and missing ones get codes 5
//! and 6; a closed registry refuses unknown apps (4); `token_privilege_will_expire`,
//! `renew_token` and the `token_expired` kick happen on time (the warning lead is
//! shortened in the config, tokens last seconds).

use std::time::Duration;

use crate::support;
use crate::support::raw::{self, Expect};
use crate::support::token_builders::literal;
use crate::support::{start_server, test_config};
use rtm::qa::raw::{Closure, RawConn};
use rtm::server::{Config, RunningServer};
use rtm::token::{build_rtm_token_006, build_rtm_token_007, unix_now};
use serde_json::{json, Value};

const APP: &str = "970CA35de60c44645bbae8a215061b33";
const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";
const OTHER_APP: &str = "0123456789abcdef0123456789abcdef";
const OTHER_CERT: &str = "fedcba9876543210fedcba9876543210";
const HOUR: u32 = 3600;

/// Our two apps with certificates, a plain one, and nothing else (closed registry).
fn secured_config() -> Config {
    let mut config = test_config();
    config.apps.open = false;
    config.apps.add_spec(&format!("{APP}:{CERT}"));
    config.apps.add_spec(&format!("{OTHER_APP}:{OTHER_CERT}"));
    config.apps.add_spec("plain");
    config
}

async fn secured_server() -> RunningServer {
    start_server(secured_config()).await
}

/// A 007 token for `user` of APP, issued now, valid `secs`.
fn token_007(user: &str, secs: u32) -> String {
    build_rtm_token_007(APP, CERT, user, 7, unix_now() as u32, secs)
}

/// Connects and sends a login with `token`; returns the client and the reply.
async fn login(
    server: &RunningServer,
    app: &str,
    user: &str,
    token: Option<&str>,
) -> (RawConn, Value) {
    let mut client = raw::connect(&server.url()).await;
    let mut op = json!({"op": "login", "app_id": app, "user": user});
    if let Some(token) = token {
        op["token"] = json!(token);
    }
    let reply = client.request(op).await;
    (client, reply)
}

/// The code of a login with `token`; a refusal must say why.
async fn login_code(server: &RunningServer, app: &str, user: &str, token: Option<&str>) -> u64 {
    let (client, reply) = login(server, app, user, token).await;
    client.hang_up().await;
    let code = reply["code"].as_u64().expect("code");
    assert!(code == 0 || reply["reason"].is_string(), "{reply}");
    code
}

/// Logs in with `token` and checks the reply's `token_expires_at`.
async fn assert_logs_in(
    server: &RunningServer,
    user: &str,
    token: &str,
    expires: std::ops::RangeInclusive<u64>,
) {
    let (client, reply) = login(server, APP, user, Some(token)).await;
    assert_eq!(reply["code"], 0, "{token} for {user}: {reply}");
    let expires_at = reply["token_expires_at"]
        .as_u64()
        .expect("token_expires_at");
    assert!(
        expires.contains(&expires_at),
        "expires at {expires_at}, wanted {expires:?}"
    );
    client.hang_up().await;
}

#[tokio::test]
async fn our_006_and_007_tokens_log_in_with_their_expiry() {
    let server = secured_server().await;
    let now = unix_now();
    let t006 = build_rtm_token_006(
        APP,
        CERT,
        "alice",
        1,
        (now + 600) as u32,
        (now + 300) as u32,
    );
    assert_logs_in(&server, "alice", &t006, now + 300..=now + 300).await;
    assert_logs_in(
        &server,
        "bob",
        &token_007("bob", HOUR),
        now + 3600..=now + 3601,
    )
    .await;
    // Tokens that never expire (privilege expiry 0): no `token_expires_at`.
    let forever_007 = build_rtm_token_007(APP, CERT, "carol", 1, now as u32, 0);
    let forever_006 = build_rtm_token_006(APP, CERT, "dave", 1, (now + 600) as u32, 0);
    for (user, forever) in [("carol", forever_007), ("dave", forever_006)] {
        let (_client, reply) = login(&server, APP, user, Some(&forever)).await;
        assert_eq!(reply["code"], 0);
        assert!(reply.get("token_expires_at").is_none(), "{reply}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn official_builders_tokens_log_in() {
    let server = secured_server().await;
    if let Some(node) = support::token_builders::node() {
        let before = unix_now();
        let t007 = node.token(&format!(
            "const {{ RtmTokenBuilder }} = require('agora-token');\n\
             console.log(RtmTokenBuilder.buildToken({}, {}, {}, {HOUR}));\n",
            literal(APP),
            literal(CERT),
            literal("npm user")
        ));
        let after = unix_now();
        let hour = u64::from(HOUR);
        assert_logs_in(&server, "npm user", &t007, before + hour..=after + hour + 1).await;
        let expire_ts = unix_now() + 600;
        let t006 = node.token(&format!(
            "const {{ RtmTokenBuilder, Role }} = require('agora-token/src/RtmTokenBuilder');\n\
             console.log(RtmTokenBuilder.buildToken({}, {}, {}, Role.Rtm_User, {expire_ts}));\n",
            literal(APP),
            literal(CERT),
            literal("npm006")
        ));
        assert_logs_in(&server, "npm006", &t006, expire_ts..=expire_ts).await;
        // Agora's token for another user or app is refused with 5.
        assert_eq!(
            login_code(&server, APP, "someone else", Some(&t007)).await,
            5
        );
        assert_eq!(
            login_code(&server, OTHER_APP, "npm user", Some(&t007)).await,
            5
        );
    }
    if let Some(python) = support::token_builders::python() {
        let expire_ts = unix_now() + 600;
        let t006 = python.token(&format!(
            "from agora_token_builder import RtmTokenBuilder\n\
             print(RtmTokenBuilder.buildToken({}, {}, {}, 1, {expire_ts}))\n",
            literal(APP),
            literal(CERT),
            literal("py user")
        ));
        assert_logs_in(&server, "py user", &t006, expire_ts..=expire_ts).await;
        assert_eq!(login_code(&server, APP, "py_user", Some(&t006)).await, 5);
        let expired = python.token(&format!(
            "from agora_token_builder import RtmTokenBuilder\n\
             print(RtmTokenBuilder.buildToken({}, {}, {}, 1, {}))\n",
            literal(APP),
            literal(CERT),
            literal("py user"),
            unix_now() - 10
        ));
        assert_eq!(login_code(&server, APP, "py user", Some(&expired)).await, 6);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn forged_foreign_expired_and_missing_tokens_are_refused() {
    let server = secured_server().await;
    let good = token_007("alice", HOUR);
    // Signed with another certificate.
    let forged = build_rtm_token_007(APP, OTHER_CERT, "alice", 7, unix_now() as u32, HOUR);
    assert_eq!(login_code(&server, APP, "alice", Some(&forged)).await, 5);
    // One character changed.
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(login_code(&server, APP, "alice", Some(&tampered)).await, 5);
    // Another user's token, another app's token.
    assert_eq!(login_code(&server, APP, "mallory", Some(&good)).await, 5);
    let other_app = build_rtm_token_007(OTHER_APP, OTHER_CERT, "alice", 7, unix_now() as u32, HOUR);
    assert_eq!(login_code(&server, APP, "alice", Some(&other_app)).await, 5);
    // Garbage, empty, missing.
    assert_eq!(
        login_code(&server, APP, "alice", Some("007garbage")).await,
        5
    );
    assert_eq!(login_code(&server, APP, "alice", Some("")).await, 5);
    assert_eq!(login_code(&server, APP, "alice", None).await, 5);
    // Expired: issued two hours ago for one hour.
    let expired = build_rtm_token_007(APP, CERT, "alice", 7, (unix_now() - 7200) as u32, HOUR);
    assert_eq!(login_code(&server, APP, "alice", Some(&expired)).await, 6);
    // Unknown app in a closed registry: 4; a plain app needs no token.
    assert_eq!(login_code(&server, "unknown_app", "alice", None).await, 4);
    assert_eq!(login_code(&server, "plain", "alice", None).await, 0);
    // The good token still works after all that.
    assert_eq!(login_code(&server, APP, "alice", Some(&good)).await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn open_mode_accepts_unknown_apps() {
    let mut config = secured_config();
    config.apps.open = true;
    let server = start_server(config).await;
    assert_eq!(login_code(&server, "anything", "alice", None).await, 0);
    // A known app's certificate still counts in open mode.
    assert_eq!(login_code(&server, APP, "alice", None).await, 5);
    server.shutdown().await;
}

/// A server that warns `lead` before expiry.
async fn server_with_lead(lead: Duration) -> RunningServer {
    let mut config = secured_config();
    config.token_warning = lead;
    start_server(config).await
}

#[tokio::test]
async fn will_expire_then_kicked_when_not_renewed() {
    let server = server_with_lead(Duration::from_secs(1)).await;
    let (mut watcher, _) = login(&server, APP, "watcher", Some(&token_007("watcher", HOUR))).await;
    watcher
        .request(json!({"op": "join", "channel": "room"}))
        .await;
    let (mut alice, reply) = login(&server, APP, "alice", Some(&token_007("alice", 3))).await;
    assert_eq!(reply["code"], 0);
    let expires_at = reply["token_expires_at"].as_u64().unwrap();
    alice
        .request(json!({"op": "join", "channel": "room"}))
        .await;
    // Alice may get membership events too; these two are looked for by name.
    let warning = alice.expect_event("token_privilege_will_expire").await;
    assert_eq!(
        warning,
        json!({"event": "token_privilege_will_expire", "expires_at": expires_at})
    );
    assert!(
        unix_now() < expires_at,
        "the warning comes before the expiry"
    );
    let kick = alice.expect_event("kicked").await;
    assert_eq!(kick, json!({"event": "kicked", "reason": "token_expired"}));
    assert!(unix_now() >= expires_at, "the kick comes at the expiry");
    assert_eq!(alice.expect_end().await, Closure::CloseFrame(Some(1000)));
    // A kicked user leaves its channels at once, without the grace of a dropped one.
    assert_eq!(watcher.expect_event("member_left").await["user"], "alice");
    server.shutdown().await;
}

#[tokio::test]
async fn warned_at_once_when_the_token_is_already_within_the_lead() {
    let server = server_with_lead(Duration::from_secs(30)).await;
    let (mut alice, reply) = login(&server, APP, "alice", Some(&token_007("alice", 20))).await;
    let expires_at = reply["token_expires_at"].as_u64().unwrap();
    let warning = alice.next_any_event().await;
    assert_eq!(warning["event"], "token_privilege_will_expire");
    assert_eq!(warning["expires_at"], expires_at);
    server.shutdown().await;
}

#[tokio::test]
async fn renewal_moves_the_timers() {
    let server = server_with_lead(Duration::from_secs(1)).await;
    let (mut alice, reply) = login(&server, APP, "alice", Some(&token_007("alice", 3))).await;
    let first_expiry = reply["token_expires_at"].as_u64().unwrap();
    assert_eq!(
        alice.next_any_event().await["event"],
        "token_privilege_will_expire"
    );
    // Bad renewals change nothing: invalid 6, expired 5.
    let reply = alice
        .request(json!({"op": "renew_token", "token": "garbage"}))
        .await;
    assert_eq!(reply["code"], 6, "{reply}");
    let other_user = token_007("bob", HOUR);
    let reply = alice
        .request(json!({"op": "renew_token", "token": other_user}))
        .await;
    assert_eq!(reply["code"], 6, "{reply}");
    let expired = build_rtm_token_007(APP, CERT, "alice", 7, (unix_now() - 7200) as u32, HOUR);
    let reply = alice
        .request(json!({"op": "renew_token", "token": expired}))
        .await;
    assert_eq!(reply["code"], 5, "{reply}");
    // A good renewal: new expiry, new warning after the old expiry, no kick before it.
    let reply = alice
        .request(json!({"op": "renew_token", "token": token_007("alice", 4)}))
        .await;
    assert_eq!(reply["code"], 0, "{reply}");
    let second_expiry = reply["token_expires_at"].as_u64().unwrap();
    assert!(second_expiry > first_expiry + 1);
    let warning = alice.next_any_event().await;
    assert_eq!(
        warning,
        json!({"event": "token_privilege_will_expire", "expires_at": second_expiry})
    );
    assert!(
        unix_now() >= first_expiry,
        "the old expiry passed without a kick"
    );
    let kick = alice.next_any_event().await;
    assert_eq!(kick["reason"], "token_expired");
    assert!(unix_now() >= second_expiry);
    server.shutdown().await;
}

#[tokio::test]
async fn renewal_on_a_plain_app_is_accepted() {
    let server = secured_server().await;
    let mut client = raw::login(&server.url(), "plain", "alice").await;
    let reply = client
        .request(json!({"op": "renew_token", "token": "anything"}))
        .await;
    assert_eq!(reply["code"], 0);
    server.shutdown().await;
}

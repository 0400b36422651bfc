//! Logins to an app with a certificate, over real WebSockets, raw JSON: 006 and 007
//! tokens, codes 5 and 6, renewal codes, the expiry warning and the token_expired kick.

mod common;

use common::{start_server, test_config, Ended, RawClient};
use rtm::server::Config;
use rtm::token::{build_rtm_token_006, build_rtm_token_007, unix_now};
use serde_json::json;

const APP: &str = "970CA35de60c44645bbae8a215061b33";
const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";

fn config() -> Config {
    let mut config = test_config();
    config.apps.add_spec(&format!("{APP}:{CERT}"));
    config
}

/// A 007 token for `user` that expires `secs` from now.
fn token(user: &str, secs: u32) -> String {
    build_rtm_token_007(APP, CERT, user, 1, unix_now() as u32, secs)
}

fn login(user: &str, token: &str) -> serde_json::Value {
    json!({"op": "login", "app_id": APP, "user": user, "token": token})
}

#[tokio::test]
async fn tokens_open_the_app() {
    let server = start_server(config()).await;
    let url = server.url();
    let mut alice = RawClient::connect(&url).await;
    let reply = alice.request(login("alice", &token("alice", 3600))).await;
    assert_eq!(reply["code"], 0);
    let expires = reply["token_expires_at"].as_u64().unwrap();
    assert!(expires >= unix_now() + 3590 && expires <= unix_now() + 3600);

    let now = unix_now() as u32;
    let v006 = build_rtm_token_006(APP, CERT, "bob", 7, now + 3600, 0);
    let mut bob = RawClient::connect(&url).await;
    let reply = bob.request(login("bob", &v006)).await;
    assert_eq!(reply["code"], 0);
    assert!(reply.get("token_expires_at").is_none(), "0 means no expiry");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_and_expired_tokens() {
    let server = start_server(config()).await;
    let url = server.url();
    let other_cert = build_rtm_token_007(
        APP,
        &CERT.to_lowercase().replace('5', "6"),
        "carol",
        1,
        unix_now() as u32,
        600,
    );
    let expired = build_rtm_token_007(APP, CERT, "carol", 1, unix_now() as u32 - 100, 10);
    for (token, code) in [
        (token("dave", 600), 5),
        (other_cert, 5),
        ("garbage".to_string(), 5),
        (String::new(), 5),
        (expired, 6),
    ] {
        // A fresh connection each time: logins are rate limited per connection.
        let mut carol = RawClient::connect(&url).await;
        let reply = carol.request(login("carol", &token)).await;
        assert_eq!(reply["code"], code, "{token:?}: {reply}");
        assert!(reply["reason"].is_string());
    }
    let mut carol = RawClient::connect(&url).await;
    assert_eq!(
        carol
            .code(json!({"op": "login", "app_id": APP, "user": "carol"}))
            .await,
        5
    );
    server.shutdown().await;
}

#[tokio::test]
async fn expiry_warns_then_kicks() {
    let server = start_server(config()).await;
    let url = server.url();
    let mut watcher = RawClient::connect(&url).await;
    assert_eq!(
        watcher
            .code(login("watcher", &token("watcher", 3600)))
            .await,
        0
    );
    watcher
        .request(json!({"op": "join", "channel": "room"}))
        .await;
    let mut alice = RawClient::connect(&url).await;
    let reply = alice.request(login("alice", &token("alice", 2))).await;
    let expires_at = reply["token_expires_at"].as_u64().unwrap();
    alice
        .request(json!({"op": "join", "channel": "room"}))
        .await;
    // Less than 30 s left: the warning comes at once.
    let warning = alice.expect_event("token_privilege_will_expire").await;
    assert_eq!(warning["expires_at"], expires_at);
    let kicked = alice.expect_event("kicked").await;
    assert_eq!(kicked["reason"], "token_expired");
    assert_eq!(alice.expect_end().await, Ended::Close(1000));
    // Kicked users leave their channels at once.
    assert_eq!(watcher.expect_event("member_left").await["user"], "alice");
    server.shutdown().await;
}

#[tokio::test]
async fn renewal_keeps_the_session() {
    let server = start_server(config()).await;
    let url = server.url();
    let mut alice = RawClient::connect(&url).await;
    alice.request(login("alice", &token("alice", 2))).await;
    alice.expect_event("token_privilege_will_expire").await;
    let renew = |token: String| json!({"op": "renew_token", "token": token});
    assert_eq!(alice.code(renew("garbage".into())).await, 6);
    assert_eq!(alice.code(renew(token("bob", 600))).await, 6);
    let expired = build_rtm_token_007(APP, CERT, "alice", 1, unix_now() as u32 - 100, 10);
    assert_eq!(alice.code(renew(expired)).await, 5);
    let reply = alice.request(renew(token("alice", 3600))).await;
    assert_eq!(reply["code"], 0);
    assert!(reply["token_expires_at"].as_u64().unwrap() > unix_now() + 3000);

    // A marker whose token ends a second after alice's old one, not renewed: once it is
    // kicked, alice's old expiry has passed too.
    let mut marker = RawClient::connect(&url).await;
    marker.request(login("marker", &token("marker", 3))).await;
    assert_eq!(
        marker.expect_event("kicked").await["reason"],
        "token_expired"
    );
    alice.assert_no_event("kicked").await;
    server.shutdown().await;
}

//! Tokens through the client library against the real server with an app certificate:
//! login failures with their codes and states, renewal, and what a reconnect does with
//! the token (the renewed one is used; an expired one aborts for good).

use std::time::Duration;

use crate::support::client::{
    expect_login_ended, fast_config, next_state, state_after_reconnecting, Proxy,
};
use crate::support::{start_server, test_config};
use rtm::client::{Client, ClientError, ClientEvent, Events};
use rtm::protocol::{ChangeReason, ConnectionState, Event, Family, KickReason};
use rtm::server::{Clock, Config};
use rtm::token::{build_rtm_token_007, mint_rtm_token, unix_now, TokenVersion};

const APP: &str = "970CA35de60c44645bbae8a215061b33";
const CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3b";

fn config_with_certificate() -> Config {
    let mut config = test_config();
    config.apps.add_spec(&format!("{APP}:{CERTIFICATE}"));
    config.apps.open = false;
    config
}

fn token(user: &str, valid_for_secs: u32) -> String {
    mint_rtm_token(TokenVersion::V007, APP, CERTIFICATE, user, valid_for_secs)
}

fn client(url: &str) -> (Client, Events) {
    let mut config = fast_config(url);
    config.app_id = APP.to_string();
    Client::new(config).unwrap()
}

/// Logs in and checks the login failed with `code` and DISCONNECTED(LOGIN_FAILURE).
async fn login_fails(url: &str, token: Option<&str>, user: &str, code: u32) {
    let (client, mut events) = client(url);
    let error = client.login(token, user).await.unwrap_err();
    assert_eq!(
        (error.family(), error.code()),
        (Some(Family::Login), Some(code)),
        "{error}"
    );
    expect_login_ended(&mut events, ChangeReason::LoginFailure).await;
    assert_eq!(client.user(), None);
}

#[tokio::test]
async fn logins_are_judged_by_their_token() {
    let server = start_server(config_with_certificate()).await;
    let url = server.url();
    login_fails(&url, None, "alice", 5).await;
    login_fails(&url, Some(&token("bob", 3600)), "alice", 5).await;
    let long_expired = build_rtm_token_007(
        APP,
        CERTIFICATE,
        "alice",
        7,
        (unix_now() - 7200) as u32,
        3600,
    );
    login_fails(&url, Some(&long_expired), "alice", 6).await;
    // An app the server does not know.
    let (stranger, _events) = Client::new(fast_config(&url)).unwrap();
    let error = stranger.login(None, "alice").await.unwrap_err();
    assert_eq!(error.code(), Some(4));

    let (client, _events) = client(&url);
    let result = client
        .login(Some(&token("alice", 3600)), "alice")
        .await
        .unwrap();
    let expires_at = result.token_expires_at.expect("the token's expiry");
    assert!(expires_at > unix_now() + 3000, "{expires_at}");
    let renewed = client.renew_token(&token("alice", 7200)).await.unwrap();
    assert!(renewed.token_expires_at.unwrap() > expires_at);
    let refused = client.renew_token(&token("bob", 7200)).await.unwrap_err();
    assert_eq!(
        (refused.family(), refused.code()),
        (Some(Family::Renew), Some(6))
    );
    server.shutdown().await;
}

/// The next event, a server event, within `within` (of paused time).
async fn server_event_within(events: &mut Events, within: Duration) -> Event {
    match tokio::time::timeout(within, events.recv())
        .await
        .expect("the event in time")
        .expect("the client is alive")
    {
        ClientEvent::Server(event) => event,
        other @ ClientEvent::StateChanged { .. } => {
            panic!("expected a server event, got {other:?}")
        }
    }
}

/// The server's unix time follows tokio time, so that paused tests reach token expiry.
fn config_on_paused_time() -> Config {
    Config {
        clock: Clock::following_tokio(),
        ..config_with_certificate()
    }
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_logs_in_with_the_renewed_token_or_aborts_on_an_expired_one() {
    let server = start_server(config_on_paused_time()).await;
    let proxy = Proxy::start(server.addr()).await;
    // Both log in with tokens that expire in a minute; only ann renews hers.
    let expires_at = unix_now() + 60;
    let short =
        |user: &str| build_rtm_token_007(APP, CERTIFICATE, user, 11, (expires_at - 60) as u32, 60);
    let (ann, mut ann_events) = client(&proxy.url());
    ann.login(Some(&short("ann")), "ann").await.unwrap();
    ann.renew_token(&token("ann", 3600)).await.unwrap();
    let (amy, mut amy_events) = client(&proxy.url());
    amy.login(Some(&short("amy")), "amy").await.unwrap();
    for events in [&mut ann_events, &mut amy_events] {
        next_state(events).await;
        next_state(events).await;
    }

    // Off the network until the short tokens have expired (on paused time: no wait).
    proxy.refuse(true);
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(61)).await;
    proxy.refuse(false);

    assert_eq!(
        state_after_reconnecting(&mut ann_events).await,
        (ConnectionState::Connected, ChangeReason::LoginSuccess)
    );
    assert_eq!(
        state_after_reconnecting(&mut amy_events).await,
        (ConnectionState::Aborted, ChangeReason::TokenExpired)
    );
    assert_eq!(amy.user(), None);
    assert_eq!(amy.ping().await.unwrap_err(), ClientError::NotLoggedIn);
    ann.ping().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_expiring_token_warns_then_aborts_the_session() {
    let server = start_server(config_on_paused_time()).await;
    let (client, mut events) = client(&server.url());
    // Expires in two minutes; the server warns 30 s ahead (on paused time: no wait).
    let expires_at = unix_now() + 120;
    let start = tokio::time::Instant::now();
    let short = build_rtm_token_007(APP, CERTIFICATE, "alice", 5, (expires_at - 180) as u32, 180);
    client.login(Some(&short), "alice").await.unwrap();
    next_state(&mut events).await;
    next_state(&mut events).await;
    let warning = server_event_within(&mut events, Duration::from_secs(100)).await;
    assert_eq!(warning, Event::TokenPrivilegeWillExpire { expires_at });
    let warned_after = start.elapsed();
    assert!(
        warned_after >= Duration::from_secs(85),
        "warned 30 s ahead, not after {warned_after:?}"
    );
    let kick = server_event_within(&mut events, Duration::from_secs(40)).await;
    assert_eq!(
        kick,
        Event::Kicked {
            reason: KickReason::TokenExpired
        }
    );
    assert!(
        start.elapsed() >= Duration::from_secs(115),
        "kicked at expiry"
    );
    assert_eq!(
        next_state(&mut events).await,
        (ConnectionState::Aborted, ChangeReason::TokenExpired, None)
    );
    server.shutdown().await;
}

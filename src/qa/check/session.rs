//! Cases for the session: login and its codes, the not-logged-in rule, logout, ping,
//! token renewal and expiry, and kicks.

use std::time::Duration;

use serde_json::{json, Value};

use super::{case, Case, CaseResult, Ctx, Expect, EVENT_TIMEOUT, TIMER_SLACK};
use crate::qa::raw::{code_of, Closure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "login.ok",
            "login answers 0 with user, server_ts, protocol 1 and server name",
            login_ok,
        ),
        case(
            "login.already_logged_in",
            "a second login on a logged-in connection answers 8",
            login_twice,
        ),
        case(
            "login.invalid_user",
            "a user id breaking the id rules answers 3",
            login_invalid_user,
        ),
        case(
            "login.invalid_app_id",
            "a malformed app id answers 4",
            login_invalid_app,
        ),
        case(
            "login.invalid_token",
            "a token with a wrong signature, or none where the app has a certificate, answers 5",
            login_invalid_token,
        ),
        case(
            "login.other_users_token",
            "a token minted for another user answers 5",
            login_other_token,
        ),
        case(
            "login.token_expired",
            "an expired token answers 6",
            login_token_expired,
        )
        .slow(),
        case(
            "login.rate_limit",
            "more than 2 logins per second on a connection answer 10",
            login_rate,
        ),
        case(
            "session.not_logged_in",
            "every op but login before a login answers 102",
            not_logged_in,
        ),
        case(
            "logout.ok",
            "logout answers 0, after which ops answer 102",
            logout_ok,
        ),
        case(
            "logout.leaves_channels",
            "logout leaves all channels: members get member_left",
            logout_leaves,
        ),
        case(
            "logout.clears_attributes",
            "logout clears the user's attributes",
            logout_clears_attributes,
        ),
        case(
            "ping.ok",
            "ping answers 0 with the server's clock in milliseconds",
            ping_ok,
        ),
        case(
            "renew.ok",
            "renew_token with a valid token answers 0",
            renew_ok,
        ),
        case(
            "renew.invalid_token",
            "renew_token with a bad token answers 6",
            renew_invalid,
        ),
        case(
            "renew.token_expired",
            "renew_token with an expired token answers 5",
            renew_expired,
        )
        .slow(),
        case(
            "kick.remote_login",
            "a second login of a user sends the older connection kicked (remote_login) and closes it",
            kick_remote_login,
        ),
        case(
            "token.will_expire",
            "about 30 s before a token expires the server sends token_privilege_will_expire",
            token_will_expire,
        )
        .slow(),
        case(
            "kick.token_expired",
            "an expired, unrenewed token kicks the session (token_expired)",
            kick_token_expired,
        )
        .slow(),
    ]
}

async fn login_ok(cx: Ctx) -> CaseResult {
    let user = cx.user("alice");
    let mut conn = cx.connect(&user).await?;
    let reply = conn.ok(cx.login_op(&user).await?).await?;
    ensure!(
        reply["user"] == json!(user),
        "login reply user is {}, not {user:?}",
        reply["user"]
    );
    ensure!(
        reply["protocol"] == json!(1),
        "login reply protocol is {}, not 1",
        reply["protocol"]
    );
    ensure!(
        reply["server"].as_str().is_some_and(|s| !s.is_empty()),
        "login reply has no server name: {reply}"
    );
    near_now(&reply["server_ts"], "login server_ts")
}

/// Fails unless `ts` is a millisecond timestamp within five minutes of this machine's clock.
fn near_now(ts: &Value, what: &str) -> CaseResult {
    let Some(ts) = ts.as_u64() else {
        fail!("{what} is not an integer: {ts}");
    };
    let now = crate::protocol::now_ms();
    ensure!(
        now.abs_diff(ts) < 300_000,
        "{what} {ts} is far from now ({now}); milliseconds expected"
    );
    Ok(())
}

async fn login_twice(cx: Ctx) -> CaseResult {
    let (mut conn, user) = cx.fresh("alice").await?;
    conn.code(cx.login_op(&user).await?, 8).await?;
    Ok(())
}

async fn login_invalid_user(cx: Ctx) -> CaseResult {
    for bad in ["null", " lead", "tab\there", &"u".repeat(65)] {
        let mut conn = cx.connect("bad-user").await?;
        conn.code(cx.login_request(bad, None).await, 3).await?;
    }
    Ok(())
}

async fn login_invalid_app(cx: Ctx) -> CaseResult {
    let mut conn = cx.connect("bad-app").await?;
    let mut login = cx.login_request(&cx.user("alice"), None).await;
    login["app_id"] = json!("no such app!");
    conn.code(login, 4).await?;
    Ok(())
}

/// Connects as `user` and expects a login with `token` to answer `code`.
async fn login_answers(cx: &Ctx, user: &str, token: Option<&str>, code: u32) -> CaseResult {
    let mut conn = cx.connect(user).await?;
    conn.code(cx.login_request(user, token).await, code).await?;
    Ok(())
}

async fn login_invalid_token(cx: Ctx) -> CaseResult {
    let user = cx.user("alice");
    let good = cx.need_token(&user, 3600).await?;
    // Flip one character in the middle: still well formed, wrong signature.
    let mut bad: Vec<char> = good.chars().collect();
    let mid = bad.len() / 2;
    bad[mid] = if bad[mid] == 'A' { 'B' } else { 'A' };
    let bad: String = bad.into_iter().collect();
    let mut conn = cx.connect(&user).await?;
    conn.code(cx.login_request(&user, Some(&bad)).await, 5)
        .await?;
    // No token at all, for an app that has a certificate.
    conn.code(cx.login_request(&user, None).await, 5).await?;
    Ok(())
}

/// A token for `user` that has already expired: minted for one second, then outwaited.
async fn expired_token(cx: &Ctx, user: &str) -> Result<String, super::CaseError> {
    let token = cx.need_token(user, 1).await?;
    // Token expiry has one-second resolution; the wall clock must pass it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    Ok(token)
}

async fn login_token_expired(cx: Ctx) -> CaseResult {
    let user = cx.user("alice");
    let token = expired_token(&cx, &user).await?;
    login_answers(&cx, &user, Some(&token), 6).await
}

async fn renew_expired(cx: Ctx) -> CaseResult {
    cx.need_tokens()?;
    let (mut conn, user) = cx.fresh("alice").await?;
    let token = expired_token(&cx, &user).await?;
    conn.code(json!({"op": "renew_token", "token": token}), 5)
        .await?;
    Ok(())
}

async fn login_other_token(cx: Ctx) -> CaseResult {
    let token = cx.need_token(&cx.user("mallory"), 3600).await?;
    login_answers(&cx, &cx.user("alice"), Some(&token), 5).await
}

async fn login_rate(cx: Ctx) -> CaseResult {
    let mut conn = cx.connect("storm").await?;
    // Logins that fail (user "null" answers 3) still count towards the rate.
    let mut logins = Vec::new();
    for _ in 0..5 {
        logins.push(cx.login_request("null", None).await);
    }
    let replies = conn.call_all(logins).await?;
    super::rate_limited(&replies, 3, 10, 1, "5 logins at once")
}

async fn not_logged_in(cx: Ctx) -> CaseResult {
    let mut conn = cx.connect("anon").await?;
    let peer = cx.user("bob");
    for op in [
        json!({"op": "ping"}),
        json!({"op": "join", "channel": cx.channel("c")}),
        json!({"op": "send_peer", "to": peer, "message": super::text("hi")}),
        json!({"op": "query_peers_online", "peers": [peer]}),
        json!({"op": "logout"}),
    ] {
        conn.code(op, 102).await?;
    }
    Ok(())
}

async fn logout_ok(cx: Ctx) -> CaseResult {
    let (mut conn, _) = cx.fresh("alice").await?;
    conn.ok(json!({"op": "logout"})).await?;
    conn.code(json!({"op": "ping"}), 102).await?;
    Ok(())
}

async fn logout_leaves(cx: Ctx) -> CaseResult {
    let channel = cx.channel("room");
    let (mut alice, alice_id, mut bob, _) = cx.pair().await?;
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    bob.ok(json!({"op": "join", "channel": channel})).await?;
    alice.ok(json!({"op": "logout"})).await?;
    bob.event("member_left", json!({"channel": channel, "user": alice_id}))
        .await?;
    Ok(())
}

async fn logout_clears_attributes(cx: Ctx) -> CaseResult {
    let (mut alice, alice_id, mut bob, _) = cx.pair().await?;
    alice
        .ok(json!({"op": "set_user_attributes", "attributes": {"mood": "happy"}}))
        .await?;
    alice.ok(json!({"op": "logout"})).await?;
    let reply = bob
        .call(json!({"op": "get_user_attributes", "user": alice_id}))
        .await?;
    let cleared = code_of(&reply) == 6
        || (code_of(&reply) == 0
            && reply["attributes"]
                .as_object()
                .is_some_and(serde_json::Map::is_empty));
    ensure!(
        cleared,
        "after logout, get_user_attributes answered {reply}; expected code 6 or no attributes"
    );
    Ok(())
}

async fn ping_ok(cx: Ctx) -> CaseResult {
    let (mut conn, _) = cx.fresh("alice").await?;
    let reply = conn.ok(json!({"op": "ping"})).await?;
    near_now(&reply["server_ts"], "ping server_ts")
}

async fn renew_ok(cx: Ctx) -> CaseResult {
    cx.need_tokens()?;
    let (mut conn, user) = cx.fresh("alice").await?;
    let token = cx.need_token(&user, 7200).await?;
    conn.ok(json!({"op": "renew_token", "token": token}))
        .await?;
    Ok(())
}

async fn renew_invalid(cx: Ctx) -> CaseResult {
    cx.need_tokens()?;
    let (mut conn, _) = cx.fresh("alice").await?;
    let other = cx.need_token(&cx.user("mallory"), 3600).await?;
    conn.code(json!({"op": "renew_token", "token": other}), 6)
        .await?;
    Ok(())
}

async fn kick_remote_login(cx: Ctx) -> CaseResult {
    let (mut first, user) = cx.fresh("alice").await?;
    let _second = cx.login(&user).await?;
    first
        .event("kicked", json!({"reason": "remote_login"}))
        .await?;
    match first.wait_closed(EVENT_TIMEOUT).await {
        Closure::Open => fail!(
            "the kicked connection is still open after {}s",
            EVENT_TIMEOUT.as_secs()
        ),
        _ => Ok(()),
    }
}

/// Seconds of life given to tokens in the expiry cases: the warning comes 5 s after login.
fn short_token_secs(cx: &Ctx) -> u64 {
    cx.timing().token_warning.as_secs() + 5
}

async fn short_token_login(cx: &Ctx) -> Result<crate::qa::raw::RawConn, super::CaseError> {
    let user = cx.user("alice");
    let token = cx.need_token(&user, short_token_secs(cx)).await?;
    let mut conn = cx.connect(&user).await?;
    conn.ok(cx.login_request(&user, Some(&token)).await).await?;
    Ok(conn)
}

async fn token_will_expire(cx: Ctx) -> CaseResult {
    cx.need_tokens()?;
    let wait = Duration::from_secs(5) + TIMER_SLACK;
    cx.need_time(wait)?;
    let mut conn = short_token_login(&cx).await?;
    cx.waiting_for("the token expiry warning", wait.saturating_sub(TIMER_SLACK));
    if conn
        .next_event(wait, |e| e["event"] == "token_privilege_will_expire")
        .await
        .is_none()
    {
        fail!(
            "no token_privilege_will_expire within {}s for a {}s token",
            wait.as_secs(),
            short_token_secs(&cx)
        );
    }
    Ok(())
}

async fn kick_token_expired(cx: Ctx) -> CaseResult {
    cx.need_tokens()?;
    let wait = Duration::from_secs(short_token_secs(&cx)) + TIMER_SLACK;
    cx.need_time(wait)?;
    let mut conn = short_token_login(&cx).await?;
    cx.waiting_for("the token's expiry", wait.saturating_sub(TIMER_SLACK));
    if conn
        .next_event(wait, |e| {
            e["event"] == "kicked" && e["reason"] == "token_expired"
        })
        .await
        .is_none()
    {
        fail!(
            "no kicked (token_expired) within {}s for a {}s token",
            wait.as_secs(),
            short_token_secs(&cx)
        );
    }
    Ok(())
}

//! The operator's routes beside Agora's (as Centrifugo's disconnect API): kick, ban and
//! unban a user, and the read-only queries an operator needs (online status, a channel's
//! members and count). Customer keys only: a token caller gets 403.
//!
//! A kick is `AdminChange::Kick` (`hub/admin.rs`), so every node applies it; a ban is
//! written to the engine's store first (`engine/bans.rs`), and an unban deletes it there;
//! the queries read this node's copy once it has caught up (`Hub::caught_up`).

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::protocol::limits::{
    validate_channel_id, validate_user_id, MAX_LISTED_MEMBERS, MAX_QUERY_PEERS,
};
use crate::protocol::PeerStatus;

use super::auth::Caller;
use super::{failure, query_param, read_body, success, unavailable, Call};
use crate::server::engine::Change;
use crate::server::engine::Outcome;
use crate::server::engine::{AdminChange, AdminOutcome, Unavailable};
use crate::server::hub::admin::BANNED_FOREVER;

/// The route pattern of an operator call, if it is one.
pub(super) fn pattern_of(method: &Method, rest: &[&str]) -> Option<&'static str> {
    Some(match (method.as_str(), rest) {
        ("POST", ["users", _, "kick"]) => "kick",
        ("POST", ["users", _, "ban"]) => "ban",
        ("DELETE", ["users", _, "ban"]) => "unban",
        ("GET", ["users", "online"]) => "online",
        ("GET", ["channels", _, "members"]) => "members",
        ("GET", ["channels", _, "member_count"]) => "member_count",
        _ => return None,
    })
}

#[derive(Debug, Default, Deserialize)]
struct BanBody {
    /// How long the ban lasts; absent or 0: until unbanned.
    #[serde(default)]
    duration_seconds: u64,
}

/// Answers an operator call, or `None` if the path is not one.
pub(super) async fn route(
    call: &Call<'_>,
    method: &Method,
    rest: &[&str],
    query: Option<&str>,
    request: Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    pattern_of(method, rest)?;
    if matches!(call.caller, Caller::User(_)) {
        return Some(failure(
            StatusCode::FORBIDDEN,
            "forbidden",
            "operator calls need a customer key (Basic)",
        ));
    }
    Some(match rest {
        ["users", user, "kick"] => kick(call, user, None).await,
        ["users", user, "ban"] if method == Method::POST => {
            let body = match read_body(request.into_body()).await {
                Ok(bytes) if bytes.is_empty() => BanBody::default(),
                Ok(bytes) => match serde_json::from_slice::<BanBody>(&bytes) {
                    Ok(body) => body,
                    Err(e) => {
                        return Some(failure(
                            StatusCode::BAD_REQUEST,
                            "invalid_body",
                            &e.to_string(),
                        ))
                    }
                },
                Err(refused) => return Some(refused),
            };
            let until = match body.duration_seconds {
                0 => BANNED_FOREVER,
                secs => call.hub.config().clock.unix_secs().saturating_add(secs),
            };
            kick(call, user, Some(until)).await
        }
        ["users", user, "ban"] => unban(call, user).await,
        ["users", "online"] => online(call, query).await,
        ["channels", channel, "members"] => members(call, channel, true).await,
        ["channels", channel, _] => members(call, channel, false).await,
        _ => return None,
    })
}

fn invalid_user(e: impl std::fmt::Display) -> Response<Full<Bytes>> {
    failure(StatusCode::BAD_REQUEST, "invalid_user_id", &e.to_string())
}

async fn kick(call: &Call<'_>, user: &str, ban_until: Option<u64>) -> Response<Full<Bytes>> {
    if let Err(e) = validate_user_id(user) {
        return invalid_user(e);
    }
    // The ban first: a login that reads it after this refuses; one already past its read
    // is kicked by the change below, which follows it in the app's order.
    if let Some(until) = ban_until {
        let now = call.hub.config().clock.unix_secs();
        let bans = call.hub.engine().bans();
        if bans.ban(call.app, user, (until, now)).await.is_err() {
            return unavailable();
        }
    }
    let change = Change::Admin(AdminChange::Kick {
        app: call.app.to_string(),
        user: user.to_string(),
        ban_until,
    });
    match call.hub.submit(change, None).await {
        Outcome::Admin(AdminOutcome::Kicked { was_present }) => {
            let until = ban_until.filter(|u| *u != BANNED_FOREVER);
            let mut extra = serde_json::json!({"kicked": was_present});
            if ban_until.is_some() {
                extra["banned_until"] = serde_json::json!(until);
            }
            success("ok", extra)
        }
        _ => unavailable(),
    }
}

async fn unban(call: &Call<'_>, user: &str) -> Response<Full<Bytes>> {
    if let Err(e) = validate_user_id(user) {
        return invalid_user(e);
    }
    let now = call.hub.config().clock.unix_secs();
    match call.hub.engine().bans().unban(call.app, user, now).await {
        Ok(was_banned) => success("ok", serde_json::json!({"was_banned": was_banned})),
        Err(Unavailable) => unavailable(),
    }
}

/// `GET …/rtm/users/online?user_ids=a,b`: `true` for each user online now.
async fn online(call: &Call<'_>, query: Option<&str>) -> Response<Full<Bytes>> {
    let ids = query_param(query, "user_ids").unwrap_or_default();
    let users: Vec<String> = ids
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if users.is_empty() || users.len() > MAX_QUERY_PEERS {
        let why = format!("user_ids: 1 to {MAX_QUERY_PEERS} ids, comma-separated");
        return failure(StatusCode::BAD_REQUEST, "invalid_user_id", &why);
    }
    if let Some(e) = users.iter().find_map(|u| validate_user_id(u).err()) {
        return invalid_user(e);
    }
    call.hub.caught_up(call.app).await;
    let states = call.hub.query_online(call.app, &users);
    let online: serde_json::Map<String, serde_json::Value> = states
        .into_iter()
        .map(|(user, status)| (user, (status == PeerStatus::Online).into()))
        .collect();
    success("ok", serde_json::json!({"online": online}))
}

/// A channel's members (at most 512) and count, or its count alone.
async fn members(call: &Call<'_>, channel: &str, list: bool) -> Response<Full<Bytes>> {
    if let Err(e) = validate_channel_id(channel) {
        return failure(
            StatusCode::BAD_REQUEST,
            "invalid_channel_name",
            &e.to_string(),
        );
    }
    call.hub.caught_up(call.app).await;
    let (members, count) = call
        .hub
        .channel_members(call.app, channel, MAX_LISTED_MEMBERS);
    if list {
        success(
            "ok",
            serde_json::json!({"members": members, "count": count}),
        )
    } else {
        success("ok", serde_json::json!({"count": count}))
    }
}

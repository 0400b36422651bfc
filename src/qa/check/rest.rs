//! Cases for the HTTP REST API of a server (Agora's RTM 1.x REST API under
//! `/dev/v2/project/<appid>/rtm/`, plus the reference server's kick, ban and operator
//! queries), run when `check --api-key KEY:SECRET` is given and skipped otherwise; and
//! [`Api`], the small HTTP/1.1 client (hyper) the cases and the tests call it with.
//!
//! The REST calls go to the last server given and the WebSocket users of a case to the
//! servers in turn, so on a cluster a REST send crosses nodes. Only
//! `rest.event_feeds` pulls the event feeds: a pull removes what it returns, so two cases
//! pulling at once would take each other's events.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};

use super::{case, Case, CaseError, CaseResult, Ctx, Expect, EVENT_TIMEOUT, QUIET};

/// How a call authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// HTTP Basic with `KEY:SECRET`.
    Basic(String),
    /// `x-agora-token` and `x-agora-uid`.
    Token {
        token: String,
        uid: String,
    },
    /// `x-rtm-ticket`: a ticket of `media_ticket`, for files and images.
    Ticket(String),
}

/// A server's HTTP side, reached at the host and port of its WebSocket URL.
#[derive(Debug, Clone)]
pub struct Api {
    /// `HOST:PORT`.
    pub authority: String,
    pub auth: Auth,
}

/// An HTTP answer: status and body (JSON, or the text as a JSON string).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Api {
    /// The HTTP side of `ws://HOST:PORT/…` (plain `ws://` only).
    pub fn from_ws_url(url: &str, auth: Auth) -> Result<Api, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("the REST checks speak plain HTTP: {url} is not ws://"))?;
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        Ok(Api { authority, auth })
    }

    /// `/dev/v2/project/<app>/rtm/<tail>`.
    pub fn rtm_path(app: &str, tail: &str) -> String {
        format!("/dev/v2/project/{}/rtm/{tail}", segment(app))
    }

    /// One call with this client's credentials.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        self.call_as(&self.auth, method, path, body).await
    }

    /// One call, on a connection of its own, with `auth`.
    pub async fn call_as(
        &self,
        auth: &Auth,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, text) = self.raw(auth, method, path, bytes).await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    /// One call with a raw body; the status and the body's text.
    pub async fn raw(
        &self,
        auth: &Auth,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, String), String> {
        let (status, body) = self.bytes(auth, method, path, body).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// One call with a raw body; the status and the body's bytes.
    pub async fn bytes(
        &self,
        auth: &Auth,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes), String> {
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connect {}: {e}", self.authority))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority)
            .header("content-type", "application/json");
        match auth {
            Auth::None => {}
            Auth::Basic(key_secret) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(key_secret);
                request = request.header("authorization", format!("Basic {encoded}"));
            }
            Auth::Token { token, uid } => {
                request = request
                    .header("x-agora-token", token)
                    .header("x-agora-uid", uid);
            }
            Auth::Ticket(ticket) => {
                request = request.header(crate::protocol::media::TICKET_HEADER, ticket);
            }
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
}

/// Percent-encodes a path segment (ids may hold `#`, `?`, `/`, spaces).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Every REST case.
pub fn cases() -> Vec<Case> {
    vec![
        case("rest.auth_required", "REST: no or wrong credentials are 401 and nothing is sent", auth_required),
        case("rest.peer_delivered", "REST: a peer message with wait_for_ack is message_delivered once acked", |cx| peer_to_online(cx, true)),
        case("rest.peer_sent", "REST: without wait_for_ack a peer message is message_sent at once", |cx| peer_to_online(cx, false)),
        case("rest.peer_offline", "REST: an offline receiver is message_offline, or message_cached and delivered at login", peer_offline),
        case("rest.channel_message", "REST: a channel message needs no membership and reaches the members", channel_message),
        case("rest.bad_input", "REST: malformed JSON, bad ids, unknown app and oversize bodies are refused", bad_input),
        case("rest.kick", "REST: a kick ends the user's session with kicked (banned)", kick),
        case("rest.ban", "REST: a ban refuses logins (LOGIN 2) until unbanned", ban),
        case("rest.operator_queries", "REST: online status, members and member count", operator_queries),
        case("rest.history", "REST: the history query, its handle and the count", history),
        case("rest.event_feeds", "REST: user and channel events, removed once pulled", event_feeds).slow(),
    ]
}

/// The API client of a case (the last server), or a skip without `--api-key`.
fn api(cx: &Ctx) -> Result<Api, CaseError> {
    let Some(key) = cx.config.api_key.clone() else {
        return Err(CaseError::Skip("needs --api-key KEY:SECRET".into()));
    };
    let url = cx.config.servers.last().cloned().unwrap_or_default();
    Api::from_ws_url(&url, Auth::Basic(key)).map_err(CaseError::Skip)
}

async fn call(
    api: &Api,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Answer, CaseError> {
    api.call(method, path, body)
        .await
        .map_err(|e| CaseError::Fail(format!("{method} {path}: {e}")))
}

/// Expects `status` and a body holding `pattern`; returns the body.
async fn expect(
    api: &Api,
    (method, path): (&str, &str),
    body: Option<&Value>,
    status: u16,
    pattern: &Value,
) -> Result<Value, CaseError> {
    let answer = call(api, method, path, body).await?;
    if answer.status != status || !super::json_contains(&answer.body, pattern) {
        fail!(
            "{method} {path}: expected {status} with {pattern}, got {} {}",
            answer.status,
            answer.body
        );
    }
    Ok(answer.body)
}

fn peer_path(cx: &Ctx, from: &str, wait: bool) -> String {
    let tail = format!("users/{}/peer_messages?wait_for_ack={wait}", segment(from));
    Api::rtm_path(cx.app_id(), &tail)
}

fn peer_body(to: &str, payload: &str, offline: bool) -> Value {
    json!({
        "destination": to,
        "enable_offline_messaging": offline,
        "enable_historical_messaging": true,
        "payload": payload,
    })
}

async fn auth_required(cx: Ctx) -> CaseResult {
    let api = api(&cx)?;
    let (mut bob, bob_id) = cx.fresh("bob").await?;
    let path = peer_path(&cx, &cx.user("server"), false);
    let body = peer_body(&bob_id, "must not arrive", false);
    for auth in [Auth::None, Auth::Basic("nobody:wrong".into())] {
        let answer = api
            .call_as(&auth, "POST", &path, Some(&body))
            .await
            .map_err(CaseError::Fail)?;
        if answer.status != 401 {
            fail!(
                "{auth:?}: expected 401, got {} {}",
                answer.status,
                answer.body
            );
        }
    }
    bob.no_event("message_from_peer", json!({}), QUIET).await
}

/// A REST peer message to an online user arrives as any other; with `wait_for_ack` it is
/// answered `message_delivered` (after the user's ack), without it `message_sent`.
async fn peer_to_online(cx: Ctx, wait_for_ack: bool) -> CaseResult {
    let api = api(&cx)?;
    let (mut bob, bob_id) = cx.fresh("bob").await?;
    let server = cx.user("server");
    let path = peer_path(&cx, &server, wait_for_ack);
    let body = peer_body(&bob_id, "from the back end", false);
    let code = if wait_for_ack {
        "message_delivered"
    } else {
        "message_sent"
    };
    let answered = json!({"result": "success", "code": code});
    expect(&api, ("POST", &path), Some(&body), 200, &answered).await?;
    let message = json!({"from": server, "message": super::text("from the back end")});
    bob.event("message_from_peer", message).await?;
    Ok(())
}

async fn peer_offline(cx: Ctx) -> CaseResult {
    let api = api(&cx)?;
    let carol = cx.user("carol");
    let path = peer_path(&cx, &cx.user("server"), true);
    let lost = peer_body(&carol, "lost", false);
    expect(
        &api,
        ("POST", &path),
        Some(&lost),
        200,
        &json!({"result": "failed", "code": "message_offline"}),
    )
    .await?;
    let kept = peer_body(&carol, "kept for later", true);
    expect(
        &api,
        ("POST", &path),
        Some(&kept),
        200,
        &json!({"result": "success", "code": "message_cached"}),
    )
    .await?;
    let mut carol_conn = cx.login(&carol).await?;
    carol_conn
        .event(
            "message_from_peer",
            json!({"message": super::text("kept for later"), "offline": true}),
        )
        .await?;
    Ok(())
}

async fn channel_message(cx: Ctx) -> CaseResult {
    let api = api(&cx)?;
    let (mut bob, _) = cx.fresh("bob").await?;
    let channel = cx.channel("news");
    bob.ok(json!({"op": "join", "channel": channel})).await?;
    let server = cx.user("server");
    let path = Api::rtm_path(
        cx.app_id(),
        &format!("users/{}/channel_messages", segment(&server)),
    );
    let body = json!({"channel_name": channel, "enable_historical_messaging": true, "payload": "to everyone"});
    expect(
        &api,
        ("POST", &path),
        Some(&body),
        200,
        &json!({"result": "success", "code": "message_sent"}),
    )
    .await?;
    bob.event(
        "message_from_channel",
        json!({"channel": channel, "from": server, "message": super::text("to everyone")}),
    )
    .await?;
    Ok(())
}

async fn bad_input(cx: Ctx) -> CaseResult {
    let api = api(&cx)?;
    let path = peer_path(&cx, &cx.user("server"), false);
    let (status, _) = api
        .raw(&api.auth, "POST", &path, b"{not json".to_vec())
        .await
        .map_err(CaseError::Fail)?;
    if status != 400 {
        fail!("malformed JSON: expected 400, got {status}");
    }
    let bob = cx.user("bob");
    let refused = [
        // A bad receiver id, an oversize body (64 KiB cap), an oversize message (32 KiB).
        (peer_body(" leading space", "x", false), 400),
        (peer_body(&bob, &"x".repeat(70 * 1024), false), 413),
        (peer_body(&bob, &"x".repeat(40 * 1024), false), 400),
    ];
    for (body, status) in &refused {
        let failed = json!({"result": "failed"});
        expect(&api, ("POST", &path), Some(body), *status, &failed).await?;
    }
    Ok(())
}

async fn kick(cx: Ctx) -> CaseResult {
    let api = api(&cx)?;
    let (mut alice, alice_id) = cx.fresh("alice").await?;
    let path = Api::rtm_path(cx.app_id(), &format!("users/{}/kick", segment(&alice_id)));
    expect(
        &api,
        ("POST", &path),
        None,
        200,
        &json!({"result": "success", "kicked": true}),
    )
    .await?;
    alice.event("kicked", json!({"reason": "banned"})).await?;
    // Kicked, not banned: the user may come back.
    cx.login(&alice_id).await?;
    Ok(())
}

async fn ban(cx: Ctx) -> CaseResult {
    let api = api(&cx)?;
    let (mut alice, alice_id) = cx.fresh("alice").await?;
    let path = Api::rtm_path(cx.app_id(), &format!("users/{}/ban", segment(&alice_id)));
    let body = json!({"duration_seconds": 600});
    expect(
        &api,
        ("POST", &path),
        Some(&body),
        200,
        &json!({"result": "success", "kicked": true}),
    )
    .await?;
    alice.event("kicked", json!({"reason": "banned"})).await?;
    let mut again = cx.connect(&alice_id).await?;
    let op = cx.login_op(&alice_id).await?;
    again.code(op, 2).await?;
    expect(
        &api,
        ("DELETE", &path),
        None,
        200,
        &json!({"result": "success", "was_banned": true}),
    )
    .await?;
    cx.login(&alice_id).await?;
    Ok(())
}

async fn operator_queries(cx: Ctx) -> CaseResult {
    let api = api(&cx)?;
    let (mut alice, alice_id) = cx.fresh("alice").await?;
    let ghost = cx.user("ghost");
    let channel = cx.channel("room");
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    let online = Api::rtm_path(
        cx.app_id(),
        &format!(
            "users/online?user_ids={},{}",
            segment(&alice_id),
            segment(&ghost)
        ),
    );
    let expected = json!({"online": {alice_id.clone(): true, ghost: false}});
    expect(&api, ("GET", &online), None, 200, &expected).await?;
    let members = Api::rtm_path(
        cx.app_id(),
        &format!("channels/{}/members", segment(&channel)),
    );
    expect(
        &api,
        ("GET", &members),
        None,
        200,
        &json!({"members": [alice_id], "count": 1}),
    )
    .await?;
    let count = Api::rtm_path(
        cx.app_id(),
        &format!("channels/{}/member_count", segment(&channel)),
    );
    expect(&api, ("GET", &count), None, 200, &json!({"count": 1})).await?;
    Ok(())
}

async fn history(cx: Ctx) -> CaseResult {
    let api = api(&cx)?;
    let (mut alice, alice_id) = cx.fresh("alice").await?;
    let channel = cx.channel("log");
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    for n in 0..3 {
        alice
            .ok(json!({"op": "send_channel", "channel": channel, "message": super::text(&format!("line {n}"))}))
            .await?;
    }
    let query = json!({
        "filter": {"source": alice_id, "destination": channel, "start_time": "2000-01-01T00:00:00Z", "end_time": "2100-01-01T00:00:00Z"},
        "offset": 0, "limit": 2, "order": "desc",
    });
    let path = Api::rtm_path(cx.app_id(), "message/history/query");
    let body = expect(
        &api,
        ("POST", &path),
        Some(&query),
        200,
        &json!({"result": "success"}),
    )
    .await?;
    let Some(location) = body["location"].as_str() else {
        fail!("no location in {body}");
    };
    let handle = location.rsplit('/').next().unwrap_or_default();
    let page = Api::rtm_path(cx.app_id(), &format!("message/history/query/{handle}"));
    let first = json!({"src": alice_id, "dst": channel, "message_type": "channel_message", "payload": "line 2"});
    let matches = |body: &Value| {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        messages.len() == 2
            && super::json_contains(&messages[0], &first)
            && messages[1]["payload"] == "line 1"
    };
    // History is written behind the send (group commits): give it a moment.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let answer = call(&api, "GET", &page, None).await?;
        if answer.status == 200 && matches(&answer.body) {
            break;
        }
        if Instant::now() > deadline {
            fail!(
                "history page: expected line 2 then line 1, got {} {}",
                answer.status,
                answer.body
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = Api::rtm_path(
        cx.app_id(),
        &format!(
            "message/history/count?source={}&destination={}",
            segment(&alice_id),
            segment(&channel)
        ),
    );
    expect(&api, ("GET", &count), None, 200, &json!({"count": 3})).await?;
    Ok(())
}

async fn event_feeds(cx: Ctx) -> CaseResult {
    let api = api(&cx)?;
    let (mut alice, alice_id) = cx.fresh("alice").await?;
    let channel = cx.channel("feed");
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    alice.ok(json!({"op": "leave", "channel": channel})).await?;
    alice.ok(json!({"op": "logout"})).await?;
    pull_until(
        &cx,
        &api,
        "vendor/user_events",
        &alice_id,
        &["Login", "Logout"],
    )
    .await?;
    let channels = pull_until(
        &cx,
        &api,
        "vendor/channel_events",
        &alice_id,
        &["Join", "Leave"],
    )
    .await?;
    if channels.iter().any(|e| e["group_id"] != json!(channel)) {
        fail!("channel events of another channel: {channels:?}");
    }
    // Pulled events are gone.
    let again = call(
        &api,
        "GET",
        &Api::rtm_path(cx.app_id(), "vendor/user_events"),
        None,
    )
    .await?;
    if again.body["events"]
        .as_array()
        .is_some_and(|events| events.iter().any(|e| e["user_id"] == json!(alice_id)))
    {
        fail!("a pulled event came again: {}", again.body);
    }
    Ok(())
}

/// Pulls a feed until `user`'s events of the given types, in that order, were returned;
/// returns them.
async fn pull_until(
    cx: &Ctx,
    api: &Api,
    feed: &str,
    user: &str,
    types: &[&str],
) -> Result<Vec<Value>, CaseError> {
    let path = Api::rtm_path(cx.app_id(), feed);
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let mut mine = Vec::new();
    loop {
        let answer = call(api, "GET", &path, None).await?;
        // The feeds allow 10 pulls a second per app: a 429 waits and pulls again.
        if !matches!(answer.status, 200 | 429) {
            fail!("GET {feed}: {} {}", answer.status, answer.body);
        }
        if let Some(events) = answer.body["events"].as_array() {
            mine.extend(
                events
                    .iter()
                    .filter(|e| e["user_id"] == json!(user))
                    .cloned(),
            );
        }
        let kinds: Vec<&str> = mine.iter().filter_map(|e| e["type"].as_str()).collect();
        if kinds == types {
            return Ok(mine);
        }
        if Instant::now() > deadline {
            fail!("{feed}: expected {types:?} of {user}, got {mine:?}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

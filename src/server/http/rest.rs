//! Agora's RTM 1.x REST API under `/dev/v2/project/<appid>/rtm/…`: peer and channel
//! messages, the user and channel event feeds, and the history query, its handle and
//! count; the operator's routes are `admin.rs`.
//!
//! Sends go through the same changes and code paths as the WebSocket `send_peer` and
//! `send_channel` (`Change::SendPeer` answered by `session::PeerReplyTo`,
//! `Change::SendChannel`), so ids, history, the offline cache, acks and several nodes
//! behave alike. The REST sender stands in for a connection with an outbox of its own
//! that no socket drains: the hub answers it there (delivered, timed out, cached,
//! unreachable) and the call reads that answer.

use std::time::Duration;

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::protocol::codes::peer::CACHED_BY_SERVER;
use crate::protocol::limits::{validate_app_id, validate_channel_id, validate_user_id};
use crate::protocol::{HistoryMessage, Message, PeerStatus};

use super::auth::{authenticate, Caller};
use super::{
    answer, failure, query_param, read_body, request_id, success, unavailable, ApiFamily, Call,
    HttpCtx,
};
use crate::server::config::AppLookup;
use crate::server::engine::event_feeds::FEED_PULL_MAX;
use crate::server::engine::Feed;
use crate::server::engine::{channel_conversation, peer_conversation, Outcome};
use crate::server::session::{route_channel_message, send_peer_from, PeerReplyTo};
use crate::server::store::HistoryQuery;

/// An answer and the route pattern it is counted under.
pub(super) type CountedAnswer = (&'static str, Response<Full<Bytes>>);

/// Most messages one history page returns (Agora's `limit` cap).
const MAX_HISTORY_PAGE: usize = 100;
/// How long a REST send waits for its answer beyond the ack timeout.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// Routes a call under `/dev/v2/project/<app>/rtm/`.
pub(super) async fn route(
    request: Request<Incoming>,
    ctx: &HttpCtx,
    app: &str,
    rest: &[String],
) -> CountedAnswer {
    let config = ctx.hub.config();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let pattern = pattern_of(request.method(), &rest);
    if config.api_keys.is_empty() {
        let why = "the REST API is off: the server has no --api-key";
        return (pattern, failure(StatusCode::NOT_FOUND, "api_disabled", why));
    }
    if validate_app_id(app).is_err() || config.apps.lookup(app) == AppLookup::Unknown {
        return (
            pattern,
            failure(StatusCode::NOT_FOUND, "unknown_app", "no such app id"),
        );
    }
    let caller = match authenticate(request.headers(), app, config) {
        Ok(caller) => caller,
        Err(why) => {
            return (
                pattern,
                failure(StatusCode::UNAUTHORIZED, "unauthorized", &why.0),
            )
        }
    };
    let Some(family) = family_of(pattern) else {
        return (
            pattern,
            failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        );
    };
    if !ctx.hub.http().allow(app, family) {
        let why = "too many calls for this app: try again in a second";
        return (
            pattern,
            failure(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", why),
        );
    }
    let call = Call {
        hub: &ctx.hub,
        app,
        caller,
    };
    let query = request.uri().query().map(str::to_string);
    let response = match (request.method().clone(), rest.as_slice()) {
        (Method::POST, ["users", user, "peer_messages"]) => {
            let wait = query_param(query.as_deref(), "wait_for_ack").as_deref() == Some("true");
            match read_json(request.into_body()).await {
                Ok(body) => call.peer_message(user, body, wait).await,
                Err(refused) => refused,
            }
        }
        (Method::POST, ["users", user, "channel_messages"]) => {
            match read_json(request.into_body()).await {
                Ok(body) => call.channel_message(user, body).await,
                Err(refused) => refused,
            }
        }
        (Method::GET, ["vendor", "user_events"]) => call.events(Feed::Users).await,
        (Method::GET, ["vendor", "channel_events"]) => call.events(Feed::Channels).await,
        (Method::POST, ["message", "history", "query"]) => {
            match read_json(request.into_body()).await {
                Ok(body) => call.history_query(body),
                Err(refused) => refused,
            }
        }
        (Method::GET, ["message", "history", "query", handle]) => call.history_page(handle).await,
        (Method::GET, ["message", "history", "count"]) => {
            call.history_count(query.as_deref()).await
        }
        (method, rest) => {
            match super::admin::route(&call, &method, rest, query.as_deref(), request).await {
                Some(response) => response,
                None => failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
            }
        }
    };
    (pattern, response)
}

/// The route pattern of a call (its ids left out), for the metrics and the rate limits.
fn pattern_of(method: &Method, rest: &[&str]) -> &'static str {
    match (method.as_str(), rest) {
        ("POST", ["users", _, "peer_messages"]) => "peer_messages",
        ("POST", ["users", _, "channel_messages"]) => "channel_messages",
        ("GET", ["vendor", "user_events"]) => "user_events",
        ("GET", ["vendor", "channel_events"]) => "channel_events",
        ("POST", ["message", "history", "query"]) => "history_query",
        ("GET", ["message", "history", "query", _]) => "history_page",
        ("GET", ["message", "history", "count"]) => "history_count",
        (_, rest) => super::admin::pattern_of(method, rest).unwrap_or("other"),
    }
}

fn family_of(pattern: &str) -> Option<ApiFamily> {
    match pattern {
        "peer_messages" | "channel_messages" => Some(ApiFamily::Messaging),
        "user_events" | "channel_events" => Some(ApiFamily::Events),
        "other" => None,
        _ => Some(ApiFamily::Other),
    }
}

/// A JSON body, or the failure to answer.
async fn read_json<T: serde::de::DeserializeOwned>(
    body: Incoming,
) -> Result<T, Response<Full<Bytes>>> {
    let bytes = read_body(body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| failure(StatusCode::BAD_REQUEST, "invalid_body", &e.to_string()))
}

/// A REST send that reached the server but not its goal: 200 with `result: failed`, as
/// Agora answers a message that could not be delivered.
fn not_delivered(code: &str, message: &str) -> Response<Full<Bytes>> {
    answer(
        StatusCode::OK,
        &serde_json::json!({
            "result": "failed",
            "request_id": request_id(),
            "code": code,
            "message": message,
        }),
    )
}

fn bad_request(code: &str, message: &str) -> Response<Full<Bytes>> {
    failure(StatusCode::BAD_REQUEST, code, message)
}

#[derive(Debug, Deserialize)]
struct PeerBody {
    destination: String,
    #[serde(default)]
    enable_offline_messaging: bool,
    /// Accepted as Agora has it; this server keeps the history of every message.
    #[serde(default)]
    #[allow(dead_code)]
    enable_historical_messaging: bool,
    payload: String,
}

#[derive(Debug, Deserialize)]
struct ChannelBody {
    channel_name: String,
    #[serde(default)]
    #[allow(dead_code)]
    enable_historical_messaging: bool,
    payload: String,
}

impl Call<'_> {
    /// A token caller acts as its own user only.
    fn may_act_as(&self, user: &str) -> Result<(), Response<Full<Bytes>>> {
        match &self.caller {
            Caller::User(uid) if uid != user => Err(failure(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a token authenticates its own user only",
            )),
            _ => Ok(()),
        }
    }

    /// What every send checks: the caller may act as `from`, `from` is a user id, and
    /// `payload` makes a message within the protocol's size.
    fn checked_send(&self, from: &str, payload: String) -> Result<Message, Response<Full<Bytes>>> {
        self.may_act_as(from)?;
        validate_user_id(from).map_err(|e| bad_request("invalid_user_id", &e.to_string()))?;
        let message = Message::text(payload);
        message
            .validate()
            .map_err(|e| bad_request("invalid_payload", &e.to_string()))?;
        Ok(message)
    }

    async fn peer_message(
        &self,
        from: &str,
        body: PeerBody,
        wait_for_ack: bool,
    ) -> Response<Full<Bytes>> {
        if let Err(e) = validate_user_id(&body.destination) {
            return bad_request("invalid_destination", &e.to_string());
        }
        let message = match self.checked_send(from, body.payload) {
            Ok(message) => message,
            Err(refused) => return refused,
        };
        let hub = self.hub;
        // Whether the answer may go before the receiver's: see below.
        hub.caught_up(self.app).await;
        let to = [body.destination.clone()];
        let online = hub.query_online(self.app, &to).get(&to[0]) == Some(&PeerStatus::Online);
        // The REST sender's stand-in for a connection: the hub and the engine answer it
        // there, as they answer a WebSocket sender (0 acked, 2, 3, 4, 1).
        let sender = hub.new_conn();
        let reply_to = PeerReplyTo {
            conn: sender.clone(),
            hub: hub.clone(),
            id: 1,
            app: self.app.to_string(),
            to: body.destination,
        };
        let offline = body.enable_offline_messaging;
        send_peer_from(reply_to, from.to_string(), (message, offline), &mut None).await;
        // Without the wait, a message to an online receiver is answered once the server
        // has it, as Agora's; to an offline one, once it is cached or found unreachable.
        if !wait_for_ack && online {
            return self.sent("peer", "message_sent");
        }
        let wait = hub.config().ack_timeout + ANSWER_MARGIN;
        let code = match tokio::time::timeout(wait, wait_reply_code(&sender)).await {
            Ok(code) => code,
            Err(_) => crate::protocol::codes::peer::TIMEOUT,
        };
        if code == 0 && !wait_for_ack {
            // It came online meanwhile and acked already.
            return self.sent("peer", "message_sent");
        }
        self.peer_answer(code)
    }

    fn sent(&self, op: &'static str, code: &'static str) -> Response<Full<Bytes>> {
        self.count(op, code);
        success(code, serde_json::json!({}))
    }

    fn count(&self, op: &'static str, code: &'static str) {
        self.hub
            .http()
            .metrics
            .rest_sends
            .get_or_create(&super::metrics::SendLabels { op, code })
            .inc();
    }

    /// Agora's answer to the PEER code the hub gave.
    fn peer_answer(&self, code: u32) -> Response<Full<Bytes>> {
        use crate::protocol::codes::peer;
        let (name, response) = match code {
            0 => (
                "message_delivered",
                success("message_delivered", serde_json::json!({})),
            ),
            CACHED_BY_SERVER => (
                "message_cached",
                success("message_cached", serde_json::json!({})),
            ),
            peer::PEER_UNREACHABLE => (
                "message_offline",
                not_delivered(
                    "message_offline",
                    "the receiver is offline (not cached: enable_offline_messaging is false)",
                ),
            ),
            peer::TIMEOUT => (
                "message_timeout",
                not_delivered(
                    "message_timeout",
                    "the receiver did not acknowledge the message in time",
                ),
            ),
            _ => (
                "message_failed",
                failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "message_failed",
                    "the message could not be sent",
                ),
            ),
        };
        self.count("peer", name);
        response
    }

    async fn channel_message(&self, from: &str, body: ChannelBody) -> Response<Full<Bytes>> {
        if let Err(e) = validate_channel_id(&body.channel_name) {
            return bad_request("invalid_channel_name", &e.to_string());
        }
        let message = match self.checked_send(from, body.payload) {
            Ok(message) => message,
            Err(refused) => return refused,
        };
        // The same way as a member's `send_channel`, without the membership.
        let to = (self.app, from, body.channel_name.as_str());
        let outcome = match route_channel_message(self.hub, to, message, true) {
            Ok(routed) => routed.await,
            Err(change) => self.hub.submit(*change, None).await,
        };
        match outcome {
            Outcome::Sent(Ok(_)) => self.sent("channel", "message_sent"),
            Outcome::Sent(Err(error)) => failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "message_failed",
                &format!("{error:?}"),
            ),
            _ => unavailable(),
        }
    }

    /// A pull of a feed: returns and removes up to 1,000 events, cluster-wide (the
    /// engine keeps the feeds: `engine/event_feeds.rs`).
    async fn events(&self, feed: Feed) -> Response<Full<Bytes>> {
        let feeds = self.hub.engine().event_feeds();
        match feeds.take(self.app, feed, FEED_PULL_MAX).await {
            Ok(events) => answer(
                StatusCode::OK,
                &serde_json::json!({
                    "result": "success",
                    "request_id": request_id(),
                    "events": events,
                }),
            ),
            Err(_) => unavailable(),
        }
    }

    fn history_query(&self, query: HistoryBody) -> Response<Full<Bytes>> {
        if let Err(refused) = self.check_history(&query.filter) {
            return refused;
        }
        let handle = HistoryHandle {
            app: self.app.to_string(),
            query,
        };
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&handle).unwrap_or_default());
        let query = &handle.query;
        success(
            "ok",
            serde_json::json!({
                "offset": query.offset,
                "limit": query.limit,
                "order": query.order,
                "location": format!("~/rtm/message/history/query/{encoded}"),
            }),
        )
    }

    fn check_history(&self, filter: &HistoryFilter) -> Result<(), Response<Full<Bytes>>> {
        if validate_user_id(&filter.destination).is_err() {
            return Err(bad_request(
                "invalid_filter",
                "destination: a user or channel id",
            ));
        }
        if filter
            .source
            .as_deref()
            .is_some_and(|s| validate_user_id(s).is_err())
        {
            return Err(bad_request("invalid_filter", "source: a user id"));
        }
        for time in [&filter.start_time, &filter.end_time].into_iter().flatten() {
            if parse_utc(time).is_none() {
                return Err(bad_request(
                    "invalid_filter",
                    "times are UTC, as 2019-08-01T01:22:10Z",
                ));
            }
        }
        if let Caller::User(uid) = &self.caller {
            if filter.source.as_deref() != Some(uid) && &filter.destination != uid {
                return Err(failure(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "a token reads its own user's history only",
                ));
            }
        }
        Ok(())
    }

    async fn history_page(&self, handle: &str) -> Response<Full<Bytes>> {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(handle)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<HistoryHandle>(&bytes).ok())
            .filter(|h| h.app == self.app);
        let Some(HistoryHandle { query, .. }) = decoded else {
            return failure(
                StatusCode::NOT_FOUND,
                "invalid_handle",
                "no such history query",
            );
        };
        if let Err(refused) = self.check_history(&query.filter) {
            return refused;
        }
        let messages = match self.matching(&query.filter).await {
            Ok(messages) => messages,
            Err(refused) => return refused,
        };
        let descending = query.order.as_deref() == Some("desc");
        let limit = query
            .limit
            .unwrap_or(MAX_HISTORY_PAGE)
            .min(MAX_HISTORY_PAGE);
        let ordered: Box<dyn Iterator<Item = &Found>> = if descending {
            Box::new(messages.iter().rev())
        } else {
            Box::new(messages.iter())
        };
        let page: Vec<&Found> = ordered
            .skip(query.offset.unwrap_or(0))
            .take(limit)
            .collect();
        success("ok", serde_json::json!({ "messages": page }))
    }

    async fn history_count(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let Some(destination) = query_param(query, "destination") else {
            return bad_request("invalid_filter", "destination is required");
        };
        let filter = HistoryFilter {
            source: query_param(query, "source"),
            destination,
            start_time: query_param(query, "start_time"),
            end_time: query_param(query, "end_time"),
        };
        if let Err(refused) = self.check_history(&filter) {
            return refused;
        }
        match self.matching(&filter).await {
            Ok(messages) => success("ok", serde_json::json!({"count": messages.len()})),
            Err(refused) => refused,
        }
    }

    /// Every kept message `filter` matches, oldest first: the peer conversation of source
    /// and destination, and the channel named destination (sent by source, if given).
    async fn matching(&self, filter: &HistoryFilter) -> Result<Vec<Found>, Response<Full<Bytes>>> {
        let hub = self.hub;
        let everything = HistoryQuery {
            before: None,
            after: None,
            limit: hub.config().history_limit,
        };
        let mut conversations =
            vec![(channel_conversation(&filter.destination), "channel_message")];
        if let Some(source) = &filter.source {
            conversations.push((
                peer_conversation(source, &filter.destination),
                "peer_message",
            ));
        }
        let start = filter
            .start_time
            .as_deref()
            .and_then(parse_utc)
            .unwrap_or(0);
        let end = filter
            .end_time
            .as_deref()
            .and_then(parse_utc)
            .unwrap_or(u64::MAX);
        let mut found = Vec::new();
        for (conv, kind) in conversations {
            let read = hub
                .engine()
                .messages()
                .history(self.app, &conv, everything)
                .await;
            let messages = read.map_err(|_| {
                failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "engine_unavailable",
                    "history could not be read",
                )
            })?;
            found.extend(
                messages
                    .into_iter()
                    .filter(|m| filter.source.as_ref().is_none_or(|s| &m.from == s))
                    .filter(|m| (start..=end).contains(&m.server_ts))
                    .map(|m| Found::new(m, &filter.destination, kind)),
            );
        }
        found.sort_by_key(|f| (f.ms, f.id));
        Ok(found)
    }
}

/// Agora's history query body.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HistoryBody {
    filter: HistoryFilter,
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    order: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HistoryFilter {
    #[serde(default)]
    source: Option<String>,
    destination: String,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    end_time: Option<String>,
}

/// What a history handle holds: the query itself, so that any node can answer it.
#[derive(Debug, Serialize, Deserialize)]
struct HistoryHandle {
    app: String,
    query: HistoryBody,
}

/// One message of a history page, with Agora's field names.
#[derive(Debug, Serialize)]
struct Found {
    src: String,
    dst: String,
    message_type: &'static str,
    ms: u64,
    payload: String,
    #[serde(skip)]
    id: u64,
}

impl Found {
    fn new(message: HistoryMessage, destination: &str, kind: &'static str) -> Self {
        let payload = match message.message {
            Message::Text { text } => text,
            Message::Raw { data, .. } => data,
            // Agora's payload is a string: a file or image message as its JSON.
            media @ (Message::File { .. } | Message::Image { .. }) => {
                serde_json::to_string(&media).unwrap_or_default()
            }
        };
        Found {
            src: message.from,
            dst: destination.to_string(),
            message_type: kind,
            ms: message.server_ts,
            payload,
            id: message.message_id,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) as unix milliseconds.
fn parse_utc(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// The code of the reply queued on the REST sender's stand-in, if one is.
fn first_reply_code(sender: &crate::server::outbox::ConnHandle) -> Option<u32> {
    sender.take_lines().iter().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        value.get("code")?.as_u64().map(|c| c as u32)
    })
}

/// Waits for the reply queued on the stand-in (the ack, its timeout, or the refusal).
async fn wait_reply_code(sender: &crate::server::outbox::ConnHandle) -> u32 {
    loop {
        if let Some(code) = first_reply_code(sender) {
            return code;
        }
        sender.wait_for_work().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_parse_to_unix_milliseconds() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2019-08-01T01:22:10Z"), Some(1_564_622_530_000));
        assert_eq!(parse_utc("2019-13-01T01:22:10Z"), None);
        assert_eq!(parse_utc("2019-08-01 01:22:10"), None);
    }
}

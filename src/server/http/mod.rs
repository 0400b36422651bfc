//! The server's HTTP side, on the same listener as the WebSocket path (and alone on
//! `serve --admin-listen`): Agora's RTM REST API (`rest.rs`), the operator's kick, ban and
//! queries (`admin.rs`), `/healthz`, `/readyz` and `/metrics` (`metrics.rs`); uploads
//! and downloads of files and images (`media.rs`).
//!
//! The accept path reads a connection's request line (`rewind::peek_route`): `GET /rtm/v1`
//! goes on to the WebSocket side untouched, anything else comes here and is served by
//! hyper (HTTP/1.1, keep-alive) on the server's own runtime. `auth.rs` decides who calls;
//! every answer is JSON built by [`answer`] or [`failure`], and every call is counted in
//! the metrics by its route pattern and status; `state.rs` is what the calls of a node
//! share (the metrics, the rate limits per app), which the hub holds.
//!
//! # Choices where Agora's pages are silent (docs/protocol.md has the full list)
//!
//! - No `--api-key` configured: the REST API is off (404 `api_disabled`); health and
//!   metrics are still served.
//! - Bodies over [`MAX_BODY_BYTES`] are 413; malformed JSON or fields 400; unknown app 404;
//!   over a rate limit 429; the engine unavailable 503. The body of every failure is
//!   `{"result":"failed","request_id":…,"code":…,"message":…}`.

// A refused call's `Err` is the response itself, built once per call and answered at
// once: boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

mod admin;
pub mod auth;
mod media;
pub mod metrics;
mod rest;
pub mod rewind;
pub mod state;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::sync::watch;

use super::admission::Admission;
use super::hub::Hub;
use auth::Caller;

pub use metrics::Metrics;
use state::ApiFamily;

/// Largest request body read (Agora's messages are at most 32 KiB; a history query is small).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a file transfer may keep its HTTP connection past the connection's life:
/// 30 MiB at about 17 KiB/s.
const MAX_TRANSFER: Duration = Duration::from_secs(30 * 60);
/// How long a readiness check or a scrape waits for the engine.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The main listener: the API, and health and metrics unless an admin listener has them.
    Main { health: bool },
    /// `--admin-listen`: health and metrics only.
    Admin,
}

/// One authenticated call to one app.
pub struct Call<'a> {
    pub hub: &'a Hub,
    pub app: &'a str,
    pub caller: Caller,
}

/// One HTTP connection's view of the server.
#[derive(Clone)]
pub struct HttpCtx {
    pub hub: Hub,
    pub admission: Arc<Admission>,
    pub surface: Surface,
}

/// Serves HTTP/1.1 on `stream` until the peer closes or the server stops.
pub async fn serve<S>(stream: S, ctx: HttpCtx, mut stopping: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = ctx.hub.config().login_timeout;
    // A call in progress may wait for an ack (`wait_for_ack`).
    let ack_wait = ctx.hub.config().ack_timeout;
    let ctx_life = ctx.hub.config().http_connection_life;
    // Transfers of files may outlast the connection's life: see the end of this function.
    let activity = Arc::new(media::Activity::default());
    let moving = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let ctx = ctx.clone();
        let activity = Arc::clone(&moving);
        async move {
            let response = if media::is_media_path(request.uri().path()) {
                let started = std::time::Instant::now();
                let (pattern, response) = media::route(request, &ctx, &activity).await;
                count(&ctx, pattern, response.status(), started);
                response
            } else {
                route(request, &ctx).await.map(http_body_util::Either::Left)
            };
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(MAX_BODY_BYTES.max(8192) * 2)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let ending = tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended");
            }
            return;
        }
        _ = stopping.changed() => Duration::from_secs(2),
        () = tokio::time::sleep(ctx_life) => timeout + ack_wait,
    };
    connection.as_mut().graceful_shutdown();
    // A connection that carried a file keeps going past its life (not past a shutdown)
    // until the graceful shutdown completes, for at most MAX_TRANSFER more: the call in
    // progress is written out (an idle connection ends at once), and a transfer's own
    // limits end a stalled upload (nothing sent for 30 s). Bytes produced are no measure
    // of progress: socket buffers let a download run seconds ahead of a slow reader.
    let extend = !*stopping.borrow();
    let extend_until = tokio::time::Instant::now() + MAX_TRANSFER;
    loop {
        if tokio::time::timeout(ending, connection.as_mut())
            .await
            .is_ok()
        {
            return;
        }
        if !(extend && activity.carried_media() && tokio::time::Instant::now() < extend_until) {
            return;
        }
    }
}

/// Routes a call, counting it in the metrics by route pattern and status.
async fn route(request: Request<Incoming>, ctx: &HttpCtx) -> Response<Full<Bytes>> {
    let started = std::time::Instant::now();
    let path = request.uri().path().to_string();
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method().clone();
    let health = matches!(ctx.surface, Surface::Admin | Surface::Main { health: true });
    let api = matches!(ctx.surface, Surface::Main { .. });
    let (pattern, response) = match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) if health => ("healthz", healthz()),
        (&Method::GET, ["readyz"]) if health => ("readyz", readyz(&ctx.hub).await),
        (&Method::GET, ["metrics"]) if health => ("metrics", scrape(ctx).await),
        (_, ["dev", "v2", "project", app, "rtm", rest @ ..]) if api => {
            let app = (*app).to_string();
            let rest: Vec<String> = rest.iter().map(|s| (*s).to_string()).collect();
            rest::route(request, ctx, &app, &rest).await
        }
        _ => (
            "other",
            failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        ),
    };
    count(ctx, pattern, response.status(), started);
    response
}

/// Counts a call in the metrics by route pattern and status.
fn count(ctx: &HttpCtx, pattern: &'static str, status: StatusCode, started: std::time::Instant) {
    let metrics = &ctx.hub.http().metrics;
    metrics
        .http_requests
        .get_or_create(&metrics::RouteLabels {
            route: pattern,
            status: status.as_u16(),
        })
        .inc();
    metrics
        .http_seconds
        .get_or_create(&metrics::RouteOnly { route: pattern })
        .observe(started.elapsed().as_secs_f64());
}

fn healthz() -> Response<Full<Bytes>> {
    answer(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// Reads through the store or engine; `Err` with why when it does not answer in time.
async fn probe(hub: &Hub) -> Result<Duration, String> {
    let started = std::time::Instant::now();
    let query = super::store::HistoryQuery {
        before: None,
        after: None,
        limit: 1,
    };
    let read = hub.engine().messages().history("", "probe", query);
    let result = match tokio::time::timeout(PROBE_TIMEOUT, read).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    };
    let metrics = &hub.http().metrics;
    metrics.engine_up.set(i64::from(result.is_ok()));
    if let Ok(elapsed) = result {
        metrics.engine_seconds.observe(elapsed.as_secs_f64());
    }
    result
}

async fn readyz(hub: &Hub) -> Response<Full<Bytes>> {
    match probe(hub).await {
        Ok(elapsed) => answer(
            StatusCode::OK,
            &serde_json::json!({"status": "ready", "engine_ms": elapsed.as_secs_f64() * 1000.0}),
        ),
        Err(why) => failure(StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable", &why),
    }
}

async fn scrape(ctx: &HttpCtx) -> Response<Full<Bytes>> {
    let hub = &ctx.hub;
    let _ = probe(hub).await;
    // Counted after every change answered before the scrape, on any node.
    hub.caught_up_on_all().await;
    let metrics = &hub.http().metrics;
    let (apps, users, channels) = hub.population();
    metrics.apps.set(apps as i64);
    metrics.users.set(users as i64);
    metrics.channels.set(channels as i64);
    metrics.connections.set(ctx.admission.served() as i64);
    metrics.outbox_bytes.set(hub.queued_bytes() as i64);
    metrics.engine_queue.set(hub.engine().queue_depth() as i64);
    if let Some(lag) = hub.engine().lag() {
        if let Some(lag) = lag.await {
            metrics.engine_lag.set(lag as i64);
        }
    }
    let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// A fresh request id, as Agora's answers carry.
pub fn request_id() -> String {
    rand::random::<u64>().to_string()
}

/// A JSON answer.
pub fn answer(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    response
}

/// A failure: `{"result":"failed","request_id","code","message"}` with `status`.
pub fn failure(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    answer(
        status,
        &serde_json::json!({
            "result": "failed",
            "request_id": request_id(),
            "code": code,
            "message": message,
        }),
    )
}

/// Reads a body of at most [`MAX_BODY_BYTES`]; the failure to answer otherwise.
pub async fn read_body(body: Incoming) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the body is over {MAX_BODY_BYTES} bytes"),
            ))
        }
        Err(error) => Err(failure(
            StatusCode::BAD_REQUEST,
            "bad_body",
            &error.to_string(),
        )),
    }
}

/// Decodes `%XX` escapes of a path segment (invalid ones stay as they are).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in a query string (decoded), if present.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(&value.replace('+', " ")))
    })
}

/// `{"result":"success","request_id","code"}` plus `extra`'s fields.
pub fn success(code: &str, extra: serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::json!({
        "result": "success",
        "request_id": request_id(),
        "code": code,
    });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    answer(StatusCode::OK, &body)
}

/// 503: the shared engine (Redis) cannot be reached; the caller may try again.
pub fn unavailable() -> Response<Full<Bytes>> {
    failure(
        StatusCode::SERVICE_UNAVAILABLE,
        "engine_unavailable",
        "the shared engine is unavailable; try again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_and_query_values_are_decoded() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("bad%zz%2"), "bad%zz%2");
        assert_eq!(
            query_param(Some("x=1&wait_for_ack=true"), "wait_for_ack").as_deref(),
            Some("true")
        );
        assert_eq!(query_param(Some("x=1"), "y"), None);
        assert_eq!(query_param(None, "y"), None);
    }
}

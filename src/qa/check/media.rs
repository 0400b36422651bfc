//! Cases for files and images (docs/protocol.md, "Files and images", rtm-tui's addition):
//! the `media_ticket` op, upload and download over HTTP on the server's listener, the
//! 30 MiB cap, unknown ids, cut-off uploads and expiry. A server that answers
//! `media_ticket` with 1 (a v1 server: unknown op) keeps no media, and every case skips
//! saying so. They speak plain HTTP beside `ws://` (over `wss://` they skip), through
//! [`Api`](super::rest::Api) with a ticket.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::rest::{Api, Auth};
use super::{case, Case, CaseError, CaseResult, Ctx, Expect, EVENT_TIMEOUT};
use crate::protocol::limits::MAX_MEDIA_BYTES;
use crate::protocol::media::MEDIA_PATH;
use crate::qa::media::{self, pattern};
use crate::qa::raw::RawConn;

/// Every media case.
pub(super) fn cases() -> Vec<Case> {
    vec![
        case("media.ticket", "media_ticket (an addition) gives a logged-in user a ticket for files and images; 102 before login", ticket_case),
        case("media.round_trip", "media: a file uploaded with POST /rtm/media downloads with GET /rtm/media/<id> byte for byte, for another user on another server, after travelling in a file message", round_trip),
        case("media.size_cap", "media: an upload declaring more than 30 MiB is refused 413 too_large before its body is sent", size_cap),
        case("media.unknown_id", "media: an unknown media id is 404 unknown_media; no ticket is 401", unknown_id),
        case("media.cancel", "media: an upload cut off mid-way gets no media id, and the user's next upload is taken", cancel),
        case("media.expiry", "media: a file is unknown (404) once its expiry has passed (check --media-expiry)", expiry).slow(),
    ]
}

/// A ticket for the user of `conn`; skips the case when the server has no media.
async fn ticket(conn: &mut RawConn) -> Result<String, CaseError> {
    media::ticket(conn).await.map_err(case_error)
}

fn case_error(error: media::MediaError) -> CaseError {
    match error {
        media::MediaError::NotSupported => CaseError::Skip(error.to_string()),
        media::MediaError::Failed(why) => CaseError::Fail(why),
    }
}

/// A fresh user on its server, with a ticket and that server's HTTP side.
async fn user_with_ticket(cx: &Ctx, role: &str) -> Result<(RawConn, String, Api), CaseError> {
    let user = cx.user(role);
    let (mut conn, url) = cx.login_placed(&user).await?;
    let ticket = ticket(&mut conn).await?;
    // Plain HTTP only, as the REST cases: over wss:// the case skips.
    let api = Api::from_ws_url(&url, Auth::Ticket(ticket)).map_err(CaseError::Skip)?;
    Ok((conn, user, api))
}

/// Uploads `data`; the media id of a 201.
async fn upload(api: &Api, data: Vec<u8>) -> Result<String, CaseError> {
    let size = data.len() as u64;
    let uploaded = media::upload(api, "check.bin", data)
        .await
        .map_err(case_error)?;
    if uploaded.size != size {
        fail!("an upload of {size} bytes answered size {}", uploaded.size);
    }
    Ok(uploaded.media_id)
}

/// Downloads `id`: the status and the body.
async fn download(api: &Api, id: &str) -> Result<(u16, Vec<u8>), CaseError> {
    let (status, body) = media::download(api, id).await.map_err(case_error)?;
    Ok((status, body.to_vec()))
}

/// Expects `status` with the failure `code` for a download of `id`.
async fn expect_refused(api: &Api, id: &str, status: u16, code: &str) -> CaseResult {
    let (got, body) = download(api, id).await?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
    if got != status || answer["code"] != code {
        fail!(
            "GET {MEDIA_PATH}/{id}: expected {status} {code}, got {got} {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

async fn ticket_case(cx: Ctx) -> CaseResult {
    let mut anonymous = cx.connect("anonymous").await?;
    let reply = anonymous.call(json!({"op": "media_ticket"})).await?;
    let (mut conn, _user, _api) = user_with_ticket(&cx, "alice").await?;
    // Only now is it known that the server has media: before login it must say 102.
    if reply["code"] != 102 {
        fail!("media_ticket before login answered {reply}, not 102");
    }
    let again = conn.call(json!({"op": "media_ticket"})).await?;
    if again["max_bytes"].as_u64() != Some(MAX_MEDIA_BYTES)
        || again["expires_in_ms"].as_u64().unwrap_or(0) == 0
    {
        fail!("expected max_bytes {MAX_MEDIA_BYTES} and expires_in_ms: {again}");
    }
    Ok(())
}

async fn round_trip(cx: Ctx) -> CaseResult {
    let (mut alice, _, alice_api) = user_with_ticket(&cx, "alice").await?;
    let (mut bob, bob_id, bob_api) = user_with_ticket(&cx, "bob").await?;
    let data = pattern(1024 * 1024 + 7);
    let id = upload(&alice_api, data.clone()).await?;
    let message = json!({"type": "file", "media_id": id, "name": "check.bin", "size": data.len()});
    alice
        .ok(json!({"op": "send_peer", "to": bob_id, "message": message}))
        .await?;
    let event = bob
        .event("message_from_peer", json!({"message": message}))
        .await?;
    let Some(got_id) = event["message"]["media_id"].as_str() else {
        fail!("the file message lost its media id: {event}");
    };
    let (status, bytes) = download(&bob_api, got_id).await?;
    if status != 200 {
        fail!("the download answered {status}");
    }
    if bytes != data {
        fail!(
            "the download has {} bytes, not the {} uploaded (or other bytes)",
            bytes.len(),
            data.len()
        );
    }
    Ok(())
}

/// The `HOST:PORT` of an API, as a TCP address.
async fn tcp(api: &Api) -> Result<tokio::net::TcpStream, CaseError> {
    tokio::net::TcpStream::connect(&api.authority)
        .await
        .map_err(|e| CaseError::Fail(format!("connect {}: {e}", api.authority)))
}

/// The head of an upload of `size` bytes with `ticket`.
fn upload_head(api: &Api, size: u64) -> String {
    let ticket = match &api.auth {
        Auth::Ticket(ticket) => ticket.as_str(),
        _ => "",
    };
    format!(
        "POST {MEDIA_PATH} HTTP/1.1\r\nHost: {}\r\nx-rtm-ticket: {ticket}\r\nContent-Length: {size}\r\n\r\n",
        api.authority
    )
}

async fn size_cap(cx: Ctx) -> CaseResult {
    let (_conn, _, api) = user_with_ticket(&cx, "alice").await?;
    let mut socket = tcp(&api).await?;
    let head = upload_head(&api, MAX_MEDIA_BYTES + 1);
    socket
        .write_all(head.as_bytes())
        .await
        .map_err(|e| CaseError::Fail(e.to_string()))?;
    // Not a byte of the body: the answer must come from the declared size alone.
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(EVENT_TIMEOUT, socket.read(&mut answer)).await;
    let Ok(Ok(read)) = read else {
        fail!("no answer within {EVENT_TIMEOUT:?} to an upload declaring 30 MiB + 1");
    };
    let text = String::from_utf8_lossy(&answer[..read]);
    if !text.starts_with("HTTP/1.1 413") || !text.contains("too_large") {
        fail!("expected 413 too_large, got {text:?}");
    }
    Ok(())
}

async fn unknown_id(cx: Ctx) -> CaseResult {
    let (_conn, _, api) = user_with_ticket(&cx, "alice").await?;
    expect_refused(
        &api,
        "0123456789abcdef0123456789abcdef",
        404,
        "unknown_media",
    )
    .await?;
    let id = upload(&api, b"hello".to_vec()).await?;
    let anonymous = Api {
        authority: api.authority.clone(),
        auth: Auth::None,
    };
    expect_refused(&anonymous, &id, 401, "unauthorized").await
}

async fn cancel(cx: Ctx) -> CaseResult {
    let (_conn, _, api) = user_with_ticket(&cx, "alice").await?;
    let mut socket = tcp(&api).await?;
    let size = 4 * 1024 * 1024;
    let head = upload_head(&api, size);
    let sent = async {
        socket.write_all(head.as_bytes()).await?;
        socket.write_all(&pattern(1024 * 1024)).await?;
        socket.flush().await
    };
    sent.await.map_err(|e| CaseError::Fail(e.to_string()))?;
    // Cut off: the server must answer nothing that names an id (it may answer 400).
    socket
        .shutdown()
        .await
        .map_err(|e| CaseError::Fail(e.to_string()))?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(EVENT_TIMEOUT, socket.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    if text.contains("media_id") {
        fail!("a cut-off upload was given an id: {text:?}");
    }
    drop(socket);
    // Its place under the user's quota came back.
    upload(&api, b"after".to_vec()).await.map(|_| ())
}

async fn expiry(cx: Ctx) -> CaseResult {
    let (mut conn, _, api) = user_with_ticket(&cx, "alice").await?;
    let expiry = cx.timing().media_expiry;
    if expiry > Duration::from_secs(300) {
        return Err(CaseError::Skip(format!(
            "the media expiry ({}s) is too long to wait for: give check --media-expiry as the server's",
            expiry.as_secs()
        )));
    }
    cx.need_time(expiry)?;
    let id = upload(&api, b"short-lived".to_vec()).await?;
    let (status, _) = download(&api, &id).await?;
    if status != 200 {
        fail!("a fresh upload answered {status} to its download");
    }
    let wait = expiry + super::TIMER_SLACK;
    cx.waiting_for("the media expiry", wait);
    let deadline = tokio::time::Instant::now() + wait;
    tokio::time::sleep(expiry).await;
    loop {
        // A fresh ticket each time: the first may have expired while waiting.
        let api = Api {
            authority: api.authority.clone(),
            auth: Auth::Ticket(ticket(&mut conn).await?),
        };
        let (status, _) = download(&api, &id).await?;
        if status == 404 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            fail!(
                "the file is still served {}s after its expiry",
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

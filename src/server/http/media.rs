//! Uploads and downloads of files and images (docs/protocol.md, "Files and images"):
//! `POST /rtm/media` and `GET /rtm/media/<id>`, with a ticket of `media_ticket`.
//!
//! Both stream: an upload goes from the socket to the store in chunks (the size checked
//! from `Content-Length` before a byte is read, and again as bytes come), a download from
//! the store to the socket, so a transfer holds at most a chunk or two in memory.
//! [`Activity`] tells the connection's life that it carried a transfer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt as _};
use http_body_util::{BodyExt as _, Either, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;

use super::super::media::{self, Media, Refused, TicketHolder};
use super::{answer, failure, HttpCtx};
use crate::protocol::limits::MAX_MEDIA_BYTES;
use crate::protocol::media::{MEDIA_PATH, TICKET_HEADER};
use crate::protocol::{MediaFailure, MediaUploaded};

/// An upload whose body sends nothing for this long is dropped (and nothing is kept).
const STALL: Duration = Duration::from_secs(30);

/// The body of a download: the file's chunks as they are read.
pub(super) type MediaBody = StreamBody<BoxStream<'static, Result<Frame<Bytes>, std::io::Error>>>;
/// Any answer of the HTTP side: JSON, or a download.
pub(super) type AnyBody = Either<Full<Bytes>, MediaBody>;

/// Whether an HTTP connection has carried a file transfer. Its life is then extended
/// (`http::serve`): hyper's graceful shutdown ends it as soon as the call in progress is
/// written out, and a transfer's bytes may sit in socket buffers for a while after its
/// body was produced, so "a transfer is in its handler" is not enough.
#[derive(Debug, Default)]
pub(super) struct Activity {
    media: AtomicBool,
}

impl Activity {
    /// Whether a file transfer has begun on this connection.
    pub(super) fn carried_media(&self) -> bool {
        self.media.load(Ordering::Relaxed)
    }
}

/// One transfer: the server's counter of the bytes it moves (in or out).
struct Moving {
    bytes: Counter,
}

impl Moving {
    fn new(activity: &Activity, bytes: &Counter) -> Self {
        activity.media.store(true, Ordering::Relaxed);
        Moving {
            bytes: bytes.clone(),
        }
    }

    fn moved(&self, bytes: usize) {
        self.bytes.inc_by(bytes as u64);
    }
}

/// True for the paths served here.
pub(super) fn is_media_path(path: &str) -> bool {
    path == MEDIA_PATH
        || path
            .strip_prefix(MEDIA_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Serves one media call; the route pattern for the metrics and the answer.
pub(super) async fn route(
    request: Request<Incoming>,
    ctx: &HttpCtx,
    activity: &Arc<Activity>,
) -> (&'static str, Response<AnyBody>) {
    let path = request.uri().path().to_string();
    let id = path
        .strip_prefix(MEDIA_PATH)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|id| !id.is_empty());
    let json = |response: Response<Full<Bytes>>| response.map(Either::Left);
    let Some(media) = ctx
        .hub
        .media()
        .filter(|_| ctx.surface != super::Surface::Admin)
    else {
        let refusal = failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        return ("other", json(refusal));
    };
    let metrics = &ctx.hub.http().metrics;
    let (pattern, response) = match (request.method(), id) {
        (&Method::POST, None) => {
            let moving = Moving::new(activity, &metrics.media_bytes_in);
            ("media_upload", upload(request, media, moving).await)
        }
        (&Method::GET, Some(id)) => {
            let id = id.to_string();
            let moving = Moving::new(activity, &metrics.media_bytes_out);
            let response = download(&request, media, &id, moving).await;
            return ("media_download", response);
        }
        _ => (
            "other",
            failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        ),
    };
    (pattern, json(response))
}

/// A failure answer with a media failure code.
fn refuse(failure_code: MediaFailure, message: &str) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(failure_code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = failure(status, failure_code.as_str(), message);
    if failure_code == MediaFailure::Busy {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The holder of the request's ticket.
fn holder(
    request: &Request<Incoming>,
    media: &Media,
) -> Result<TicketHolder, Response<Full<Bytes>>> {
    let ticket = request
        .headers()
        .get(TICKET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    media.holder(ticket).ok_or_else(|| {
        refuse(
            MediaFailure::Unauthorized,
            "no ticket, or an expired one: ask for one with media_ticket",
        )
    })
}

async fn upload(
    request: Request<Incoming>,
    media: &Arc<Media>,
    moving: Moving,
) -> Response<Full<Bytes>> {
    let holder = match holder(&request, media) {
        Ok(holder) => holder,
        Err(refusal) => return refusal,
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(size) = declared else {
        return refuse(
            MediaFailure::LengthRequired,
            "an upload needs a Content-Length",
        );
    };
    // From the declared size alone: not a byte of the body has been read.
    if size > MAX_MEDIA_BYTES {
        return refuse(
            MediaFailure::TooLarge,
            &format!("{size} bytes; a file may have {MAX_MEDIA_BYTES} at most"),
        );
    }
    let _slot = match media.admit(&holder, size) {
        Ok(slot) => slot,
        Err(Refused::Quota) => {
            return refuse(
                MediaFailure::QuotaExceeded,
                "too many uploads at once, or too many bytes this hour",
            )
        }
        Err(Refused::Busy) => {
            return refuse(MediaFailure::Busy, "too many uploads under way; try again")
        }
    };
    let id = media::random_id();
    let mut writer = match media.store.begin(&holder.app, &id, size).await {
        Ok(writer) => writer,
        Err(error) => return store_failure(&error),
    };
    let mut body = request.into_body();
    let mut received = 0u64;
    loop {
        let frame = match tokio::time::timeout(STALL, body.frame()).await {
            Err(_) => {
                return refuse(
                    MediaFailure::Incomplete,
                    &format!("nothing came for {} s", STALL.as_secs()),
                )
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => return refuse(MediaFailure::Incomplete, &error.to_string()),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > size {
            return refuse(MediaFailure::Incomplete, "more bytes than Content-Length");
        }
        if let Err(error) = writer.write(&data).await {
            return store_failure(&error);
        }
        moving.moved(data.len());
    }
    if received != size {
        return refuse(
            MediaFailure::Incomplete,
            &format!("{received} bytes of {size}"),
        );
    }
    if let Err(error) = writer.commit().await {
        return store_failure(&error);
    }
    tracing::debug!(
        app = holder.app,
        user = holder.user,
        id,
        size,
        "media stored"
    );
    let expiry = media.store.expiry().as_millis() as u64;
    answer(
        StatusCode::CREATED,
        &MediaUploaded {
            media_id: id,
            size,
            expires_at: crate::protocol::now_ms().saturating_add(expiry),
        },
    )
}

fn store_failure(error: &media::StoreFailure) -> Response<Full<Bytes>> {
    tracing::warn!(%error, "media store");
    refuse(error.failure(), &error.to_string())
}

async fn download(
    request: &Request<Incoming>,
    media: &Arc<Media>,
    id: &str,
    moving: Moving,
) -> Response<AnyBody> {
    let json = |response: Response<Full<Bytes>>| response.map(Either::Left);
    let holder = match holder(request, media) {
        Ok(holder) => holder,
        Err(refusal) => return json(refusal),
    };
    let unknown = || {
        json(refuse(
            MediaFailure::UnknownMedia,
            "no such media id, or it expired",
        ))
    };
    if !media::is_our_id(id) {
        return unknown();
    }
    let reader = match media.store.open(&holder.app, id).await {
        Ok(Some(reader)) => reader,
        Ok(None) => return unknown(),
        Err(error) => return json(store_failure(&error)),
    };
    let size = reader.size();
    let state = (reader, moving);
    let chunks = stream::unfold(state, |(mut reader, moving)| async move {
        match reader.next().await {
            Ok(Some(bytes)) => {
                moving.moved(bytes.len());
                Some((Ok(Frame::data(bytes)), (reader, moving)))
            }
            Ok(None) => None,
            // Ends the body short: the client sees fewer bytes than Content-Length.
            Err(error) => Some((
                Err(std::io::Error::other(error.to_string())),
                (reader, moving),
            )),
        }
    });
    let mut response = Response::new(Either::Right(StreamBody::new(chunks.boxed())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_paths() {
        assert!(is_media_path("/rtm/media"));
        assert!(is_media_path("/rtm/media/abc"));
        assert!(!is_media_path("/rtm/mediax"));
        assert!(!is_media_path("/rtm/v1"));
    }
}

//! Files and images over HTTP (docs/protocol.md, "Files and images"): the `media_ticket`
//! op's result, the HTTP paths and headers of upload and download, their answers, and the
//! failure codes both sides name. The size limits are in `limits.rs`, the `file` and
//! `image` messages in `message.rs`.

use serde::{Deserialize, Serialize};

/// Path of uploads (`POST`); a download is `GET {MEDIA_PATH}/<media_id>`. Outside
/// [`WS_PATH`](super::WS_PATH), so it goes to the HTTP side of the same listener.
pub const MEDIA_PATH: &str = "/rtm/media";
/// Header carrying the ticket of `media_ticket` on an upload or download.
pub const TICKET_HEADER: &str = "x-rtm-ticket";
/// Query parameter of an upload naming the file (percent-encoded); kept for logs only.
pub const NAME_PARAM: &str = "name";

/// Result of `media_ticket`: a bearer ticket for this user's uploads and downloads on
/// the node that gave it, for `expires_in_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaTicketResult {
    pub ticket: String,
    pub expires_in_ms: u64,
    /// The largest upload this server takes.
    pub max_bytes: u64,
}

/// The answer to an upload that succeeded (HTTP 201): the file is stored and durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUploaded {
    pub media_id: String,
    pub size: u64,
    /// Unix milliseconds after which the id is unknown.
    pub expires_at: u64,
}

/// Why an upload or download failed: the `code` of the HTTP failure body
/// (`{"result":"failed","code":"too_large",...}`), plus what only the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaFailure {
    /// The server has no media (a v1 server answered `media_ticket` with code 1).
    NotSupported,
    /// Over [`MAX_MEDIA_BYTES`](super::limits::MAX_MEDIA_BYTES) (HTTP 413).
    TooLarge,
    /// No such media id, or it expired (HTTP 404).
    UnknownMedia,
    /// The user's upload quota is used up for now (HTTP 429).
    QuotaExceeded,
    /// Too many uploads under way on the node or of the user (HTTP 503, retry later).
    Busy,
    /// The store is full (a full disk, Redis out of memory): nothing was kept (HTTP 507).
    StorageFull,
    /// The store failed otherwise (HTTP 500, or Redis away: 503 `engine_unavailable`).
    StorageFailed,
    /// No ticket, an expired or unknown one (HTTP 401).
    Unauthorized,
    /// The body ended before its `Content-Length`, or went past it (HTTP 400).
    Incomplete,
    /// No `Content-Length` on an upload (HTTP 411).
    LengthRequired,
    /// Anything else the server answered (another status or code).
    Other,
}

impl MediaFailure {
    /// The wire code (`"too_large"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaFailure::NotSupported => "not_supported",
            MediaFailure::TooLarge => "too_large",
            MediaFailure::UnknownMedia => "unknown_media",
            MediaFailure::QuotaExceeded => "quota_exceeded",
            MediaFailure::Busy => "busy",
            MediaFailure::StorageFull => "storage_full",
            MediaFailure::StorageFailed => "storage_failed",
            MediaFailure::Unauthorized => "unauthorized",
            MediaFailure::Incomplete => "incomplete",
            MediaFailure::LengthRequired => "length_required",
            MediaFailure::Other => "other",
        }
    }

    /// The failure of an HTTP answer with this status and body `code`: the code where it
    /// is one of ours, else what the status says.
    pub fn from_answer(status: u16, code: Option<&str>) -> Self {
        let named = code.and_then(|c| serde_json::from_value(serde_json::json!(c)).ok());
        if let Some(failure) = named {
            return failure;
        }
        match status {
            401 | 403 => MediaFailure::Unauthorized,
            404 | 410 => MediaFailure::UnknownMedia,
            411 => MediaFailure::LengthRequired,
            413 => MediaFailure::TooLarge,
            429 => MediaFailure::QuotaExceeded,
            507 => MediaFailure::StorageFull,
            500 | 503 => MediaFailure::StorageFailed,
            _ => MediaFailure::Other,
        }
    }

    /// The HTTP status the server answers with.
    pub fn status(self) -> u16 {
        match self {
            MediaFailure::TooLarge => 413,
            MediaFailure::UnknownMedia => 404,
            MediaFailure::QuotaExceeded => 429,
            MediaFailure::Busy => 503,
            MediaFailure::StorageFull => 507,
            MediaFailure::Unauthorized => 401,
            MediaFailure::Incomplete | MediaFailure::Other | MediaFailure::NotSupported => 400,
            MediaFailure::LengthRequired => 411,
            MediaFailure::StorageFailed => 500,
        }
    }
}

impl std::fmt::Display for MediaFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_from_code_or_status() {
        assert_eq!(
            MediaFailure::from_answer(400, Some("too_large")),
            MediaFailure::TooLarge
        );
        assert_eq!(
            MediaFailure::from_answer(404, Some("not_found")),
            MediaFailure::UnknownMedia
        );
        assert_eq!(MediaFailure::from_answer(418, None), MediaFailure::Other);
        for failure in [MediaFailure::StorageFull, MediaFailure::Busy] {
            let wire = serde_json::to_value(failure).unwrap();
            assert_eq!(wire, failure.as_str());
            assert_eq!(
                MediaFailure::from_answer(failure.status(), Some(failure.as_str())),
                failure
            );
        }
    }
}

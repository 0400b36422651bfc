//! Files and images as the QA kit handles them, over a raw connection and plain HTTP:
//! a ticket from `media_ticket` on a [`RawConn`], then an upload or a download on the
//! HTTP side of the same server ([`Api`] with the ticket). `check`'s media cases,
//! `script`'s `send_file` and `bench`'s media workload use these.

use hyper::body::Bytes;
use serde_json::{json, Value};

use super::check::rest::{Api, Auth};
use super::raw::RawConn;
use crate::protocol::media::{MEDIA_PATH, NAME_PARAM};
use crate::protocol::MediaUploaded;

/// Why a transfer could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The server keeps no media: `media_ticket` answered 1 (a v1 server: unknown op).
    #[error("not supported: the server keeps no files or images (media_ticket answered 1)")]
    NotSupported,
    /// Anything else: the reply or answer that came instead.
    #[error("{0}")]
    Failed(String),
}

/// A ticket for the user logged in on `conn`.
pub async fn ticket(conn: &mut RawConn) -> Result<String, MediaError> {
    let reply = conn
        .call(json!({"op": "media_ticket"}))
        .await
        .map_err(|e| MediaError::Failed(e.to_string()))?;
    match reply["code"].as_u64() {
        Some(0) => {}
        Some(1) => return Err(MediaError::NotSupported),
        _ => return Err(MediaError::Failed(format!("media_ticket answered {reply}"))),
    }
    reply["ticket"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| MediaError::Failed(format!("media_ticket gave no ticket: {reply}")))
}

/// The HTTP side of the server at `url` (a `ws://` URL), calling with `ticket`.
pub fn api(url: &str, ticket: String) -> Result<Api, MediaError> {
    Api::from_ws_url(url, Auth::Ticket(ticket)).map_err(MediaError::Failed)
}

/// Uploads `data` as `name`; the server's answer to a 201.
pub async fn upload(api: &Api, name: &str, data: Vec<u8>) -> Result<MediaUploaded, MediaError> {
    let size = data.len();
    let path = format!(
        "{MEDIA_PATH}?{NAME_PARAM}={}",
        super::check::rest::segment(name)
    );
    let (status, body) = api
        .bytes(&api.auth, "POST", &path, data)
        .await
        .map_err(|e| MediaError::Failed(format!("upload: {e}")))?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
    if status != 201 {
        return Err(MediaError::Failed(format!(
            "an upload of {size} bytes answered {status} {answer}"
        )));
    }
    serde_json::from_value(answer.clone())
        .map_err(|e| MediaError::Failed(format!("the upload's answer {answer}: {e}")))
}

/// Downloads `id`: the status and the body.
pub async fn download(api: &Api, id: &str) -> Result<(u16, Bytes), MediaError> {
    let path = format!("{MEDIA_PATH}/{id}");
    api.bytes(&api.auth, "GET", &path, Vec::new())
        .await
        .map_err(|e| MediaError::Failed(format!("download: {e}")))
}

/// The `file` message of an upload.
pub fn file_message(name: &str, uploaded: &MediaUploaded) -> Value {
    json!({"type": "file", "media_id": uploaded.media_id, "name": name, "size": uploaded.size})
}

/// Bytes that differ at every offset, so a misplaced chunk cannot pass unseen.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}

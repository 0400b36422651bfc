//! The HTTP side of [`Transfer`](super::Transfer)s: a ticket from `media_ticket`, then
//! one HTTP/1.1 connection per upload or download to the node the client is logged in
//! to (plain or TLS as its WebSocket URL says).

use tokio::sync::watch;

use super::error::ClientError;
use super::handle::Client;
use super::media::{DownloadTarget, Downloaded, MediaSource, Progress};
use crate::protocol::{MediaFailure, MediaUploaded};

/// Uploads `source`; the server's answer once the file is stored.
pub(crate) async fn upload(
    _client: &Client,
    _source: MediaSource,
    _progress: watch::Sender<Progress>,
) -> Result<MediaUploaded, ClientError> {
    Err(ClientError::media(MediaFailure::NotSupported, "not implemented yet"))
}

/// Downloads `media_id` to `target`.
pub(crate) async fn download(
    _client: &Client,
    _media_id: &str,
    _target: DownloadTarget,
    _progress: watch::Sender<Progress>,
) -> Result<Downloaded, ClientError> {
    Err(ClientError::media(MediaFailure::NotSupported, "not implemented yet"))
}

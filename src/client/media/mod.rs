//! Files and images: [`Client::upload_file`], [`Client::upload_image`] and
//! [`Client::download_media`], each a [`Transfer`] with a progress watch and cancel.
//!
//! A transfer runs on its own task and its own HTTP connection to the node the client is
//! logged in to (docs/protocol.md, "Files and images"): it asks for a ticket over the
//! WebSocket (`media_ticket`), then streams the bytes with HTTP/1.1 (`media/http.rs`), so a
//! slow upload never holds up the chat connection. Cancelling drops that connection: the
//! server keeps nothing of an upload that did not complete.

mod http;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::error::ClientError;
use crate::client::handle::Client;
use crate::protocol::limits::{MAX_MEDIA_BYTES, MAX_THUMBNAIL_BYTES};
use crate::protocol::{MediaFailure, Message};

/// How far a transfer is: bytes done of `total` (0 until the size is known).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes sent or received so far.
    pub done: u64,
    /// Bytes in all (0 until known).
    pub total: u64,
}

/// One upload or download under way. Dropping it cancels the transfer; [`finish`]
/// waits for its result.
///
/// [`finish`]: Transfer::finish
#[derive(Debug)]
pub struct Transfer<T> {
    progress: watch::Receiver<Progress>,
    cancel: Arc<watch::Sender<bool>>,
    task: Option<JoinHandle<Result<T, ClientError>>>,
}

impl<T: Send + 'static> Transfer<T> {
    /// Runs `work` on a task, with a progress watch it updates and cancel around it.
    pub(crate) fn spawn<F, Fut>(work: F) -> Transfer<T>
    where
        F: FnOnce(watch::Sender<Progress>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>> + Send + 'static,
    {
        let (progress_tx, progress) = watch::channel(Progress::default());
        let (cancel, mut cancelled) = watch::channel(false);
        let work = work(progress_tx);
        let guarded = async move {
            tokio::select! {
                // Dropping `work` drops its connection and its temporary file.
                _ = cancelled.wait_for(|c| *c) => Err(ClientError::Cancelled),
                result = work => result,
            }
        };
        // Without a runtime there is no task: `finish` then answers `NoRuntime`.
        let task = tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| runtime.spawn(guarded));
        Transfer {
            progress,
            cancel: Arc::new(cancel),
            task,
        }
    }

    /// A watch of the progress: `done` grows as bytes go out or come in.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Stops the transfer: its result becomes [`ClientError::Cancelled`] (unless it had
    /// already finished). An upload cancelled before its last byte is not kept by the
    /// server; a download to a path leaves nothing behind.
    pub fn cancel(&self) {
        let _ = self.cancel.send(true);
    }

    /// Waits for the result.
    pub async fn finish(mut self) -> Result<T, ClientError> {
        let Some(task) = self.task.take() else {
            return Err(ClientError::NoRuntime);
        };
        match task.await {
            Ok(result) => result,
            Err(error) if error.is_cancelled() => Err(ClientError::Cancelled),
            Err(_) => Err(ClientError::Closed),
        }
    }
}

impl<T> Drop for Transfer<T> {
    fn drop(&mut self) {
        if self.task.is_some() {
            let _ = self.cancel.send(true);
        }
    }
}

/// What to upload: a file, or bytes in memory with the name to give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    /// A file, read as it is sent; the message names it by its file name.
    Path(PathBuf),
    /// Bytes in memory.
    Bytes {
        /// The name the message gives them.
        name: String,
        /// The content.
        data: Vec<u8>,
    },
}

impl MediaSource {
    /// The name the message carries: the file's own name, or the given one.
    pub fn name(&self) -> String {
        match self {
            MediaSource::Path(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            MediaSource::Bytes { name, .. } => name.clone(),
        }
    }
}

/// What an image message carries besides the file: made by the sender (the chat client
/// decodes the image and scales a thumbnail with the `image` crate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image's width in pixels.
    pub width: u32,
    /// The image's height in pixels.
    pub height: u32,
    /// The thumbnail's encoded bytes (PNG or JPEG), at most 32 KiB; may be empty.
    pub thumbnail: Vec<u8>,
    /// The thumbnail's width in pixels.
    pub thumbnail_width: u32,
    /// The thumbnail's height in pixels.
    pub thumbnail_height: u32,
}

/// Where a download goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadTarget {
    /// Kept in memory ([`Downloaded::Memory`]).
    Memory,
    /// Written to a temporary file beside it, renamed to it when complete.
    Path(PathBuf),
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downloaded {
    /// The content, for [`DownloadTarget::Memory`].
    Memory(Vec<u8>),
    /// The file written, for [`DownloadTarget::Path`].
    Path(PathBuf),
}

impl Client {
    /// Uploads a file; on success gives the [`Message::File`] to send with
    /// [`send_message_to_peer`](Client::send_message_to_peer) or
    /// [`Channel::send_message`](crate::client::Channel::send_message) like any other message.
    /// A file over 30 MiB fails at once ([`MediaFailure::TooLarge`]), before any byte
    /// is sent.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// use rtm::client::{MediaSource, SendOptions};
    /// let upload = client.upload_file(MediaSource::Path("app.log".into()));
    /// let message = upload.finish().await?;
    /// client.send_message_to_peer("bob", message, SendOptions::default()).await?;
    /// # Ok(()) }
    /// ```
    pub fn upload_file(&self, source: MediaSource) -> Transfer<Message> {
        let client = self.clone();
        Transfer::spawn(move |progress| async move {
            let name = checked_name(&source)?;
            let uploaded = http::upload(&client, source, progress).await?;
            Ok(Message::File {
                media_id: uploaded.media_id,
                name,
                size: uploaded.size,
            })
        })
    }

    /// Uploads an image; on success gives the [`Message::Image`] with `info`'s
    /// dimensions and thumbnail (over 32 KiB of thumbnail fails at once).
    pub fn upload_image(&self, source: MediaSource, info: ImageInfo) -> Transfer<Message> {
        let client = self.clone();
        Transfer::spawn(move |progress| async move {
            let name = checked_name(&source)?;
            if info.thumbnail.len() > MAX_THUMBNAIL_BYTES {
                return Err(ClientError::Invalid(
                    crate::protocol::ValidationError::TooLong {
                        what: "thumbnail",
                        max: MAX_THUMBNAIL_BYTES,
                    },
                ));
            }
            let uploaded = http::upload(&client, source, progress).await?;
            Ok(Message::Image {
                media_id: uploaded.media_id,
                name,
                size: uploaded.size,
                width: info.width,
                height: info.height,
                thumbnail: base64::engine::general_purpose::STANDARD.encode(&info.thumbnail),
                thumbnail_width: info.thumbnail_width,
                thumbnail_height: info.thumbnail_height,
            })
        })
    }

    /// Downloads a file or image by its media id, to memory or to a path (through a
    /// temporary file beside it: nothing half-written is left there).
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// use rtm::client::DownloadTarget;
    /// let download = client.download_media("0123abcd", DownloadTarget::Path("app.log".into()));
    /// let mut progress = download.progress();
    /// tokio::spawn(async move {
    ///     while progress.changed().await.is_ok() {
    ///         let p = *progress.borrow();
    ///         eprintln!("{} of {}", p.done, p.total);
    ///     }
    /// });
    /// download.finish().await?;
    /// # Ok(()) }
    /// ```
    pub fn download_media(&self, media_id: &str, target: DownloadTarget) -> Transfer<Downloaded> {
        let client = self.clone();
        let media_id = media_id.to_string();
        Transfer::spawn(move |progress| async move {
            crate::protocol::limits::validate_media_id(&media_id)?;
            http::download(&client, &media_id, target, progress).await
        })
    }
}

/// The source's name, checked as a message would be.
fn checked_name(source: &MediaSource) -> Result<String, ClientError> {
    let name = source.name();
    crate::protocol::limits::validate_media_name(&name)?;
    Ok(name)
}

/// The refusal of a file over the limit, before anything is sent.
pub(crate) fn too_large(size: u64) -> ClientError {
    ClientError::media(
        MediaFailure::TooLarge,
        format!("the file has {size} bytes; {MAX_MEDIA_BYTES} at most"),
    )
}

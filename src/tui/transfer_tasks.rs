//! The uploads and downloads the session runs (`/file`, `/image`, `/save`): one task
//! each, which tells the loop the transfer's progress as it changes (at most
//! `PROGRESS_EVERY`, so a fast transfer does not redraw the screen for every chunk; an
//! idle one wakes nobody) and answers with [`Action::Done`] at the end. Esc reaches the
//! task through [`TransferTasks::cancel`]; the task then drops the client's `Transfer`,
//! which cancels it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use crate::client::{
    Client, ClientError, DownloadTarget, Downloaded, ImageInfo, MediaSource, Transfer,
};
use crate::protocol::limits::MAX_MEDIA_BYTES;

use super::action::{answer, Action};
use super::app::media_commands::CANCELLED;
use super::app::transfers::TransferUpdate;
use super::job::{failure, Failure, JobId, JobOutput};
use super::media;

/// Shortest time between two progress reports of one transfer.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The transfers under way, by request id: what cancels each.
#[derive(Debug, Default)]
pub struct TransferTasks {
    cancels: HashMap<JobId, oneshot::Sender<()>>,
}

impl TransferTasks {
    /// Cancels transfer `id` (its answer says so); nothing if it has ended.
    pub fn cancel(&mut self, id: JobId) {
        if let Some(cancel) = self.cancels.remove(&id) {
            let _ = cancel.send(());
        }
    }

    fn register(&mut self, id: JobId) -> oneshot::Receiver<()> {
        // Those whose task has ended go.
        self.cancels.retain(|_, cancel| !cancel.is_closed());
        let (cancel, cancelled) = oneshot::channel();
        self.cancels.insert(id, cancel);
        cancelled
    }

    /// `/file`: uploads `path`; answers with the message to send.
    pub fn upload_file(
        &mut self,
        client: &Client,
        id: JobId,
        path: &Path,
        tx: &UnboundedSender<Action>,
    ) {
        let transfer = client.upload_file(MediaSource::Path(media::expand_home(path)));
        let cancelled = self.register(id);
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = follow(transfer, id, cancelled, &tx).await;
            answer(&tx, id, result.map(JobOutput::Uploaded));
        });
    }

    /// `/image`: reads `path`, makes the thumbnail (off the loop's thread) and uploads the
    /// image; what is not an image this client reads goes as a file, with a note.
    pub fn upload_image(
        &mut self,
        client: &Client,
        id: JobId,
        path: &Path,
        tx: &UnboundedSender<Action>,
    ) {
        let mut cancelled = self.register(id);
        let (client, tx) = (client.clone(), tx.clone());
        let path = media::expand_home(path);
        tokio::spawn(async move {
            let prepared = tokio::select! {
                _ = &mut cancelled => Err(Failure::new(None, CANCELLED)),
                prepared = prepare(&path) => prepared,
            };
            let transfer = match prepared {
                Err(f) => return answer(&tx, id, Err(f)),
                // Too big to send anyway: the client refuses it before any byte goes.
                Ok(ImageFound::TooBig) => client.upload_file(MediaSource::Path(path)),
                Ok(ImageFound::Image { name, data, image }) => {
                    let info = ImageInfo {
                        width: image.width,
                        height: image.height,
                        thumbnail: image.thumbnail,
                        thumbnail_width: image.thumbnail_width,
                        thumbnail_height: image.thumbnail_height,
                    };
                    client.upload_image(MediaSource::Bytes { name, data }, info)
                }
                Ok(ImageFound::File { name, data, why }) => {
                    let note = format!("{name} is {why}: sending it as a file");
                    let _ = tx.send(Action::Transfer(id, TransferUpdate::Note(note)));
                    client.upload_file(MediaSource::Bytes { name, data })
                }
            };
            let result = follow(transfer, id, cancelled, &tx).await;
            answer(&tx, id, result.map(JobOutput::Uploaded));
        });
    }

    /// `/save`: downloads `media_id` (called `name`) to `path` or the downloads directory;
    /// answers with where it went.
    pub fn download(
        &mut self,
        client: &Client,
        id: JobId,
        (media_id, name, path): (String, String, Option<PathBuf>),
        tx: &UnboundedSender<Action>,
    ) {
        let path = super::files::resolve_save_path(path, &name);
        let transfer = client.download_media(&media_id, DownloadTarget::Path(path.clone()));
        let cancelled = self.register(id);
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = match follow(transfer, id, cancelled, &tx).await {
                Ok(Downloaded::Path(path)) => {
                    let size = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
                    Ok(JobOutput::Text(media::saved_words(&name, size, &path)))
                }
                Ok(Downloaded::Memory(_)) => Err(Failure::new(None, "downloaded to memory")),
                Err(f) => Err(f),
            };
            answer(&tx, id, result);
        });
    }
}

/// What `/image` found in its file.
enum ImageFound {
    Image {
        name: String,
        data: Vec<u8>,
        image: media::PreparedImage,
    },
    /// Not an image this client reads, or one it will not decode; `why`, in words.
    File {
        name: String,
        data: Vec<u8>,
        why: String,
    },
    /// Over the size limit: not even read.
    TooBig,
}

async fn prepare(path: &std::path::Path) -> Result<ImageFound, Failure> {
    let cannot =
        |e: std::io::Error| Failure::new(None, format!("cannot read {}: {e}", path.display()));
    let size = tokio::fs::metadata(path).await.map_err(cannot)?.len();
    if size > MAX_MEDIA_BYTES {
        return Ok(ImageFound::TooBig);
    }
    let data = tokio::fs::read(path).await.map_err(cannot)?;
    let name = path
        .file_name()
        .map_or_else(|| "image".to_string(), |n| n.to_string_lossy().into_owned());
    // Decoding takes a while for a large picture: not on the loop's thread.
    tokio::task::spawn_blocking(move || match media::prepare_image(&data) {
        Ok(image) => ImageFound::Image { name, data, image },
        Err(why) => ImageFound::File {
            name,
            data,
            why: why.to_string(),
        },
    })
    .await
    .map_err(|e| Failure::new(None, format!("making the thumbnail failed: {e}")))
}

/// Runs `transfer` to its end, telling the loop how far it is; drops it (which cancels
/// it) when `cancelled` fires.
async fn follow<T: Send + 'static>(
    transfer: Transfer<T>,
    id: JobId,
    mut cancelled: oneshot::Receiver<()>,
    tx: &UnboundedSender<Action>,
) -> Result<T, Failure> {
    let mut progress = transfer.progress();
    loop {
        tokio::select! {
            _ = &mut cancelled => break drop(transfer),
            changed = progress.changed() => {
                // The work is over (its end closes the watch): the result is there.
                if changed.is_err() {
                    return transfer.finish().await.map_err(|e| match e {
                        ClientError::Cancelled => Failure::new(None, CANCELLED),
                        other => failure(&other),
                    });
                }
            }
        }
        let now = *progress.borrow_and_update();
        let update = TransferUpdate::Progress {
            done: now.done,
            total: now.total,
        };
        let _ = tx.send(Action::Transfer(id, update));
        tokio::select! {
            _ = &mut cancelled => break drop(transfer),
            () = tokio::time::sleep(PROGRESS_EVERY) => {}
        }
    }
    Err(Failure::new(None, CANCELLED))
}

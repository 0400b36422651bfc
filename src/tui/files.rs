//! The file requests of `/raw` and `/save`: read a small file to send, write a received
//! raw message's bytes (where: [`resolve_save_path`], which downloads use too). Each runs in a task and answers with [`Action::Done`], so a slow
//! disk never holds up the loop.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc::UnboundedSender;

use super::action::{answer, Action};
use super::job::{Failure, JobId, JobOutput};
use super::media;

/// Largest file `/raw` sends: the message limit minus room for the description.
const MAX_RAW_FILE: usize = crate::protocol::limits::MAX_MESSAGE_BYTES - 256;

/// Reads `path` for `/raw` ([`JobOutput::File`]); refuses what a raw message cannot hold.
pub fn read_raw(path: String, id: JobId, tx: &UnboundedSender<Action>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = match tokio::fs::read(&path).await {
            Ok(data) if data.len() > MAX_RAW_FILE => Err(Failure::new(
                None,
                format!(
                    "{path} is {} bytes; raw messages hold {MAX_RAW_FILE}",
                    data.len()
                ),
            )),
            Ok(data) => Ok(JobOutput::File(data)),
            Err(e) => Err(Failure::new(None, format!("cannot read {path}: {e}"))),
        };
        answer(&tx, id, result);
    });
}

/// Writes a raw message's `data` for `/save`: to `path`, into it if it is a directory, or
/// to the downloads directory without one (`media::save_path`); the answer says where.
pub fn save(
    path: Option<PathBuf>,
    name: String,
    data: Vec<u8>,
    id: JobId,
    tx: &UnboundedSender<Action>,
) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let path = resolve_save_path(path, &name);
        let result = tokio::fs::write(&path, &data)
            .await
            .map(|()| JobOutput::Text(media::saved_words(&name, data.len() as u64, &path)))
            .map_err(|e| Failure::new(None, format!("cannot save to {}: {e}", path.display())));
        answer(&tx, id, result);
    });
}

/// Where `/save` writes `name` (see [`media::save_path`]), `~/` meaning the home directory.
pub fn resolve_save_path(path: Option<PathBuf>, name: &str) -> PathBuf {
    let path = path.map(|p| media::expand_home(&p));
    media::save_path(
        path.as_deref(),
        name,
        &media::downloads_dir(),
        Path::exists,
        Path::is_dir,
    )
}

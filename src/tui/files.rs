//! The file requests of `/raw` and `/save`: read a small file to send, write a received
//! raw message's bytes. Each runs in a task and answers with [`Action::Done`], so a slow
//! disk never holds up the loop.

use tokio::sync::mpsc::UnboundedSender;

use super::action::Action;
use super::job::{Failure, JobId, JobOutput};
use super::network::answer;

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

/// Writes `data` to `path` for `/save`; the answer says how much went where.
pub fn save(path: String, data: Vec<u8>, id: JobId, tx: &UnboundedSender<Action>) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let result = tokio::fs::write(&path, &data)
            .await
            .map(|()| JobOutput::Text(format!("saved {} bytes to {path}", data.len())))
            .map_err(|e| Failure::new(None, format!("cannot save to {path}: {e}")));
        answer(&tx, id, result);
    });
}

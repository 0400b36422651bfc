//! Uploads and downloads under way (`/file`, `/image`, `/save`): what the status line's
//! progress bar shows and what Esc cancels (the newest). Each is known by the id of its
//! request; progress comes in as [`TransferUpdate`]s, the end as the request's answer.

use std::fmt::Write as _;

use crate::tui::job::JobId;
use crate::tui::media::human_size;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

/// What the loop tells of a transfer before it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferUpdate {
    /// Bytes done of the total (0 while unknown).
    Progress { done: u64, total: u64 },
    /// Words for the user (an image sent as a file, and why).
    Note(String),
}

/// One transfer under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub id: JobId,
    pub direction: Direction,
    pub name: String,
    pub done: u64,
    pub total: u64,
    /// Esc was pressed: the answer (cancelled, or done after all) is awaited.
    pub cancelling: bool,
    pub note: Option<String>,
}

/// The transfers under way, oldest first, and the words for the last one that ended.
#[derive(Debug, Default)]
pub struct Transfers {
    pub list: Vec<TransferRow>,
    /// How the last transfer ended ("saved to ..."), on the status line until another starts.
    pub last: Option<String>,
}

impl Transfers {
    pub fn start(&mut self, id: JobId, direction: Direction, name: String) {
        self.last = None;
        self.list.push(TransferRow {
            id,
            direction,
            name,
            done: 0,
            total: 0,
            cancelling: false,
            note: None,
        });
    }

    /// Takes an update; the transfer it is about, if still under way.
    pub fn update(&mut self, id: JobId, update: TransferUpdate) -> Option<&TransferRow> {
        let transfer = self.list.iter_mut().find(|t| t.id == id)?;
        match update {
            TransferUpdate::Progress { done, total } => {
                transfer.done = done;
                transfer.total = total;
            }
            TransferUpdate::Note(text) => transfer.note = Some(text),
        }
        Some(transfer)
    }

    /// The transfer `id` ended; `words` say how (kept for the status line).
    pub fn finish(&mut self, id: JobId, words: impl Into<String>) -> Option<TransferRow> {
        let at = self.list.iter().position(|t| t.id == id)?;
        self.last = Some(words.into());
        Some(self.list.remove(at))
    }

    /// The newest transfer not being cancelled yet: what Esc cancels. Marks it.
    pub fn cancel_newest(&mut self) -> Option<&TransferRow> {
        let transfer = self.list.iter_mut().rev().find(|t| !t.cancelling)?;
        transfer.cancelling = true;
        Some(transfer)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The status line's words for the newest transfer: arrow, name, bar, percentage,
    /// bytes; `bar` cells wide.
    pub fn status(&self, bar: usize) -> Option<String> {
        let transfer = self.list.last()?;
        let arrow = match transfer.direction {
            Direction::Upload => "⇡",
            Direction::Download => "⇣",
        };
        let mut text = format!("{arrow} {} ", transfer.name);
        match (transfer.done.min(transfer.total) * 100).checked_div(transfer.total) {
            Some(percent) => {
                let _ = write!(
                    text,
                    "{} {percent}% {} of {}",
                    progress_bar(transfer.done, transfer.total, bar),
                    human_size(transfer.done),
                    human_size(transfer.total)
                );
            }
            None => text.push_str("starting…"),
        }
        if self.list.len() > 1 {
            let _ = write!(text, " (+{} more)", self.list.len() - 1);
        }
        if transfer.cancelling {
            text.push_str(" · cancelling…");
        } else {
            text.push_str(" · Esc cancels");
        }
        if let Some(note) = &transfer.note {
            let _ = write!(text, " · {note}");
        }
        Some(text)
    }
}

/// `[█████░░░░░]`: `done` of `total` in `width` cells.
pub fn progress_bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        (u128::from(done.min(total)) * width as u128 / u128::from(total)) as usize
    };
    format!("[{}{}]", "█".repeat(filled), "░".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_a_bar_and_esc_takes_the_newest() {
        assert_eq!(progress_bar(0, 100, 4), "[░░░░]");
        assert_eq!(progress_bar(50, 100, 4), "[██░░]");
        assert_eq!(progress_bar(100, 100, 4), "[████]");
        assert_eq!(progress_bar(200, 100, 4), "[████]");
        assert_eq!(progress_bar(5, 0, 4), "[░░░░]");
        let mut transfers = Transfers::default();
        transfers.start(JobId(1), Direction::Upload, "app.log".into());
        assert_eq!(
            transfers.status(4).unwrap(),
            "⇡ app.log starting… · Esc cancels"
        );
        transfers.update(
            JobId(1),
            TransferUpdate::Progress {
                done: 5 << 20,
                total: 20 << 20,
            },
        );
        assert_eq!(
            transfers.status(4).unwrap(),
            "⇡ app.log [█░░░] 25% 5.0 MiB of 20.0 MiB · Esc cancels"
        );
        transfers.start(JobId(2), Direction::Download, "shot.png".into());
        assert_eq!(transfers.cancel_newest().map(|t| t.id), Some(JobId(2)));
        assert_eq!(transfers.cancel_newest().map(|t| t.id), Some(JobId(1)));
        assert!(transfers.cancel_newest().is_none());
        assert!(transfers
            .status(4)
            .unwrap()
            .ends_with("(+1 more) · cancelling…"));
        transfers.finish(JobId(2), "download of shot.png cancelled");
        transfers.finish(JobId(1), "upload of app.log cancelled");
        assert!(transfers.is_empty());
        assert_eq!(
            transfers.last.as_deref(),
            Some("upload of app.log cancelled")
        );
    }
}

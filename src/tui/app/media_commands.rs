//! Files and images in the app: `/file` and `/image` upload and then send the message
//! the upload gives, `/save` (Alt-S) downloads the newest file or image in view, Esc
//! cancels the newest transfer, and their progress and ends reach the tab and the status
//! line. The transfers under way are [`Transfers`](super::transfers::Transfers).

use std::path::PathBuf;

use crate::protocol::Message;

use super::jobs::Pending;
use super::transfers::{Direction, TransferUpdate};
use super::App;
use crate::tui::action::Effect;
use crate::tui::job::{expect, Failure, Job, JobId, JobOutput};
use crate::tui::tab::{Body, EntryKind};
use crate::tui::target::Target;

/// The words for a transfer that was cancelled (the loop answers with them).
pub const CANCELLED: &str = "cancelled";

impl App {
    /// `/file PATH` (`image: false`) or `/image PATH`: upload, then send to this tab.
    pub(super) fn upload(&mut self, path: String, image: bool) {
        let command = if image { "/image" } else { "/file" };
        let Some(target) = self.active_tab().target.clone() else {
            return self.error(format!("{command}: open a peer or channel tab first"));
        };
        let name = std::path::Path::new(&path)
            .file_name()
            .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
        let path = PathBuf::from(path);
        let request = if image {
            Job::UploadImage(path)
        } else {
            Job::UploadFile(path)
        };
        let pending = Pending::Upload {
            target,
            name: name.clone(),
        };
        let id = self.jobs.ask_with(pending, request);
        self.transfers.start(id, Direction::Upload, name);
    }

    /// `/save [PATH]`, Alt-S: the newest file, image or raw message at or above the
    /// bottom of the view (the tab's last, unless scrolled back to an older one).
    pub(super) fn save_media(&mut self, path: Option<String>) {
        let tab = self.active_tab();
        let in_view = tab.entries.len().saturating_sub(tab.scroll);
        let found = tab
            .entries
            .iter()
            .take(in_view)
            .rev()
            .find_map(|e| match &e.kind {
                EntryKind::Message(m) => match &m.body {
                    Body::Raw { .. } | Body::File(_) | Body::Image { .. } => Some(m.body.clone()),
                    _ => None,
                },
                _ => None,
            });
        let target = tab.target.clone();
        let path = path.map(PathBuf::from);
        match found {
            Some(Body::Raw { description, data }) => {
                let name = raw_name(&description);
                self.jobs.ask(Job::SaveFile { path, name, data });
            }
            Some(Body::File(media) | Body::Image { media, .. }) => {
                let pending = Pending::Download { target };
                let request = Job::Download {
                    media_id: media.media_id,
                    name: media.name.clone(),
                    path,
                };
                let id = self.jobs.ask_with(pending, request);
                self.transfers.start(id, Direction::Download, media.name);
            }
            _ => self.error("/save: no file, image or raw message in view in this tab"),
        }
    }

    /// Esc with a transfer under way: cancel the newest. `false` when there is none.
    pub(super) fn cancel_transfer(&mut self) -> bool {
        let Some(id) = self.transfers.cancel_newest().map(|t| t.id) else {
            return false;
        };
        self.jobs.push(Effect::CancelTransfer(id));
        true
    }

    pub(super) fn on_transfer(&mut self, id: JobId, update: TransferUpdate) {
        let note = match &update {
            TransferUpdate::Note(text) => Some(text.clone()),
            TransferUpdate::Progress { .. } => None,
        };
        if self.transfers.update(id, update).is_none() {
            return;
        }
        if let Some(note) = note {
            self.info(note);
        }
    }

    /// An upload ended: send its message, or say why not.
    pub(super) fn on_uploaded(
        &mut self,
        id: JobId,
        target: &Target,
        name: &str,
        result: Result<JobOutput, Failure>,
    ) {
        match expect::<Message>(result) {
            Ok(message) => {
                self.transfers.finish(id, format!("uploaded {name}"));
                self.send_to(target, message);
            }
            Err(f) => {
                let words = if f.text == CANCELLED {
                    format!("upload of {name} cancelled")
                } else {
                    format!("{name} not sent: {f}")
                };
                self.transfers.finish(id, words.clone());
                self.line_in(target, words, f.text != CANCELLED);
            }
        }
    }

    /// A download ended: where it went, or why it did not.
    pub(super) fn on_downloaded(
        &mut self,
        id: JobId,
        target: Option<&Target>,
        name: &str,
        result: Result<JobOutput, Failure>,
    ) {
        let (words, failed) = match expect::<String>(result) {
            Ok(words) => (words, false),
            Err(f) if f.text == CANCELLED => (format!("download of {name} cancelled"), false),
            Err(f) => (format!("cannot save {name}: {f}"), true),
        };
        self.transfers.finish(id, words.clone());
        match target {
            Some(target) => self.line_in(target, words, failed),
            None if failed => self.error(words),
            None => self.info(words),
        }
    }

    /// An info (or error) line in the tab of `target`, opening it if need be.
    fn line_in(&mut self, target: &Target, text: String, error: bool) {
        let now = self.now_ms;
        let i = self.tabs.open(target, &mut self.jobs);
        if error {
            self.tabs[i].error(now, text);
        } else {
            self.tabs[i].info(now, text);
        }
    }
}

/// A file name for a raw message: its description, without the "file " that `/raw`
/// puts before the name (made a safe name where it is saved); "raw.bin" without one.
fn raw_name(description: &str) -> String {
    let name = description
        .strip_prefix("file ")
        .unwrap_or(description)
        .trim();
    if name.is_empty() {
        "raw.bin".to_string()
    } else {
        name.to_string()
    }
}

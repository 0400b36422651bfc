//! Received images on screen: how this terminal draws pictures (kitty, sixel, iTerm2, or
//! half blocks everywhere else), found out once at start with a short timeout, and the
//! pictures already encoded for it, kept for the next draw. The query goes out only to a
//! terminal that answers a status report first (`terminal_answers`): ratatui-image
//! reads the answers on a thread of its own, which, when no answer ever comes (a detached
//! tmux, a terminal without status reports), goes on waiting after the timeout and eats
//! the first keys the user types. The message list leaves blank
//! rows for each image ([`Placed`], from `render/messages.rs`); [`Pictures::draw`] fills
//! them. Thumbnails come from other users and are decoded with limits (`media.rs`).

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use ratatui::layout::{Rect, Size};
use ratatui::Frame;
use ratatui_image::picker::cap_parser::QueryStdioOptions;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::sliced::{SignedPosition, SlicedImage, SlicedProtocol};
use ratatui_image::{FontSize, Resize};
use serde::Deserialize;

use super::media;

/// How long the terminal has to answer the graphics query at start (a terminal that does
/// not answer gets half blocks; tmux answers for itself at once).
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// Pictures kept encoded; past this many the cache starts over (a long scroll through
/// many images re-encodes what comes back into view, which is cheap for thumbnails).
const MAX_CACHED: usize = 64;

/// The cell size half blocks assume: each cell shows 1x2 pixels of a picture scaled to
/// this, so only the 1:2 ratio matters.
pub const HALFBLOCK_CELL: (u16, u16) = (10, 20);

/// The config's `images` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageMode {
    /// Ask the terminal: kitty, sixel or iTerm2 where it has them, else half blocks.
    #[default]
    Auto,
    /// Half blocks whatever the terminal can do (coloured `▀` cells: works everywhere).
    Halfblocks,
    /// No pictures: a line with the image's name and size, as for files.
    Off,
}

/// Whether this runs inside tmux, as ratatui-image judges it (its queries then go through
/// tmux's passthrough, to the terminal outside).
fn in_tmux() -> bool {
    std::env::var("TERM").is_ok_and(|term| term.starts_with("tmux"))
        || std::env::var("TERM_PROGRAM").is_ok_and(|program| program == "tmux")
}

/// The device status report query, sent as ratatui-image sends its own (inside tmux,
/// through its passthrough, which ratatui-image turns on: so is it here, first).
fn status_query(in_tmux: bool) -> String {
    const STATUS_REPORT: &str = "\x1b[5n";
    if in_tmux {
        super::notify::through_tmux(STATUS_REPORT)
    } else {
        STATUS_REPORT.to_string()
    }
}

/// Whether `input` holds an answer to the status report query (`ESC [ 0 n`, or `3 n`
/// from a terminal reporting a malfunction: an answer all the same).
fn holds_status_report(input: &[u8]) -> bool {
    input.windows(4).any(|w| w == b"\x1b[0n" || w == b"\x1b[3n")
}

/// Whether the terminal answers a status report within `timeout`, read straight from
/// the descriptor (no buffer of the standard library's keeps what comes after it). What
/// else comes in meanwhile (keys typed in the first moment) is not kept.
#[cfg(unix)]
fn terminal_answers(in_tmux: bool, timeout: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    if in_tmux {
        let _ = std::process::Command::new("tmux")
            .args(["set", "-p", "allow-passthrough", "on"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    let mut out = std::io::stdout();
    let asked = out
        .write_all(status_query(in_tmux).as_bytes())
        .and_then(|()| out.flush());
    if asked.is_err() {
        return false;
    }
    let stdin = std::io::stdin();
    let deadline = Instant::now() + timeout;
    let mut input = Vec::new();
    while !holds_status_report(&input) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(left) = Timespec::try_from(left) else {
            return false;
        };
        if left == Timespec::default() {
            return false;
        }
        let mut ready = [PollFd::new(&stdin, PollFlags::IN)];
        match poll(&mut ready, Some(&left)) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
        let mut buffer = [0u8; 64];
        match rustix::io::read(&stdin, &mut buffer) {
            Ok(0) | Err(_) => return false,
            Ok(read) => input.extend_from_slice(&buffer[..read]),
        }
    }
    true
}

/// Elsewhere ratatui-image's own query, with its timeout, decides.
#[cfg(not(unix))]
fn terminal_answers(_in_tmux: bool, _timeout: Duration) -> bool {
    true
}

/// Where the message list left room for an image, relative to the message area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed<'a> {
    /// The media id, which names the picture in the cache.
    pub key: &'a str,
    pub thumbnail: &'a [u8],
    /// First row of the picture; negative when its top is scrolled out of view.
    pub row: i32,
    pub column: u16,
    pub size: (u16, u16),
}

/// The terminal's way of drawing pictures and the pictures drawn so far.
pub struct Pictures {
    /// `None`: pictures are off.
    picker: Option<Picker>,
    cache: HashMap<(String, u16, u16), Option<SlicedProtocol>>,
}

impl std::fmt::Debug for Pictures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pictures")
            .field("protocol", &self.picker.as_ref().map(Picker::protocol_type))
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Pictures {
    /// Finds out how the terminal draws pictures. Must run after the terminal is set up
    /// and before anything reads its input (the answers come in on stdin).
    pub fn detect(mode: ImageMode) -> Pictures {
        let picker = match mode {
            ImageMode::Off => None,
            ImageMode::Halfblocks => Some(Picker::halfblocks()),
            ImageMode::Auto if !terminal_answers(in_tmux(), QUERY_TIMEOUT) => {
                tracing::info!("no answer to a status report; half blocks");
                Some(Picker::halfblocks())
            }
            ImageMode::Auto => {
                let options = QueryStdioOptions {
                    timeout: QUERY_TIMEOUT,
                    ..QueryStdioOptions::default()
                };
                match Picker::from_query_stdio_with_options(options) {
                    Ok(picker) => Some(picker),
                    Err(e) => {
                        tracing::info!("no answer to the graphics query ({e}); half blocks");
                        Some(Picker::halfblocks())
                    }
                }
            }
        };
        tracing::info!("images: {:?}", picker.as_ref().map(Picker::protocol_type));
        Pictures {
            picker,
            cache: HashMap::new(),
        }
    }

    /// Half blocks, asking the terminal nothing (tests, benches).
    pub fn halfblocks() -> Pictures {
        Pictures::detect(ImageMode::Halfblocks)
    }

    /// The size of a cell in the pictures' pixels, for the message list to size images
    /// by; `None` when pictures are off.
    pub fn cell_pixels(&self) -> Option<(u16, u16)> {
        self.picker.as_ref().map(|p| {
            let FontSize { width, height } = p.font_size();
            (width.max(1), height.max(1))
        })
    }

    /// Whether pictures go to the terminal's own graphics layer (kitty, sixel, iTerm2),
    /// which windows drawn over the messages cannot cover.
    pub fn is_graphics(&self) -> bool {
        self.picker
            .as_ref()
            .is_some_and(|p| p.protocol_type() != ProtocolType::Halfblocks)
    }

    /// Draws the pictures placed in `area` (the message list).
    pub fn draw(&mut self, frame: &mut Frame, area: Rect, placed: &[Placed]) {
        let Some(picker) = &self.picker else {
            return;
        };
        if self.cache.len() > MAX_CACHED {
            self.cache.clear();
        }
        for image in placed {
            let key = (image.key.to_string(), image.size.0, image.size.1);
            let protocol = self.cache.entry(key).or_insert_with(|| {
                let decoded = media::decode_thumbnail(image.thumbnail)?;
                let size = Size::new(image.size.0, image.size.1);
                SlicedProtocol::new_with_resize(picker, decoded, size, Resize::Fit(None))
                    .map_err(|e| tracing::debug!("cannot encode a picture: {e}"))
                    .ok()
            });
            if let Some(protocol) = protocol {
                let position = SignedPosition {
                    x: image.column as i16,
                    y: image.row.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16,
                };
                frame.render_widget(SlicedImage::new(protocol, position), area);
            }
        }
    }
}

/// Cells for a `width` x `height` pixel picture with cells of `cell` pixels, within
/// `max` cells, keeping its shape; at least one cell each way.
pub fn cells_for(width: u32, height: u32, cell: (u16, u16), max: (u16, u16)) -> (u16, u16) {
    let natural_w = f64::from(width) / f64::from(cell.0.max(1));
    let natural_h = f64::from(height) / f64::from(cell.1.max(1));
    if natural_w <= 0.0 || natural_h <= 0.0 {
        return (1, 1);
    }
    let scale = (f64::from(max.0) / natural_w)
        .min(f64::from(max.1) / natural_h)
        .min(1.0);
    let w = (natural_w * scale)
        .round()
        .clamp(1.0, f64::from(max.0.max(1)));
    let h = (natural_h * scale)
        .round()
        .clamp(1.0, f64::from(max.1.max(1)));
    (w as u16, h as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_report_is_found_among_other_input() {
        assert!(holds_status_report(b"\x1b[0n"));
        assert!(holds_status_report(b"ab\x1b[3n"));
        // A kitty answer, then the report, as a terminal sends them.
        assert!(holds_status_report(b"\x1b_Gi=31;OK\x1b\\\x1b[0n"));
        assert!(!holds_status_report(b"\x1b[0"));
        assert!(!holds_status_report(b"\x1b[?62;4c"));
        assert!(!holds_status_report(b""));
        // Inside tmux the query goes through its passthrough, its escapes doubled.
        assert_eq!(status_query(false), "\x1b[5n");
        assert_eq!(status_query(true), "\x1bPtmux;\x1b\x1b[5n\x1b\\");
    }

    #[test]
    fn the_config_says_how_images_are_drawn() {
        use crate::tui::config::TuiConfig;
        assert_eq!(TuiConfig::default().images, ImageMode::Auto);
        for (text, mode) in [
            ("images = \"halfblocks\"", ImageMode::Halfblocks),
            ("images = \"off\"", ImageMode::Off),
            ("images = \"auto\"", ImageMode::Auto),
        ] {
            assert_eq!(TuiConfig::parse(text).unwrap().images, mode);
        }
        assert!(TuiConfig::parse("images = \"sixel-please\"").is_err());
        // Off: no picker, no cell size, nothing asked of the terminal.
        assert_eq!(Pictures::detect(ImageMode::Off).cell_pixels(), None);
        assert_eq!(Pictures::halfblocks().cell_pixels(), Some(HALFBLOCK_CELL));
    }

    #[test]
    fn pictures_keep_their_shape_within_the_room_given() {
        // 320x240 in 10x20 cells: 32x12 naturally.
        assert_eq!(cells_for(320, 240, (10, 20), (80, 12)), (32, 12));
        // Half the rows: half the columns.
        assert_eq!(cells_for(320, 240, (10, 20), (80, 6)), (16, 6));
        // A narrow view limits the width, and the height follows.
        assert_eq!(cells_for(320, 240, (10, 20), (16, 12)), (16, 6));
        // Small pictures are not blown up; tiny ones take a cell.
        assert_eq!(cells_for(40, 40, (10, 20), (80, 12)), (4, 2));
        assert_eq!(cells_for(1, 1, (10, 20), (80, 12)), (1, 1));
        assert_eq!(cells_for(0, 10, (10, 20), (80, 12)), (1, 1));
    }
}

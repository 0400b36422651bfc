//! The `$EDITOR` escape (Alt-E): the draft goes into a private temporary file (made by
//! `tempfile`: a fresh name, mode 0600, removed afterwards), the terminal is handed to
//! the editor, and what it saved comes back.

use std::io::Write as _;

use super::error::{io, TuiError};
use super::terminal::TerminalGuard;

/// Edits `text` in `$VISUAL`, else `$EDITOR`, else `vi`; returns the text saved.
pub fn edit(text: &str, guard: &mut TerminalGuard) -> Result<String, TuiError> {
    let mut file = tempfile::Builder::new()
        .prefix("rtm-tui-")
        .suffix(".txt")
        .tempfile()
        .map_err(io("cannot make a temporary file"))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(io("cannot write the draft to a temporary file"))?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    guard.suspend();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status();
    guard
        .resume()
        .map_err(io("cannot take the terminal back"))?;
    let status = status.map_err(io(format!("cannot run {editor}")))?;
    if !status.success() {
        return Err(TuiError::Editor { editor, status });
    }
    // Read by path: editors often save a new file in its place rather than write into it.
    std::fs::read_to_string(file.path()).map_err(io("cannot read what the editor saved"))
}

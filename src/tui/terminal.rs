//! The one guard that owns the terminal's modes: raw mode, alternate screen, bracketed
//! paste, mouse capture, focus reports (for notifications). Dropping it (normal exit, `?` errors) or panicking restores the
//! terminal, so the shell is never left in a broken state. Nothing else touches modes.

use std::io::{self, Write};
use std::sync::Once;

use crossterm::event::{
    DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste,
    EnableFocusChange, EnableMouseCapture,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen, SetTitle,
};
use crossterm::{cursor, execute};

/// While alive, the terminal is in the TUI's modes.
pub struct TerminalGuard {
    active: bool,
}

static PANIC_HOOK: Once = Once::new();

impl TerminalGuard {
    /// Enters the TUI's modes and makes sure a panic restores them before its message prints.
    pub fn enter() -> io::Result<TerminalGuard> {
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        let mut guard = TerminalGuard { active: false };
        guard.resume()?;
        Ok(guard)
    }

    /// Gives the terminal back for a while (the `$EDITOR` escape).
    pub fn suspend(&mut self) {
        if self.active {
            restore();
            self.active = false;
        }
    }

    /// Takes the terminal again after [`suspend`](Self::suspend).
    pub fn resume(&mut self) -> io::Result<()> {
        enable_raw_mode()?;
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableBracketedPaste,
            EnableMouseCapture,
            EnableFocusChange
        )?;
        self.active = true;
        Ok(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if self.active {
            restore();
            let _ = execute!(io::stdout(), SetTitle(""));
        }
    }
}

/// Leaves every mode the guard entered; safe to call twice.
fn restore() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        DisableFocusChange,
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        cursor::Show
    );
    let _ = disable_raw_mode();
    let _ = out.flush();
}

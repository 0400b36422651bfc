//! [`TuiError`]: why the chat client stopped, or could not start. What goes wrong while it
//! runs (a send refused, a file not saved) is a `job::Failure` shown in a tab, not an error.

use std::io;
use std::process::ExitStatus;

use super::config::TuiConfigError;
use super::local_server::StartError;

/// Why the chat client (or the demo) could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The config file cannot be read or is not valid: fix or remove it.
    #[error(transparent)]
    TuiConfig(#[from] TuiConfigError),
    /// The config's `[keys]` table names a key or an action that does not exist.
    #[error("config [keys]: {0}")]
    Keys(String),
    /// The terminal (or a file the client needed) failed: `doing` says at what.
    // The source is printed by the error chain; repeating it here would print it twice.
    #[error("{doing}")]
    Io {
        doing: String,
        #[source]
        source: io::Error,
    },
    /// `$EDITOR` ran but did not exit cleanly; the draft stays as it was.
    #[error("{editor} exited with {status}")]
    Editor { editor: String, status: ExitStatus },
    /// The demo's server did not start.
    #[error("cannot start the demo server")]
    DemoServer(#[source] StartError),
}

/// An I/O error with what the client was doing: `.map_err(io("cannot draw"))`.
pub(crate) fn io(doing: impl Into<String>) -> impl FnOnce(io::Error) -> TuiError {
    let doing = doing.into();
    move |source| TuiError::Io { doing, source }
}

//! Logging set-up: to stderr for server and QA commands, to a rolling file for the TUI.

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

/// Keeps the non-blocking log writer alive; drop it last to flush.
pub(crate) struct Guard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

fn filter(level: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(level).with_context(|| format!("bad --log-level {level:?}"))
}

/// Logs to stderr: for commands that own no screen. Colours only on a terminal (a log
/// redirected to a file or a pipe stays plain text) and never under `NO_COLOR`.
pub(crate) fn to_stderr(level: &str) -> anyhow::Result<Guard> {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter(level)?)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(std::io::stderr)
        .init();
    Ok(Guard(None))
}

/// Logs to a daily rolling file in the XDG state dir: for the TUI, whose screen must stay clean.
pub(crate) fn to_file(level: &str) -> anyhow::Result<Guard> {
    let dir = rtm::paths::log_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    let appender = tracing_appender::rolling::daily(&dir, "rtm-tui.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    tracing_subscriber::fmt()
        .with_env_filter(filter(level)?)
        .with_ansi(false)
        .with_writer(writer)
        .init();
    Ok(Guard(Some(guard)))
}

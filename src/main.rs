//! The `rtm-tui` binary: parse the command line, set up logging, call into the library.

mod cli;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rtm-tui: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "rtm-tui",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Serve(args)) => {
            let _guard = logging::to_stderr(&cli.log_level)?;
            runtime()?.block_on(commands::serve(args))
        }
        Some(other) => {
            eprintln!("rtm-tui: `{other:?}` is not available yet in this build");
            Ok(ExitCode::from(2))
        }
        None => {
            eprintln!("rtm-tui: the interactive client is not available yet; run `rtm-tui serve`");
            Ok(ExitCode::from(2))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

mod logging {
    //! Logging set-up: to stderr for server and QA commands, to a rolling file for the TUI.

    use anyhow::Context as _;
    use tracing_subscriber::EnvFilter;

    /// Keeps the non-blocking log writer alive; drop it last to flush.
    pub struct Guard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

    fn filter(level: &str) -> anyhow::Result<EnvFilter> {
        EnvFilter::try_new(level).with_context(|| format!("bad --log-level {level:?}"))
    }

    /// Logs to stderr: for commands that own no screen.
    pub fn to_stderr(level: &str) -> anyhow::Result<Guard> {
        tracing_subscriber::fmt()
            .with_env_filter(filter(level)?)
            .with_writer(std::io::stderr)
            .init();
        Ok(Guard(None))
    }

    /// Logs to a daily rolling file in the XDG state dir: for the TUI, whose screen must stay clean.
    #[allow(dead_code)]
    pub fn to_file(level: &str) -> anyhow::Result<Guard> {
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
}

mod commands {
    //! One function per subcommand: turn clap arguments into library calls.

    use std::process::ExitCode;

    use crate::cli::ServeArgs;

    #[allow(clippy::unused_async)] // the server lands in the next commit
    pub async fn serve(_args: ServeArgs) -> anyhow::Result<ExitCode> {
        anyhow::bail!("the server is not available yet")
    }
}

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
        Some(Command::Demo(args)) => {
            let _guard = logging::to_file(&cli.log_level)?;
            runtime()?.block_on(rtm::tui::demo::run(args.user, cli.chat.config))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => {
            eprintln!("rtm-tui: `{other:?}` is not available yet in this build");
            Ok(ExitCode::from(2))
        }
        None => {
            let _guard = logging::to_file(&cli.log_level)?;
            let chat = cli.chat;
            let options = rtm::tui::Options {
                app_id: chat.app_id,
                user: chat.user,
                token: chat.token,
                token_cmd: chat.token_cmd,
                server: chat.server,
                config: chat.config,
                startup_commands: Vec::new(),
            };
            runtime()?.block_on(rtm::tui::run(options))?;
            Ok(ExitCode::SUCCESS)
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

    /// `rtm-tui serve`: the reference server until Ctrl-C or SIGTERM.
    pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
        use anyhow::Context as _;
        use rtm::server::{AppRegistry, Config, StoreLocation};

        let mut apps = AppRegistry::default();
        for spec in &args.apps {
            apps.add_spec(spec);
        }
        let store = if args.ephemeral {
            StoreLocation::Ephemeral
        } else {
            StoreLocation::Path(args.data_dir.unwrap_or_else(rtm::paths::data_dir))
        };
        let config = Config {
            store,
            history_limit: args.history_limit,
            apps,
            ..Config::default()
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!(
            "rtm-tui server listening on ws://{addr}{}",
            rtm::protocol::WS_PATH
        );
        rtm::server::run(listener, config, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    }

    /// Resolves on Ctrl-C or SIGTERM.
    async fn shutdown_signal() {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = terminate => {}
        }
    }
}

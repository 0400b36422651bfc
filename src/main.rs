//! The `rtm-tui` binary: parse the command line, set up logging, call into the library.
//! Each subcommand's body lives in `commands/`; logging set-up in `logging.rs`.

mod cli;
mod commands;
mod logging;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};

use cli::{Cli, Command};

/// jemalloc, which returns freed memory to the system within about a second (background
/// threads; `.cargo/config.toml` sets the decay): after a burst or an attack the server's
/// resident memory goes back down, where glibc's malloc would keep its peak.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Log level where `--log-level` is not given: the chat client and the server say what they
/// do; the QA commands print their own results and log only problems.
const DEFAULT_LOG_LEVEL: &str = "info";
const QA_LOG_LEVEL: &str = "warn";

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
    let level = |default: &str| cli.log_level.clone().unwrap_or_else(|| default.to_string());
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
        Some(Command::Token(args)) => commands::token::token(&args),
        Some(Command::Serve(args)) => {
            let _guard = logging::to_stderr(&level(DEFAULT_LOG_LEVEL))?;
            runtime_with(args.threads)?.block_on(commands::serve::serve(args))
        }
        Some(Command::Check(args)) => {
            let _guard = logging::to_stderr(&level(QA_LOG_LEVEL))?;
            runtime()?.block_on(commands::qa::check(args))
        }
        Some(Command::Script(args)) => {
            let _guard = logging::to_stderr(&level(QA_LOG_LEVEL))?;
            runtime()?.block_on(commands::qa::script(args))
        }
        Some(Command::Bench(args)) => {
            let _guard = logging::to_stderr(&level(QA_LOG_LEVEL))?;
            runtime_with(args.threads)?.block_on(commands::qa::bench(args))
        }
        Some(Command::Headless(args)) => {
            let _guard = logging::to_stderr(&level(QA_LOG_LEVEL))?;
            runtime()?.block_on(commands::qa::headless(args))
        }
        Some(Command::Demo(args)) => {
            let _guard = logging::to_file(&level(DEFAULT_LOG_LEVEL))?;
            run_then_leave(runtime()?, commands::chat::demo(args, cli.chat))
        }
        None => {
            let _guard = logging::to_file(&level(DEFAULT_LOG_LEVEL))?;
            run_then_leave(runtime()?, commands::chat::chat(cli.chat))
        }
    }
}

/// Runs the chat client to its end, then leaves without waiting on work still blocked in
/// the runtime (a terminal read, a file being written): the terminal is given back
/// already, and a user who quit must get the prompt at once.
fn run_then_leave<T>(
    runtime: tokio::runtime::Runtime,
    chat: impl std::future::Future<Output = T>,
) -> T {
    let result = runtime.block_on(chat);
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A runtime with `threads` workers, by default one fewer than the cores (at least one):
/// a server or load generator leaves a core to the kernel's network stack, the store
/// thread and its peer on the same box. Fewer workers also mean fewer cross-thread
/// wake-ups, which on two cores cost more than the second worker gains.
fn runtime_with(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.unwrap_or(cores.saturating_sub(1)).max(1))
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

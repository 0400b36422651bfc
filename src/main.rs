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
        Some(Command::Token(args)) => commands::token(&args),
        Some(Command::Demo(args)) => {
            let _guard = logging::to_file(&cli.log_level)?;
            runtime()?.block_on(rtm::tui::demo::run(args.user, cli.chat.config))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Check(args)) => {
            let _guard = logging::to_stderr("warn")?;
            runtime()?.block_on(commands::check(args))
        }
        Some(Command::Script(args)) => {
            let _guard = logging::to_stderr("warn")?;
            runtime()?.block_on(commands::script(args))
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

    use std::io::IsTerminal as _;
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::cli::{ServeArgs, TokenArgs, TokenFormat};
    use rtm::qa::check::{self, CheckConfig, Timing};
    use rtm::qa::report::{Outcome, Report};

    use rtm::qa::raw::{Direction, Tracer};
    use rtm::qa::script;

    use crate::cli::{CheckArgs, OutputFormat, ScriptArgs};

    /// Exit code for usage and connection errors, as the QA commands document.
    const USAGE_ERROR: u8 = 2;

    pub async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
        if args.list {
            for case in check::all_cases() {
                println!("{:<32} {}", case.name, case.rule);
            }
            return Ok(ExitCode::SUCCESS);
        }
        let seconds = |s: f64| Duration::from_secs_f64(s.max(0.0));
        let mut config = CheckConfig::new(&args.server, &args.app_id);
        config.token_cmd = args.token_cmd;
        config.filter = args.filter;
        config.quick = args.quick;
        config.timing = Timing {
            ack_timeout: seconds(args.ack_timeout),
            grace: seconds(args.grace),
            invite_expiry: seconds(args.invite_expiry),
        };
        config.progress = Some(progress_line());
        if let Err(error) = check::preflight(&config).await {
            eprintln!("rtm-tui check: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
        let report = check::run(config).await;
        if report.cases.is_empty() {
            eprintln!("rtm-tui check: no case matches the filter (see --list)");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
        print_report(&report, args.format);
        Ok(ExitCode::from(report.exit_code()))
    }

    pub async fn script(args: ScriptArgs) -> anyhow::Result<ExitCode> {
        let file = args.file.display().to_string();
        let source = match std::fs::read_to_string(&args.file) {
            Ok(source) => source,
            Err(error) => {
                eprintln!("rtm-tui script: cannot read {file}: {error}");
                return Ok(ExitCode::from(USAGE_ERROR));
            }
        };
        let parsed = match script::parse(&source) {
            Ok(parsed) => parsed,
            Err(error) => {
                eprintln!("rtm-tui script: {file}:{error}");
                return Ok(ExitCode::from(USAGE_ERROR));
            }
        };
        let options = script::ScriptOptions {
            url: args.server.clone(),
            app_id: args.app_id.clone(),
            tracer: args.trace.then(transcript),
        };
        match script::run(&parsed, options).await {
            Ok(summary) => {
                println!(
                    "{file}: passed, {} steps in {:.2}s against {}",
                    summary.steps,
                    summary.duration.as_secs_f64(),
                    args.server
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => {
                println!("{file}:{error}");
                Ok(ExitCode::from(error.exit_code()))
            }
        }
    }

    /// Prints every frame to stderr: milliseconds since start, user, direction, frame.
    fn transcript() -> Tracer {
        let started = std::time::Instant::now();
        Arc::new(move |label, direction, frame| {
            let arrow = match direction {
                Direction::Sent => "->",
                Direction::Received => "<-",
            };
            for line in frame.split('\n') {
                eprintln!(
                    "{:>7.3} {label} {arrow} {line}",
                    started.elapsed().as_secs_f64()
                );
            }
        })
    }

    fn print_report(report: &Report, format: OutputFormat) {
        match format {
            OutputFormat::Text => print!("{}", report.to_text()),
            OutputFormat::Json => println!("{}", report.to_json()),
            OutputFormat::Junit => print!("{}", report.to_junit()),
        }
    }

    /// A live progress line on a terminal; one line per finished case otherwise (CI logs).
    fn progress_line() -> check::Progress {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{pos}/{len} [{bar:30}] {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            Arc::new(move |done, total, name, report| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                match report {
                    None => bar.set_message(name.to_string()),
                    Some(r) if r.outcome == Outcome::Fail => {
                        bar.println(format!(
                            "FAIL {name}: {}",
                            r.reason.as_deref().unwrap_or("")
                        ));
                    }
                    Some(_) => {}
                }
                if done == total && report.is_some() {
                    bar.finish_and_clear();
                }
            })
        } else {
            Arc::new(|done, total, name, report| {
                if let Some(r) = report {
                    eprintln!("[{done}/{total}] {} {name}", r.outcome.label());
                }
            })
        }
    }

    /// `rtm-tui serve`: the reference server until Ctrl-C or SIGTERM.
    pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
        use anyhow::Context as _;
        use rtm::server::{AppRegistry, Config, StoreLocation};

        let mut apps = AppRegistry::default();
        for spec in &args.apps {
            match spec.split_once(':') {
                // An app with a certificate uses Agora's 32-hex-char ids (protocol.md).
                Some((id, cert)) => rtm::token::check_agora_id("app id", id)
                    .and_then(|()| rtm::token::check_agora_id("certificate", cert))
                    .map_err(|why| anyhow::anyhow!("bad --app {id}:…: {why}"))?,
                None => rtm::protocol::limits::validate_app_id(spec)
                    .with_context(|| format!("bad --app {spec:?}"))?,
            }
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

    /// `rtm-tui token`: build a token, or inspect (and verify) one.
    pub fn token(args: &TokenArgs) -> anyhow::Result<ExitCode> {
        match &args.inspect {
            Some(token) => Ok(token_inspect(token, args)),
            None => token_build(args),
        }
    }

    fn token_build(args: &TokenArgs) -> anyhow::Result<ExitCode> {
        use rtm::token::{check_agora_id, mint_rtm_token, unix_now, TokenVersion};

        // clap requires all three when --inspect is absent.
        let (Some(app_id), Some(certificate), Some(user)) =
            (&args.app_id, &args.certificate, &args.user)
        else {
            anyhow::bail!("--app-id, --certificate and --user are needed to build a token");
        };
        let problems = [
            check_agora_id("--app-id", app_id).err(),
            check_agora_id("--certificate", certificate).err(),
            rtm::protocol::limits::validate_user_id(user)
                .err()
                .map(|error| format!("--user: {error}")),
        ];
        let problems: Vec<String> = problems.into_iter().flatten().collect();
        if !problems.is_empty() {
            eprintln!("rtm-tui token: {}", problems.join("; "));
            return Ok(ExitCode::from(2));
        }
        let version = match args.format {
            TokenFormat::V006 => TokenVersion::V006,
            TokenFormat::V007 => TokenVersion::V007,
        };
        let now = unix_now();
        let token = mint_rtm_token(version, app_id, certificate, user, args.expire);
        let expires_at = (args.expire != 0).then(|| now + u64::from(args.expire));
        if args.json {
            let output = serde_json::json!({
                "token": token,
                "version": version,
                "app_id": app_id,
                "user": user,
                "expires_at": expires_at,
            });
            println!("{output}");
        } else {
            println!("{token}");
        }
        Ok(ExitCode::SUCCESS)
    }

    /// What checking a token against a certificate came to.
    enum Verdict {
        NotChecked(&'static str),
        Verified(rtm::token::VerifiedToken),
        Refused(rtm::token::TokenError),
    }

    fn token_inspect(token: &str, args: &TokenArgs) -> ExitCode {
        use rtm::token::{inspect, looks_like_rtc_token, unix_now, verify_rtm_token, TokenVersion};

        let info = match inspect(token) {
            Ok(info) => info,
            Err(error) => {
                if args.json {
                    let output = serde_json::json!({ "error": error.to_string() });
                    println!("{output}");
                } else {
                    eprintln!("rtm-tui token: cannot read the token: {error}");
                }
                return ExitCode::FAILURE;
            }
        };
        let now = unix_now();
        let app_id = args.app_id.as_deref().unwrap_or(&info.app_id);
        // A 007 token without an RTM service is refused before its user matters.
        let user = args
            .user
            .as_deref()
            .or(info.user.as_deref())
            .or((info.version == TokenVersion::V007).then_some(""));
        let verdict = match (&args.certificate, user) {
            (None, _) => Verdict::NotChecked("give --certificate to check the signature"),
            (Some(_), None) => Verdict::NotChecked(
                "a 006 token does not hold its user id: give --user to check it",
            ),
            (Some(certificate), Some(user)) => {
                match verify_rtm_token(token, app_id, certificate, user, now) {
                    Ok(verified) => Verdict::Verified(verified),
                    Err(error) => Verdict::Refused(error),
                }
            }
        };
        let rtc = looks_like_rtc_token(token);
        if args.json {
            let (checked, valid, error, expires_at) = match &verdict {
                Verdict::NotChecked(why) => (false, None, Some(why.to_string()), None),
                Verdict::Verified(verified) => (true, Some(true), None, verified.expires_at),
                Verdict::Refused(error) => (true, Some(false), Some(error.to_string()), None),
            };
            let output = serde_json::json!({
                "info": info,
                "looks_like_rtc_token": rtc,
                "verification": {
                    "checked": checked,
                    "valid": valid,
                    "app_id": app_id,
                    "user": user,
                    "expires_at": expires_at,
                    "error": error,
                },
            });
            println!("{output}");
        } else {
            println!("{}", info.describe(now));
            if rtc {
                println!("note        this looks like an RTC token, not an RTM token");
            }
            match &verdict {
                Verdict::NotChecked(why) => println!("verified    not checked: {why}"),
                Verdict::Verified(_) => println!(
                    "verified    yes: valid now for user {:?} of app {app_id}",
                    user.unwrap_or_default()
                ),
                Verdict::Refused(error) => println!("verified    NO: {error}"),
            }
        }
        match verdict {
            Verdict::NotChecked(_) if args.certificate.is_some() => ExitCode::from(2),
            Verdict::NotChecked(_) | Verdict::Verified(_) => ExitCode::SUCCESS,
            Verdict::Refused(_) => ExitCode::FAILURE,
        }
    }
}

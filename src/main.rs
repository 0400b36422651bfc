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

    use crate::cli::{ServeArgs, TokenArgs, TokenFormat};

    /// `rtm-tui serve`: the reference server until Ctrl-C or SIGTERM.
    pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
        use anyhow::Context as _;
        use rtm::server::{Config, ServerFile, StoreLocation};

        let file = match &args.config {
            Some(path) => ServerFile::load(path)?,
            None => ServerFile::default(),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| ([127, 0, 0, 1], rtm::protocol::DEFAULT_PORT).into());
        let store = if args.ephemeral {
            StoreLocation::Ephemeral
        } else {
            StoreLocation::Path(
                args.data_dir
                    .or_else(|| file.data_dir.clone())
                    .unwrap_or_else(rtm::paths::data_dir),
            )
        };
        let mut config = Config {
            store,
            history_limit: args.history_limit,
            ..Config::default()
        };
        config.apps.open = args.open || file.open.unwrap_or(listen.ip().is_loopback());
        file.apply(&mut config);
        for spec in &args.apps {
            config.apps.add_spec(spec);
        }
        if config.apps.open && !listen.ip().is_loopback() {
            eprintln!(
                "\n*** WARNING: open mode on {listen}, a non-loopback address: anyone who can \
                 reach it may log in to any app id it does not know, without a token. ***\n"
            );
        }
        let tls_files = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(rtm::server::TlsFiles { cert, key }),
            _ => file.tls.clone(),
        };
        let tls = tls_files
            .as_ref()
            .map(rtm::server::tls_acceptor)
            .transpose()?;
        config.tls = tls;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let scheme = if config.tls.is_some() { "wss" } else { "ws" };
        println!(
            "rtm-tui server listening on {scheme}://{addr}{}",
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

//! `check`, `script`, `bench`, `headless`: the QA kit's commands. Arguments become the
//! library's configs here; the work happens in `rtm::qa`.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rtm::qa::bench::{self, BenchConfig, BenchError};
use rtm::qa::check::{self, CheckConfig, Timing};
use rtm::qa::raw::{Direction, Tracer};
use rtm::qa::report::{Outcome, Report};
use rtm::qa::script;

use crate::cli::{BenchArgs, CheckArgs, HeadlessArgs, OutputFormat, ScriptArgs};

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
    let mut config = CheckConfig::new(rtm::protocol::DEFAULT_URL, &args.app_id);
    // clap gives at least one (the default when no --server is given).
    config.servers = args.servers;
    config.token_cmd = args.token_cmd;
    config.restart_cmd = args.restart_cmd;
    config.filter = args.filter;
    config.quick = args.quick;
    config.jobs = args.jobs;
    config.timing = Timing {
        ack_timeout: seconds(args.ack_timeout),
        grace: seconds(args.grace),
        invite_expiry: seconds(args.invite_expiry),
        token_warning: seconds(args.token_warning),
    };
    config.progress = Some(progress_line());
    config.tracer = args.trace.then(transcript);
    if let Err(error) = check::preflight(&config).await {
        eprintln!("rtm-tui check: {error}");
        eprintln!(
            "rtm-tui check: is a server listening there? `rtm-tui serve --ephemeral` starts one on {}",
            rtm::protocol::DEFAULT_URL
        );
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
        servers: args.servers.clone(),
        app_id: args.app_id.clone(),
        tracer: args.trace.then(transcript),
    };
    match script::run(&parsed, options).await {
        Ok(summary) => {
            println!(
                "{file}: passed, {} steps in {:.2}s against {}",
                summary.steps,
                summary.duration.as_secs_f64(),
                args.servers.join(", ")
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

pub async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let workload = match args.workload.parse() {
        Ok(workload) => workload,
        Err(error) => {
            eprintln!("rtm-tui bench: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    super::raise_fd_limit();
    // Without --server the bench measures our own server, started here without rate
    // limits so that the numbers show the server's capacity, not Agora's quotas.
    let local = if args.server.is_empty() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut config = rtm::server::Config::ephemeral();
        config.rate_limits = rtm::server::RateLimits::unlimited();
        Some(rtm::server::spawn(listener, config).await?)
    } else {
        None
    };
    let servers = if let Some(server) = &local {
        vec![bench::Server {
            url: server.url(),
            pid: Some(std::process::id()),
        }]
    } else {
        args.server
            .iter()
            .map(|url| bench::Server::at(url))
            .collect()
    };
    let config = BenchConfig {
        servers,
        in_process: local.is_some(),
        app_id: args.app_id,
        workload,
        users: args.users,
        channels: args.channels,
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        progress: std::io::stderr().is_terminal(),
        window: args.window,
    };
    let result = bench::run(&config).await;
    if let Some(server) = local {
        server.shutdown().await;
    }
    let report = match result {
        Ok(report) => report,
        Err(error @ (BenchError::Usage(_) | BenchError::Connect(_))) => {
            eprintln!("rtm-tui bench: {error}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, bench::to_svg(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn headless(args: HeadlessArgs) -> anyhow::Result<ExitCode> {
    let config = rtm::client::ClientConfig::new(&args.server, &args.app_id);
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    match rtm::qa::headless::run(config, input, tokio::io::stdout()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(rtm::qa::headless::HeadlessError::Client(error)) => {
            eprintln!("rtm-tui headless: {error}");
            Ok(ExitCode::from(USAGE_ERROR))
        }
        Err(error) => Err(error.into()),
    }
}

fn print_report(report: &Report, format: OutputFormat) {
    match format {
        OutputFormat::Text => print!("{}", report.to_text()),
        OutputFormat::Json => println!("{}", report.to_json()),
        OutputFormat::Junit => print!("{}", report.to_junit()),
    }
}

/// A live progress line on a terminal, naming the cases still running (oldest first); one
/// line per finished case otherwise (CI logs).
fn progress_line() -> check::Progress {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{pos}/{len} [{bar:30}] {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let running = std::sync::Mutex::new(Vec::<String>::new());
        Arc::new(move |done, total, name, report| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            let mut running = running.lock().expect("progress lock");
            match report {
                None => running.push(name.to_string()),
                Some(r) => {
                    running.retain(|n| n != name);
                    if r.outcome == Outcome::Fail {
                        bar.println(format!(
                            "FAIL {name}: {}",
                            r.reason.as_deref().unwrap_or("")
                        ));
                    }
                }
            }
            bar.set_message(running.join(" "));
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

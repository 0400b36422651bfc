//! `check`, `script`, `bench`, `headless`: the QA kit's commands. Arguments become the
//! library's configs here; the work happens in `rtm::qa`.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rtm::qa::bench::threshold;
use rtm::qa::bench::{self, BenchConfig, BenchError};
use rtm::qa::check::{self, CheckConfig, Timing};
use rtm::qa::raw::{TraceDirection, Tracer};
use rtm::qa::report::{CaseOutcome, Report};
use rtm::qa::script;
use rtm::qa::script::record::Recording;

use crate::cli::{BenchArgs, CheckArgs, HeadlessArgs, OutputFormat, ScriptArgs};

/// Exit code for usage and connection errors, as the QA commands document.
const USAGE_ERROR: u8 = 2;

pub(crate) async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        for case in check::all_cases() {
            println!("{:<32} {}", case.name, case.rule);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let seconds = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let mut config = CheckConfig::new(rtm::protocol::DEFAULT_URL, &args.app_id);
    let settings = check_settings(&args);
    // clap gives at least one (the default when no --server is given).
    config.servers = args.servers.clone();
    config.token_cmd = args.token_cmd;
    config.restart_cmd = args.restart_cmd;
    config.api_key = args.api_key;
    config.filter = args.filter;
    config.quick = args.quick;
    config.jobs = args.jobs;
    config.timing = Timing {
        ack_timeout: seconds(args.ack_timeout),
        grace: seconds(args.grace),
        invite_expiry: seconds(args.invite_expiry),
        token_warning: seconds(args.token_warning),
        attribute_expiry: seconds(args.attribute_expiry),
        media_expiry: seconds(args.media_expiry),
    };
    let (progress, timers) = progress_line();
    config.progress = Some(progress);
    config.timers = timers;
    config.tracer = args.trace.then(transcript);
    let version_probe = (args.report.is_some()).then(|| config.servers[0].clone());
    if let Err(error) = check::preflight(&config).await {
        // The error names the cause (nothing listening, TLS or not, wrong path).
        eprintln!("rtm-tui check: {error}");
        return Ok(ExitCode::from(USAGE_ERROR));
    }
    let report = check::run(config).await;
    if report.cases.is_empty() {
        eprintln!("rtm-tui check: no case matches the filter (see --list)");
        return Ok(ExitCode::from(USAGE_ERROR));
    }
    print_report(&report, args.format);
    if let Some(path) = &args.junit {
        write_file(path, &report.to_junit())?;
    }
    if let Some(path) = &args.report {
        let mut settings = settings;
        if let Some(url) = version_probe {
            settings.insert(0, server_version(&url, &args.app_id).await);
        }
        write_file(path, &rtm::qa::html::for_cases(&report, "check", settings))?;
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// A check run's settings as its HTML report lists them.
fn check_settings(args: &CheckArgs) -> Vec<(String, String)> {
    vec![
        ("servers".into(), args.servers.join(", ")),
        ("app id".into(), args.app_id.clone()),
        (
            "cases".into(),
            args.filter
                .as_ref()
                .map_or_else(|| "all".to_string(), |f| format!("names containing {f:?}")),
        ),
        ("quick (skip long timers)".into(), args.quick.to_string()),
        ("jobs".into(), args.jobs.to_string()),
        (
            "server timers assumed".into(),
            format!(
                "ack timeout {}s, grace {}s, invitation expiry {}s, token warning {}s, \
                 attribute expiry {}s, media expiry {}s",
                args.ack_timeout,
                args.grace,
                args.invite_expiry,
                args.token_warning,
                args.attribute_expiry,
                args.media_expiry
            ),
        ),
        (
            "command line".into(),
            std::env::args().collect::<Vec<_>>().join(" "),
        ),
    ]
}

/// ("server version", what the server at `url` says it is).
async fn server_version(url: &str, app_id: &str) -> (String, String) {
    let user = format!("qa-version-{}", std::process::id());
    let version = rtm::qa::raw::server_version(url, app_id, &user).await;
    (
        "server version".into(),
        version.unwrap_or_else(|| "not told (the login reply has no \"server\")".into()),
    )
}

fn write_file(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) async fn script(args: ScriptArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = &args.file else {
        // clap requires a scenario unless --record is given.
        let record = args.record.clone();
        return headless(HeadlessArgs {
            server: args.servers[0].clone(),
            app_id: args.app_id.clone(),
            record,
        })
        .await;
    };
    let file = path.display().to_string();
    let source = match std::fs::read_to_string(path) {
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
        base_dir: path.parent().map(std::path::Path::to_path_buf),
    };
    let began = std::time::Instant::now();
    let outcome = script::run(&parsed, options).await;
    let (code, case) = match &outcome {
        Ok(summary) => {
            println!(
                "{file}: passed, {} steps in {:.2}s against {}",
                summary.steps,
                summary.duration.as_secs_f64(),
                args.servers.join(", ")
            );
            (ExitCode::SUCCESS, (CaseOutcome::Pass, None, summary.steps))
        }
        Err(error) => {
            println!("{file}:{error}");
            (
                ExitCode::from(error.exit_code()),
                (CaseOutcome::Fail, Some(format!("{file}:{error}")), 0),
            )
        }
    };
    if let Some(path) = &args.report {
        let (outcome, reason, steps) = case;
        let report = Report {
            title: "rtm-script".into(),
            servers: args.servers.clone(),
            duration: began.elapsed(),
            cases: vec![rtm::qa::report::CaseReport {
                name: file.clone(),
                rule: if steps > 0 {
                    format!("the scenario's {steps} steps hold")
                } else {
                    "the scenario's steps hold".into()
                },
                outcome,
                reason,
                duration: began.elapsed(),
                placement: None,
            }],
        };
        let settings = vec![
            server_version(&args.servers[0], &args.app_id).await,
            ("scenario".into(), file.clone()),
            ("servers".into(), args.servers.join(", ")),
            ("app id".into(), args.app_id.clone()),
        ];
        write_file(path, &rtm::qa::html::for_cases(&report, "script", settings))?;
    }
    Ok(code)
}

/// Prints every frame to stderr: milliseconds since start, user, direction, frame.
fn transcript() -> Tracer {
    let started = std::time::Instant::now();
    Arc::new(move |label, direction, frame| {
        let arrow = match direction {
            TraceDirection::Sent => "->",
            TraceDirection::Received => "<-",
        };
        for line in frame.split('\n') {
            eprintln!(
                "{:>7.3} {label} {arrow} {line}",
                started.elapsed().as_secs_f64()
            );
        }
    })
}

pub(crate) async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
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
        // Nor the per-user media quota: the media workload measures transfers.
        config.media_user_bytes_per_hour = u64::MAX;
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
    let mut thresholds = args.thresholds.clone();
    if let Some(path) = &args.thresholds_file {
        match read_thresholds(path) {
            Ok(more) => thresholds.extend(more),
            Err(error) => {
                eprintln!("rtm-tui bench: {error}");
                return Ok(ExitCode::from(USAGE_ERROR));
            }
        }
    }
    let version = match (&args.report, servers.first()) {
        (Some(_), Some(server)) => Some(server_version(&server.url, &args.app_id).await),
        _ => None,
    };
    let config = BenchConfig {
        servers,
        in_process: local.is_some(),
        app_id: args.app_id.clone(),
        workload,
        users: args.users,
        channels: args.channels,
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        progress: std::io::stderr().is_terminal(),
        window: args.window,
        metrics: args.metrics.clone(),
        media_bytes: args.media_size,
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
    let mut report = report;
    report.thresholds = threshold::judge_all(&thresholds, &report);
    let verdicts = report.thresholds.clone();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
        if !verdicts.is_empty() {
            print!("\n{}", threshold::to_text(&verdicts));
        }
    }
    if let Some(stopped) = &report.stopped {
        eprintln!("rtm-tui bench: {stopped}");
    }
    if let Some(path) = &args.plot {
        write_file(path, &bench::to_svg(&report))?;
    }
    let urls = report.servers.iter().map(|s| s.url.clone()).collect();
    if let Some(path) = &args.junit {
        let cases = threshold::as_report(&verdicts, urls, report.duration_s);
        write_file(path, &cases.to_junit())?;
    }
    if let Some(path) = &args.report {
        let mut settings = vec![
            (
                "servers".into(),
                report
                    .servers
                    .iter()
                    .map(|s| s.url.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("run".into(), report.settings()),
            ("app id".into(), args.app_id.clone()),
            (
                "command line".into(),
                std::env::args().collect::<Vec<_>>().join(" "),
            ),
        ];
        if let Some(version) = version {
            settings.insert(0, version);
        }
        write_file(
            path,
            &rtm::qa::html::for_bench(&report, &verdicts, settings),
        )?;
    }
    let failed = report.stopped.is_some() || verdicts.iter().any(|v| !v.met);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The `thresholds` list of a TOML file.
fn read_thresholds(path: &std::path::Path) -> Result<Vec<threshold::Threshold>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        thresholds: Vec<String>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    file.thresholds
        .iter()
        .map(|t| t.parse().map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

pub(crate) async fn headless(args: HeadlessArgs) -> anyhow::Result<ExitCode> {
    let config = rtm::client::ClientConfig::new(&args.server, &args.app_id);
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    let recording = args.record.as_ref().map(|_| {
        Arc::new(std::sync::Mutex::new(Recording::new(
            &args.server,
            &args.app_id,
        )))
    });
    let ran =
        rtm::qa::headless::run_recorded(config, input, tokio::io::stdout(), recording.clone())
            .await;
    if let (Some(path), Some(recording)) = (&args.record, recording) {
        let scenario = recording
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .to_scenario();
        write_file(path, &scenario)?;
        eprintln!(
            "rtm-tui: recorded to {}; replay with `rtm-tui script {} --server URL --app-id {}`",
            path.display(),
            path.display(),
            args.app_id
        );
    }
    match ran {
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

/// A live progress line on a terminal, naming the cases still running (oldest first) with
/// a countdown for those waiting on a server timer, refreshed every second; one line per
/// finished case otherwise (CI logs), and one when a case starts a long wait.
fn progress_line() -> (check::RunProgress, check::CaseWaits) {
    if !std::io::stderr().is_terminal() {
        let progress: check::RunProgress = Arc::new(|done, total, name, report| {
            if let Some(r) = report {
                eprintln!("[{done}/{total}] {} {name}", r.outcome.label());
            }
        });
        let timers = check::CaseWaits::with_listener(Arc::new(|case, what, wait| {
            eprintln!("        {case}: waiting {}s for {what}", wait.as_secs());
        }));
        return (progress, timers);
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{pos}/{len} [{bar:30}] {wide_msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let timers = check::CaseWaits::default();
    let running = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // The running cases, a waiting one as `invite.expiry (the invitation expiry in 42s)`.
    let describe = {
        let (running, timers) = (running.clone(), timers.clone());
        move || {
            let running = running.lock().expect("progress lock");
            running
                .iter()
                .map(|name| match timers.left(name) {
                    Some((what, left)) => format!("{name} ({what} in {}s)", left.as_secs()),
                    None => name.clone(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let ticker = {
        let (bar, describe) = (bar.clone(), describe.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !bar.is_finished() {
                tick.tick().await;
                bar.set_message(describe());
            }
        })
    };
    let progress: check::RunProgress = Arc::new(move |done, total, name, report| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        {
            let mut running = running.lock().expect("progress lock");
            match report {
                None => running.push(name.to_string()),
                Some(r) => {
                    running.retain(|n| n != name);
                    if r.outcome == CaseOutcome::Fail {
                        bar.println(format!(
                            "FAIL {name}: {}",
                            r.reason.as_deref().unwrap_or("")
                        ));
                    }
                }
            }
        }
        bar.set_message(describe());
        if done == total && report.is_some() {
            bar.finish_and_clear();
            ticker.abort();
        }
    });
    (progress, timers)
}

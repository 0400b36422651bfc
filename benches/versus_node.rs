//! The yardstick: `rtm-tui serve` against a Node.js + `ws` server of the same protocol
//! subset (`benches/node-baseline/`), the same load, on the same box, in one run.
//!
//! `cargo bench --bench versus_node` builds the release binary, installs the baseline's
//! one npm dependency when it is missing (`npm ci`), then for every measure starts each
//! server as a fresh process of its own (ours with `--no-rate-limits`: the baseline has no
//! limits), runs `rtm-tui bench --json` against it as a third process, and stops it;
//! the two servers take turns, [`ROUNDS`] times, and each figure is the median of its
//! rounds. CPU time is the server process's own (user + system, from /proc) over the
//! measured phase, so a box shared with other work distorts it far less than
//! throughput. It prints one Markdown table with the ratios and whether each goal of the
//! speed issue holds: the README's "Side by side with Node" table is its output.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) every measure runs tiny and
//! once, so the harness cannot rot unseen; without `node` it says so and skips.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// Turns each server takes per measure in the full run.
const ROUNDS: usize = 3;
/// Seconds of load per run in the full run.
const SECONDS: u64 = 10;

/// The two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Rust,
    Node,
}

/// What a measure reads off a bench report, and which way is better.
#[derive(Debug, Clone, Copy)]
enum Figure {
    /// Server CPU microseconds per completed operation (lower is better).
    ServerCpuPerOp,
    /// Completed operations per second (higher is better).
    Throughput,
    /// Server memory per logged-in user at the end, KiB (lower is better).
    MemoryPerUser,
    /// Server memory the second half of the measured phase added, KiB (lower is better).
    MemoryGrowth,
    /// The generator's CPU per operation over the server's (lower is better).
    GeneratorShare,
}

/// One row of the table.
struct Measure {
    label: &'static str,
    goal: &'static str,
    /// `rtm-tui bench` arguments of the full run, and of the smoke run.
    full: &'static [&'static str],
    smoke: &'static [&'static str],
    figure: Figure,
    /// Holds when ours relates so to Node's (ratio ours / Node's, or our own figure).
    holds: fn(ours: f64, node: f64, report: &Value) -> bool,
}

const MEASURES: &[Measure] = &[
    Measure {
        label: "server CPU per channel delivery, 250 sends/s to 199 members (µs)",
        goal: "≤ 1/3 of Node's",
        full: &["--workload", "fanout", "--users", "200", "--rate", "250"],
        smoke: &["--workload", "fanout", "--users", "4", "--rate", "50"],
        figure: Figure::ServerCpuPerOp,
        holds: |ours, node, _| ours <= node / 3.0,
    },
    Measure {
        label: "server CPU per peer round trip, 5,000/s over 10 pairs, history kept (µs)",
        goal: "≤ 1/2 of Node's",
        full: &["--workload", "peer", "--users", "20", "--rate", "5000"],
        smoke: &["--workload", "peer", "--users", "2", "--rate", "100"],
        figure: Figure::ServerCpuPerOp,
        holds: |ours, node, _| ours <= node / 2.0,
    },
    Measure {
        label: "saturated fan-out, 1 sender to 999 members (deliveries/s)",
        goal: "≥ 3x Node's and ≥ 500,000/s, p99 ≤ 50 ms",
        full: &["--workload", "fanout", "--users", "1000"],
        smoke: &["--workload", "fanout", "--users", "4"],
        figure: Figure::Throughput,
        holds: |ours, node, report| ours >= 3.0 * node && ours >= 500_000.0 && p99(report) <= 50.0,
    },
    Measure {
        label: "saturated peer round trips, 10 pairs (round trips/s)",
        goal: "≥ 3x Node's",
        full: &["--workload", "peer", "--users", "20"],
        smoke: &["--workload", "peer", "--users", "2"],
        figure: Figure::Throughput,
        holds: |ours, node, _| ours >= 3.0 * node,
    },
    Measure {
        label: "server memory per idle logged-in connection, 10,000 (KiB)",
        goal: "≤ 10 KiB",
        full: &["--workload", "soak", "--users", "10000", "--rate", "1000"],
        smoke: &["--workload", "soak", "--users", "10", "--rate", "10"],
        figure: Figure::MemoryPerUser,
        holds: |ours, _, _| ours <= 10.0,
    },
    Measure {
        label: "server memory added by the second 15 s of 5,000 peer messages/s (KiB)",
        goal: "flat: nothing per message outlives its ack",
        full: &[
            "--workload",
            "peer",
            "--users",
            "20",
            "--rate",
            "5000",
            "--duration",
            "30",
        ],
        smoke: &["--workload", "peer", "--users", "2", "--rate", "100"],
        figure: Figure::MemoryGrowth,
        // 75,000 messages: under 512 KiB is less than 7 bytes a message (allocator noise).
        holds: |ours, _, _| ours < 512.0,
    },
    Measure {
        label: "`rtm-tui bench` CPU per delivery over the server's, saturated fan-out",
        goal: "≤ 0.5",
        full: &["--workload", "fanout", "--users", "1000"],
        smoke: &["--workload", "fanout", "--users", "4"],
        figure: Figure::GeneratorShare,
        holds: |ours, _, _| ours <= 0.5,
    },
];

fn p99(report: &Value) -> f64 {
    report["latency_ms"]["p99"]
        .as_f64()
        .unwrap_or(f64::INFINITY)
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let baseline = root.join("benches/node-baseline");
    if let Err(why) = prepare_node(&baseline) {
        println!("versus_node: skipped: {why}");
        return;
    }
    raise_fd_limit();
    let (rounds, seconds) = if full { (ROUNDS, SECONDS) } else { (1, 1) };
    if !full {
        println!("smoke run (tiny sizes, 1 s each; the labels name the full run's sizes):");
    }
    println!(
        "| measure | goal | rtm-tui | Node `ws` | rtm-tui / Node | goal met |\n|---|---|---:|---:|---:|---|"
    );
    for measure in MEASURES {
        let args = if full { measure.full } else { measure.smoke };
        let mut figures = [Vec::new(), Vec::new()];
        let mut last_ours = Value::Null;
        for _ in 0..rounds {
            for (slot, server) in [Server::Rust, Server::Node].into_iter().enumerate() {
                let report = run(server, &baseline, args, seconds);
                figures[slot].push(figure(measure.figure, &report));
                if server == Server::Rust {
                    last_ours = report;
                }
            }
        }
        let ours = median(&mut figures[0]);
        let node = median(&mut figures[1]);
        let met = if full {
            if (measure.holds)(ours, node, &last_ours) {
                "yes"
            } else {
                "**no**"
            }
        } else {
            "(smoke)"
        };
        let p99_note = match measure.figure {
            Figure::Throughput => format!(" (p99 {:.1} ms)", p99(&last_ours)),
            _ => String::new(),
        };
        println!(
            "| {} | {} | {}{p99_note} | {} | {:.2} | {met} |",
            measure.label,
            measure.goal,
            shown(ours),
            shown(node),
            ours / node
        );
    }
}

/// A figure with sensible precision.
fn shown(value: f64) -> String {
    if value >= 1000.0 {
        let whole = value.round() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{value:.2}")
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn figure(figure: Figure, report: &Value) -> f64 {
    let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let cpu = &report["cpu"];
    let memory = &report["memory"];
    match figure {
        Figure::ServerCpuPerOp => number(&cpu["server_us_per_op"]),
        Figure::Throughput => number(&report["throughput"]),
        Figure::MemoryPerUser => {
            (number(&memory["end_kib"]) - number(&memory["start_kib"]))
                / number(&report["users"]).max(1.0)
        }
        Figure::MemoryGrowth => number(&memory["end_kib"]) - number(&memory["load_half_kib"]),
        Figure::GeneratorShare => {
            number(&cpu["generator_us_per_op"]) / number(&cpu["server_us_per_op"])
        }
    }
}

/// Makes sure `node` runs and the baseline's `ws` is installed.
fn prepare_node(baseline: &Path) -> Result<(), String> {
    let version = Command::new("node").arg("--version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        return Err("node is not installed (Debian: apt-get install nodejs npm)".into());
    }
    if baseline.join("node_modules/ws/package.json").exists() {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(baseline)
        .status()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("npm ci in {} failed", baseline.display()))
    }
}

/// Starts `server` on a free loopback port, runs one bench against it, stops it.
fn run(server: Server, baseline: &Path, args: &[&str], seconds: u64) -> Value {
    let (mut child, url) = start(server, baseline);
    let mut command = Command::new(env!("CARGO_BIN_EXE_rtm-tui"));
    command
        .args(["bench", "--json", "--server", &url])
        .args(args);
    if !args.contains(&"--duration") {
        command.args(["--duration", &seconds.to_string()]);
    }
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("run rtm-tui bench");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        output.status.success(),
        "rtm-tui bench {args:?} against {server:?} failed"
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("bench prints JSON");
    assert!(
        report["completed"].as_u64().unwrap_or(0) > 0,
        "{server:?} {args:?}: nothing completed: {report}"
    );
    report
}

/// Starts a server process and returns it with its URL, read from its first line.
fn start(server: Server, baseline: &Path) -> (Child, String) {
    let mut command = match server {
        Server::Rust => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_rtm-tui"));
            c.args(["serve", "--ephemeral", "--no-rate-limits"]);
            c.args(["--listen", "127.0.0.1:0", "--log-level", "warn"]);
            c
        }
        Server::Node => {
            let mut c = Command::new("node");
            c.arg(baseline.join("server.js"));
            c.args(["--listen", "127.0.0.1:0"]);
            c
        }
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {server:?}: {e}"));
    let stdout = child.stdout.take().expect("piped");
    let (found, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("127.0.0.1:") {
                let addr: String = line[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                let _ = found.send(addr);
            }
        }
    });
    let addr = lines
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{server:?} did not say where it listens"));
    // Both print the line once bound.
    (child, format!("ws://{addr}/rtm/v1"))
}

/// Node inherits this process's open-file limit: 10,000 connections need more than 1024.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

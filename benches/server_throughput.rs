//! Server throughput, latency and memory: the README's "Benchmarks" table in one command.
//!
//! Runs `rtm-tui bench --json` (the binary Cargo built with this target) once per row of
//! [`SUITE`], each in a fresh process so that its memory figure is its own, and prints a
//! Markdown table. `cargo bench --bench server_throughput` runs the full suite (about two
//! minutes; build it with the release profile, as `cargo bench` does). Under
//! `cargo test --all-targets` (no `--bench` argument) every row runs tiny and for one
//! second, so the workloads cannot rot unseen. The soak row holds 3,000 connections, that
//! is 6,000 descriptors in one process: raise `ulimit -n` first if it is lower.

use std::process::Command;

use serde_json::Value;

/// One measured row: a workload and its sizes.
struct Row {
    label: &'static str,
    workload: &'static str,
    users: u32,
    channels: u32,
}

const SUITE: &[Row] = &[
    Row {
        label: "peer, 1 pair (one message in flight)",
        workload: "peer",
        users: 2,
        channels: 1,
    },
    Row {
        label: "peer, 10 pairs",
        workload: "peer",
        users: 20,
        channels: 1,
    },
    Row {
        label: "fan-out, 1 sender → 199 members",
        workload: "fanout",
        users: 200,
        channels: 1,
    },
    Row {
        label: "fan-out, 1 sender → 499 members",
        workload: "fanout",
        users: 500,
        channels: 1,
    },
    Row {
        label: "fan-out, 20 senders, 20 channels × 20",
        workload: "fanout",
        users: 400,
        channels: 20,
    },
    Row {
        label: "login storm, 20 workers",
        workload: "login",
        users: 20,
        channels: 1,
    },
    Row {
        label: "soak, 3,000 idle connections (1 ping/s each)",
        workload: "soak",
        users: 3000,
        channels: 1,
    },
];

/// Seconds of load per row in the full run.
const FULL_SECONDS: u64 = 10;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    if !full {
        println!("smoke run (tiny sizes, 1 s each; the labels name the full run's sizes):");
    }
    println!(
        "| workload | ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | peak RSS MiB | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in SUITE {
        let (users, channels, seconds) = if full {
            (row.users, row.channels, FULL_SECONDS)
        } else {
            // Smallest sizes each workload accepts.
            let channels = row.channels.min(2);
            (channels * 2, channels, 1)
        };
        let report = run(row.workload, users, channels, seconds);
        let latency = &report["latency_ms"];
        let ms = |key: &str| latency[key].as_f64().unwrap_or(f64::NAN);
        let peak_mib = report["memory"]["peak_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0;
        let errors: u64 = report["errors"]
            .as_object()
            .map_or(0, |e| e.values().filter_map(Value::as_u64).sum());
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {peak_mib:.0} | {errors} |",
            row.label,
            report["throughput"].as_f64().unwrap_or(f64::NAN),
            ms("p50"),
            ms("p90"),
            ms("p99"),
            ms("p999"),
            ms("max"),
        );
        assert!(
            report["completed"].as_u64().unwrap_or(0) > 0,
            "{}: nothing completed: {report}",
            row.label
        );
    }
}

/// Runs one `rtm-tui bench` against its in-process server and returns its JSON report.
fn run(workload: &str, users: u32, channels: u32, seconds: u64) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
        .args(["bench", "--json", "--workload", workload])
        .args(["--users", &users.to_string()])
        .args(["--channels", &channels.to_string()])
        .args(["--duration", &seconds.to_string()])
        .output()
        .expect("run rtm-tui bench");
    assert!(
        output.status.success(),
        "rtm-tui bench --workload {workload} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("bench prints JSON")
}

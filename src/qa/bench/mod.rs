//! `rtm-tui bench`: a load generator with named workloads, HDR latency percentiles,
//! throughput over time, server memory where it can be read, text/JSON output and an SVG plot.
//!
//! Workloads (in `workload.rs`) speak raw protocol over lean connections of their own
//! (`conn.rs`: hand-written WebSocket framing in `frame.rs`, members found by substring
//! search in `scan.rs`) so that what is measured is the server, not our client library nor
//! the generator's own parsing:
//! - `peer`: users in pairs send peer messages; latency is send → reply, which protocol v1
//!   gives only after the receiver's ack (a full round trip).
//! - `fanout`: users spread over channels, one sender per channel; latency is send → arrival
//!   at each member; throughput counts deliveries.
//! - `login`: connect + login + close, repeatedly; latency is connect → login reply.
//! - `soak`: hold N logged-in connections, each pinging every second; reports ping latency and
//!   the server's memory over time.
//!
//! Everything is bounded: users, rate and duration are capped ([`LIMITS`]) and every wait
//! has a timeout. Several servers (`--server` repeated) share the users round-robin
//! (`workload::server_of`: a peer pair straddles two servers). Memory (`memory.rs`) and
//! CPU time (`cpu.rs`): the bench reads `/proc/<pid>` of the process listening on each
//! URL's port when the URL is loopback, and sums over the servers' processes (each once),
//! also giving each server's CPU share; without `--server` it starts the reference server
//! in-process and reads its own (which then includes the load generator; the report says
//! which). The plot is hand-written SVG (`plot.rs`).

mod conn;
mod cpu;
pub(crate) mod frame;
mod memory;
mod plot;
mod scan;
mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

pub use memory::{MemorySample, MemorySource};
pub use plot::to_svg;
pub use workload::server_of;

/// Upper bounds on what one run may ask for.
pub const LIMITS: Limits = Limits {
    users: 20_000,
    channels: 1000,
    rate: 100_000,
    duration: Duration::from_secs(3600),
};

/// See [`LIMITS`].
pub struct Limits {
    pub users: u32,
    pub channels: u32,
    pub rate: u32,
    pub duration: Duration,
}

/// The named workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Peer,
    Fanout,
    Login,
    Soak,
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "peer" => Ok(Workload::Peer),
            "fanout" => Ok(Workload::Fanout),
            "login" => Ok(Workload::Login),
            "soak" => Ok(Workload::Soak),
            other => Err(format!(
                "unknown workload {other:?} (peer, fanout, login, soak)"
            )),
        }
    }
}

/// A server under load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub url: String,
    /// Its process, when it runs on this machine and `/proc` lets us read it: its CPU time
    /// and memory are measured.
    pub pid: Option<u32>,
}

impl Server {
    /// The server at `url`, its process looked up when the URL is loopback.
    pub fn at(url: &str) -> Server {
        Server {
            url: url.to_string(),
            pid: memory::pid_for_url(url),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The servers under load, at least one: users are spread over them ([`server_of`]).
    pub servers: Vec<Server>,
    /// The server runs inside this process: its CPU time and memory include the
    /// generator's.
    pub in_process: bool,
    pub app_id: String,
    pub workload: Workload,
    pub users: u32,
    pub channels: u32,
    /// Operations per second in all; 0 means as fast as replies allow.
    pub rate: u32,
    pub duration: Duration,
    /// Show an indicatif progress bar on stderr.
    pub progress: bool,
    /// Saturated runs: requests in flight per peer sender, or channel messages not yet
    /// received by every member per channel sender (`None`: the workload's default).
    pub window: Option<u32>,
}

/// Why a bench could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Connect(String),
}

impl BenchConfig {
    /// Checks the bounds and the workload's needs.
    pub fn validate(&self) -> Result<(), BenchError> {
        let usage = |m: String| Err(BenchError::Usage(m));
        if self.servers.is_empty() {
            return usage("the bench needs a server".into());
        }
        if self.users == 0 || self.users > LIMITS.users {
            return usage(format!("--users must be 1..={}", LIMITS.users));
        }
        if self.workload == Workload::Peer && self.users < 2 {
            return usage("the peer workload needs --users 2 or more (pairs)".into());
        }
        if self.channels == 0 || self.channels > LIMITS.channels {
            return usage(format!("--channels must be 1..={}", LIMITS.channels));
        }
        if self.workload == Workload::Fanout && self.users < self.channels * 2 {
            return usage("the fanout workload needs at least 2 users per channel".into());
        }
        if self.rate > LIMITS.rate {
            return usage(format!("--rate must be at most {}", LIMITS.rate));
        }
        if self.duration.is_zero() || self.duration > LIMITS.duration {
            return usage(format!(
                "--duration must be 1..={} seconds",
                LIMITS.duration.as_secs()
            ));
        }
        Ok(())
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// A bench's results.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub workload: Workload,
    /// The servers, in the order users were spread over them.
    pub servers: Vec<ServerReport>,
    pub users: u32,
    pub channels: u32,
    pub rate: u32,
    pub duration_s: f64,
    /// Operations started (messages sent, logins tried, pings sent).
    pub sent: u64,
    /// Operations completed successfully (for fanout: deliveries).
    pub completed: u64,
    /// Non-zero reply codes and local failures ("timeout", "closed"), with counts.
    pub errors: BTreeMap<String, u64>,
    /// Completed operations per second over the run.
    pub throughput: f64,
    pub latency_ms: Latency,
    /// Completions in each second of the run.
    pub timeline: Vec<u64>,
    /// Latency (ms) at percentiles for the plot: (percentile, ms).
    #[serde(skip)]
    pub distribution: Vec<(f64, f64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    /// CPU time per completed operation over the measured phase.
    pub cpu: CpuReport,
}

/// One server of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerReport {
    pub url: String,
    /// Its process, when found on this machine.
    pub pid: Option<u32>,
    /// Its process's CPU time per completed operation (of the whole run), in
    /// microseconds: its share of [`CpuReport::server_us_per_op`] (a process behind
    /// several URLs is counted there once).
    pub cpu_us_per_op: Option<f64>,
}

/// CPU time (user + system) per completed operation, in microseconds: of the servers
/// (summed over their processes, each once; only when every server's process is known:
/// loopback URLs) and of this load generator.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuReport {
    pub server_us_per_op: Option<f64>,
    pub generator_us_per_op: Option<f64>,
}

/// The servers' resident memory over the run (summed over their processes).
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// The (first) server process.
    pub pid: u32,
    /// Every server process summed, each once.
    pub pids: Vec<u32>,
    /// "server process", "2 server processes, summed", or "in-process server (includes
    /// the load generator)".
    pub what: String,
    pub start_kib: u64,
    pub peak_kib: u64,
    pub end_kib: u64,
    /// When the measured phase began (connections set up): `end_kib` minus this is what
    /// the load itself left behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_start_kib: Option<u64>,
    /// Half-way through the measured phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_half_kib: Option<u64>,
}

/// Shared measurement state of a run: latencies, per-second completions, errors, and
/// the CPU time of the server and of the generator over the measured phase.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderInner>>,
    /// Completions so far, bumped by every [`Tally`] as it goes (progress, settling).
    live: Arc<AtomicU64>,
    /// The server processes whose CPU time and memory are read, each once.
    server_pids: Vec<u32>,
    /// Whether those are every server's: only then is a sum over them reported.
    all_servers: bool,
    /// How long the measured phase lasts.
    duration: Duration,
}

struct RecorderInner {
    /// When the measured phase began (after connections are set up).
    started: Instant,
    /// CPU seconds (each server process, generator) when the measured phase began.
    cpu_at_start: (Vec<Option<f64>>, Option<f64>),
    /// The servers' resident memory when the measured phase began, and half-way through.
    rss_at_start: Option<u64>,
    rss_at_half: Option<u64>,
    histogram: Histogram<u64>,
    timeline: Vec<u64>,
    sent: u64,
    completed: u64,
    errors: BTreeMap<String, u64>,
}

/// One task's share of the measurements, kept without locks while the task runs and
/// merged into the [`Recorder`] at its end.
pub struct Tally {
    started: Instant,
    histogram: Histogram<u64>,
    timeline: Vec<u64>,
    pub sent: u64,
    pub completed: u64,
    errors: BTreeMap<String, u64>,
    live: Arc<AtomicU64>,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Tally {
    /// One completed operation that took `latency`.
    pub fn done(&mut self, latency: Duration) {
        let second = self.started.elapsed().as_secs() as usize;
        self.done_in_second(latency, second);
    }

    /// [`Tally::done`] for a caller that read the clock already.
    pub fn done_in_second(&mut self, latency: Duration, second: usize) {
        self.latency(latency);
        self.count(1, second);
    }

    /// Records one completion's latency; [`Tally::count`] counts it (once per frame for a
    /// caller that has many).
    pub fn latency(&mut self, latency: Duration) {
        self.histogram
            .saturating_record((latency.as_micros() as u64).max(1));
    }

    /// Counts `completed` operations done in `second` of the run.
    pub fn count(&mut self, completed: u64, second: usize) {
        if completed == 0 {
            return;
        }
        self.completed += completed;
        self.live.fetch_add(completed, Ordering::Relaxed);
        if self.timeline.len() <= second {
            self.timeline.resize(second + 1, 0);
        }
        self.timeline[second] += completed;
    }

    pub fn error(&mut self, what: impl Into<String>) {
        self.errors(what, 1);
    }

    /// Counts `count` failures of one kind.
    pub fn errors(&mut self, what: impl Into<String>, count: u64) {
        *self.errors.entry(what.into()).or_default() += count;
    }
}

impl Recorder {
    /// A recorder that reads the CPU time of `server_pids` over the run; `all_servers`
    /// says whether they are every server's (and so may be summed).
    pub fn new(server_pids: Vec<u32>, all_servers: bool, duration: Duration) -> Self {
        Recorder {
            inner: Arc::new(Mutex::new(RecorderInner {
                started: Instant::now(),
                cpu_at_start: (Vec::new(), None),
                rss_at_start: None,
                rss_at_half: None,
                histogram: new_histogram(),
                timeline: Vec::new(),
                sent: 0,
                completed: 0,
                errors: BTreeMap::new(),
            })),
            live: Arc::default(),
            server_pids,
            all_servers,
            duration,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecorderInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn started(&self) -> Instant {
        self.lock().started
    }

    /// Starts the measured phase now: set-up time (logins, joins) is not counted.
    pub fn restart(&self) {
        let cpu = self.cpu_now();
        let rss = self.servers_rss();
        let mut inner = self.lock();
        inner.started = Instant::now();
        inner.cpu_at_start = cpu;
        inner.rss_at_start = rss;
        if !self.server_pids.is_empty() {
            // Half-way through: what the second half adds is what the load leaves behind
            // once caches and pools have warmed up.
            let (recorder, half) = (self.clone(), self.duration / 2);
            tokio::spawn(async move {
                tokio::time::sleep(half).await;
                let rss = recorder.servers_rss();
                recorder.lock().rss_at_half = rss;
            });
        }
    }

    /// The servers' memory in all, when every server's process is read.
    fn servers_rss(&self) -> Option<u64> {
        let all = self.all_servers && !self.server_pids.is_empty();
        all.then(|| memory::total_rss_kib(&self.server_pids))
            .flatten()
    }

    fn cpu_now(&self) -> (Vec<Option<f64>>, Option<f64>) {
        (
            self.server_pids
                .iter()
                .map(|&pid| cpu::seconds(pid))
                .collect(),
            cpu::seconds(std::process::id()),
        )
    }

    /// A tally for one task; its completions count toward [`Recorder::completed`].
    pub fn tally(&self) -> Tally {
        self.tally_counting(Arc::clone(&self.live))
    }

    /// A tally whose completions are not deliveries (a fan-out sender's replies).
    pub fn quiet_tally(&self) -> Tally {
        self.tally_counting(Arc::default())
    }

    fn tally_counting(&self, live: Arc<AtomicU64>) -> Tally {
        Tally {
            started: self.started(),
            histogram: new_histogram(),
            timeline: Vec::new(),
            sent: 0,
            completed: 0,
            errors: BTreeMap::new(),
            live,
        }
    }

    /// Adds a finished task's tally.
    pub fn merge(&self, tally: Tally) {
        let mut inner = self.lock();
        let _ = inner.histogram.add(&tally.histogram);
        if inner.timeline.len() < tally.timeline.len() {
            inner.timeline.resize(tally.timeline.len(), 0);
        }
        for (second, count) in tally.timeline.iter().enumerate() {
            inner.timeline[second] += count;
        }
        inner.sent += tally.sent;
        inner.completed += tally.completed;
        for (what, count) in tally.errors {
            *inner.errors.entry(what).or_default() += count;
        }
    }

    /// Adds what a fan-out sender sent and its errors ("send ..."), not its replies.
    pub fn merge_sends(&self, tally: Tally) {
        let mut inner = self.lock();
        inner.sent += tally.sent;
        for (what, count) in tally.errors {
            *inner.errors.entry(format!("send {what}")).or_default() += count;
        }
    }

    /// Counts `count` failures of one kind.
    pub fn errors(&self, what: &str, count: u64) {
        *self.lock().errors.entry(what.to_string()).or_default() += count;
    }

    /// Completions so far, for the progress bar.
    pub fn completed(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    fn report(
        &self,
        config: &BenchConfig,
        elapsed: Duration,
        mut memory: Option<MemoryReport>,
    ) -> BenchReport {
        let cpu_at_end = self.cpu_now();
        let inner = self.lock();
        if let Some(memory) = &mut memory {
            memory.load_start_kib = inner.rss_at_start;
            memory.load_half_kib = inner.rss_at_half;
        }
        let h = &inner.histogram;
        let ms = |micros: u64| micros as f64 / 1000.0;
        let latency = Latency {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        };
        // Percentiles spaced evenly on the 1/(1-p) scale: 0, 68.4, 90, 96.8, 99, ... 99.99.
        let distribution = (0..=40)
            .map(|k| {
                let p = 1.0 - 10f64.powf(-f64::from(k) / 10.0);
                (p * 100.0, ms(h.value_at_quantile(p)))
            })
            .collect();
        // Load is offered for the configured duration; replies still in flight at its end
        // complete during a short drain and count towards it.
        let seconds = elapsed.min(config.duration).as_secs_f64().max(1e-3);
        let per_op = |start: Option<f64>, end: Option<f64>| {
            let used = end? - start?;
            Some(used * 1e6 / (inner.completed.max(1) as f64))
        };
        // Per server process; a server whose process is unknown has none.
        let server_cpu: Vec<Option<f64>> = (0..self.server_pids.len())
            .map(|i| {
                let start = inner.cpu_at_start.0.get(i).copied().flatten();
                per_op(start, cpu_at_end.0.get(i).copied().flatten())
            })
            .collect();
        let all = self.all_servers && !server_cpu.is_empty();
        let cpu = CpuReport {
            server_us_per_op: all.then(|| server_cpu.iter().copied().sum()).flatten(),
            generator_us_per_op: per_op(inner.cpu_at_start.1, cpu_at_end.1),
        };
        let servers = config
            .servers
            .iter()
            .map(|server| ServerReport {
                url: server.url.clone(),
                pid: server.pid,
                cpu_us_per_op: server
                    .pid
                    .and_then(|pid| self.server_pids.iter().position(|&p| p == pid))
                    .and_then(|i| server_cpu[i]),
            })
            .collect();
        BenchReport {
            workload: config.workload,
            servers,
            users: config.users,
            channels: config.channels,
            rate: config.rate,
            duration_s: seconds,
            sent: inner.sent,
            completed: inner.completed,
            errors: inner.errors.clone(),
            throughput: inner.completed as f64 / seconds,
            latency_ms: latency,
            timeline: inner.timeline.clone(),
            distribution,
            memory,
            cpu,
        }
    }
}

/// Runs the configured workload to its end and returns the report.
pub async fn run(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    config.validate()?;
    let mut server_pids: Vec<u32> = Vec::new();
    for pid in config.servers.iter().filter_map(|server| server.pid) {
        if !server_pids.contains(&pid) {
            server_pids.push(pid);
        }
    }
    let all_servers = config.servers.iter().all(|server| server.pid.is_some());
    let recorder = Recorder::new(server_pids.clone(), all_servers, config.duration);
    // Memory is summed over every server's process, or not reported.
    let sampler = all_servers
        .then(|| MemorySource::of(server_pids, config.in_process))
        .flatten()
        .map(memory::Sampler::start);
    let bar = config.progress.then(|| progress_bar(config.duration));
    let ticker = bar.clone().map(|bar| {
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let elapsed = recorder.started().elapsed();
                bar.set_position(elapsed.as_millis() as u64);
                let rate = recorder.completed() as f64 / elapsed.as_secs_f64().max(1e-3);
                bar.set_message(format!("{} done, {rate:.0}/s", recorder.completed()));
            }
        })
    });
    let result = workload::run(config, &recorder).await;
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let elapsed = recorder.started().elapsed();
    let memory = match sampler {
        Some(sampler) => sampler.finish().await,
        None => None,
    };
    result?;
    Ok(recorder.report(
        config,
        elapsed.min(config.duration + workload::DRAIN),
        memory,
    ))
}

fn progress_bar(duration: Duration) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(duration.as_millis() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

impl BenchReport {
    /// A human summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let urls: Vec<&str> = self.servers.iter().map(|s| s.url.as_str()).collect();
        let against = match urls.as_slice() {
            [one] => (*one).to_string(),
            many => format!(
                "{} servers, users spread round-robin: {}",
                many.len(),
                many.join(", ")
            ),
        };
        let _ = writeln!(
            out,
            "workload {:?} against {against}: {} users, {} channels, rate {}, {:.1}s",
            self.workload,
            self.users,
            self.channels,
            if self.rate == 0 {
                "max".to_string()
            } else {
                format!("{}/s", self.rate)
            },
            self.duration_s
        );
        let _ = writeln!(
            out,
            "sent {}  completed {}  throughput {:.1}/s",
            self.sent, self.completed, self.throughput
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3}, n={})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.count
        );
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(out, "errors  {}", list.join(", "));
        }
        let us = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2} µs"));
        let _ = writeln!(
            out,
            "CPU per op  server {}  generator {}",
            us(self.cpu.server_us_per_op),
            us(self.cpu.generator_us_per_op)
        );
        if self.servers.len() > 1 {
            for (i, server) in self.servers.iter().enumerate() {
                let again = self.servers[..i]
                    .iter()
                    .any(|earlier| earlier.pid.is_some() && earlier.pid == server.pid);
                let pid = match server.pid {
                    None => "not on this machine".to_string(),
                    Some(pid) if again => format!("pid {pid}, counted once above"),
                    Some(pid) => format!("pid {pid}"),
                };
                let _ = writeln!(
                    out,
                    "  server {} ({pid}): CPU per op {}",
                    server.url,
                    us(server.cpu_us_per_op)
                );
            }
        }
        if let Some(m) = &self.memory {
            let pids: Vec<String> = m.pids.iter().map(u32::to_string).collect();
            let _ = writeln!(
                out,
                "memory of pid {} ({}): start {} KiB, peak {} KiB, end {} KiB ({:.1} KiB per user at the end)",
                pids.join("+"),
                m.what,
                m.start_kib,
                m.peak_kib,
                m.end_kib,
                m.end_kib.saturating_sub(m.start_kib) as f64 / f64::from(self.users.max(1))
            );
        }
        out
    }
}

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
//! - `media` (`media.rs`, over HTTP with the QA kit's `media` helpers): each user uploads a
//!   file and downloads it again; latency is each whole transfer, plus MiB/s.
//!
//! Everything is bounded: users, rate and duration are capped ([`LIMITS`]) and every wait
//! has a timeout. Several servers (`--server` repeated) share the users round-robin
//! (`placement::server_of`: a peer pair straddles two servers). Memory (`memory.rs`) and
//! CPU time (`cpu.rs`): the bench reads `/proc/<pid>` of the process listening on each
//! URL's port when the URL is loopback, and sums over the servers' processes (each once),
//! also giving each server's CPU share; without `--server` it starts the reference server
//! in-process and reads its own (which then includes the load generator; the report says
//! which). The plot is hand-written SVG (`plot.rs`).

mod conn;
mod cpu;
pub(crate) mod frame;
mod media;
mod memory;
pub mod metrics;
mod pace;
mod placement;
pub mod plot;
mod scan;
pub mod threshold;
mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::protocol::codes::Family;

pub use memory::{MemorySample, MemorySource};
pub use placement::server_of;
pub use plot::to_svg;

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
    /// Files: uploads and downloads over HTTP (rtm-tui's media addition).
    Media,
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "peer" => Ok(Workload::Peer),
            "fanout" => Ok(Workload::Fanout),
            "login" => Ok(Workload::Login),
            "soak" => Ok(Workload::Soak),
            "media" => Ok(Workload::Media),
            other => Err(format!(
                "unknown workload {other:?} (peer, fanout, login, soak, media)"
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
    /// Where each server's Prometheus metrics are read (`None`: `/metrics` beside each
    /// WebSocket URL, [`metrics::metrics_url`]).
    pub metrics: Option<String>,
    /// The media workload: bytes of each file uploaded and downloaded.
    pub media_bytes: u64,
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
    /// Where the servers' metrics are read: the one given, else beside each distinct
    /// server.
    fn metrics_urls(&self) -> Vec<String> {
        if let Some(url) = &self.metrics {
            return vec![url.clone()];
        }
        let mut urls: Vec<String> = Vec::new();
        for url in self
            .servers
            .iter()
            .filter_map(|s| metrics::metrics_url(&s.url))
        {
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        urls
    }

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
        if self.workload == Workload::Media
            && !(1..=crate::protocol::limits::MAX_MEDIA_BYTES).contains(&self.media_bytes)
        {
            return usage(format!(
                "--media-size must be 1..={} bytes",
                crate::protocol::limits::MAX_MEDIA_BYTES
            ));
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
    /// The media workload: the bytes of each file, and MiB moved per second (uploads and
    /// downloads together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mib_per_s: Option<f64>,
    pub latency_ms: Latency,
    /// Completions in each second of the run.
    pub timeline: Vec<u64>,
    /// Failures (error answers, timeouts, closed connections) in each second of the run.
    pub error_timeline: Vec<u64>,
    /// Why the run stopped before its duration (the server refused too much as "too
    /// often"), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The `--rate` that the server's rate limits would let through, when it stopped so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_hint: Option<u32>,
    /// Latency (ms) at percentiles for the plot: (percentile, ms), as far as the
    /// samples support.
    #[serde(skip)]
    pub distribution: Vec<(f64, f64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryReport>,
    /// CPU time per completed operation over the measured phase.
    pub cpu: CpuReport,
    /// The servers' own metrics (`GET /metrics`), when they serve them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_metrics: Vec<metrics::ServerMetrics>,
    /// The run's thresholds, each met or missed (`--threshold`; judged after the run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<threshold::Verdict>,
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

/// A run stops early when, for [`REFUSED_FOR`] on end, more than this share of the
/// answers in the last second were "too often": the server's rate limits, not its
/// capacity, are being measured, and every further request is wasted.
pub const REFUSED_SHARE: f64 = 0.05;
/// See [`REFUSED_SHARE`]: long enough to see past a limit's first window (Agora's send
/// limit counts 3 s), short enough not to flood the server for the whole run.
pub const REFUSED_FOR: Duration = Duration::from_secs(3);

/// Counts every tally bumps as it goes, read live by the progress line and the watch
/// that stops a run a server's rate limits refuse.
#[derive(Clone, Default)]
struct Live {
    completed: Arc<AtomicU64>,
    /// Replies received, whatever their code.
    answers: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    too_often: Arc<AtomicU64>,
}

/// Shared measurement state of a run: latencies, per-second completions, errors, and
/// the CPU time of the server and of the generator over the measured phase.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderInner>>,
    /// Completions, errors and "too often" answers so far, bumped by every [`Tally`] as it
    /// goes (progress, settling, the rate-limit watch).
    live: Live,
    /// Set to stop every task of the run before its duration is over.
    stop: Arc<tokio::sync::watch::Sender<bool>>,
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
    error_timeline: Vec<u64>,
    sent: u64,
    completed: u64,
    errors: BTreeMap<String, u64>,
    /// Why the run stopped before its duration, and the `--rate` that would fit.
    stopped: Option<(String, Option<u32>)>,
}

/// One task's share of the measurements, kept without locks while the task runs and
/// merged into the [`Recorder`] at its end.
pub struct Tally {
    started: Instant,
    histogram: Histogram<u64>,
    timeline: Vec<u64>,
    /// Failures in each second of the run.
    error_timeline: Vec<u64>,
    pub sent: u64,
    pub completed: u64,
    errors: BTreeMap<String, u64>,
    /// Where completions are counted live (a fan-out sender's replies are not).
    live_completed: Arc<AtomicU64>,
    live: Live,
    /// Turns true when the run is stopped early.
    pub stop: tokio::sync::watch::Receiver<bool>,
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
        self.live_completed.fetch_add(completed, Ordering::Relaxed);
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
        self.live.errors.fetch_add(count, Ordering::Relaxed);
        let second = self.started.elapsed().as_secs() as usize;
        if self.error_timeline.len() <= second {
            self.error_timeline.resize(second + 1, 0);
        }
        self.error_timeline[second] += count;
    }

    /// A reply of `code` (not 0) to a request of `family`: counted under its code and
    /// meaning ("code 5 sending too often"), and live when it is the family's "too often".
    pub fn refused(&mut self, family: Family, code: u32) {
        self.answered();
        if family.too_often() == Some(code) {
            self.live.too_often.fetch_add(1, Ordering::Relaxed);
        }
        self.error(error_name(family, code));
    }
}

impl Tally {
    /// Counts one reply, whatever its code (what the share of "too often" is out of).
    pub fn answered(&self) {
        self.live.answers.fetch_add(1, Ordering::Relaxed);
    }
}

/// How an error answer is named in reports: its code and what it means in its family.
pub fn error_name(family: Family, code: u32) -> String {
    format!("code {code} {}", family.describe(code))
}

/// Adds `more` second by second to `into`.
fn add_timeline(into: &mut Vec<u64>, more: &[u64]) {
    if into.len() < more.len() {
        into.resize(more.len(), 0);
    }
    for (second, count) in more.iter().enumerate() {
        into[second] += count;
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
                error_timeline: Vec::new(),
                sent: 0,
                completed: 0,
                errors: BTreeMap::new(),
                stopped: None,
            })),
            live: Live::default(),
            stop: Arc::new(tokio::sync::watch::channel(false).0),
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
        self.tally_counting(Arc::clone(&self.live.completed))
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
            error_timeline: Vec::new(),
            sent: 0,
            completed: 0,
            errors: BTreeMap::new(),
            live_completed: live,
            live: self.live.clone(),
            stop: self.stop.subscribe(),
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
        add_timeline(&mut inner.error_timeline, &tally.error_timeline);
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
        add_timeline(&mut inner.error_timeline, &tally.error_timeline);
        for (what, count) in tally.errors {
            *inner.errors.entry(format!("send {what}")).or_default() += count;
        }
    }

    /// Counts `count` failures of one kind.
    pub fn errors(&self, what: &str, count: u64) {
        *self.lock().errors.entry(what.to_string()).or_default() += count;
        self.live.errors.fetch_add(count, Ordering::Relaxed);
    }

    /// Completions so far, for the progress bar.
    pub fn completed(&self) -> u64 {
        self.live.completed.load(Ordering::Relaxed)
    }

    /// (errors, of which "too often") so far.
    fn live_errors(&self) -> (u64, u64) {
        (
            self.live.errors.load(Ordering::Relaxed),
            self.live.too_often.load(Ordering::Relaxed),
        )
    }

    /// Stops every task of the run now, saying why and which `--rate` would fit.
    fn stop_early(&self, why: String, rate_hint: Option<u32>) {
        self.lock().stopped = Some((why, rate_hint));
        self.stop.send_replace(true);
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
        // Percentiles spaced evenly on the 1/(1-p) scale (0, 20.6, 36.9, ... 90, ... 99),
        // only as far as the samples support (plot::nines_supported): 99.9% of 1,800
        // latencies is not a measurement.
        let nines = plot::nines_supported(h.len()).min(6.0);
        let steps = (nines * 20.0).floor() as u32;
        let distribution = (0..=steps)
            .map(|k| f64::from(k) / 20.0)
            .chain(((nines * 20.0).fract() > 0.0).then_some(nines))
            .map(|x| {
                let p = 1.0 - 10f64.powf(-x);
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
            media_bytes: (config.workload == Workload::Media).then_some(config.media_bytes),
            mib_per_s: (config.workload == Workload::Media).then(|| {
                (inner.completed * config.media_bytes) as f64 / seconds / f64::from(1 << 20)
            }),
            latency_ms: latency,
            timeline: inner.timeline.clone(),
            error_timeline: inner.error_timeline.clone(),
            stopped: inner.stopped.as_ref().map(|(why, _)| why.clone()),
            rate_hint: inner.stopped.as_ref().and_then(|(_, hint)| *hint),
            distribution,
            memory,
            cpu,
            server_metrics: Vec::new(),
            thresholds: Vec::new(),
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
    let metrics_urls = config.metrics_urls();
    let mut metrics_before = Vec::new();
    for url in &metrics_urls {
        metrics_before.push(metrics::read(url).await);
    }
    let bar = config.progress.then(|| progress_bar(config.duration));
    let watch = tokio::spawn(watch_run(recorder.clone(), bar.clone()));
    let result = workload::run(config, &recorder).await;
    watch.abort();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let elapsed = recorder.started().elapsed();
    let memory = match sampler {
        Some(sampler) => sampler.finish().await,
        None => None,
    };
    result?;
    let mut report = recorder.report(
        config,
        elapsed.min(config.duration + workload::DRAIN),
        memory,
    );
    for (url, before) in metrics_urls.iter().zip(metrics_before) {
        if let Some(after) = metrics::read(url).await {
            report
                .server_metrics
                .push(metrics::compare(url, before, after));
        }
    }
    Ok(report)
}

/// One look of [`watch_run`] at the live counts.
#[derive(Clone, Copy)]
struct ProgressSample {
    at: Duration,
    completed: u64,
    answers: u64,
    too_often: u64,
}

/// Every quarter second until aborted: the progress line (completions, rate, errors and
/// how many of them were "too often"), and the early stop of a run whose requests the
/// server's rate limits refuse ([`REFUSED_SHARE`] for [`REFUSED_FOR`]).
async fn watch_run(recorder: Recorder, bar: Option<indicatif::ProgressBar>) {
    const TICK: Duration = Duration::from_millis(250);
    let mut tick = tokio::time::interval(TICK);
    let mut history: std::collections::VecDeque<ProgressSample> = std::collections::VecDeque::new();
    let mut refused_since: Option<Duration> = None;
    let window = (REFUSED_FOR.as_millis() / TICK.as_millis()) as usize + 1;
    let second = (1000 / TICK.as_millis()) as usize;
    loop {
        tick.tick().await;
        let at = recorder.started().elapsed();
        let completed = recorder.completed();
        let (errors, too_often) = recorder.live_errors();
        let answers = recorder.live.answers.load(Ordering::Relaxed);
        if let Some(bar) = &bar {
            bar.set_position(at.as_millis() as u64);
            bar.set_message(progress_message(completed, at, errors, too_often));
        }
        // The measured phase (re)started after set-up: the clock went back.
        if history.back().is_some_and(|last| last.at > at) {
            history.clear();
            refused_since = None;
        }
        let now = ProgressSample {
            at,
            completed,
            answers,
            too_often,
        };
        history.push_back(now);
        if history.len() > window {
            history.pop_front();
        }
        let Some(ago) = history.iter().rev().nth(second).copied() else {
            continue;
        };
        let refused = now.too_often - ago.too_often;
        let asked = now.answers - ago.answers;
        if refused == 0 || (refused as f64) <= REFUSED_SHARE * asked as f64 {
            refused_since = None;
            continue;
        }
        let since = *refused_since.get_or_insert(at);
        if at.saturating_sub(since) < REFUSED_FOR {
            continue;
        }
        let first = history.front().copied().unwrap_or(now);
        let seconds = now.at.saturating_sub(first.at).as_secs_f64().max(1e-3);
        let let_through = (now.completed - first.completed) as f64 / seconds;
        let hint = round_down(let_through * 0.9);
        recorder.stop_early(
            format!(
                "stopped after {:.1}s: the server answered {refused} of the last second's \
                 {asked} requests \"too often\" (its rate limits) and let {let_through:.0}/s \
                 through; --rate {hint} would fit",
                at.as_secs_f64()
            ),
            Some(hint),
        );
        return;
    }
}

/// The progress line's text.
fn progress_message(completed: u64, at: Duration, errors: u64, too_often: u64) -> String {
    let rate = completed as f64 / at.as_secs_f64().max(1e-3);
    let mut message = format!("{completed} done, {rate:.0}/s");
    if errors > 0 {
        let _ = write!(message, ", {errors} errors");
        if too_often > 0 {
            let _ = write!(message, " ({too_often} \"too often\")");
        }
    }
    message
}

/// `value` rounded down to two significant digits (at least 1): a rate to suggest.
fn round_down(value: f64) -> u32 {
    if value < 1.0 {
        return 1;
    }
    let magnitude = 10f64.powi(value.log10().floor() as i32 - 1).max(1.0);
    ((value / magnitude).floor() * magnitude) as u32
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
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

impl MemoryReport {
    /// What the run left behind per user, in words ("12.5 KiB more per user at the
    /// end", or "no growth" when the end is within a tenth of a KiB per user of the start).
    pub fn per_user(&self, users: u32) -> String {
        let grown = self.end_kib.saturating_sub(self.start_kib) as f64 / f64::from(users.max(1));
        if grown < 0.1 {
            "no growth per user by the end".to_string()
        } else {
            format!("{grown:.1} KiB more per user at the end")
        }
    }
}

impl BenchReport {
    /// The run's settings in one line: workload, users, channels (fanout), rate, duration.
    pub fn settings(&self) -> String {
        let channels = if self.workload == Workload::Fanout {
            format!(", {} channel{}", self.channels, plural(self.channels))
        } else {
            String::new()
        };
        format!(
            "{:?} workload: {} user{}{channels}, rate {}, {:.1}s",
            self.workload,
            self.users,
            plural(self.users),
            if self.rate == 0 {
                "as fast as replies allow".to_string()
            } else {
                format!("{}/s", self.rate)
            },
            self.duration_s
        )
    }

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
        let _ = writeln!(out, "{} against {against}", self.settings());
        let _ = writeln!(
            out,
            "sent {}  completed {}  throughput {:.1}/s",
            self.sent, self.completed, self.throughput
        );
        if let (Some(bytes), Some(mib)) = (self.media_bytes, self.mib_per_s) {
            let _ = writeln!(
                out,
                "files of {}: {mib:.1} MiB/s moved (each upload and download is one operation)",
                crate::protocol::message::human_size(bytes)
            );
        }
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
        if let Some(stopped) = &self.stopped {
            let _ = writeln!(out, "{stopped}");
        }
        let us = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2} µs"));
        let _ = writeln!(
            out,
            "CPU time per completed operation ({} completed of {} sent)  server {}  generator {}",
            self.completed,
            self.sent,
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
                "memory of pid {} ({}): start {} KiB, peak {} KiB, end {} KiB ({})",
                pids.join("+"),
                m.what,
                m.start_kib,
                m.peak_kib,
                m.end_kib,
                m.per_user(self.users)
            );
        }
        out
    }
}

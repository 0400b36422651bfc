//! `rtm-tui check`: a conformance suite for protocol v1, one named case per rule.
//!
//! Cases speak raw protocol JSON through [`RawConn`], so they test
//! any server. Each case gets a [`Ctx`] that mints user and channel ids unique to the run and
//! the case, so cases never see each other's traffic. The cases live in one module per area
//! of docs/protocol.md (`session`, `framing`, `peer`, `channel`, `presence`, `attributes`,
//! `history`, `invitations`, `media`); a new rule is a new `async fn` there plus one line in that
//! module's `cases()`. `ctx.rs` holds [`Ctx`]; `expect.rs` the [`Expect`] assertions on a
//! connection. [`run`] runs the selected cases concurrently, at most
//! [`CheckConfig::jobs`] at a time, and returns a
//! [`Report`] in the suite's order. Cases are independent (own
//! users, channels and invitation ids; every limit they meet is per connection), except
//! that all their logins share one pace ([`LoginPace`]); a case that waits seconds is
//! marked [`Case::slow`] and starts first, and one that would disturb the others (a server
//! restart) is marked [`Case::alone`] and runs by itself after them. Given several servers
//! (the nodes of a cluster), the users of each case take turns over them
//! ([`Placement`](crate::qa::placement)), so the same cases check that the nodes behave as
//! one server.

/// Fails the case with a formatted reason.
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::qa::check::CaseError::Fail(format!($($arg)*))) };
}
/// Fails the case unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => { if !$cond { $crate::qa::check::fail!($($arg)*); } };
}
pub(crate) use fail;

mod attributes;
mod channel;
mod ctx;
mod expect;
mod framing;
mod hardening;
mod history;
mod invitations;
mod media;
mod peer;
mod presence;
pub mod rest;
mod session;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinSet;

use super::raw::{RawConn, RawError, Tracer};

use super::report::{CaseOutcome, CaseReport, Report};
pub use ctx::{token_from_command, Ctx, LoginPace, LOGINS_PER_SECOND};
pub use expect::{
    all_answered, carries, event_matches, json_contains, message_ids, rate_limited, text, wait_all,
    Expect,
};
pub use hardening::RawSocket;

/// How long an expected event may take to arrive.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a case listens to conclude that an event did not come.
pub const QUIET: Duration = Duration::from_millis(500);
/// With `--quick`, cases that must wait longer than this for a server timer are skipped.
pub const QUICK_LIMIT: Duration = Duration::from_secs(10);
/// How long a restarted server may take to accept connections again.
pub const RESTART_WAIT: Duration = Duration::from_secs(15);
/// Slack added to a server timer before a case gives up waiting for its effect.
pub const TIMER_SLACK: Duration = Duration::from_secs(5);
/// Cases running at once unless told otherwise: enough that the quick cases finish while
/// the slow ones wait for their timers, few enough that a busy machine still answers
/// within the cases' timeouts.
pub const DEFAULT_JOBS: usize = 16;

/// The server's timers as the suite assumes them (docs/protocol.md's values unless told).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ack_timeout: Duration,
    pub grace: Duration,
    pub invite_expiry: Duration,
    /// How long before a token expires the server warns with `token_privilege_will_expire`.
    pub token_warning: Duration,
    /// How long a channel's attributes outlive its last member.
    pub attribute_expiry: Duration,
    /// How long an uploaded file is kept (docs/protocol.md: 7 days; the expiry case
    /// waits for it only when it is at most 5 minutes).
    pub media_expiry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ack_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            invite_expiry: Duration::from_secs(60),
            token_warning: Duration::from_secs(30),
            attribute_expiry: Duration::from_secs(300),
            media_expiry: crate::protocol::limits::MEDIA_EXPIRY,
        }
    }
}

/// Progress callback: (cases done, cases selected, case name, its report once finished).
pub type RunProgress = Arc<dyn Fn(usize, usize, &str, Option<&CaseReport>) + Send + Sync>;

/// Told when a case starts waiting for a server timer: (case, what it waits for, how long).
pub type TimerListener = Arc<dyn Fn(&str, &str, Duration) + Send + Sync>;

/// The server timers that running cases wait for (ack timeout, grace, invitation expiry,
/// token expiry), so that a progress line can count down instead of sitting still for a
/// minute. Cheap to clone; all clones share one table.
#[derive(Clone, Default)]
pub struct CaseWaits {
    /// Case name → (what it waits for, when that should happen).
    waiting: Arc<std::sync::Mutex<std::collections::BTreeMap<String, (String, Instant)>>>,
    listener: Option<TimerListener>,
}

impl CaseWaits {
    /// Waits that also tell `listener` when a wait starts (a CI log's line).
    pub fn with_listener(listener: TimerListener) -> Self {
        CaseWaits {
            waiting: Arc::default(),
            listener: Some(listener),
        }
    }

    fn table(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, (String, Instant)>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `case` waits `wait` from now for `what`.
    pub fn start(&self, case: &str, what: &str, wait: Duration) {
        self.table()
            .insert(case.to_string(), (what.to_string(), Instant::now() + wait));
        if let Some(listener) = &self.listener {
            listener(case, what, wait);
        }
    }

    /// `case` waits no more.
    pub fn end(&self, case: &str) {
        self.table().remove(case);
    }

    /// What `case` waits for and how long is left, if it waits.
    pub fn left(&self, case: &str) -> Option<(String, Duration)> {
        self.table().get(case).map(|(what, until)| {
            (
                what.clone(),
                until.saturating_duration_since(Instant::now()),
            )
        })
    }
}

/// What `check` was asked to do.
#[derive(Clone)]
pub struct CheckConfig {
    /// The server URLs: one, or the nodes of one cluster (at least one).
    pub servers: Vec<String>,
    pub app_id: String,
    /// Shell command printing a token; the user id is appended as its last argument and
    /// `RTM_CHECK_EXPIRE` (seconds) says how long the token should live.
    pub token_cmd: Option<String>,
    /// Shell command that restarts the server and returns once it is restarting (keeping
    /// its store); enables the case that cached messages survive a restart.
    pub restart_cmd: Option<String>,
    pub filter: Option<String>,
    pub timing: Timing,
    /// Skip cases that wait longer than [`QUICK_LIMIT`] for a server timer.
    pub quick: bool,
    /// Cases running at once (at least 1).
    pub jobs: usize,
    /// Per-case progress, called when a case starts (`None`) and when it ends (`Some`),
    /// with the number of cases ended so far; cases end in any order.
    pub progress: Option<RunProgress>,
    pub tracer: Option<Tracer>,
    /// The server timers running cases wait for, for a countdown.
    pub timers: CaseWaits,
    /// `KEY:SECRET` of the server's REST API: the `rest.*` cases run (skipped without).
    pub api_key: Option<String>,
}

impl CheckConfig {
    /// A configuration for one server with docs/protocol.md's timers and no filter; set
    /// [`CheckConfig::servers`] to spread the users of each case over several.
    pub fn new(url: impl Into<String>, app_id: impl Into<String>) -> Self {
        CheckConfig {
            servers: vec![url.into()],
            app_id: app_id.into(),
            token_cmd: None,
            restart_cmd: None,
            filter: None,
            timing: Timing::default(),
            quick: false,
            jobs: DEFAULT_JOBS,
            progress: None,
            tracer: None,
            timers: CaseWaits::default(),
            api_key: None,
        }
    }
}

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseError {
    Fail(String),
    Skip(String),
}

impl From<RawError> for CaseError {
    fn from(error: RawError) -> Self {
        CaseError::Fail(error.to_string())
    }
}

pub type CaseResult = Result<(), CaseError>;
type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// One named rule and the code that checks it.
pub struct Case {
    pub name: &'static str,
    pub rule: &'static str,
    /// Waits seconds (for a server timer, or to pace itself): started before the others.
    pub slow: bool,
    /// Disturbs every other case (it restarts the server): runs after them, by itself.
    pub alone: bool,
    /// Time the case may take beyond the usual limit (work of its own, such as hundreds
    /// of logins at the run's pace).
    pub extra: Duration,
    run: Box<dyn Fn(Ctx) -> CaseFuture + Send + Sync>,
}

impl Case {
    /// Marks a case that waits seconds, so that it starts first and a run takes about as
    /// long as its slowest case.
    #[must_use]
    pub fn slow(mut self) -> Self {
        self.slow = true;
        self
    }

    /// Gives a case `extra` time beyond the usual limit (`case_limit`).
    #[must_use]
    pub fn taking(mut self, extra: Duration) -> Self {
        self.extra = extra;
        self
    }

    /// Marks a case that must run by itself.
    #[must_use]
    pub fn alone(mut self) -> Self {
        self.alone = true;
        self
    }
}

/// Builds a [`Case`] from an `async fn(Ctx) -> CaseResult`.
pub fn case<F, Fut>(name: &'static str, rule: &'static str, run: F) -> Case
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CaseResult> + Send + 'static,
{
    Case {
        name,
        rule,
        slow: false,
        alone: false,
        extra: Duration::ZERO,
        run: Box::new(move |cx| Box::pin(run(cx))),
    }
}

/// Builds a [`Case`] that checks one refusal: a fresh user sends `op(cx)` and must get
/// `code`.
pub fn refusal(name: &'static str, rule: &'static str, code: u32, op: fn(&Ctx) -> Value) -> Case {
    case(name, rule, move |cx| async move {
        let (mut alice, _) = cx.fresh("alice").await?;
        alice.code(op(&cx), code).await?;
        Ok(())
    })
}

/// Every case of the suite, in a stable order.
pub fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(session::cases());
    cases.extend(framing::cases());
    cases.extend(peer::cases());
    cases.extend(channel::cases());
    cases.extend(presence::cases());
    cases.extend(attributes::cases());
    cases.extend(history::cases());
    cases.extend(invitations::cases());
    cases.extend(media::cases());
    cases.extend(hardening::cases());
    cases.extend(rest::cases());
    cases
}

/// A run id short enough to keep ids within 64 bytes and distinct between runs.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut n = (nanos ^ u128::from(std::process::id()) << 20) % 36u128.pow(5);
    let mut id = String::new();
    for _ in 0..5 {
        let digit = (n % 36) as u32;
        id.push(char::from_digit(digit, 36).unwrap_or('x'));
        n /= 36;
    }
    id
}

/// Checks that every server accepts a WebSocket at all (usage errors are told apart from
/// failures).
pub async fn preflight(config: &CheckConfig) -> Result<(), RawError> {
    for url in &config.servers {
        let conn = RawConn::connect(url, "preflight", None).await?;
        conn.close();
    }
    Ok(())
}

/// Runs the selected cases, at most [`CheckConfig::jobs`] at a time: slow cases first,
/// cases that must run alone last and by themselves. The report lists them in the suite's
/// order.
pub async fn run(config: CheckConfig) -> Report {
    let config = Arc::new(config);
    let run = run_id();
    let logins = Arc::new(LoginPace::default());
    let selected: Vec<(usize, Case)> = all_cases()
        .into_iter()
        .enumerate()
        .filter(|(_, c)| config.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    let total = selected.len();
    let started = Instant::now();
    // The order of starting; a stable sort keeps the suite's order within each group.
    let mut queue: Vec<usize> = (0..total).collect();
    queue.sort_by_key(|&i| (selected[i].1.alone, !selected[i].1.slow));
    let mut queue = queue.into_iter().peekable();
    let mut running = JoinSet::new();
    let mut slots = HashMap::new();
    let mut reports: Vec<Option<CaseReport>> = vec![None; total];
    let mut done = 0;
    loop {
        while let Some(&next) = queue.peek() {
            let (index, case) = &selected[next];
            let full = running.len() >= config.jobs.max(1);
            if full || (case.alone && !running.is_empty()) {
                break;
            }
            queue.next();
            if let Some(progress) = &config.progress {
                progress(done, total, case.name, None);
            }
            let prefix = format!("qa{run}-{index}");
            let cx = Ctx::new(config.clone(), logins.clone(), prefix, case.name);
            let task = running.spawn(run_case(case, cx));
            slots.insert(task.id(), next);
        }
        let Some(joined) = running.join_next_with_id().await else {
            break;
        };
        let (slot, report) = match joined {
            Ok((id, report)) => (slots[&id], report),
            Err(error) => {
                let case = &selected[slots[&error.id()]].1;
                let report = CaseReport {
                    name: case.name.to_string(),
                    rule: case.rule.to_string(),
                    outcome: CaseOutcome::Fail,
                    reason: Some(format!("the case panicked: {error}")),
                    duration: Duration::ZERO,
                    placement: None,
                };
                (slots[&error.id()], report)
            }
        };
        done += 1;
        if let Some(progress) = &config.progress {
            progress(done, total, selected[slot].1.name, Some(&report));
        }
        reports[slot] = Some(report);
    }
    Report {
        title: "rtm-check".into(),
        servers: config.servers.clone(),
        duration: started.elapsed(),
        cases: reports.into_iter().flatten().collect(),
    }
}

/// Runs one case within its time limit and reports how it went.
fn run_case(case: &Case, cx: Ctx) -> impl Future<Output = CaseReport> + Send + 'static {
    let (name, rule) = (case.name, case.rule);
    let config = cx.config.clone();
    let prefix = cx.prefix.clone();
    let placement = cx.placement.clone();
    let limit = case_limit(&config.timing) + case.extra;
    let future = (case.run)(cx);
    async move {
        let began = Instant::now();
        let ended = tokio::time::timeout(limit, future).await;
        config.timers.end(name);
        let (outcome, reason) = match ended {
            Ok(Ok(())) => (CaseOutcome::Pass, None),
            Ok(Err(CaseError::Fail(reason))) => (CaseOutcome::Fail, Some(reason)),
            Ok(Err(CaseError::Skip(reason))) => (CaseOutcome::Skip, Some(reason)),
            Err(_) => (
                CaseOutcome::Fail,
                Some(format!("did not finish within {}s", limit.as_secs())),
            ),
        };
        CaseReport {
            name: name.to_string(),
            rule: rule.to_string(),
            outcome,
            reason,
            duration: began.elapsed(),
            placement: (config.servers.len() > 1).then(|| {
                placement
                    .lock()
                    .expect("placement lock")
                    .describe(&format!("{prefix}-"))
            }),
        }
    }
}

/// The most a case may take: its slowest server timer plus room for the exchange.
fn case_limit(timing: &Timing) -> Duration {
    timing
        .ack_timeout
        .max(timing.grace)
        .max(timing.invite_expiry)
        .max(timing.token_warning)
        .max(timing.attribute_expiry)
        .max(timing.media_expiry.min(Duration::from_secs(300)))
        + Duration::from_secs(30)
}

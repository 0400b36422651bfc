//! `rtm-tui check`: a conformance suite for protocol v1, one named case per rule.
//!
//! Cases speak raw protocol JSON through [`RawConn`](crate::qa::raw::RawConn), so they test
//! any server. Each case gets a [`Ctx`] that mints user and channel ids unique to the run and
//! the case, so cases never see each other's traffic. The cases live in one module per area
//! of protocol.md (`session`, `framing`, `peer`, `channel`, `presence`, `attributes`,
//! `invitations`, `history`); a new rule is a new `async fn` there plus one line in that
//! module's `cases()`. [`run`] runs the selected cases one after the other and returns a
//! [`Report`](crate::qa::report::Report).

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
mod framing;
mod peer;
mod presence;
mod session;

mod history_invite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::raw::{code_of, op_name, RawConn, RawError, Tracer};
use super::report::{CaseReport, Outcome, Report};

/// How long an expected event may take to arrive.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a case listens to conclude that an event did not come.
pub const QUIET: Duration = Duration::from_millis(500);
/// With `--quick`, cases that must wait longer than this for a server timer are skipped.
pub const QUICK_LIMIT: Duration = Duration::from_secs(10);
/// Slack added to a server timer before a case gives up waiting for its effect.
pub const TIMER_SLACK: Duration = Duration::from_secs(5);

/// The server's timers as the suite assumes them (protocol.md's values unless told).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ack_timeout: Duration,
    pub grace: Duration,
    pub invite_expiry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ack_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            invite_expiry: Duration::from_secs(60),
        }
    }
}

/// Progress callback: (cases done, cases selected, case name, its report once finished).
pub type Progress = Arc<dyn Fn(usize, usize, &str, Option<&CaseReport>) + Send + Sync>;

/// What `check` was asked to do.
#[derive(Clone)]
pub struct CheckConfig {
    pub url: String,
    pub app_id: String,
    /// Shell command printing a token; the user id is appended as its last argument and
    /// `RTM_CHECK_EXPIRE` (seconds) says how long the token should live.
    pub token_cmd: Option<String>,
    pub filter: Option<String>,
    pub timing: Timing,
    /// Skip cases that wait longer than [`QUICK_LIMIT`] for a server timer.
    pub quick: bool,
    /// Per-case progress, called before (`None`) and after (`Some`) each case.
    pub progress: Option<Progress>,
    pub tracer: Option<Tracer>,
}

impl CheckConfig {
    /// A configuration with protocol.md's timers and no filter.
    pub fn new(url: impl Into<String>, app_id: impl Into<String>) -> Self {
        CheckConfig {
            url: url.into(),
            app_id: app_id.into(),
            token_cmd: None,
            filter: None,
            timing: Timing::default(),
            quick: false,
            progress: None,
            tracer: None,
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
    run: Box<dyn Fn(Ctx) -> CaseFuture + Send + Sync>,
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
        run: Box::new(move |cx| Box::pin(run(cx))),
    }
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
    cases.extend(history_invite::cases());
    cases
}

/// What a case works with: the configuration and ids unique to this run and case.
pub struct Ctx {
    config: Arc<CheckConfig>,
    prefix: String,
}

impl Ctx {
    /// A user id unique to this run and case, e.g. `q7k2-12-alice`.
    pub fn user(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// A channel id unique to this run and case.
    pub fn channel(&self, name: &str) -> String {
        format!("{}-#{name}", self.prefix)
    }

    pub fn app_id(&self) -> &str {
        &self.config.app_id
    }

    pub fn timing(&self) -> Timing {
        self.config.timing
    }

    pub fn has_tokens(&self) -> bool {
        self.config.token_cmd.is_some()
    }

    /// Skips the case unless `--token-cmd` was given.
    pub fn need_tokens(&self) -> CaseResult {
        if self.has_tokens() {
            Ok(())
        } else {
            Err(CaseError::Skip(
                "needs tokens from an app with a certificate (give --token-cmd)".into(),
            ))
        }
    }

    /// Skips the case in `--quick` mode when it must wait `wait` for a server timer.
    pub fn need_time(&self, wait: Duration) -> CaseResult {
        if self.config.quick && wait > QUICK_LIMIT {
            Err(CaseError::Skip(format!(
                "waits {}s for a server timer; run without --quick",
                wait.as_secs()
            )))
        } else {
            Ok(())
        }
    }

    /// A token for `user` from `--token-cmd`, valid for `expire_secs`; `None` without one.
    pub async fn token(&self, user: &str, expire_secs: u64) -> Result<Option<String>, CaseError> {
        let Some(cmd) = &self.config.token_cmd else {
            return Ok(None);
        };
        token_from_command(cmd, user, expire_secs)
            .await
            .map(Some)
            .map_err(CaseError::Fail)
    }

    /// Opens a connection (not logged in).
    pub async fn connect(&self, label: &str) -> Result<RawConn, CaseError> {
        Ok(RawConn::connect(&self.config.url, label, self.config.tracer.clone()).await?)
    }

    /// The login request for `user`, with a token where the run has them.
    pub async fn login_op(&self, user: &str) -> Result<Value, CaseError> {
        let mut op = json!({"op": "login", "app_id": self.config.app_id, "user": user});
        if let Some(token) = self.token(user, 3600).await? {
            op["token"] = json!(token);
        }
        Ok(op)
    }

    /// Connects and logs `user` in, expecting code 0.
    pub async fn login(&self, user: &str) -> Result<RawConn, CaseError> {
        let mut conn = self.connect(user).await?;
        let op = self.login_op(user).await?;
        conn.ok(op).await?;
        Ok(conn)
    }

    /// Logs in a fresh user named after `role`; returns the connection and the user id.
    pub async fn fresh(&self, role: &str) -> Result<(RawConn, String), CaseError> {
        let user = self.user(role);
        Ok((self.login(&user).await?, user))
    }
}

/// Runs `cmd USER` in a shell and returns its trimmed standard output.
pub async fn token_from_command(cmd: &str, user: &str, expire_secs: u64) -> Result<String, String> {
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} \"$0\""))
        .arg(user)
        .env("RTM_CHECK_EXPIRE", expire_secs.to_string())
        .output()
        .await
        .map_err(|e| format!("cannot run --token-cmd: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "--token-cmd failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if token.is_empty() {
        return Err("--token-cmd printed nothing".into());
    }
    Ok(token)
}

/// Expectations on a raw connection, failing the case with a readable reason.
pub trait Expect {
    /// Sends `op`, expects reply code `code`, returns the reply.
    fn code(
        &mut self,
        op: Value,
        code: u32,
    ) -> impl Future<Output = Result<Value, CaseError>> + Send;
    /// Sends `op`, expects code 0.
    fn ok(&mut self, op: Value) -> impl Future<Output = Result<Value, CaseError>> + Send;
    /// Waits for event `name` whose fields include `fields` (a JSON subset).
    fn event(
        &mut self,
        name: &str,
        fields: Value,
    ) -> impl Future<Output = Result<Value, CaseError>> + Send;
    /// Fails if event `name` with `fields` arrives within `within`.
    fn no_event(
        &mut self,
        name: &str,
        fields: Value,
        within: Duration,
    ) -> impl Future<Output = CaseResult> + Send;
}

impl Expect for RawConn {
    async fn code(&mut self, op: Value, code: u32) -> Result<Value, CaseError> {
        let name = op_name(&op);
        let reply = self.call(op).await?;
        let got = code_of(&reply);
        if got != code {
            let reason = reply.get("reason").and_then(Value::as_str).unwrap_or("");
            fail!(
                "{name} by {}: expected code {code}, got {got} {reason:?}",
                self.label()
            );
        }
        if got != 0 && reply.get("reason").and_then(Value::as_str).is_none() {
            fail!("{name}: reply with code {got} carries no \"reason\"");
        }
        Ok(reply)
    }

    async fn ok(&mut self, op: Value) -> Result<Value, CaseError> {
        self.code(op, 0).await
    }

    async fn event(&mut self, name: &str, fields: Value) -> Result<Value, CaseError> {
        let found = self
            .next_event(EVENT_TIMEOUT, |e| event_matches(e, name, &fields))
            .await;
        if let Some(event) = found {
            return Ok(event);
        }
        let seen: Vec<String> = self.drain_events().iter().map(Value::to_string).collect();
        fail!(
            "{}: no {name} matching {fields} within {}s (other events: {})",
            self.label(),
            EVENT_TIMEOUT.as_secs(),
            if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            }
        )
    }

    async fn no_event(&mut self, name: &str, fields: Value, within: Duration) -> CaseResult {
        if let Some(event) = self
            .next_event(within, |e| event_matches(e, name, &fields))
            .await
        {
            fail!("{}: unexpected {event}", self.label());
        }
        Ok(())
    }
}

/// True when `event` is named `name` and contains `fields` (recursively, as a subset).
pub fn event_matches(event: &Value, name: &str, fields: &Value) -> bool {
    event.get("event").and_then(Value::as_str) == Some(name) && json_contains(event, fields)
}

/// True when every key of `pattern` is in `value` with a matching value (objects compared
/// as subsets, everything else by equality).
pub fn json_contains(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| have.get(k).is_some_and(|h| json_contains(h, w))),
        _ => value == pattern,
    }
}

/// Checks a burst of replies against a rate limit: each answered `normal` or `limited`, and
/// at least `min` were limited. An unexpected code is reported with its reason.
pub fn rate_limited(
    replies: &[Value],
    normal: u32,
    limited: u32,
    min: usize,
    what: &str,
) -> CaseResult {
    if let Some(odd) = replies
        .iter()
        .find(|r| ![normal, limited].contains(&code_of(r)))
    {
        fail!("{what}: a reply was {odd}; only {normal} or {limited} (too often) expected");
    }
    let count = replies.iter().filter(|r| code_of(r) == limited).count();
    ensure!(
        count >= min,
        "{what}: {count} of {} answered {limited} (too often); at least {min} expected",
        replies.len()
    );
    Ok(())
}

/// A text message as the wire carries it.
pub fn text(body: &str) -> Value {
    json!({"type": "text", "text": body})
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

/// Checks that `url` accepts a WebSocket at all (usage errors are told apart from failures).
pub async fn preflight(config: &CheckConfig) -> Result<(), RawError> {
    let conn = RawConn::connect(&config.url, "preflight", None).await?;
    conn.close();
    Ok(())
}

/// Runs the selected cases one after the other.
pub async fn run(config: CheckConfig) -> Report {
    let config = Arc::new(config);
    let run = run_id();
    let selected: Vec<(usize, Case)> = all_cases()
        .into_iter()
        .enumerate()
        .filter(|(_, c)| config.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    let total = selected.len();
    let started = Instant::now();
    let mut cases = Vec::with_capacity(total);
    for (position, (index, case)) in selected.into_iter().enumerate() {
        if let Some(progress) = &config.progress {
            progress(position, total, case.name, None);
        }
        let cx = Ctx {
            config: config.clone(),
            prefix: format!("qa{run}-{index}"),
        };
        let limit = case_limit(&config.timing);
        let began = Instant::now();
        let result = tokio::time::timeout(limit, (case.run)(cx)).await;
        let (outcome, reason) = match result {
            Ok(Ok(())) => (Outcome::Pass, None),
            Ok(Err(CaseError::Fail(reason))) => (Outcome::Fail, Some(reason)),
            Ok(Err(CaseError::Skip(reason))) => (Outcome::Skip, Some(reason)),
            Err(_) => (
                Outcome::Fail,
                Some(format!("did not finish within {}s", limit.as_secs())),
            ),
        };
        let report = CaseReport {
            name: case.name.to_string(),
            rule: case.rule.to_string(),
            outcome,
            reason,
            duration: began.elapsed(),
        };
        if let Some(progress) = &config.progress {
            progress(position + 1, total, case.name, Some(&report));
        }
        cases.push(report);
    }
    Report {
        title: "rtm-check".into(),
        target: config.url.clone(),
        duration: started.elapsed(),
        cases,
    }
}

/// The most a case may take: its slowest server timer plus room for the exchange.
fn case_limit(timing: &Timing) -> Duration {
    timing
        .ack_timeout
        .max(timing.grace)
        .max(timing.invite_expiry)
        + Duration::from_secs(30)
}

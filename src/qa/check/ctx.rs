//! What a case works with: [`Ctx`] (ids unique to the run and case, connections, logins,
//! tokens from `--token-cmd`, server restarts through `--restart-cmd`), and the
//! [`LoginPace`] all cases of a run share. With several servers, every connection is
//! placed by [`Placement`]'s rule: the users of a case take turns over the servers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{CaseError, CaseResult, CheckConfig, Expect, Timing, QUICK_LIMIT, RESTART_WAIT};
use crate::qa::placement::Placement;
use crate::qa::raw::RawConn;

/// Login attempts a whole run makes in any one second, all cases together. A server may
/// cap logins per client address (the reference server: 50 per second, unless the client
/// is on loopback), and concurrent cases would pass such a cap within a second of
/// starting; the pace keeps well under it.
pub const LOGINS_PER_SECOND: usize = 40;

/// Spaces the login attempts of a run so that no second holds more than
/// [`LOGINS_PER_SECOND`]. Shared by every case of a run.
#[derive(Debug, Default)]
pub struct LoginPace {
    /// When recent and reserved logins go out, ascending (reservations may lie ahead).
    slots: Mutex<VecDeque<Instant>>,
}

impl LoginPace {
    /// Waits until one more login may go out.
    async fn take(&self) {
        let slot = self.reserve(Instant::now());
        tokio::time::sleep_until(slot.into()).await;
    }

    /// Reserves the earliest instant from `now` at which a login keeps the pace.
    fn reserve(&self, now: Instant) -> Instant {
        const SECOND: Duration = Duration::from_secs(1);
        let mut slots = self.slots.lock().expect("login pace lock");
        while slots.front().is_some_and(|t| *t + SECOND <= now) {
            slots.pop_front();
        }
        let mut slot = slots.back().map_or(now, |last| now.max(*last));
        if slots.len() >= LOGINS_PER_SECOND {
            slot = slot.max(slots[slots.len() - LOGINS_PER_SECOND] + SECOND);
        }
        slots.push_back(slot);
        slot
    }
}

/// What a case works with: the configuration and ids unique to this run and case.
pub struct Ctx {
    pub(super) config: Arc<CheckConfig>,
    pub(super) prefix: String,
    /// Where this case's connections went; the runner keeps a handle for the report.
    pub(super) placement: Arc<Mutex<Placement>>,
    logins: Arc<LoginPace>,
    /// The case's name (for the countdown of its timers).
    case: &'static str,
}

impl Ctx {
    /// The context of one case: `prefix` makes its ids unique; `logins` is the run's pace.
    pub(super) fn new(
        config: Arc<CheckConfig>,
        logins: Arc<LoginPace>,
        prefix: String,
        case: &'static str,
    ) -> Ctx {
        let placement = Arc::new(Mutex::new(Placement::new(config.servers.clone())));
        Ctx {
            config,
            prefix,
            placement,
            logins,
            case,
        }
    }

    /// Says that the case now waits `wait` for the server's `what` (a countdown shows it).
    pub fn waiting_for(&self, what: &str, wait: Duration) {
        self.config.timers.start(self.case, what, wait);
    }

    /// The server for a new connection labelled `label` (a user id, or a name for a
    /// connection that never logs in), and the label it carries in traces and reasons:
    /// with several servers, `alice@2` says it went to the second.
    fn place(&self, label: &str) -> (String, String) {
        self.placement.lock().expect("placement lock").seat(label)
    }

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

    /// A token for `user` from `--token-cmd`, valid for `expire_secs`; skips the case
    /// without one.
    pub async fn need_token(&self, user: &str, expire_secs: u64) -> Result<String, CaseError> {
        self.need_tokens()?;
        Ok(self
            .token(user, expire_secs)
            .await?
            .expect("need_tokens checked"))
    }

    /// Whether `--restart-cmd` was given.
    pub fn restart_server_available(&self) -> bool {
        self.config.restart_cmd.is_some()
    }

    /// Restarts the server (every server, when there are several: the command decides)
    /// with `--restart-cmd`; skips the case without one.
    pub async fn restart_server(&self) -> CaseResult {
        let Some(cmd) = &self.config.restart_cmd else {
            return Err(CaseError::Skip(
                "needs a way to restart the server (give --restart-cmd)".into(),
            ));
        };
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .status()
            .await
            .map_err(|e| CaseError::Fail(format!("cannot run --restart-cmd: {e}")))?;
        ensure!(status.success(), "--restart-cmd failed ({status})");
        Ok(())
    }

    /// Logs `user` in, retrying the connection for up to [`RESTART_WAIT`] while a restarted
    /// server comes back.
    pub async fn login_after_restart(&self, user: &str) -> Result<RawConn, CaseError> {
        let deadline = Instant::now() + RESTART_WAIT;
        let (url, label) = self.place(user);
        loop {
            match RawConn::connect(&url, label.as_str(), self.config.tracer.clone()).await {
                Ok(mut conn) => {
                    conn.ok(self.login_op(user).await?).await?;
                    return Ok(conn);
                }
                Err(e) if Instant::now() >= deadline => {
                    fail!(
                        "the server did not come back within {}s: {e}",
                        RESTART_WAIT.as_secs()
                    )
                }
                // Polling is the only way to see a listener come back.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Opens a connection (not logged in), to the server [`Placement`] picks for `label`.
    pub async fn connect(&self, label: &str) -> Result<RawConn, CaseError> {
        Ok(self.connect_placed(label).await?.0)
    }

    /// [`Ctx::connect`], also giving the URL of the server it went to.
    async fn connect_placed(&self, label: &str) -> Result<(RawConn, String), CaseError> {
        let (url, label) = self.place(label);
        let conn = RawConn::connect(&url, label, self.config.tracer.clone()).await?;
        Ok((conn, url))
    }

    /// The login request for `user`, with a token where the run has them. Call it right
    /// before sending: it waits for the run's login pace.
    pub async fn login_op(&self, user: &str) -> Result<Value, CaseError> {
        let token = self.token(user, 3600).await?;
        Ok(self.login_request(user, token.as_deref()).await)
    }

    /// A login request for `user` with `token` (none: no token field). Call it right before
    /// sending: it waits for the run's login pace, which every login attempt of a case
    /// must go through.
    pub async fn login_request(&self, user: &str, token: Option<&str>) -> Value {
        self.logins.take().await;
        let mut op = json!({"op": "login", "app_id": self.config.app_id, "user": user});
        if let Some(token) = token {
            op["token"] = json!(token);
        }
        op
    }

    /// Connects and logs `user` in, expecting code 0.
    pub async fn login(&self, user: &str) -> Result<RawConn, CaseError> {
        Ok(self.login_placed(user).await?.0)
    }

    /// [`Ctx::login`], also giving the URL of the server the user is on (what a user
    /// does over HTTP there, such as files, must go to that server).
    pub async fn login_placed(&self, user: &str) -> Result<(RawConn, String), CaseError> {
        let (mut conn, url) = self.connect_placed(user).await?;
        let op = self.login_op(user).await?;
        conn.ok(op).await?;
        Ok((conn, url))
    }

    /// Logs in a fresh user named after `role`; returns the connection and the user id.
    pub async fn fresh(&self, role: &str) -> Result<(RawConn, String), CaseError> {
        let user = self.user(role);
        Ok((self.login(&user).await?, user))
    }

    /// Logs in fresh `alice`, then fresh `bob`: their connections and ids.
    pub async fn pair(&self) -> Result<(RawConn, String, RawConn, String), CaseError> {
        let (alice, alice_id) = self.fresh("alice").await?;
        let (bob, bob_id) = self.fresh("bob").await?;
        Ok((alice, alice_id, bob, bob_id))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(servers: &[&str]) -> Ctx {
        let mut config = CheckConfig::new(servers[0], "app");
        config.servers = servers.iter().map(ToString::to_string).collect();
        Ctx::new(Arc::new(config), Arc::default(), "qa1-7".into(), "case")
    }

    #[test]
    fn the_login_pace_holds_a_second_to_its_count() {
        let pace = LoginPace::default();
        let start = Instant::now();
        let slots: Vec<Instant> = (0..=LOGINS_PER_SECOND * 2)
            .map(|_| pace.reserve(start))
            .collect();
        // The first second's worth go at once, the next wait a second, and so on.
        assert!(slots[..LOGINS_PER_SECOND].iter().all(|t| *t == start));
        assert_eq!(slots[LOGINS_PER_SECOND], start + Duration::from_secs(1));
        assert_eq!(slots[LOGINS_PER_SECOND * 2], start + Duration::from_secs(2));
        for window in slots.windows(LOGINS_PER_SECOND + 1) {
            assert!(window[LOGINS_PER_SECOND] - window[0] >= Duration::from_secs(1));
        }
        // Once the reservations have passed, a login goes at once again.
        let later = start + Duration::from_secs(5);
        assert_eq!(pace.reserve(later), later);
    }

    #[test]
    fn the_users_of_a_case_alternate_between_two_servers() {
        let cx = ctx(&["ws://a", "ws://b"]);
        let (alice, bob, carol) = (cx.user("alice"), cx.user("bob"), cx.user("carol"));
        assert_eq!(cx.place(&alice), ("ws://a".into(), format!("{alice}@1")));
        assert_eq!(cx.place(&bob), ("ws://b".into(), format!("{bob}@2")));
        assert_eq!(cx.place(&carol).0, "ws://a");
        // alice's second login lands on the other node: a kick across nodes.
        assert_eq!(cx.place(&alice).0, "ws://b");
        let placement = cx.placement.lock().unwrap().describe("qa1-7-");
        assert_eq!(placement, "alice@1,2 bob@2 carol@1");
    }

    #[test]
    fn with_one_server_labels_stay_plain() {
        let cx = ctx(&["ws://only"]);
        let alice = cx.user("alice");
        assert_eq!(cx.place(&alice), ("ws://only".into(), alice.clone()));
        assert_eq!(cx.place("storm"), ("ws://only".into(), "storm".into()));
    }
}

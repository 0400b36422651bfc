//! The hub's watch over login tokens: the expiry warning, then the token_expired kick.
//!
//! Same rules as the hub's (`hub/mod.rs`): changes are applied under the state lock, never await, and
//! append to outboxes inside the critical section. The timers run on the node that holds
//! the connection: the warning is its own event, the kick comes back as a change.

use std::time::Duration;

use crate::protocol::{Event, KickReason};

use crate::server::engine::{Change, ConnId};

use super::state::{Here, State};
use super::timers::MAX_DELAY;
use super::Hub;

impl Hub {
    /// Watches the login token of `user` on `conn`: `token_privilege_will_expire`
    /// `token_warning` before it ends, then `kicked` (token_expired) unless renewed.
    /// Applied after login and at every successful renewal (which replaces the watch).
    pub(super) fn watch_token(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        conn: ConnId,
        expires_at: Option<u64>,
        now_ms: u64,
    ) {
        let epoch = state.next_epoch(app, now_ms);
        let Some(entry) = state
            .apps()
            .get_mut(app)
            .and_then(|a| a.users.get_mut(user))
        else {
            return;
        };
        if entry.conn.as_ref().map(|c| c.id) != Some(conn) {
            return;
        }
        entry.token = expires_at.map(|at| (at, epoch));
        for timer in entry.token_timers.drain(..) {
            timer.abort();
        }
        let Some(expires_at) = expires_at else {
            return;
        };
        if conn.node != self.node() {
            return; // the connection's node runs its timers
        }
        let now_ms = self.config().clock.unix_ms();
        let left = Duration::from_millis(expires_at.saturating_mul(1000).saturating_sub(now_ms));
        let (app, user) = (app.to_string(), user.to_string());
        if left > MAX_DELAY {
            // Beyond the timer wheel's reach: look again halfway (`token_expired` sees the
            // token still far from its end and watches it anew), no warning yet.
            let look_again = Change::TokenExpired { app, user, epoch };
            entry.token_timers = vec![self.change_after(MAX_DELAY / 2, look_again)];
            return;
        }
        let warn_in = left.saturating_sub(self.config().token_warning);
        let warning = {
            let (app, user) = (app.clone(), user.clone());
            self.after(warn_in, move |hub| hub.token_warning(&app, &user, epoch))
        };
        let expiry = self.change_after(left, Change::TokenExpired { app, user, epoch });
        entry.token_timers = vec![warning, expiry];
    }

    fn token_warning(&self, app: &str, user: &str, epoch: u64) {
        let state = self.lock();
        let Some(entry) = state.shared.user(app, user) else {
            return;
        };
        if let (Some((expires_at, watched)), Some(conn)) = (entry.token, &entry.conn) {
            if watched == epoch {
                conn.send_event(&Event::TokenPrivilegeWillExpire { expires_at });
            }
        }
    }

    /// The token's expiry timer fired: unless renewed since, the user is kicked and gone.
    pub(super) fn token_expired(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        epoch: u64,
        here: Here,
    ) {
        let Some(app_state) = state.apps().get_mut(app) else {
            return;
        };
        let Some(entry) = app_state.users.get(user) else {
            return;
        };
        let (Some((expires_at, watched)), Some(conn)) = (entry.token, entry.conn.clone()) else {
            return;
        };
        if watched != epoch {
            return; // renewed (or logged in again) since
        }
        let left_ms = expires_at
            .saturating_mul(1000)
            .saturating_sub(self.config().clock.unix_ms());
        if Duration::from_millis(left_ms) > MAX_DELAY / 4 {
            // The look-again of a token valid for longer than a timer can wait (every node
            // applies this change and agrees: the token has months left).
            let now_ms = here.stamp.now_ms;
            self.watch_token(state, app, user, conn.id, Some(expires_at), now_ms);
            return;
        }
        if let Some(local) = &conn.local {
            tracing::info!(app, user, "token expired: kicking");
            local.send_event(&Event::Kicked {
                reason: KickReason::TokenExpired,
            });
            local.close(super::CLOSE_KICKED, "token_expired");
        }
        self.remove_user(app_state, app, user, here);
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::decode_request;
    use crate::server::session::{handle, Session};
    use crate::server::{Clock, Config, Hub};
    use std::sync::Arc;
    use std::time::Duration;

    const APP: &str = "970CA35de60c44645bbae8a215061b33";
    const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";

    /// A token valid for three years is watched in steps (the timer wheel reaches about
    /// two): every half year nothing is sent and the watch goes on, until a year is left;
    /// then the warning comes on time.
    #[tokio::test(start_paused = true)]
    async fn a_token_valid_for_years_is_watched_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            clock: Clock::following_tokio(),
            ..Config::ephemeral()
        };
        config.apps.add_spec(&format!("{APP}:{CERT}"));
        let (store, loaded) =
            crate::server::store::Store::open(dir.path(), config.offline_ttl).unwrap();
        let hub = Hub::with_store(Arc::new(config), store, loaded);
        let mut alice = Session::new(hub.new_conn(), &hub);
        let now = crate::token::unix_now() as u32;
        let token = crate::token::build_rtm_token_007(APP, CERT, "alice", 1, now, 3 * 365 * 86_400);
        let login =
            format!(r#"{{"id":1,"op":"login","app_id":"{APP}","user":"alice","token":"{token}"}}"#);
        handle(decode_request(&login).unwrap(), &mut alice, &hub).await;
        let reply: serde_json::Value = serde_json::from_str(&alice.conn.take_lines()[0]).unwrap();
        assert_eq!(reply["code"], 0, "{reply}");
        assert_eq!(hub.pending_timers(), 1, "one look-again, no warning yet");
        let settle = || async {
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
        };
        // Looks again every half year while more than a timer's reach is left (three
        // times), then watches as usual: the warning and the expiry.
        for look in 1..=4 {
            tokio::time::advance(super::MAX_DELAY / 2 + Duration::from_secs(1)).await;
            settle().await;
            assert!(alice.conn.take_lines().is_empty(), "look {look}");
            assert!(!alice.conn.is_closed(), "look {look}");
        }
        assert_eq!(hub.pending_timers(), 2, "the warning and the expiry");
        // 16 s before the expiry: past the warning lead (30 s).
        tokio::time::advance(super::MAX_DELAY.saturating_sub(Duration::from_secs(20))).await;
        settle().await;
        let warning = alice.conn.take_lines();
        assert!(
            warning.len() == 1 && warning[0].contains("token_privilege_will_expire"),
            "{warning:?}"
        );
        hub.stop_timers();
        hub.engine().stop().await;
    }
}

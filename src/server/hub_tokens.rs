//! The hub's watch over login tokens: the expiry warning, then the token_expired kick.
//!
//! Same rules as `hub.rs`: every method takes the state lock, never awaits, and appends
//! to outboxes inside the critical section. Results are `Result<_, u32>` with the code of
//! the op's family; `session_extra.rs` validates input and turns them into replies.

use std::time::Duration;

use crate::protocol::{Event, KickReason};

use super::hub::Hub;
use super::outbox::ConnHandle;

impl Hub {
    /// Watches the login token of `user` on `conn`: `token_privilege_will_expire`
    /// `token_warning` before it ends, then `kicked` (token_expired) unless renewed.
    /// Called at login and at every successful renewal (which replaces the watch).
    pub fn watch_token(&self, app: &str, user: &str, conn: &ConnHandle, expires_at: Option<u64>) {
        let mut state = self.lock();
        let epoch = state.next_epoch();
        let Some(entry) = state.apps.get_mut(app).and_then(|a| a.users.get_mut(user)) else {
            return;
        };
        if entry.conn.as_ref() != Some(conn) {
            return;
        }
        entry.token = expires_at.map(|at| (at, epoch));
        for timer in entry.token_timers.drain(..) {
            timer.abort();
        }
        let Some(expires_at) = expires_at else {
            return;
        };
        let now_ms = self.config().clock.unix_ms();
        let left = Duration::from_millis((expires_at * 1000).saturating_sub(now_ms));
        let warn_in = left.saturating_sub(self.config().token_warning);
        for (delay, expired) in [(warn_in, false), (left, true)] {
            let (app, user) = (app.to_string(), user.to_string());
            let timer = self.after(delay, move |hub| {
                hub.token_timer(&app, &user, epoch, expired);
            });
            entry.token_timers.push(timer);
        }
    }

    fn token_timer(&self, app: &str, user: &str, epoch: u64, expired: bool) {
        let mut state = self.lock();
        let Some(app_state) = state.apps.get_mut(app) else {
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
        if !expired {
            conn.send_event(&Event::TokenPrivilegeWillExpire { expires_at });
            return;
        }
        tracing::info!(app, user, "token expired: kicking");
        conn.send_event(&Event::Kicked {
            reason: KickReason::TokenExpired,
        });
        conn.close(super::hub::CLOSE_KICKED, "token_expired");
        self.remove_user(app_state, app, user);
    }
}

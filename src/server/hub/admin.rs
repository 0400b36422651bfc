//! The hub's operator side: the kick (a ban's too) and the ban check of a login, and the
//! user and channel event feeds of Agora's REST API (`server::http`).
//!
//! Same rules as the hub's (`hub/mod.rs`): a kick is an [`AdminChange`] (carried by
//! `Change::Admin`) that every node serving the app applies, its event and close going
//! only to the node that holds the connection. Bans are not shared state: they live in
//! the engine's store (`engine/bans.rs`), written before the kick goes and read by a
//! login before its change is submitted. The feeds' events are noted
//! where presence and membership change (`presence_event`, `channel_event`) and kept by
//! the engine (`engine/event_feeds.rs`), which a pull reads.

use crate::protocol::{Event, KickReason};

use crate::server::engine::{AdminChange, AdminOutcome, Feed, FeedEvent, Unavailable};

use super::state::{Here, State, Tenant};
use super::{Hub, CLOSE_KICKED};

/// A ban with no end, as `ban_until` holds it.
pub const BANNED_FOREVER: u64 = u64::MAX;

/// Applies an operator's change (called from `Hub::apply` under the state lock).
pub(super) fn apply(hub: &Hub, state: &mut State, change: AdminChange, here: Here) -> AdminOutcome {
    match change {
        AdminChange::Kick {
            app,
            user,
            ban_until,
        } => {
            let app_state = state.apps().entry(app.clone()).or_default();
            let Some(entry) = app_state.users.get(&user) else {
                return AdminOutcome::Kicked { was_present: false };
            };
            if let Some(local) = entry.conn.as_ref().and_then(|c| c.local.as_ref()) {
                tracing::info!(app, user, ?ban_until, "kicked by the operator");
                local.send_event(&Event::Kicked {
                    reason: KickReason::Banned,
                });
                local.close(CLOSE_KICKED, "banned_by_server");
            }
            hub.remove_user(app_state, &app, &user, here);
            AdminOutcome::Kicked { was_present: true }
        }
    }
}

/// Records `Login` when `user` comes online and `Logout` when it stops being online
/// (dropped, logged out, kicked), once each, whatever calls led there.
pub(super) fn presence_event(app_state: &mut Tenant, user: &str, now_ms: u64) {
    let online = app_state.status_of(user) == crate::protocol::PeerStatus::Online;
    let admin = &mut app_state.admin;
    let kind = match (online, admin.online.contains(user)) {
        (true, false) => {
            admin.online.insert(user.to_string());
            "Login"
        }
        (false, true) => {
            admin.online.remove(user);
            "Logout"
        }
        _ => return,
    };
    admin.noted.push((
        Feed::Users,
        FeedEvent {
            group_id: None,
            user_id: user.to_string(),
            kind: kind.to_string(),
            ms: now_ms,
        },
    ));
}

/// Records a `Join` or a `Leave` of `channel` (a quiet rejoin within the grace is neither).
pub(super) fn channel_event(
    app_state: &mut Tenant,
    (channel, user): (&str, &str),
    joined: bool,
    now_ms: u64,
) {
    app_state.admin.noted.push((
        Feed::Channels,
        FeedEvent {
            group_id: Some(channel.to_string()),
            user_id: user.to_string(),
            kind: if joined { "Join" } else { "Leave" }.to_string(),
            ms: now_ms,
        },
    ));
}

/// The reason of a login refused for a ban.
pub(in crate::server) fn ban_reason(until: u64) -> String {
    if until == BANNED_FOREVER {
        "banned by the server".to_string()
    } else {
        format!("banned by the server until {until} (unix seconds)")
    }
}

impl Hub {
    /// When `user`'s ban ends, if it is banned now (from the engine's store:
    /// `engine/bans.rs`).
    pub async fn ban_of(&self, app: &str, user: &str) -> Result<Option<u64>, Unavailable> {
        let now = self.config().clock.unix_secs();
        self.engine().bans().banned_until(app, user, now).await
    }

    /// The members of `channel` (at most `limit`) and their count, for operators.
    pub fn channel_members(&self, app: &str, channel: &str, limit: usize) -> (Vec<String>, u64) {
        let state = self.lock();
        state
            .shared
            .channel(app, channel)
            .map(|c| {
                let members = c.members.keys().take(limit).cloned().collect();
                (members, c.members.len() as u64)
            })
            .unwrap_or_default()
    }

    /// What this node holds, for the metrics: (apps, their logged-in users, their
    /// channels).
    pub fn population(&self) -> (u64, u64, u64) {
        let state = self.lock();
        let apps = &state.shared.apps;
        let (users, channels) = apps.values().fold((0, 0), |(users, channels), app| {
            let online = app.users.values().filter(|u| u.conn.is_some()).count();
            (users + online as u64, channels + app.channels.len() as u64)
        });
        (apps.len() as u64, users, channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_change_round_trips_inside_a_change() {
        let change = crate::server::engine::Change::Admin(AdminChange::Kick {
            app: "a".into(),
            user: "u".into(),
            ban_until: Some(5),
        });
        let json = serde_json::to_string(&change).unwrap();
        let back: crate::server::engine::Change = serde_json::from_str(&json).unwrap();
        assert_eq!(back, change);
    }
}

//! The hub's presence: online status, subscriptions and the events subscribers get.
//!
//! Same rules as `hub.rs`: every method takes the state lock, never awaits, and appends
//! to outboxes inside the critical section. Results are `Result<_, u32>` with the code of
//! the op's family; `session_extra.rs` validates input and turns them into replies.

use crate::protocol::codes::query;
use crate::protocol::limits::MAX_SUBSCRIBED_PEERS;
use crate::protocol::reply::indexmap_like::OrderedPeers;
use crate::protocol::{Event, PeerStatus};

use super::hub::{App, Hub, User};
use super::outbox::ConnHandle;

/// The presence of `user` as subscribers see it.
pub(super) fn status_of(app_state: &App, user: &str) -> PeerStatus {
    match app_state.users.get(user) {
        Some(entry) if entry.conn.is_some() => PeerStatus::Online,
        Some(_) => PeerStatus::Unreachable,
        None => PeerStatus::Offline,
    }
}

pub(super) fn conn_of<'a>(app_state: &'a App, user: &str) -> Option<&'a ConnHandle> {
    app_state.users.get(user).and_then(|u| u.conn.as_ref())
}

/// Tells `user`'s presence subscribers its current state.
pub(super) fn presence_changed(app_state: &App, user: &str) {
    let Some(watchers) = app_state.watchers.get(user) else {
        return;
    };
    let line = ConnHandle::encode_shared(&Event::PeersOnlineStatus {
        peers: OrderedPeers(vec![(user.to_string(), status_of(app_state, user))]),
    });
    for watcher in watchers {
        if let Some(conn) = conn_of(app_state, watcher) {
            conn.push_line(line.clone());
        }
    }
}

/// Drops what a user who left for good had registered elsewhere (its subscriptions).
pub(super) fn forget_user(app_state: &mut App, user: &str, removed: &User) {
    for timer in &removed.token_timers {
        timer.abort();
    }
    for target in &removed.subscriptions {
        if let Some(watchers) = app_state.watchers.get_mut(target) {
            watchers.remove(user);
            if watchers.is_empty() {
                app_state.watchers.remove(target);
            }
        }
    }
}

impl Hub {
    /// `query_peers_online`: online or offline (a user in the grace is offline here).
    pub fn query_online(&self, app: &str, peers: &[String]) -> OrderedPeers {
        let state = self.lock();
        let app_state = state.apps.get(app);
        OrderedPeers(
            peers
                .iter()
                .map(|peer| {
                    let online = app_state.and_then(|a| conn_of(a, peer)).is_some();
                    let status = if online {
                        PeerStatus::Online
                    } else {
                        PeerStatus::Offline
                    };
                    (peer.clone(), status)
                })
                .collect(),
        )
    }

    /// `subscribe_peers_online`: answers, then sends the peers' current states.
    pub fn subscribe(
        &self,
        app: &str,
        user: &str,
        peers: &[String],
        reply: &crate::protocol::Reply,
    ) -> Result<(), u32> {
        let mut state = self.lock();
        let app_state = state.apps.entry(app.to_string()).or_default();
        let entry = app_state.users.get_mut(user).ok_or(query::FAILURE)?;
        let added: Vec<&String> = peers
            .iter()
            .filter(|p| !entry.subscriptions.contains(*p))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if entry.subscriptions.len() + added.len() > MAX_SUBSCRIBED_PEERS {
            return Err(query::OVERFLOW);
        }
        entry
            .subscriptions
            .extend(added.iter().map(|p| (*p).clone()));
        let conn = entry.conn.clone();
        for peer in &added {
            app_state
                .watchers
                .entry((*peer).clone())
                .or_default()
                .insert(user.to_string());
        }
        if let Some(conn) = conn {
            conn.send_reply(reply);
            let mut seen = std::collections::BTreeSet::new();
            let current = peers
                .iter()
                .filter(|p| seen.insert(p.as_str()))
                .map(|p| (p.clone(), status_of(app_state, p)))
                .collect();
            conn.send_event(&Event::PeersOnlineStatus {
                peers: OrderedPeers(current),
            });
        }
        Ok(())
    }

    /// `unsubscribe_peers_online`.
    pub fn unsubscribe(&self, app: &str, user: &str, peers: &[String]) {
        let mut state = self.lock();
        let Some(app_state) = state.apps.get_mut(app) else {
            return;
        };
        let Some(entry) = app_state.users.get_mut(user) else {
            return;
        };
        for peer in peers {
            entry.subscriptions.remove(peer);
        }
        for peer in peers {
            if let Some(watchers) = app_state.watchers.get_mut(peer) {
                watchers.remove(user);
                if watchers.is_empty() {
                    app_state.watchers.remove(peer);
                }
            }
        }
    }

    /// `query_subscribed_peers`.
    pub fn subscriptions(&self, app: &str, user: &str) -> Vec<String> {
        self.lock()
            .apps
            .get(app)
            .and_then(|a| a.users.get(user))
            .map(|u| u.subscriptions.iter().cloned().collect())
            .unwrap_or_default()
    }
}

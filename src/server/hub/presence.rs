//! The hub's presence: online status, subscriptions and the events subscribers get.
//!
//! Same rules as the hub's (`hub/mod.rs`): changes are applied under the state lock, never await, and
//! append to outboxes inside the critical section; reads take the lock themselves.
//! Results carry the op's family's typed error (`QueryError`); `session/presence.rs`
//! validates input and turns them into replies.

use crate::protocol::limits::MAX_SUBSCRIBED_PEERS;
use crate::protocol::reply::OrderedPeers;
use crate::protocol::{Event, PeerStatus, QueryError};

use crate::server::outbox::ConnHandle;

use super::state::{Here, State, Tenant, User};
use super::Hub;

/// Tells `user`'s presence subscribers its current state (and the REST API's user feed,
/// at `now_ms`: the change's stamp, the same on every node).
pub(super) fn presence_changed(app_state: &mut Tenant, user: &str, now_ms: u64) {
    super::admin::presence_event(app_state, user, now_ms);
    let Some(watchers) = app_state.watchers.get(user) else {
        return;
    };
    let line = ConnHandle::encode_shared(&Event::PeersOnlineStatus {
        peers: OrderedPeers::from([(user.to_string(), app_state.status_of(user))]),
    });
    for watcher in watchers {
        if let Some(conn) = app_state.conn_of(watcher) {
            conn.push_line(&line);
        }
    }
}

/// Drops what a user who left for good had registered elsewhere (its subscriptions).
pub(super) fn forget_user(app_state: &mut Tenant, user: &str, removed: &User) {
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
        let app_state = state.shared.apps.get(app);
        peers
            .iter()
            .map(|peer| {
                let online = app_state.and_then(|a| a.conn_of(peer)).is_some();
                let status = if online {
                    PeerStatus::Online
                } else {
                    PeerStatus::Offline
                };
                (peer.clone(), status)
            })
            .collect()
    }

    /// `query_subscribed_peers`.
    pub fn subscriptions(&self, app: &str, user: &str) -> Vec<String> {
        self.lock()
            .shared
            .user(app, user)
            .map(|u| u.subscriptions.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// `unsubscribe_peers_online`.
pub(super) fn unsubscribe(state: &mut State, app: &str, user: &str, peers: &[String]) {
    let Some(app_state) = state.apps().get_mut(app) else {
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

/// `subscribe_peers_online`: answers (on the origin), then sends the peers' current
/// states.
pub(super) fn subscribe(
    state: &mut State,
    app: &str,
    user: &str,
    peers: &[String],
    request_id: u32,
    here: Here,
) -> Result<(), QueryError> {
    let app_state = state.apps().entry(app.to_string()).or_default();
    let entry = app_state.users.get_mut(user).ok_or(QueryError::Failure)?;
    let added: Vec<&String> = peers
        .iter()
        .filter(|p| !entry.subscriptions.contains(*p))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if entry.subscriptions.len() + added.len() > MAX_SUBSCRIBED_PEERS {
        return Err(QueryError::Overflow);
    }
    entry
        .subscriptions
        .extend(added.iter().map(|p| (*p).clone()));
    for peer in &added {
        app_state
            .watchers
            .entry((*peer).clone())
            .or_default()
            .insert(user.to_string());
    }
    if let Some(conn) = here.conn.filter(|_| here.origin) {
        conn.send_reply(&crate::protocol::Reply::ok_empty(request_id));
        // An id subscribed twice is listed once: the map keeps the first.
        let current = peers
            .iter()
            .map(|p| (p.clone(), app_state.status_of(p)))
            .collect();
        conn.send_event(&Event::PeersOnlineStatus { peers: current });
    }
    Ok(())
}

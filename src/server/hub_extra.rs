//! The hub's issue-5 surface: presence, user and channel attributes, invitations.
//!
//! Same rules as `hub.rs`: called with the state lock held, never awaits, appends to
//! outboxes inside the critical section.

use crate::protocol::reply::indexmap_like::OrderedPeers;
use crate::protocol::{Event, PeerStatus};

use super::hub::{App, Hub, User};
use super::outbox::ConnHandle;

/// Invitations are keyed by (caller, callee, invitation id).
pub type InvitationKey = (String, String, String);

/// A pending invitation.
#[derive(Debug)]
#[allow(dead_code)] // issue 5, next commits
pub struct Invitation {
    pub epoch: u64,
}

/// The presence of `user` as subscribers see it.
pub(super) fn status_of(app_state: &App, user: &str) -> PeerStatus {
    match app_state.users.get(user) {
        Some(entry) if entry.conn.is_some() => PeerStatus::Online,
        Some(_) => PeerStatus::Unreachable,
        None => PeerStatus::Offline,
    }
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
        if let Some(conn) = app_state.users.get(watcher).and_then(|u| u.conn.as_ref()) {
            conn.push_line(line.clone());
        }
    }
}

/// Drops what a user who left for good had registered elsewhere (its subscriptions).
pub(super) fn forget_user(app_state: &mut App, user: &str, removed: &User) {
    unsubscribe(app_state, user, &removed.subscriptions);
}

fn unsubscribe<'a>(
    app_state: &mut App,
    subscriber: &str,
    targets: impl IntoIterator<Item = &'a String>,
) {
    for target in targets {
        if let Some(watchers) = app_state.watchers.get_mut(target) {
            watchers.remove(subscriber);
            if watchers.is_empty() {
                app_state.watchers.remove(target);
            }
        }
    }
}

/// Drops a channel's attributes once it has been empty for `channel_attributes_ttl`.
pub(super) fn schedule_attribute_expiry(hub: &Hub, app: &str, channel: &str) {
    let (app, channel) = (app.to_string(), channel.to_string());
    let ttl = hub.config().channel_attributes_ttl;
    hub.after(ttl, move |hub| {
        let mut state = hub.lock();
        let Some(app_state) = state.apps.get_mut(&app) else {
            return;
        };
        let expired = app_state.channels.get(&channel).is_some_and(|c| {
            c.members.is_empty() && c.empty_since.is_some_and(|since| since.elapsed() >= ttl)
        });
        if expired {
            app_state.channels.remove(&channel);
        }
    });
}

//! The hub's issue-5 surface: presence, user and channel attributes, invitations.
//!
//! Same rules as `hub.rs`: every method takes the state lock, never awaits, and appends
//! to outboxes inside the critical section. Results are `Result<_, u32>` with the code of
//! the op's family; `session_extra.rs` validates input and turns them into replies.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::protocol::codes::{attr, invite, query};
use crate::protocol::limits::{MAX_CHANNEL_ATTRIBUTES_BYTES, MAX_SUBSCRIBED_PEERS};
use crate::protocol::reply::indexmap_like::OrderedPeers;
use crate::protocol::{now_ms, Attributes, ChannelAttribute, Event, KickReason, PeerStatus};

use super::hub::{App, Hub, User};
use super::outbox::ConnHandle;

/// Invitations are keyed by (caller, callee, invitation id).
pub type InvitationKey = (String, String, String);

/// A pending invitation; `epoch` tells its expiry timer apart from a reused id's.
#[derive(Debug)]
pub struct Invitation {
    pub epoch: u64,
}

/// How an attribute write changes a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeWrite {
    /// Replace the whole set.
    Set(Attributes),
    /// Insert or overwrite these keys.
    AddOrUpdate(Attributes),
    /// Remove these keys.
    Delete(Vec<String>),
    /// Remove everything.
    Clear,
}

impl AttributeWrite {
    /// The keys and values this write puts into the set.
    fn written(&self) -> Option<&Attributes> {
        match self {
            AttributeWrite::Set(a) | AttributeWrite::AddOrUpdate(a) => Some(a),
            AttributeWrite::Delete(_) | AttributeWrite::Clear => None,
        }
    }
}

/// The answer to an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Refuse,
}

/// The presence of `user` as subscribers see it.
pub(super) fn status_of(app_state: &App, user: &str) -> PeerStatus {
    match app_state.users.get(user) {
        Some(entry) if entry.conn.is_some() => PeerStatus::Online,
        Some(_) => PeerStatus::Unreachable,
        None => PeerStatus::Offline,
    }
}

fn conn_of<'a>(app_state: &'a App, user: &str) -> Option<&'a ConnHandle> {
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

/// Drops a channel's attributes once it has been empty for `channel_attributes_ttl`.
pub(super) fn schedule_attribute_expiry(hub: &Hub, app: &str, channel: &str) {
    let (app, channel) = (app.to_string(), channel.to_string());
    let ttl = hub.config().channel_attributes_ttl;
    hub.after(ttl, move |hub| {
        let mut state = hub.lock();
        let Some(app_state) = state.apps.get_mut(&app) else {
            return;
        };
        let Some(state_channel) = app_state.channels.get_mut(&channel) else {
            return;
        };
        let expired = state_channel.members.is_empty()
            && state_channel
                .empty_since
                .is_some_and(|since| since.elapsed() >= ttl);
        if expired {
            tracing::debug!(app, channel, "channel attributes expired");
            state_channel.attributes.clear();
            // A pending member count update removes the channel when it has gone out.
            if !state_channel.count_timer {
                app_state.channels.remove(&channel);
            }
        }
    });
}

/// Applies `write` to `set`, then checks the result against the size limits.
fn apply_write(
    set: &BTreeMap<String, String>,
    write: &AttributeWrite,
    max_bytes: usize,
) -> Result<BTreeMap<String, String>, u32> {
    let mut next = set.clone();
    match write {
        AttributeWrite::Set(attributes) => next.clone_from(attributes),
        AttributeWrite::AddOrUpdate(attributes) => next.extend(attributes.clone()),
        AttributeWrite::Delete(keys) => {
            for key in keys {
                next.remove(key);
            }
        }
        AttributeWrite::Clear => next.clear(),
    }
    crate::protocol::limits::validate_attributes(&next, max_bytes).map_err(|e| {
        if e.is_size() {
            attr::SIZE_OVERFLOW
        } else {
            attr::INVALID_ARGUMENT
        }
    })?;
    Ok(next)
}

/// Removes a pending invitation; its app, or INVITE's "not found".
fn take_invitation<'a>(
    state: &'a mut super::hub::State,
    app: &str,
    (caller, callee, invitation_id): (&str, &str, &str),
) -> Result<&'a mut App, u32> {
    let app_state = state.apps.get_mut(app).ok_or(invite::NOT_FOUND)?;
    let key = (
        caller.to_string(),
        callee.to_string(),
        invitation_id.to_string(),
    );
    app_state
        .invitations
        .remove(&key)
        .ok_or(invite::NOT_FOUND)?;
    Ok(app_state)
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

    /// User attribute writes of `user` itself.
    pub fn write_user_attributes(
        &self,
        app: &str,
        user: &str,
        write: &AttributeWrite,
    ) -> Result<(), u32> {
        let mut state = self.lock();
        let entry = state
            .apps
            .get_mut(app)
            .and_then(|a| a.users.get_mut(user))
            .ok_or(attr::FAILURE)?;
        entry.attributes = apply_write(
            &entry.attributes,
            write,
            crate::protocol::limits::MAX_USER_ATTRIBUTES_BYTES,
        )?;
        Ok(())
    }

    /// `get_user_attributes` of an online user (all, or the listed keys that exist).
    pub fn user_attributes(
        &self,
        app: &str,
        user: &str,
        keys: Option<&[String]>,
    ) -> Result<Attributes, u32> {
        let state = self.lock();
        let entry = state
            .apps
            .get(app)
            .and_then(|a| a.users.get(user))
            .filter(|u| u.conn.is_some())
            .ok_or(attr::USER_NOT_FOUND)?;
        Ok(match keys {
            None => entry.attributes.clone(),
            Some(keys) => keys
                .iter()
                .filter_map(|k| entry.attributes.get_key_value(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// Channel attribute writes (members or not); `notify` sends the full list to members.
    pub fn write_channel_attributes(
        &self,
        app: &str,
        user: &str,
        channel: &str,
        write: &AttributeWrite,
        notify: bool,
    ) -> Result<(), u32> {
        let mut state = self.lock();
        let app_state = state.apps.entry(app.to_string()).or_default();
        let existed = app_state.channels.contains_key(channel);
        let state_channel = app_state.channels.entry(channel.to_string()).or_default();
        let current: BTreeMap<String, String> = state_channel
            .attributes
            .iter()
            .map(|(k, a)| (k.clone(), a.value.clone()))
            .collect();
        let next = match apply_write(&current, write, MAX_CHANNEL_ATTRIBUTES_BYTES) {
            Ok(next) => next,
            Err(code) => {
                if !existed {
                    app_state.channels.remove(channel);
                }
                return Err(code);
            }
        };
        let now = now_ms();
        let written = write.written();
        state_channel
            .attributes
            .retain(|key, _| next.contains_key(key));
        for (key, value) in next {
            let touched = written.is_some_and(|w| w.contains_key(&key));
            if touched || !state_channel.attributes.contains_key(&key) {
                state_channel.attributes.insert(
                    key.clone(),
                    ChannelAttribute {
                        key,
                        value,
                        updated_by: user.to_string(),
                        updated_ts: now,
                    },
                );
            }
        }
        if notify {
            let line = ConnHandle::encode_shared(&Event::ChannelAttributesUpdated {
                channel: channel.to_string(),
                attributes: state_channel.attributes.values().cloned().collect(),
            });
            state_channel.broadcast(&line, None);
        }
        if state_channel.members.is_empty() {
            if state_channel.attributes.is_empty() && !state_channel.count_timer {
                app_state.channels.remove(channel);
            } else if !existed {
                state_channel.empty_since = Some(Instant::now());
                schedule_attribute_expiry(self, app, channel);
            }
        }
        Ok(())
    }

    /// `get_channel_attributes` (all, or the listed keys that exist), ordered by key.
    pub fn channel_attributes(
        &self,
        app: &str,
        channel: &str,
        keys: Option<&[String]>,
    ) -> Vec<ChannelAttribute> {
        let state = self.lock();
        let Some(state_channel) = state.apps.get(app).and_then(|a| a.channels.get(channel)) else {
            return Vec::new();
        };
        state_channel
            .attributes
            .values()
            .filter(|a| keys.is_none_or(|keys| keys.contains(&a.key)))
            .cloned()
            .collect()
    }

    /// `invite`: delivers `invitation_received` to an online callee and starts the expiry.
    pub fn invite(
        &self,
        app: &str,
        caller: &str,
        event: &Event,
        callee: &str,
        invitation_id: &str,
    ) -> Result<(), u32> {
        let mut state = self.lock();
        let epoch = state.next_epoch();
        let app_state = state.apps.entry(app.to_string()).or_default();
        let callee_conn = conn_of(app_state, callee)
            .cloned()
            .ok_or(invite::PEER_OFFLINE)?;
        let key = (
            caller.to_string(),
            callee.to_string(),
            invitation_id.to_string(),
        );
        if app_state.invitations.contains_key(&key) {
            return Err(invite::INVALID_ARGUMENT);
        }
        // A cap per caller, so that no one can flood a callee's outbox with invitations.
        let pending = app_state
            .invitations
            .keys()
            .filter(|k| k.0 == caller)
            .count();
        if pending >= self.config().max_pending_invitations {
            return Err(invite::INVALID_ARGUMENT);
        }
        app_state
            .invitations
            .insert(key.clone(), Invitation { epoch });
        callee_conn.send_event(event);
        let app = app.to_string();
        self.after(self.config().invitation_timeout, move |hub| {
            hub.invitation_expired(&app, &key, epoch);
        });
        Ok(())
    }

    fn invitation_expired(&self, app: &str, key: &InvitationKey, epoch: u64) {
        let mut state = self.lock();
        let Some(app_state) = state.apps.get_mut(app) else {
            return;
        };
        if app_state.invitations.get(key).map(|i| i.epoch) != Some(epoch) {
            return;
        }
        app_state.invitations.remove(key);
        let line = ConnHandle::encode_shared(&Event::InvitationFailure {
            invitation_id: key.2.clone(),
            reason: invite::EXPIRED,
        });
        for user in [&key.0, &key.1] {
            if let Some(conn) = conn_of(app_state, user) {
                conn.push_line(line.clone());
            }
        }
    }

    /// `cancel_invitation` by the caller: the callee gets `invitation_canceled`.
    pub fn cancel_invitation(
        &self,
        app: &str,
        caller: &str,
        callee: &str,
        invitation_id: &str,
    ) -> Result<(), u32> {
        let mut state = self.lock();
        let app_state = take_invitation(&mut state, app, (caller, callee, invitation_id))?;
        if let Some(conn) = conn_of(app_state, callee) {
            conn.send_event(&Event::InvitationCanceled {
                invitation_id: invitation_id.to_string(),
                caller: caller.to_string(),
            });
        }
        Ok(())
    }

    /// `accept_invitation` / `refuse_invitation` by the callee: the caller hears the answer.
    pub fn answer_invitation(
        &self,
        app: &str,
        callee: &str,
        caller: &str,
        invitation_id: &str,
        (answer, response): (Answer, String),
    ) -> Result<(), u32> {
        let mut state = self.lock();
        let app_state = take_invitation(&mut state, app, (caller, callee, invitation_id))?;
        let conn = conn_of(app_state, caller).ok_or(invite::PEER_OFFLINE)?;
        let invitation_id = invitation_id.to_string();
        let callee = callee.to_string();
        conn.send_event(&match answer {
            Answer::Accept => Event::InvitationAccepted {
                invitation_id,
                callee,
                response,
            },
            Answer::Refuse => Event::InvitationRefused {
                invitation_id,
                callee,
                response,
            },
        });
        Ok(())
    }
}

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
        let left = Duration::from_millis((expires_at * 1000).saturating_sub(now_ms()));
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

//! The hub's user and channel attributes, and the expiry of an empty channel's.
//!
//! Channel attributes are shared state: same rules as the hub's (`hub/mod.rs`), changes
//! applied under the state lock, never awaiting, appending to outboxes inside the
//! critical section. User attributes are not: the engine keeps them
//! (`engine/user_attributes.rs`, in Redis on several nodes), and the hub reads them and
//! writes them there, compare-and-set, checking the size limits in between; from the
//! state it takes only whether the user is online and its generation. Results carry the
//! ATTR family's typed error (`AttrError`); `session/attributes.rs` validates input and
//! turns them into replies.

use std::collections::BTreeMap;

use crate::protocol::limits::{MAX_CHANNEL_ATTRIBUTES_BYTES, MAX_USER_ATTRIBUTES_BYTES};
use crate::protocol::{AttrError, AttributeWrite, Attributes, ChannelAttribute, Event};

use crate::server::engine::user_attributes::Replaced;
use crate::server::engine::{Change, ConnId, NodeId};
use crate::server::outbox::ConnHandle;

use super::state::{Here, State, Tenant};
use super::Hub;

/// A channel just became empty (or got attributes without members): its attributes go
/// after `channel_attributes_ttl` unless someone joins first. The origin runs the timer.
pub(super) fn channel_emptied(
    hub: &Hub,
    app_state: &mut Tenant,
    app: &str,
    channel: &str,
    here: Here,
) {
    let Some(state_channel) = app_state.channels.get_mut(channel) else {
        return;
    };
    state_channel.emptied += 1;
    let epoch = state_channel.emptied;
    state_channel.empty = Some((epoch, here.stamp.origin));
    if here.origin {
        start_expiry(hub, app, channel, epoch);
    }
}

fn start_expiry(hub: &Hub, app: &str, channel: &str, epoch: u64) {
    let change = Change::AttributesExpired {
        app: app.to_string(),
        channel: channel.to_string(),
        epoch,
    };
    hub.change_after(hub.config().channel_attributes_ttl, change);
}

/// The expiry timers `node` ran (it is gone) are the origin's now, from the start.
pub(super) fn adopt_expiries(
    hub: &Hub,
    app_state: &mut Tenant,
    app: &str,
    node: NodeId,
    here: Here,
) {
    for (name, channel) in &mut app_state.channels {
        if let Some((epoch, owner)) = &mut channel.empty {
            if *owner == node {
                *owner = here.stamp.origin;
                if here.origin {
                    start_expiry(hub, app, name, *epoch);
                }
            }
        }
    }
}

/// The expiry timer of a channel's attributes fired: they go if it is still empty since.
pub(super) fn attributes_expired(state: &mut State, app: &str, channel: &str, epoch: u64) {
    let Some(app_state) = state.apps().get_mut(app) else {
        return;
    };
    let Some(state_channel) = app_state.channels.get_mut(channel) else {
        return;
    };
    let expired =
        state_channel.members.is_empty() && state_channel.empty.map(|(e, _)| e) == Some(epoch);
    if expired {
        tracing::debug!(app, channel, "channel attributes expired");
        state_channel.attributes.clear();
        state_channel.empty = None;
        // A pending member count update removes the channel when it has gone out.
        if !state_channel.count_timer {
            app_state.channels.remove(channel);
        }
    }
}

/// Applies `write` to `set`, then checks the result against the size limits.
fn apply_write(
    set: &BTreeMap<String, String>,
    write: &AttributeWrite,
    max_bytes: usize,
) -> Result<BTreeMap<String, String>, AttrError> {
    let mut next = set.clone();
    write.apply(&mut next);
    crate::protocol::limits::validate_attributes(&next, max_bytes).map_err(|e| {
        if e.is_size() {
            AttrError::SizeOverflow
        } else {
            AttrError::InvalidArgument
        }
    })?;
    Ok(next)
}

/// Reads and writes of a user's attributes meet at most this many writes between them
/// before a write gives up with the family's failure (only the user itself writes them,
/// so a second try is already rare).
const WRITE_ATTEMPTS: usize = 4;

impl Hub {
    /// `get_user_attributes` of an online user (all, or the listed keys that exist), from
    /// the engine (`engine/user_attributes.rs`).
    pub async fn user_attributes(
        &self,
        app: &str,
        user: &str,
        keys: Option<&[String]>,
    ) -> Result<Attributes, AttrError> {
        let generation = self
            .lock()
            .shared
            .user(app, user)
            .filter(|u| u.conn.is_some())
            .map(|u| u.generation)
            .ok_or(AttrError::UserNotFound)?;
        let stored = self
            .engine()
            .user_attributes()
            .read(app, user, generation)
            .await
            .map_err(|_| AttrError::Failure)?;
        let mut attributes = stored.attributes;
        if let Some(keys) = keys {
            attributes.retain(|key, _| keys.contains(key));
        }
        Ok(attributes)
    }

    /// A write of `user`'s own attributes from its connection `conn`: read, checked
    /// against the size limits, and written if no other write came between.
    pub async fn write_user_attributes(
        &self,
        app: &str,
        user: &str,
        conn: ConnId,
        write: &AttributeWrite,
    ) -> Result<(), AttrError> {
        // The user's generation while `conn` is its session (it ends with a kick, a
        // remote login elsewhere or a logout): asked again before each write, so that a
        // session that ended while the record was read writes nothing.
        let session = || {
            self.lock()
                .shared
                .user(app, user)
                .filter(|u| u.conn.as_ref().map(|c| c.id) == Some(conn))
                .map(|u| u.generation)
                .ok_or(AttrError::Failure)
        };
        let generation = session()?;
        let store = self.engine().user_attributes();
        for _ in 0..WRITE_ATTEMPTS {
            let stored = store
                .read(app, user, generation)
                .await
                .map_err(|_| AttrError::Failure)?;
            let next = apply_write(&stored.attributes, write, MAX_USER_ATTRIBUTES_BYTES)?;
            if session()? != generation {
                return Err(AttrError::Failure);
            }
            let replaced = store
                .replace(app, user, generation, stored.version, &next)
                .await
                .map_err(|_| AttrError::Failure)?;
            match replaced {
                Replaced::Done => return Ok(()),
                Replaced::Changed => {} // read again
                Replaced::Stale => return Err(AttrError::Failure),
            }
        }
        tracing::warn!(app, user, "user attributes kept changing under a write");
        Err(AttrError::Failure)
    }

    /// Channel attribute writes (members or not); `notify` sends the full list to members.
    pub(super) fn write_channel_attributes(
        &self,
        state: &mut State,
        (app, user, channel): (&str, &str, &str),
        write: &AttributeWrite,
        notify: bool,
        here: Here,
    ) -> Result<(), AttrError> {
        let app_state = state.apps().entry(app.to_string()).or_default();
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
        let now = here.stamp.now_ms;
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
                channel_emptied(self, app_state, app, channel, here);
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
        let Some(state_channel) = state.shared.channel(app, channel) else {
            return Vec::new();
        };
        state_channel
            .attributes
            .values()
            .filter(|a| keys.is_none_or(|keys| keys.contains(&a.key)))
            .cloned()
            .collect()
    }
}

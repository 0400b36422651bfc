//! The hub's user and channel attributes, and the expiry of an empty channel's.
//!
//! Same rules as `hub.rs`: every method takes the state lock, never awaits, and appends
//! to outboxes inside the critical section. Results are `Result<_, u32>` with the code of
//! the op's family; `session_extra.rs` validates input and turns them into replies.

use super::clock::Instant;
use std::collections::BTreeMap;

use crate::protocol::codes::attr;
use crate::protocol::limits::MAX_CHANNEL_ATTRIBUTES_BYTES;
use crate::protocol::{now_ms, Attributes, ChannelAttribute, Event};

use super::hub::Hub;
use super::outbox::ConnHandle;

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

impl Hub {
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
}

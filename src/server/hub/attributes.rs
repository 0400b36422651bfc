//! The hub's user and channel attributes: the rules of a write (size limits, who wrote
//! which key when), applied between a read and a compare-and-set write of the engine's
//! record (`engine/user_attributes.rs`, `engine/channel_attributes.rs`: in Redis on
//! several nodes, so no node holds attributes it has no use for). From the shared state
//! they take only what it knows: whether a user is online, and its generation; whether
//! a channel has members, as of which epoch (the channel's side of the expiry of an
//! empty channel's attributes, told to the engine by `channel.rs` as members come and
//! go). Results carry the ATTR family's typed error (`AttrError`);
//! `session/attributes.rs` validates input and turns them into replies.

use std::collections::BTreeMap;

use crate::protocol::limits::{MAX_CHANNEL_ATTRIBUTES_BYTES, MAX_USER_ATTRIBUTES_BYTES};
use crate::protocol::{AttrError, AttributeWrite, Attributes, ChannelAttribute};

use crate::server::engine::channel_attributes::{ChannelWrite, Occupancy};
use crate::server::engine::ConnId;
use crate::server::engine::Replaced;

use super::state::{Here, Tenant};
use super::Hub;

/// The channel became occupied or empty with this change: a new epoch of the app (on
/// every node, so that they stay in step), and the origin tells the engine.
pub(super) fn occupancy_changed(
    hub: &Hub,
    app_state: &mut Tenant,
    (app, channel): (&str, &str),
    occupied: bool,
    here: Here,
) {
    let epoch = app_state.next_epoch(here.stamp.now_ms);
    if here.origin {
        let occupancy = Occupancy { epoch, occupied };
        let ttl = hub.config().channel_attributes_ttl;
        hub.engine()
            .channel_attributes()
            .occupancy(app, channel, occupancy, ttl);
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

/// The channel's list after `write` by `user` at `now_ms`, ordered by key: a key written
/// gets the writer and the time, the others keep theirs.
fn next_channel_attributes(
    current: &[ChannelAttribute],
    write: &AttributeWrite,
    user: &str,
    now_ms: u64,
) -> Result<Vec<ChannelAttribute>, AttrError> {
    let values: BTreeMap<String, String> = current
        .iter()
        .map(|a| (a.key.clone(), a.value.clone()))
        .collect();
    let next = apply_write(&values, write, MAX_CHANNEL_ATTRIBUTES_BYTES)?;
    let kept: BTreeMap<&str, &ChannelAttribute> =
        current.iter().map(|a| (a.key.as_str(), a)).collect();
    let written = write.written();
    Ok(next
        .into_iter()
        .map(|(key, value)| {
            let touched = written.is_some_and(|w| w.contains_key(&key));
            match kept.get(key.as_str()) {
                Some(old) if !touched => (*old).clone(),
                _ => ChannelAttribute {
                    key,
                    value,
                    updated_by: user.to_string(),
                    updated_ts: now_ms,
                },
            }
        })
        .collect())
}

/// A write that finds the record changed since it read it reads again, at most this many
/// times, before it gives up with the family's failure (a user's attributes have one
/// writer; a channel's, whoever writes at the same moment).
const WRITE_ATTEMPTS: usize = 4;

/// What a compare-and-set write's answer means for the loop around it: `None` to read
/// again, else the write's result.
fn settled(replaced: Replaced) -> Option<Result<(), AttrError>> {
    match replaced {
        Replaced::Done => Some(Ok(())),
        Replaced::Changed => None,
        Replaced::Stale => Some(Err(AttrError::Failure)),
    }
}

/// A write that read again [`WRITE_ATTEMPTS`] times: the family's failure.
fn gave_up(what: &str) -> Result<(), AttrError> {
    tracing::warn!(what, "attributes kept changing under a write");
    Err(AttrError::Failure)
}

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
        // The user's generation while `conn` is its session: asked again before each
        // write, so that a session that ended while the record was read writes nothing.
        let session = || {
            self.session_generation(app, user, conn)
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
            if let Some(written) = settled(replaced) {
                return written;
            }
        }
        gave_up(user)
    }

    /// A write of a channel's attributes by `user` (a member or not); `notify` sends the
    /// whole list to the channel's members.
    pub async fn write_channel_attributes(
        &self,
        (app, user, channel): (&str, &str, &str),
        write: &AttributeWrite,
        notify: bool,
    ) -> Result<(), AttrError> {
        let store = self.engine().channel_attributes();
        let ttl = self.config().channel_attributes_ttl;
        for _ in 0..WRITE_ATTEMPTS {
            let stored = store
                .read(app, channel)
                .await
                .map_err(|_| AttrError::Failure)?;
            let now_ms = crate::protocol::now_ms();
            let attributes = next_channel_attributes(&stored.attributes, write, user, now_ms)?;
            let write = ChannelWrite {
                app,
                channel,
                version: stored.version,
                attributes: &attributes,
                occupancy: self.members_view(app, channel),
                ttl,
                notify,
            };
            let replaced = store
                .replace(self, write)
                .await
                .map_err(|_| AttrError::Failure)?;
            if let Some(written) = settled(replaced) {
                return written;
            }
        }
        gave_up(channel)
    }

    /// Whether `channel` has members as this node's copy has it, and as of which epoch.
    fn members_view(&self, app: &str, channel: &str) -> Occupancy {
        let state = self.lock();
        let app_state = state.shared.apps.get(app);
        Occupancy {
            epoch: app_state.map_or(0, Tenant::epoch),
            occupied: app_state
                .and_then(|a| a.channels.get(channel))
                .is_some_and(|c| !c.members.is_empty()),
        }
    }

    /// `get_channel_attributes` (all, or the listed keys that exist), ordered by key.
    pub async fn channel_attributes(
        &self,
        app: &str,
        channel: &str,
        keys: Option<&[String]>,
    ) -> Result<Vec<ChannelAttribute>, AttrError> {
        let stored = self
            .engine()
            .channel_attributes()
            .read(app, channel)
            .await
            .map_err(|_| AttrError::Failure)?;
        let mut attributes = stored.attributes;
        if let Some(keys) = keys {
            attributes.retain(|a| keys.contains(&a.key));
        }
        Ok(attributes)
    }
}

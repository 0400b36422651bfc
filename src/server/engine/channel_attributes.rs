//! Where channel attributes live: outside the shared state every node holds, one record
//! per channel, so that a node keeps no channel's attributes it has no use for (on
//! several nodes they are in Redis, on the Redis that holds the channel:
//! `redis/channel_attributes.rs`).
//!
//! Writes compare and set, as user attributes do (`user_attributes.rs`): the writer read
//! the record at a `version`; the rules (size limits, who wrote what when) are the hub's
//! (`hub/attributes.rs`). With `notify`, the store hands `channel_attributes_updated` to
//! the channel's members on every node once the write has taken.
//!
//! **Expiry.** The attributes of an empty channel go `ttl` after it became empty (or,
//! written while it is empty, `ttl` after that write) unless someone joins first. Only
//! the shared state knows whether a channel has members, so every change of that
//! ([`Occupancy`]: empty, or occupied) is told to the store by the node that applied it
//! as its origin, with the app's epoch at that change, and every write carries the
//! writer's view too. Those come from different nodes in any order; the store keeps the
//! view of the latest epoch, so a late one never overrides a newer one. The record keeps
//! that view even without attributes, for `ttl`, so a write that comes just after a join
//! with an older view still finds the channel occupied.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::{ChannelAttribute, Event};
use crate::server::outbox::ConnHandle;

use super::{BoxFuture, Node};
use super::{Replaced, Unavailable};

/// Whether a channel has members, as of an epoch of its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    pub epoch: u64,
    pub occupied: bool,
}

/// A channel's attributes as read (ordered by key), with the version a write must find.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredChannelAttributes {
    pub version: u64,
    pub attributes: Vec<ChannelAttribute>,
}

/// A write of a channel's attributes (see [`ChannelAttributeStore::replace`]).
#[derive(Debug)]
pub struct ChannelWrite<'a> {
    pub app: &'a str,
    pub channel: &'a str,
    /// The version read.
    pub version: u64,
    /// The whole new list, ordered by key.
    pub attributes: &'a [ChannelAttribute],
    /// The writer's view of the channel's members.
    pub occupancy: Occupancy,
    /// How long the attributes of an empty channel last.
    pub ttl: Duration,
    /// Send `channel_attributes_updated` to the members.
    pub notify: bool,
}

/// Channel attributes by (app, channel). See the module header.
pub trait ChannelAttributeStore: Send + Sync {
    /// `channel`'s attributes (none, version 0, if it has none or they expired).
    fn read(
        &self,
        app: &str,
        channel: &str,
    ) -> BoxFuture<Result<StoredChannelAttributes, Unavailable>>;

    /// Writes the list if the record is still at `write.version`, keeps the expiry as the
    /// latest view of the members says, and with `notify` tells the members (through
    /// `node` on one node, through the channel's topic on several).
    fn replace(
        &self,
        node: &dyn Node,
        write: ChannelWrite<'_>,
    ) -> BoxFuture<Result<Replaced, Unavailable>>;

    /// The channel became occupied or empty (said by the origin of the change that made
    /// it so); fire and forget.
    fn occupancy(&self, app: &str, channel: &str, occupancy: Occupancy, ttl: Duration);
}

/// The event a notifying write sends, encoded once for every member.
pub fn updated_event(channel: &str, attributes: &[ChannelAttribute]) -> std::sync::Arc<str> {
    ConnHandle::encode_shared(&Event::ChannelAttributesUpdated {
        channel: channel.to_string(),
        attributes: attributes.to_vec(),
    })
}

/// One node's channel attributes, in memory (the memory engine's), expiring on tokio's
/// clock (so paused time moves them).
#[derive(Debug, Default)]
pub struct InMemoryChannelAttributes {
    records: Mutex<ChannelAttributeRecords>,
}

#[derive(Debug, Default)]
struct ChannelAttributeRecords {
    by_channel: HashMap<(String, String), ChannelAttributeRecord>,
    /// When expired records are next looked for (at most once a second).
    next_sweep: Option<Instant>,
}

#[derive(Debug)]
struct ChannelAttributeRecord {
    stored: StoredChannelAttributes,
    /// False for a record that only keeps the members' view (no attributes written).
    has_attributes: bool,
    view: Occupancy,
    expires_at: Option<Instant>,
}

impl ChannelAttributeRecord {
    /// Takes `view` if it is the latest, then sets the expiry as the latest view says:
    /// a channel that became empty starts its time; one written while empty starts it
    /// if it had none; occupied, none. A record without attributes lasts `ttl`.
    fn observe(&mut self, view: Occupancy, ttl: Duration, now: Instant, write: bool) {
        let moved = view.epoch > self.view.epoch;
        if moved {
            self.view = view;
        }
        self.expires_at = if !self.has_attributes {
            Some(now + ttl)
        } else if self.view.occupied {
            None
        } else if (moved && !write) || self.expires_at.is_none() {
            Some(now + ttl)
        } else {
            self.expires_at
        };
    }
}

impl ChannelAttributeRecords {
    /// Writes the list if the record is at the version read (see `replace`).
    fn write(&mut self, write: &ChannelWrite<'_>, now: Instant) -> Replaced {
        let key = (write.app.to_string(), write.channel.to_string());
        let current = self.live(&key, now).map_or(0, |r| r.stored.version);
        if current != write.version {
            return Replaced::Changed;
        }
        let record = self
            .by_channel
            .entry(key)
            .or_insert(ChannelAttributeRecord {
                stored: StoredChannelAttributes::default(),
                has_attributes: true,
                view: write.occupancy,
                expires_at: None,
            });
        record.stored = StoredChannelAttributes {
            version: write.version + 1,
            attributes: write.attributes.to_vec(),
        };
        if !record.has_attributes {
            // The first attributes: a view-only record's expiry does not count.
            record.expires_at = None;
            record.has_attributes = true;
        }
        record.observe(write.occupancy, write.ttl, now, true);
        Replaced::Done
    }

    /// The live record of `key` (an expired one is dropped), sweeping now and then.
    fn live(
        &mut self,
        key: &(String, String),
        now: Instant,
    ) -> Option<&mut ChannelAttributeRecord> {
        if self.next_sweep.is_none_or(|at| now >= at) {
            self.by_channel
                .retain(|_, r| r.expires_at.is_none_or(|at| now < at));
            self.next_sweep = Some(now + Duration::from_secs(1));
        }
        if self
            .by_channel
            .get(key)
            .is_some_and(|r| r.expires_at.is_some_and(|at| now >= at))
        {
            self.by_channel.remove(key);
        }
        self.by_channel.get_mut(key)
    }
}

impl InMemoryChannelAttributes {
    fn records(&self) -> std::sync::MutexGuard<'_, ChannelAttributeRecords> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ChannelAttributeStore for InMemoryChannelAttributes {
    fn read(
        &self,
        app: &str,
        channel: &str,
    ) -> BoxFuture<Result<StoredChannelAttributes, Unavailable>> {
        let key = (app.to_string(), channel.to_string());
        let stored = self
            .records()
            .live(&key, Instant::now())
            .map(|r| r.stored.clone())
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(stored)))
    }

    fn replace(
        &self,
        node: &dyn Node,
        write: ChannelWrite<'_>,
    ) -> BoxFuture<Result<Replaced, Unavailable>> {
        let replaced = self.records().write(&write, Instant::now());
        if replaced == Replaced::Done && write.notify {
            let line = updated_event(write.channel, write.attributes);
            node.deliver_channel(write.app, write.channel, None, &line);
        }
        Box::pin(std::future::ready(Ok(replaced)))
    }

    fn occupancy(&self, app: &str, channel: &str, occupancy: Occupancy, ttl: Duration) {
        let now = Instant::now();
        let key = (app.to_string(), channel.to_string());
        let mut records = self.records();
        if let Some(record) = records.live(&key, now) {
            record.observe(occupancy, ttl, now, false);
            return;
        }
        // No record: one that keeps only the view, for `ttl`.
        let mut record = ChannelAttributeRecord {
            stored: StoredChannelAttributes::default(),
            has_attributes: false,
            view: occupancy,
            expires_at: None,
        };
        record.observe(occupancy, ttl, now, false);
        records.by_channel.insert(key, record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    fn record(occupied: bool, epoch: u64) -> ChannelAttributeRecord {
        let mut record = ChannelAttributeRecord {
            stored: StoredChannelAttributes::default(),
            has_attributes: true,
            view: Occupancy {
                epoch: 0,
                occupied: true,
            },
            expires_at: None,
        };
        record.observe(Occupancy { epoch, occupied }, TTL, Instant::now(), false);
        record
    }

    #[test]
    fn a_late_view_never_overrides_a_newer_one() {
        let now = Instant::now();
        // Emptied at epoch 5: the time runs.
        let mut emptied = record(false, 5);
        assert!(emptied.expires_at.is_some());
        // A join at epoch 7 stops it; the emptying's view, arriving again late, does not
        // start it again, nor does a write that still saw the channel empty.
        emptied.observe(
            Occupancy {
                epoch: 7,
                occupied: true,
            },
            TTL,
            now,
            false,
        );
        assert_eq!(emptied.expires_at, None);
        emptied.observe(
            Occupancy {
                epoch: 5,
                occupied: false,
            },
            TTL,
            now,
            false,
        );
        emptied.observe(
            Occupancy {
                epoch: 6,
                occupied: false,
            },
            TTL,
            now,
            true,
        );
        assert_eq!(emptied.expires_at, None);
    }

    #[test]
    fn a_write_to_an_empty_channel_does_not_push_its_time_back() {
        let start = Instant::now();
        let mut emptied = record(false, 5);
        let first = emptied.expires_at;
        let later = start + Duration::from_secs(60);
        emptied.observe(
            Occupancy {
                epoch: 8,
                occupied: false,
            },
            TTL,
            later,
            true,
        );
        assert_eq!(emptied.expires_at, first);
        // Emptied anew (after a join), the time starts again.
        emptied.observe(
            Occupancy {
                epoch: 9,
                occupied: true,
            },
            TTL,
            later,
            false,
        );
        emptied.observe(
            Occupancy {
                epoch: 10,
                occupied: false,
            },
            TTL,
            later,
            false,
        );
        assert_eq!(emptied.expires_at, Some(later + TTL));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_write_after_a_view_only_record_starts_its_own_time() {
        let store = InMemoryChannelAttributes::default();
        let occupied = Occupancy {
            epoch: 1,
            occupied: true,
        };
        let empty = Occupancy {
            epoch: 2,
            occupied: false,
        };
        // A join leaves a record that only keeps the view; the channel empties.
        store.occupancy("app", "room", occupied, TTL);
        store.occupancy("app", "room", empty, TTL);
        tokio::time::advance(Duration::from_secs(290)).await;
        let attributes = [ChannelAttribute {
            key: "k".into(),
            value: "v".into(),
            updated_by: "alice".into(),
            updated_ts: 0,
        }];
        let write = ChannelWrite {
            app: "app",
            channel: "room",
            version: 0,
            attributes: &attributes,
            occupancy: empty,
            ttl: TTL,
            notify: false,
        };
        let done = store.records().write(&write, Instant::now());
        assert_eq!(done, Replaced::Done);
        // Ten seconds later the view-only record would have gone; the attributes stay.
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(store.read("app", "room").await.unwrap().attributes.len(), 1);
        tokio::time::advance(TTL).await;
        assert!(store
            .read("app", "room")
            .await
            .unwrap()
            .attributes
            .is_empty());
    }
}

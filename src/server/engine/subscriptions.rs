//! Where presence subscriptions live: outside the shared state every node holds, one
//! record per user, so that a node keeps the subscriptions of its own users only (on
//! several nodes they are in Redis, on the Redis the user's id hashes to:
//! `redis/subscriptions.rs`). Who gets the events is the node's own business: the hub
//! of the node holding a subscriber's connection follows its peers there
//! (`hub/watchers.rs`), loading the record when the user logs in.
//!
//! A record belongs to one *generation* of its user, as user attributes do
//! (`user_attributes.rs`): a user that logs in again within the grace period, or
//! elsewhere, keeps its subscriptions; one that went (logout, the grace over, a kick) has
//! its record forgotten, and a later user of the same id starts with none. A record of
//! another generation reads as empty; an add of an older generation than the record's
//! is refused (its session ended), one of a newer generation starts the record anew.

use std::collections::BTreeSet;

use super::generations::{OfGeneration, PerUser};
use super::{BoxFuture, Unavailable};

/// How adding subscriptions went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribed {
    /// Added (those subscribed already are kept).
    Done,
    /// The user would follow more than the cap: nothing was added.
    Overflow,
    /// The record is a later generation's: the asking session has ended.
    Stale,
}

/// Presence subscriptions by (app, user, generation). See the module header.
pub trait SubscriptionStore: Send + Sync {
    /// The peers `user` of `generation` follows, in id order (none if the record is
    /// another generation's or there is none).
    fn read(
        &self,
        app: &str,
        user: &str,
        generation: u64,
    ) -> BoxFuture<Result<Vec<String>, Unavailable>>;

    /// Adds `peers` to `user`'s subscriptions of `generation`, unless the user would
    /// then follow more than `cap` peers.
    fn add(
        &self,
        app: &str,
        user: &str,
        generation: u64,
        peers: &[String],
        cap: usize,
    ) -> BoxFuture<Result<Subscribed, Unavailable>>;

    /// Removes `peers` from `user`'s subscriptions of `generation` (those not there are
    /// ignored).
    fn remove(
        &self,
        app: &str,
        user: &str,
        generation: u64,
        peers: &[String],
    ) -> BoxFuture<Result<(), Unavailable>>;

    /// Forgets `user`'s record if it is `generation`'s or older (the user went); fire and
    /// forget.
    fn forget(&self, app: &str, user: &str, generation: u64);
}

/// One node's presence subscriptions, in memory (the memory engine's).
#[derive(Debug, Default)]
pub struct InMemorySubscriptions {
    records: PerUser<BTreeSet<String>>,
}

impl SubscriptionStore for InMemorySubscriptions {
    fn read(
        &self,
        app: &str,
        user: &str,
        generation: u64,
    ) -> BoxFuture<Result<Vec<String>, Unavailable>> {
        let peers = self
            .records
            .lock()
            .get(&(app.to_string(), user.to_string()))
            .filter(|record| record.generation == generation)
            .map(|record| record.value.iter().cloned().collect())
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(peers)))
    }

    fn add(
        &self,
        app: &str,
        user: &str,
        generation: u64,
        peers: &[String],
        cap: usize,
    ) -> BoxFuture<Result<Subscribed, Unavailable>> {
        let mut records = self.records.lock();
        let record = records
            .entry((app.to_string(), user.to_string()))
            .or_default();
        let subscribed = if record.generation > generation {
            Subscribed::Stale
        } else {
            if record.generation < generation {
                *record = OfGeneration {
                    generation,
                    value: BTreeSet::new(),
                };
            }
            let added: BTreeSet<&String> = peers
                .iter()
                .filter(|peer| !record.value.contains(*peer))
                .collect();
            if record.value.len() + added.len() > cap {
                Subscribed::Overflow
            } else {
                record.value.extend(added.into_iter().cloned());
                Subscribed::Done
            }
        };
        Box::pin(std::future::ready(Ok(subscribed)))
    }

    fn remove(
        &self,
        app: &str,
        user: &str,
        generation: u64,
        peers: &[String],
    ) -> BoxFuture<Result<(), Unavailable>> {
        let mut records = self.records.lock();
        let key = (app.to_string(), user.to_string());
        if let Some(record) = records.get_mut(&key) {
            if record.generation == generation {
                for peer in peers {
                    record.value.remove(peer);
                }
                if record.value.is_empty() {
                    records.remove(&key);
                }
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn forget(&self, app: &str, user: &str, generation: u64) {
        self.records.forget(app, user, generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(ToString::to_string).collect()
    }

    #[tokio::test]
    async fn adds_count_each_peer_once_and_stop_at_the_cap() {
        let store = InMemorySubscriptions::default();
        let added = store.add("app", "alice", 3, &ids(&["carol", "bob", "bob"]), 3);
        assert_eq!(added.await.unwrap(), Subscribed::Done);
        let read = store.read("app", "alice", 3).await.unwrap();
        assert_eq!(read, ids(&["bob", "carol"]));
        // bob again is no new subscription; dave and erin would make four.
        let over = store.add("app", "alice", 3, &ids(&["bob", "dave", "erin"]), 3);
        assert_eq!(over.await.unwrap(), Subscribed::Overflow);
        let again = store.add("app", "alice", 3, &ids(&["bob", "dave"]), 3);
        assert_eq!(again.await.unwrap(), Subscribed::Done);
        store
            .remove("app", "alice", 3, &ids(&["bob", "zed"]))
            .await
            .unwrap();
        let read = store.read("app", "alice", 3).await.unwrap();
        assert_eq!(read, ids(&["carol", "dave"]));
    }

    #[tokio::test]
    async fn another_generation_reads_empty_and_an_ended_session_adds_nothing() {
        let store = InMemorySubscriptions::default();
        store
            .add("app", "bob", 1, &ids(&["alice"]), 512)
            .await
            .unwrap();
        // bob went and came back: generation 2 starts with nothing of generation 1.
        assert!(store.read("app", "bob", 2).await.unwrap().is_empty());
        let fresh = store.add("app", "bob", 2, &ids(&["carol"]), 512);
        assert_eq!(fresh.await.unwrap(), Subscribed::Done);
        // The first generation's session, late, is refused; its forget keeps the second's.
        let late = store.add("app", "bob", 1, &ids(&["dave"]), 512);
        assert_eq!(late.await.unwrap(), Subscribed::Stale);
        store.forget("app", "bob", 1);
        assert_eq!(store.read("app", "bob", 2).await.unwrap(), ids(&["carol"]));
        store.forget("app", "bob", 2);
        assert!(store.records.lock().is_empty());
    }
}

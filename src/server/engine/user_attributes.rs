//! Where user attributes live: outside the shared state every node holds, one record per
//! user, so that a node keeps no user's attributes it has no use for (on several nodes
//! they are in Redis, on the Redis the user's id hashes to: `redis/user_attributes.rs`).
//!
//! A record belongs to one *generation* of its user: the hub gives a user a new one, larger
//! than any before it in the app, when it logs in without being known (a remote login or
//! a login within the grace period keeps the user, and so its attributes), and forgets
//! the record of that generation when the user goes. A record of another generation reads
//! as empty; an older one is overwritten by the first write, and a newer one refuses the
//! write (it comes from a session that has ended), so what an ended session wrote never
//! shows in a later one. Writes compare and set: the writer read the record at a
//! `version`, and the write takes only if the record is still there. The rules (size
//! limits) are the hub's (`hub/attributes.rs`), applied between the read and the write.

use crate::protocol::Attributes;

use super::generations::{OfGeneration, PerUser};
use super::{BoxFuture, Replaced, Unavailable};

/// A user's attributes as read, with the version a write must find.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredAttributes {
    pub version: u64,
    pub attributes: Attributes,
}

/// User attributes by (app, user, generation). See the module header.
pub trait UserAttributeStore: Send + Sync {
    /// `user`'s attributes of `generation` (empty, version 0, if the record is another
    /// generation's or there is none).
    fn read(
        &self,
        app: &str,
        user: &str,
        generation: u64,
    ) -> BoxFuture<Result<StoredAttributes, Unavailable>>;

    /// Writes `attributes` as `user`'s of `generation` if the record is still at
    /// `version` (0: none, or an older generation's).
    fn replace(
        &self,
        app: &str,
        user: &str,
        generation: u64,
        version: u64,
        attributes: &Attributes,
    ) -> BoxFuture<Result<Replaced, Unavailable>>;

    /// Forgets `user`'s record if it is `generation`'s or older (the user went); fire and
    /// forget.
    fn forget(&self, app: &str, user: &str, generation: u64);
}

/// One node's user attributes, in memory (the memory engine's).
#[derive(Debug, Default)]
pub struct InMemoryUserAttributes {
    records: PerUser<StoredAttributes>,
}

impl UserAttributeStore for InMemoryUserAttributes {
    fn read(
        &self,
        app: &str,
        user: &str,
        generation: u64,
    ) -> BoxFuture<Result<StoredAttributes, Unavailable>> {
        let stored = self
            .records
            .lock()
            .get(&(app.to_string(), user.to_string()))
            .filter(|record| record.generation == generation)
            .map(|record| record.value.clone())
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(stored)))
    }

    fn replace(
        &self,
        app: &str,
        user: &str,
        generation: u64,
        version: u64,
        attributes: &Attributes,
    ) -> BoxFuture<Result<Replaced, Unavailable>> {
        let mut records = self.records.lock();
        let key = (app.to_string(), user.to_string());
        let current = match records.get(&key) {
            Some(record) if record.generation > generation => {
                return Box::pin(std::future::ready(Ok(Replaced::Stale)));
            }
            Some(record) if record.generation == generation => record.value.version,
            _ => 0,
        };
        let replaced = if current == version {
            records.insert(
                key,
                OfGeneration {
                    generation,
                    value: StoredAttributes {
                        version: version + 1,
                        attributes: attributes.clone(),
                    },
                },
            );
            Replaced::Done
        } else {
            Replaced::Changed
        };
        Box::pin(std::future::ready(Ok(replaced)))
    }

    fn forget(&self, app: &str, user: &str, generation: u64) {
        self.records.forget(app, user, generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn a_write_takes_only_at_the_version_it_read() {
        let store = InMemoryUserAttributes::default();
        let empty = store.read("app", "alice", 7).await.unwrap();
        assert_eq!(empty, StoredAttributes::default());
        let first = attributes(&[("mood", "calm")]);
        let done = store.replace("app", "alice", 7, 0, &first).await.unwrap();
        assert_eq!(done, Replaced::Done);
        // A second writer that read before the first wrote finds the record moved on.
        let late = store.replace("app", "alice", 7, 0, &attributes(&[])).await;
        assert_eq!(late.unwrap(), Replaced::Changed);
        let read = store.read("app", "alice", 7).await.unwrap();
        assert_eq!((read.version, read.attributes), (1, first));
    }

    #[tokio::test]
    async fn another_generation_reads_empty_and_forgetting_it_keeps_the_current_one() {
        let store = InMemoryUserAttributes::default();
        let old = attributes(&[("seat", "3")]);
        store.replace("app", "bob", 1, 0, &old).await.unwrap();
        // bob went and came back: generation 2 sees nothing of generation 1.
        let fresh = store.read("app", "bob", 2).await.unwrap();
        assert_eq!(fresh, StoredAttributes::default());
        let new = attributes(&[("seat", "9")]);
        let done = store.replace("app", "bob", 2, 0, &new).await.unwrap();
        assert_eq!(done, Replaced::Done);
        // A write of the first generation, late, finds the second's record and is refused;
        // the first generation's late forget leaves the second's record alone.
        let late = store.replace("app", "bob", 1, 1, &old).await.unwrap();
        assert_eq!(late, Replaced::Stale);
        store.forget("app", "bob", 1);
        assert_eq!(store.read("app", "bob", 2).await.unwrap().attributes, new);
        store.forget("app", "bob", 2);
        assert!(store.records.lock().is_empty());
    }
}

//! Several Redis servers behind one engine (`serve --engine A --engine B ...`): which one
//! holds an app's shared state, a channel's or a conversation's keys, and the message ids
//! each hands out.
//!
//! The spread is a stable hash of the app and the id (CRC-32, whose bits are then mixed so
//! that ids differing in one character do not land together), modulo the number of
//! servers: every node, given the same list in the same order, agrees without asking.
//! Centrifugo's issue 554 is the trap avoided here: hashing to Redis Cluster's 16,384 hash
//! slots through tags left whole shards idle.
//!
//! Message ids: each server counts its own (`rtm:mseq`), and a message in a conversation
//! held by server `i` of `n` gets `count × n + i`: unique per app across servers, and
//! growing within each conversation, which always lives on one server.

use redis::aio::ConnectionManager;

use super::batch::Router;

/// One Redis server of the list.
#[derive(Clone)]
pub struct Shard {
    /// Its place in the list (its message ids are `i` modulo the list's length).
    pub index: usize,
    pub url: String,
    pub client: redis::Client,
    /// Multiplexed, pipelined, reconnecting: every command but blocking reads and PUB/SUB.
    pub conn: ConnectionManager,
    /// Its queue of message routes, sent in batches (`batch.rs`).
    pub router: Router,
    /// When a read of its change counters last went unanswered in time (`None`: the last
    /// one was answered): reads that would only wait to catch up skip the wait while it
    /// is recent ([`Shard::asking`]), so a Redis that hangs (a network cut, a stopped
    /// process) does not hold every read of the node's copy for the timeout.
    pub unanswered_at: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How long an unanswered read keeps the reads after it from waiting on the same Redis;
/// past it, one read asks again (and finds it back, or not: then another such while).
pub const STALL_REMEMBERED: std::time::Duration = std::time::Duration::from_secs(2);

/// A read that waited this long when it was given up counts as unanswered (a read of a
/// Redis that answers takes milliseconds; one given up sooner, its caller's own wait
/// having run out first, tells nothing of Redis).
pub const UNANSWERED_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl Shard {
    /// A read of this Redis that may begin, or `None` while an unanswered one is recent
    /// ([`STALL_REMEMBERED`]): then the caller goes on without it. Once that while is
    /// over, one caller gets to ask (the while starts again for the others), so a hung
    /// Redis keeps one read waiting at a time, not all of them. Unless it is
    /// [`Asking::answered`], a read counts as unanswered when it is dropped after
    /// [`UNANSWERED_AFTER`] (timed out here, or given up by its caller).
    pub fn asking(&self) -> Option<Asking> {
        let now = std::time::Instant::now();
        let mut unanswered_at = super::lock(&self.unanswered_at);
        if let Some(at) = *unanswered_at {
            if at.elapsed() < STALL_REMEMBERED {
                return None;
            }
            *unanswered_at = Some(now);
        }
        Some(Asking {
            unanswered_at: std::sync::Arc::clone(&self.unanswered_at),
            since: now,
        })
    }
}

/// See [`Shard::asking`].
pub struct Asking {
    unanswered_at: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    since: std::time::Instant,
}

impl Asking {
    /// Redis answered in time.
    pub fn answered(self) {
        *super::lock(&self.unanswered_at) = None;
        std::mem::forget(self);
    }
}

impl Drop for Asking {
    fn drop(&mut self) {
        if self.since.elapsed() >= UNANSWERED_AFTER {
            *super::lock(&self.unanswered_at) = Some(std::time::Instant::now());
        }
    }
}

/// Which of `count` servers holds the keys of `id` in `app`.
pub fn shard_of(count: usize, app: &str, id: &str) -> usize {
    if count <= 1 {
        return 0;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(app.as_bytes());
    hasher.update(&[0]);
    hasher.update(id.as_bytes());
    (mix(u64::from(hasher.finalize())) % count as u64) as usize
}

/// Which of `count` servers holds `app`'s shared state (its change stream and snapshots:
/// `apps.rs`).
pub fn shard_of_app(count: usize, app: &str) -> usize {
    shard_of(count, app, "")
}

/// Which of `count` servers holds `channel` of `app` (its members' messages, history).
pub fn shard_of_channel(count: usize, app: &str, channel: &str) -> usize {
    shard_of(
        count,
        app,
        &crate::server::engine::channel_conversation(channel),
    )
}

/// Which of `count` servers holds `user`'s own keys in `app` (its attributes).
pub fn shard_of_user(count: usize, app: &str, user: &str) -> usize {
    shard_of(count, app, &format!("u:{user}"))
}

/// Which of `count` servers holds the conversation of users `a` and `b` of `app`.
pub fn shard_of_peers(count: usize, app: &str, a: &str, b: &str) -> usize {
    shard_of(count, app, &crate::server::engine::peer_conversation(a, b))
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_holds_everything() {
        assert_eq!(shard_of(1, "app", "anything"), 0);
        assert_eq!(shard_of(0, "app", "anything"), 0);
    }

    #[test]
    fn the_spread_is_stable_and_depends_on_the_app_too() {
        assert_eq!(shard_of(4, "demo", "lobby"), shard_of(4, "demo", "lobby"));
        let apps: std::collections::BTreeSet<usize> = (0..32)
            .map(|i| shard_of(4, &format!("app{i}"), "lobby"))
            .collect();
        assert!(apps.len() > 1, "one channel name in many apps spreads too");
    }

    /// Names that differ in one character (bench-0 .. bench-9999) spread evenly: every
    /// server of 2, 3 and 5 gets its share within 5%.
    #[test]
    fn similar_names_spread_evenly() {
        for count in [2usize, 3, 5] {
            let mut per_shard = vec![0u32; count];
            for i in 0..10_000 {
                per_shard[shard_of(count, "demo", &format!("bench-{i}"))] += 1;
            }
            let fair = 10_000.0 / count as f64;
            for held in per_shard {
                let off = (f64::from(held) - fair).abs() / fair;
                assert!(off < 0.05, "{count} servers: one holds {held} of 10,000");
            }
        }
    }
}

//! Where bans live: outside the shared state every node holds, one record per banned
//! user, so that a node keeps no ban of a user it does not serve (on several nodes they
//! are in Redis, on the Redis the user's id hashes to: `redis/bans.rs`, expiring there
//! when the ban ends). The operator's ban is written here before its kick goes through
//! the app's order (`Change::Admin`); a login reads it before its change is submitted
//! (`session/login.rs`), and an unban is a delete here, answered at once, on any node.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{BoxFuture, Unavailable};

/// Bans by (app, user): when each ends, unix seconds (`u64::MAX`: never).
pub trait BanStore: Send + Sync {
    /// Bans `user` of `app` until `until_now.0` (replacing an earlier ban of it), at
    /// `until_now.1` (unix seconds both).
    fn ban(
        &self,
        app: &str,
        user: &str,
        until_now: (u64, u64),
    ) -> BoxFuture<Result<(), Unavailable>>;

    /// When `user`'s ban ends, if it is banned at `now` (unix seconds).
    fn banned_until(
        &self,
        app: &str,
        user: &str,
        now: u64,
    ) -> BoxFuture<Result<Option<u64>, Unavailable>>;

    /// Lifts `user`'s ban: whether it was banned at `now`.
    fn unban(&self, app: &str, user: &str, now: u64) -> BoxFuture<Result<bool, Unavailable>>;
}

/// One node's bans, in memory (the memory engine's): ended ones go at the next ban.
#[derive(Debug, Default)]
pub struct InMemoryBans {
    bans: Mutex<HashMap<(String, String), u64>>,
}

impl InMemoryBans {
    fn bans(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u64>> {
        self.bans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl BanStore for InMemoryBans {
    fn ban(
        &self,
        app: &str,
        user: &str,
        (until, now): (u64, u64),
    ) -> BoxFuture<Result<(), Unavailable>> {
        let mut bans = self.bans();
        bans.retain(|_, ends| *ends > now);
        bans.insert((app.to_string(), user.to_string()), until);
        Box::pin(std::future::ready(Ok(())))
    }

    fn banned_until(
        &self,
        app: &str,
        user: &str,
        now: u64,
    ) -> BoxFuture<Result<Option<u64>, Unavailable>> {
        let until = self
            .bans()
            .get(&(app.to_string(), user.to_string()))
            .copied()
            .filter(|until| *until > now);
        Box::pin(std::future::ready(Ok(until)))
    }

    fn unban(&self, app: &str, user: &str, now: u64) -> BoxFuture<Result<bool, Unavailable>> {
        let lifted = self.bans().remove(&(app.to_string(), user.to_string()));
        Box::pin(std::future::ready(Ok(
            lifted.is_some_and(|until| until > now)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ban_holds_until_it_ends_or_is_lifted() {
        let bans = InMemoryBans::default();
        bans.ban("app", "mallory", (100, 50)).await.unwrap();
        assert_eq!(bans.banned_until("app", "mallory", 99).await, Ok(Some(100)));
        assert_eq!(bans.banned_until("app", "mallory", 100).await, Ok(None));
        assert_eq!(bans.banned_until("other", "mallory", 99).await, Ok(None));
        // Lifting an ended ban lifts nothing; a running one, something.
        assert_eq!(bans.unban("app", "mallory", 100).await, Ok(false));
        bans.ban("app", "mallory", (u64::MAX, 100)).await.unwrap();
        assert_eq!(bans.unban("app", "mallory", 100).await, Ok(true));
        assert_eq!(bans.banned_until("app", "mallory", 100).await, Ok(None));
    }
}

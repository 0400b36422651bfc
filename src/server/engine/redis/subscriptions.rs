//! Presence subscriptions in Redis: one hash per user (`rtm:sub:<app>:<user>`: its
//! generation under the empty field, which no user id is, and one field per peer it
//! follows) on the Redis the user's id hashes to (`shards::shard_of_user`, beside its
//! attributes), so no node holds the subscriptions of users it does not serve, and a
//! Redis away fails only the subscriptions of the users it holds. What a generation is:
//! `engine/subscriptions.rs`.

use std::sync::LazyLock;

use redis::Script;

use crate::server::engine::subscriptions::{Subscribed, SubscriptionStore};
use crate::server::engine::{BoxFuture, Unavailable};

use super::shards::shard_of_user;
use super::user_attributes::FORGET;
use super::{within_timeout, RedisEngine};

/// The field that holds the record's generation.
const GENERATION: &str = "";

/// Adds the peers ARGV[3..] for generation ARGV[1] unless the user would then follow more
/// than ARGV[2]: -1 the hash is a later generation's, -2 over the cap, 1 added. An older
/// generation's hash starts anew.
const ADD_LUA: &str = r"
local mine = tonumber(ARGV[1])
local stored = tonumber(redis.call('HGET', KEYS[1], '')) or 0
if stored > mine then return -1 end
if stored < mine then redis.call('DEL', KEYS[1]) end
local count = redis.call('HLEN', KEYS[1])
if count > 0 then count = count - 1 end
local added, seen = {}, {}
for i = 3, #ARGV do
  local peer = ARGV[i]
  if not seen[peer] and redis.call('HEXISTS', KEYS[1], peer) == 0 then
    seen[peer] = true
    added[#added + 1] = peer
  end
end
if count + #added > tonumber(ARGV[2]) then return -2 end
redis.call('HSET', KEYS[1], '', ARGV[1])
for _, peer in ipairs(added) do redis.call('HSET', KEYS[1], peer, 1) end
return 1
";

/// Removes the peers ARGV[2..] if the hash is generation ARGV[1]'s; a hash left with
/// no peer goes.
const REMOVE_LUA: &str = r"
if redis.call('HGET', KEYS[1], '') ~= ARGV[1] then return 0 end
for i = 2, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
if redis.call('HLEN', KEYS[1]) <= 1 then redis.call('DEL', KEYS[1]) end
return 0
";

fn key(app: &str, user: &str) -> String {
    format!("rtm:sub:{app}:{user}")
}

/// The peers of a hash read whole, if it is `generation`'s, in id order.
fn peers_of(fields: Vec<(String, String)>, generation: u64) -> Vec<String> {
    let generation = generation.to_string();
    let current = fields
        .iter()
        .any(|(field, value)| field == GENERATION && *value == generation);
    if !current {
        return Vec::new();
    }
    let mut peers: Vec<String> = fields
        .into_iter()
        .map(|(field, _)| field)
        .filter(|field| field != GENERATION)
        .collect();
    peers.sort_unstable();
    peers
}

impl SubscriptionStore for RedisEngine {
    fn read(
        &self,
        app: &str,
        user: &str,
        generation: u64,
    ) -> BoxFuture<Result<Vec<String>, Unavailable>> {
        let mut conn = self.user_shard(app, user);
        let key = key(app, user);
        Box::pin(async move {
            let fields: Vec<(String, String)> = within_timeout(
                "reading presence subscriptions",
                redis::cmd("HGETALL").arg(&key).query_async(&mut conn),
            )
            .await?;
            Ok(peers_of(fields, generation))
        })
    }

    fn add(
        &self,
        app: &str,
        user: &str,
        generation: u64,
        peers: &[String],
        cap: usize,
    ) -> BoxFuture<Result<Subscribed, Unavailable>> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADD_LUA));
        let mut conn = self.user_shard(app, user);
        let mut call = SCRIPT.prepare_invoke();
        call.key(key(app, user)).arg(generation).arg(cap).arg(peers);
        Box::pin(async move {
            let answer: i64 = within_timeout(
                "adding presence subscriptions",
                call.invoke_async(&mut conn),
            )
            .await?;
            Ok(match answer {
                1 => Subscribed::Done,
                -1 => Subscribed::Stale,
                _ => Subscribed::Overflow,
            })
        })
    }

    fn remove(
        &self,
        app: &str,
        user: &str,
        generation: u64,
        peers: &[String],
    ) -> BoxFuture<Result<(), Unavailable>> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REMOVE_LUA));
        let mut conn = self.user_shard(app, user);
        let mut call = SCRIPT.prepare_invoke();
        call.key(key(app, user)).arg(generation).arg(peers);
        Box::pin(async move {
            let _: i64 = within_timeout(
                "removing presence subscriptions",
                call.invoke_async(&mut conn),
            )
            .await?;
            Ok(())
        })
    }

    fn forget(&self, app: &str, user: &str, generation: u64) {
        let shard = shard_of_user(self.inner.shards.len(), app, user);
        let args = vec![generation.to_string(), GENERATION.to_string()];
        let script = LazyLock::force(&FORGET);
        self.inner.retried.push(shard, script, key(app, user), args);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_of_another_generation_holds_no_peers() {
        let field = |name: &str, value: &str| (name.to_string(), value.to_string());
        let fields = vec![field("", "7"), field("carol", "1"), field("bob", "1")];
        assert_eq!(peers_of(fields.clone(), 7), vec!["bob", "carol"]);
        assert!(peers_of(fields, 8).is_empty());
        assert!(peers_of(Vec::new(), 7).is_empty());
    }
}

//! User attributes in Redis: one hash per user (`rtm:ua:<app>:<user>`: its generation
//! `g`, a version `v` counting its writes, the attributes `a` as JSON) on the Redis the
//! user's id hashes to (`shards::shard_of_user`), so no node holds them for users it
//! does not serve, and a Redis away fails only the attributes of the users it holds.
//! What a generation and a version are: `engine/user_attributes.rs`.

use std::sync::LazyLock;

use redis::Script;

use crate::protocol::Attributes;
use crate::server::engine::user_attributes::{StoredAttributes, UserAttributeStore};
use crate::server::engine::{BoxFuture, Replaced, Unavailable};

use super::shards::shard_of_user;
use super::{attributes_from, within_timeout, RedisEngine};

/// Writes the attributes if the hash is still at the version the writer read (none, or
/// an older generation's, counts as version 0): 1 written, 0 changed meanwhile, -1 the
/// hash is a later generation's. Generations stay below 2^53: exact as Lua numbers.
const REPLACE_LUA: &str = r"
local mine = tonumber(ARGV[1])
local stored = tonumber(redis.call('HGET', KEYS[1], 'g')) or 0
if stored > mine then return -1 end
local version = 0
if stored == mine then
  version = tonumber(redis.call('HGET', KEYS[1], 'v')) or 0
end
if version ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[1], 'v', version + 1, 'a', ARGV[3])
return 1
";

/// Deletes the hash if it is the given generation's (ARGV[1]) or an older one's, as its
/// field ARGV[2] holds it: a user's attributes and its presence subscriptions
/// (`subscriptions.rs`) go when the user goes.
const FORGET_LUA: &str = r"
local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[2])) or 0
if stored <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
return 0
";

/// [`FORGET_LUA`], for the owed-call queue (`retried.rs`).
pub(super) static FORGET: LazyLock<Script> = LazyLock::new(|| Script::new(FORGET_LUA));

fn key(app: &str, user: &str) -> String {
    format!("rtm:ua:{app}:{user}")
}

impl RedisEngine {
    /// The connection to the Redis holding `user`'s attributes.
    pub(super) fn user_shard(&self, app: &str, user: &str) -> redis::aio::ConnectionManager {
        let shards = &self.inner.shards;
        shards[shard_of_user(shards.len(), app, user)].conn.clone()
    }
}

impl UserAttributeStore for RedisEngine {
    fn read(
        &self,
        app: &str,
        user: &str,
        generation: u64,
    ) -> BoxFuture<Result<StoredAttributes, Unavailable>> {
        let mut conn = self.user_shard(app, user);
        let key = key(app, user);
        Box::pin(async move {
            let fields: (Option<String>, Option<u64>, Option<String>) = within_timeout(
                "reading user attributes",
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("g")
                    .arg("v")
                    .arg("a")
                    .query_async(&mut conn),
            )
            .await?;
            let (Some(stored_generation), Some(version), Some(json)) = fields else {
                return Ok(StoredAttributes::default());
            };
            if stored_generation != generation.to_string() {
                return Ok(StoredAttributes::default());
            }
            let attributes = attributes_from(&json, &key, "user attributes")?;
            Ok(StoredAttributes {
                version,
                attributes,
            })
        })
    }

    fn replace(
        &self,
        app: &str,
        user: &str,
        generation: u64,
        version: u64,
        attributes: &Attributes,
    ) -> BoxFuture<Result<Replaced, Unavailable>> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REPLACE_LUA));
        let mut conn = self.user_shard(app, user);
        let key = key(app, user);
        let json = serde_json::to_string(attributes).unwrap_or_else(|_| "{}".to_string());
        Box::pin(async move {
            let mut call = SCRIPT.prepare_invoke();
            call.key(&key).arg(generation).arg(version).arg(&json);
            let written: i64 =
                within_timeout("writing user attributes", call.invoke_async(&mut conn)).await?;
            Ok(match written {
                1 => Replaced::Done,
                0 => Replaced::Changed,
                _ => Replaced::Stale,
            })
        })
    }

    fn forget(&self, app: &str, user: &str, generation: u64) {
        let shard = shard_of_user(self.inner.shards.len(), app, user);
        let args = vec![generation.to_string(), "g".to_string()];
        let script = LazyLock::force(&FORGET);
        self.inner.retried.push(shard, script, key(app, user), args);
    }
}

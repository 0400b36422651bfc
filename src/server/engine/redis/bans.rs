//! Bans in Redis: one key per banned user (`rtm:ban:<app>:<user>`, holding when the ban
//! ends, unix seconds) on the Redis the user's id hashes to (`shards::shard_of_user`),
//! expiring there when the ban ends, so no node holds the bans of users it does not
//! serve, and a Redis away fails only the logins and bans of the users it holds.

use std::sync::LazyLock;

use redis::Script;

use crate::server::engine::bans::BanStore;
use crate::server::engine::{BoxFuture, Unavailable};

use super::{within_timeout, RedisEngine};

/// Deletes the ban: 1 if it had not ended at ARGV[1] (unix seconds), else 0.
const UNBAN_LUA: &str = r"
local ends = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
if ends and tonumber(ends) > tonumber(ARGV[1]) then return 1 end
return 0
";

/// Unix seconds of the year 10000: a ban ending later has no expiry in Redis.
const ENDLESS_FROM: u64 = 253_402_300_800;

fn key(app: &str, user: &str) -> String {
    format!("rtm:ban:{app}:{user}")
}

impl BanStore for RedisEngine {
    fn ban(
        &self,
        app: &str,
        user: &str,
        (until, _now): (u64, u64),
    ) -> BoxFuture<Result<(), Unavailable>> {
        let mut conn = self.user_shard(app, user);
        let mut set = redis::cmd("SET");
        set.arg(key(app, user)).arg(until);
        // A ban ending past the year 9999 (or never) is kept without expiry: Redis
        // refuses an expiry past about 9.2e15 s, which a ban of a huge duration reaches.
        if until < ENDLESS_FROM {
            set.arg("EXAT").arg(until);
        }
        Box::pin(
            async move { within_timeout("writing a ban", set.query_async::<()>(&mut conn)).await },
        )
    }

    fn banned_until(
        &self,
        app: &str,
        user: &str,
        now: u64,
    ) -> BoxFuture<Result<Option<u64>, Unavailable>> {
        let mut conn = self.user_shard(app, user);
        let key = key(app, user);
        Box::pin(async move {
            let until: Option<u64> = within_timeout(
                "reading a ban",
                redis::cmd("GET").arg(&key).query_async(&mut conn),
            )
            .await?;
            Ok(until.filter(|until| *until > now))
        })
    }

    fn unban(&self, app: &str, user: &str, now: u64) -> BoxFuture<Result<bool, Unavailable>> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(UNBAN_LUA));
        let mut conn = self.user_shard(app, user);
        let mut call = SCRIPT.prepare_invoke();
        call.key(key(app, user)).arg(now);
        Box::pin(async move {
            let lifted: i64 = within_timeout("lifting a ban", call.invoke_async(&mut conn)).await?;
            Ok(lifted == 1)
        })
    }
}

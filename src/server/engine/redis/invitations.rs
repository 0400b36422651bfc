//! Pending call invitations in Redis: one hash per caller (`rtm:inv:<app>:<caller>`) on
//! the Redis the caller's id hashes to (`shards::shard_of_user`), a field per pending
//! invitation (`<callee> NUL <id>`, ids cannot hold NUL) whose value is its terms
//! (`<epoch>:<expires at, unix ms>`). Each step is one script, so two nodes never both
//! close one invitation, and the cap of pending invitations per caller holds across
//! nodes. An invitation nobody closed (both nodes that ran its expiry died) is dropped a
//! minute after its expiry by the caller's next `invite`, and the hash expires a minute
//! after its latest invitation would have: nothing is left behind. What the steps mean:
//! `engine/invitations.rs`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::server::engine::invitations::{InvitationStore, InvitationTerms, Opened};
use crate::server::engine::{BoxFuture, InvitationKey, Unavailable};

use super::{within_timeout, RedisEngine};

/// How long a caller's hash outlives its latest invitation's expiry.
const LINGER: Duration = Duration::from_secs(60);

/// 1 opened, 0 pending already, -1 the caller's cap (ARGV[3]) reached; ARGV[4]: how long
/// the hash must last at least (ms). First drops the invitations nobody closed (both
/// nodes that ran their expiry died) once they are ARGV[6] ms past their expiry (ARGV[5]
/// is now, unix ms): they no longer count, nor block their id.
const OPEN_LUA: &str = r"
local stale = tonumber(ARGV[5]) - tonumber(ARGV[6])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local expires = tonumber(string.match(all[i + 1], ':(%d+)$'))
  if expires and expires < stale then redis.call('HDEL', KEYS[1], all[i]) end
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
";

/// 1 closed, 0 not pending (or, with an epoch in ARGV[2], another invitation's).
const CLOSE_LUA: &str = r"
local terms = redis.call('HGET', KEYS[1], ARGV[1])
if not terms then return 0 end
if ARGV[2] ~= '' and string.match(terms, '^[^:]*') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
";

fn key(app: &str, caller: &str) -> String {
    format!("rtm:inv:{app}:{caller}")
}

fn field(callee: &str, id: &str) -> String {
    format!("{callee}\0{id}")
}

fn terms_text(terms: InvitationTerms) -> String {
    format!("{}:{}", terms.epoch, terms.expires_at_ms)
}

impl InvitationStore for RedisEngine {
    fn open(
        &self,
        app: &str,
        (caller, callee, id): &InvitationKey,
        terms: InvitationTerms,
        (cap, now): (usize, u64),
    ) -> BoxFuture<Result<Opened, Unavailable>> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(OPEN_LUA));
        let mut conn = self.user_shard(app, caller);
        let key = key(app, caller);
        let field = field(callee, id);
        let linger = LINGER.as_millis() as u64;
        let lasting = terms
            .expires_at_ms
            .saturating_sub(now)
            .saturating_add(linger);
        Box::pin(async move {
            let mut call = SCRIPT.prepare_invoke();
            call.key(&key)
                .arg(&field)
                .arg(terms_text(terms))
                .arg(cap)
                .arg(lasting)
                .arg(now)
                .arg(linger);
            let opened: i64 =
                within_timeout("opening an invitation", call.invoke_async(&mut conn)).await?;
            Ok(match opened {
                1 => Opened::Done,
                0 => Opened::Duplicate,
                _ => Opened::TooMany,
            })
        })
    }

    fn close(
        &self,
        app: &str,
        (caller, callee, id): &InvitationKey,
        epoch: Option<u64>,
    ) -> BoxFuture<Result<bool, Unavailable>> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLOSE_LUA));
        let mut conn = self.user_shard(app, caller);
        let key = key(app, caller);
        let field = field(callee, id);
        let epoch = epoch.map(|e| e.to_string()).unwrap_or_default();
        Box::pin(async move {
            let mut call = SCRIPT.prepare_invoke();
            call.key(&key).arg(&field).arg(&epoch);
            let closed: i64 =
                within_timeout("closing an invitation", call.invoke_async(&mut conn)).await?;
            Ok(closed == 1)
        })
    }
}

//! Pending call invitations in Redis: one hash per caller (`rtm:inv:<app>:<caller>`) on
//! the Redis the caller's id hashes to (`shards::shard_of_user`), a field per pending
//! invitation (`<callee> NUL <id>`, ids cannot hold NUL) whose value is its terms
//! (`<epoch>:<expires at, unix ms>`). Each step is one script, so two nodes never both
//! close one invitation, and the cap of pending invitations per caller holds across
//! nodes. The hash expires a minute after its latest invitation would have, so a caller
//! whose invitations nobody closed (its node died and so did the one adopting them)
//! leaves nothing behind. What the steps mean: `engine/invitations.rs`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::server::engine::invitations::{InvitationStore, InvitationTerms, Opened};
use crate::server::engine::{BoxFuture, InvitationKey, Unavailable};

use super::{within_timeout, RedisEngine};

/// How long a caller's hash outlives its latest invitation's expiry.
const LINGER: Duration = Duration::from_secs(60);

/// 1 opened, 0 pending already, -1 the caller's cap (ARGV[3]) reached; ARGV[4]: how long
/// the hash must last at least (ms).
const OPEN_LUA: &str = r"
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

fn parse_terms(text: &str) -> Option<InvitationTerms> {
    let (epoch, expires) = text.split_once(':')?;
    Some(InvitationTerms {
        epoch: epoch.parse().ok()?,
        expires_at_ms: expires.parse().ok()?,
    })
}

impl InvitationStore for RedisEngine {
    fn open(
        &self,
        app: &str,
        (caller, callee, id): &InvitationKey,
        terms: InvitationTerms,
        cap: usize,
    ) -> BoxFuture<Result<Opened, Unavailable>> {
        static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(OPEN_LUA));
        let mut conn = self.user_shard(app, caller);
        let key = key(app, caller);
        let field = field(callee, id);
        let lasting = terms
            .expires_at_ms
            .saturating_sub(crate::protocol::now_ms())
            .saturating_add(LINGER.as_millis() as u64);
        Box::pin(async move {
            let mut call = SCRIPT.prepare_invoke();
            call.key(&key)
                .arg(&field)
                .arg(terms_text(terms))
                .arg(cap)
                .arg(lasting);
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

    fn pending(
        &self,
        app: &str,
        caller: &str,
    ) -> BoxFuture<Result<Vec<(InvitationKey, InvitationTerms)>, Unavailable>> {
        let mut conn = self.user_shard(app, caller);
        let key = key(app, caller);
        let caller = caller.to_string();
        Box::pin(async move {
            let fields: Vec<(String, String)> = within_timeout(
                "reading pending invitations",
                redis::cmd("HGETALL").arg(&key).query_async(&mut conn),
            )
            .await?;
            Ok(fields
                .iter()
                .filter_map(|(field, terms)| {
                    let (callee, id) = field.split_once('\0')?;
                    let key = (caller.clone(), callee.to_string(), id.to_string());
                    Some((key, parse_terms(terms)?))
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_read_back_as_written() {
        let terms = InvitationTerms {
            epoch: 1 << 52,
            expires_at_ms: 1_800_000_000_000,
        };
        assert_eq!(parse_terms(&terms_text(terms)), Some(terms));
        assert_eq!(parse_terms("12"), None);
    }
}

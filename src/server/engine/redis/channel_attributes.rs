//! Channel attributes in Redis: one hash per channel (`rtm:ca:<app>:<channel>`: a version
//! `v` counting its writes, the attributes `a` as JSON, and the latest view of the
//! channel's members, `m` its epoch and `s` 1 if occupied) on the Redis that holds the
//! channel, with Redis' own expiry (`PEXPIRE`/`PERSIST`) for an empty channel's. A
//! notifying write publishes `channel_attributes_updated` on the channel's topic in the
//! same script, so the nodes with members hand it on (`feed.rs`). What the views and
//! the expiry mean: `engine/channel_attributes.rs`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::server::engine::channel_attributes::{
    ChannelAttributeStore, ChannelWrite, Occupancy, StoredChannelAttributes,
};
use crate::server::engine::{BoxFuture, Node};
use crate::server::engine::{Replaced, Unavailable};

use super::feed::{channel_topic, TopicMessage};
use super::shards::shard_of_channel;
use super::{attributes_from, within_timeout, RedisEngine};

/// Takes a view of the members (epoch string, epoch, occupied 0/1) if it is the latest
/// and sets the expiry as the latest says (see `ChannelAttributeRecord::observe` in
/// `engine/channel_attributes.rs`, which does the same in memory). The epoch is written
/// as the string it came as: Lua would print a number this large as 1.8e+15.
const OBSERVE_LUA: &str = r"
local function observe(key, epoch_text, occupied, ttl, write)
  local epoch = tonumber(epoch_text)
  local known = tonumber(redis.call('HGET', key, 'm'))
  local moved = known == nil or epoch > known
  if moved then
    redis.call('HSET', key, 'm', epoch_text, 's', occupied)
  else
    occupied = tonumber(redis.call('HGET', key, 's')) or 0
  end
  if redis.call('HEXISTS', key, 'a') == 0 then
    redis.call('PEXPIRE', key, ttl)
  elseif occupied == 1 then
    redis.call('PERSIST', key)
  elseif (moved and not write) or redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ttl)
  end
end
";

/// ARGV: the version read, the list's JSON, the writer's view (epoch, occupied), the ttl
/// in ms, the topic ('' for no notice) and the notice. 1 written, 0 changed meanwhile.
const REPLACE_LUA: &str = r"
local version = tonumber(redis.call('HGET', KEYS[1], 'v')) or 0
if version ~= tonumber(ARGV[1]) then return 0 end
if redis.call('HEXISTS', KEYS[1], 'a') == 0 then
  -- the first attributes: the expiry of a record that only kept a view does not count
  redis.call('PERSIST', KEYS[1])
end
redis.call('HSET', KEYS[1], 'v', version + 1, 'a', ARGV[2])
observe(KEYS[1], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), true)
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
return 1
";

/// ARGV: the view (epoch, occupied) and the ttl in ms.
const OCCUPANCY_LUA: &str = r"
observe(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), false)
return 0
";

fn key(app: &str, channel: &str) -> String {
    format!("rtm:ca:{app}:{channel}")
}

/// Tells the channel's hash a change of its members (sent through `retried.rs`).
static OCCUPANCY: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{OBSERVE_LUA}{OCCUPANCY_LUA}")));

impl RedisEngine {
    /// The connection to the Redis holding `channel`.
    fn channel_shard(&self, app: &str, channel: &str) -> redis::aio::ConnectionManager {
        let shards = &self.inner.shards;
        shards[shard_of_channel(shards.len(), app, channel)]
            .conn
            .clone()
    }
}

impl ChannelAttributeStore for RedisEngine {
    fn read(
        &self,
        app: &str,
        channel: &str,
    ) -> BoxFuture<Result<StoredChannelAttributes, Unavailable>> {
        let mut conn = self.channel_shard(app, channel);
        let key = key(app, channel);
        Box::pin(async move {
            let fields: (Option<u64>, Option<String>) = within_timeout(
                "reading channel attributes",
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("v")
                    .arg("a")
                    .query_async(&mut conn),
            )
            .await?;
            let (Some(version), Some(json)) = fields else {
                return Ok(StoredChannelAttributes::default());
            };
            let attributes = attributes_from(&json, &key, "channel attributes")?;
            Ok(StoredChannelAttributes {
                version,
                attributes,
            })
        })
    }

    fn replace(
        &self,
        _node: &dyn Node,
        write: ChannelWrite<'_>,
    ) -> BoxFuture<Result<Replaced, Unavailable>> {
        static SCRIPT: LazyLock<Script> =
            LazyLock::new(|| Script::new(&format!("{OBSERVE_LUA}{REPLACE_LUA}")));
        let mut conn = self.channel_shard(write.app, write.channel);
        let key = key(write.app, write.channel);
        let json = serde_json::to_string(write.attributes).unwrap_or_else(|_| "[]".to_string());
        let (topic, notice) = if write.notify {
            let notice = TopicMessage::Attributes {
                n: self.inner.apps.applied(write.app),
                app: write.app.to_string(),
                channel: write.channel.to_string(),
                attributes: write.attributes.to_vec(),
            };
            let notice = serde_json::to_string(&notice).unwrap_or_default();
            (channel_topic(write.app, write.channel), notice)
        } else {
            (String::new(), String::new())
        };
        let mut call = SCRIPT.prepare_invoke();
        call.key(&key)
            .arg(write.version)
            .arg(json)
            .arg(write.occupancy.epoch)
            .arg(u8::from(write.occupancy.occupied))
            .arg(write.ttl.as_millis() as u64)
            .arg(topic)
            .arg(notice);
        Box::pin(async move {
            let written: i64 =
                within_timeout("writing channel attributes", call.invoke_async(&mut conn)).await?;
            Ok(if written == 1 {
                Replaced::Done
            } else {
                Replaced::Changed
            })
        })
    }

    fn occupancy(&self, app: &str, channel: &str, occupancy: Occupancy, ttl: Duration) {
        let shard = shard_of_channel(self.inner.shards.len(), app, channel);
        let args = vec![
            occupancy.epoch.to_string(),
            u8::from(occupancy.occupied).to_string(),
            ttl.as_millis().to_string(),
        ];
        let script = LazyLock::force(&OCCUPANCY);
        self.inner
            .retried
            .push(shard, script, key(app, channel), args);
    }
}

//! Channel attributes in Redis: one hash per channel (`rtm:ca:<app>:<channel>`: a version
//! `v` counting its writes, the attributes `a` as JSON, and the latest view of the
//! channel's members, `m` its epoch and `s` 1 if occupied) on the Redis that holds the
//! channel, with Redis' own expiry (`PEXPIRE`/`PERSIST`) for an empty channel's. A
//! notifying write publishes `channel_attributes_updated` on the channel's topic in the
//! same script, so the nodes with members hand it on (`feed.rs`). What the views and
//! the expiry mean: `engine/channel_attributes.rs`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use redis::Script;
use tokio::sync::Notify;

use crate::server::engine::channel_attributes::{
    ChannelAttributeStore, ChannelWrite, Occupancy, StoredChannelAttributes,
};
use crate::server::engine::{BoxFuture, Node};
use crate::server::engine::{Replaced, Unavailable};

use super::feed::{channel_topic, TopicMessage};
use super::shards::shard_of_channel;
use super::user_attributes::within_timeout;
use super::{lock, stopped, Complaint, Inner, RedisEngine, SUBMIT_TIMEOUT};

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

/// Changes of channels' members waiting to be told to their Redis: the latest per
/// channel, kept until its Redis took it (a Redis away gets it once back; telling one
/// again is harmless, as the epoch says which view is the latest).
#[derive(Debug, Default)]
pub(super) struct PendingOccupancy {
    views: Mutex<HashMap<(String, String), (Occupancy, Duration)>>,
    added: Notify,
}

/// How long telling waits after a failure before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Tells each channel's Redis the latest change of its members, as they come; what
/// could not be told is tried again every [`RETRY_AFTER`].
pub(super) async fn tell_occupancy(inner: Arc<Inner>) {
    static SCRIPT: LazyLock<Script> =
        LazyLock::new(|| Script::new(&format!("{OBSERVE_LUA}{OCCUPANCY_LUA}")));
    let mut complaint = Complaint::new("telling channel attributes who is in");
    loop {
        let views: Vec<_> = lock(&inner.occupancy.views)
            .iter()
            .map(|(key, view)| (key.clone(), *view))
            .collect();
        let sends = views.into_iter().map(|((app, channel), (occupancy, ttl))| {
            let shards = &inner.shards;
            let mut conn = shards[shard_of_channel(shards.len(), &app, &channel)]
                .conn
                .clone();
            let mut call = SCRIPT.prepare_invoke();
            call.key(key(&app, &channel))
                .arg(occupancy.epoch)
                .arg(u8::from(occupancy.occupied))
                .arg(ttl.as_millis() as u64);
            async move {
                let told =
                    tokio::time::timeout(SUBMIT_TIMEOUT, call.invoke_async::<i64>(&mut conn)).await;
                (app, channel, occupancy.epoch, told)
            }
        });
        let mut failed = false;
        for (app, channel, epoch, told) in futures_util::future::join_all(sends).await {
            match told {
                Ok(Ok(_)) => {
                    let mut views = lock(&inner.occupancy.views);
                    let key = (app, channel);
                    if views.get(&key).is_some_and(|(o, _)| o.epoch == epoch) {
                        views.remove(&key);
                    }
                }
                Ok(Err(error)) => {
                    complaint.failed(&error);
                    failed = true;
                }
                Err(_) => {
                    complaint.failed(&"timed out");
                    failed = true;
                }
            }
        }
        if !failed {
            complaint.worked();
        }
        let more = async {
            if failed {
                tokio::time::sleep(RETRY_AFTER).await;
            } else {
                inner.occupancy.added.notified().await;
            }
        };
        tokio::select! {
            () = more => {}
            () = stopped(&inner) => return,
        }
    }
}

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
            let attributes = serde_json::from_str(&json).map_err(|error| {
                tracing::error!(%error, key, "unreadable channel attributes");
                Unavailable
            })?;
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
        let pending = &self.inner.occupancy;
        let mut views = lock(&pending.views);
        let view = views
            .entry((app.to_string(), channel.to_string()))
            .or_insert((occupancy, ttl));
        if occupancy.epoch >= view.0.epoch {
            *view = (occupancy, ttl);
        }
        drop(views);
        pending.added.notify_one();
    }
}

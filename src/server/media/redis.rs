//! Media on several nodes: chunked keys in the engine's Redis, so every node serves every
//! media id.
//!
//! A file is a hash: `size` and its chunks `c0`, `c1`, ... of [`CHUNK_BYTES`]. An upload
//! writes its chunks under a temporary key `rtm:media:tmp:<app>:<id>` (kept 10 minutes
//! past its last chunk, so an upload its node abandoned in a crash goes by itself), then
//! in one transaction sets `size`, renames it to `rtm:media:<app>:<id>` and gives it the
//! expiry: a reader finds the whole file or nothing. With several Redis, the media id's
//! hash picks one (`engine::redis::shards`), as for conversations.
//!
//! Each Redis gets a connection of the store's own: a file's chunks do not wait in line
//! with the engine's commands, nor the engine's behind them.

use std::time::Duration;

use hyper::body::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{StoreFailure, CHUNK_BYTES};
use crate::server::engine::redis::shards::shard_of;

/// How long a temporary key outlives its last chunk.
const TEMPORARY_LIFE: Duration = Duration::from_secs(600);
/// How long one Redis command may take before the transfer fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RedisStore {
    conns: Vec<ConnectionManager>,
    expiry: Duration,
}

pub struct RedisWriter {
    conn: ConnectionManager,
    temp: String,
    key: String,
    buffer: Vec<u8>,
    chunks: u64,
    size: u64,
    expiry: Duration,
    committed: bool,
}

pub struct RedisReader {
    conn: ConnectionManager,
    key: String,
    next_chunk: u64,
}

fn failure(error: redis::RedisError) -> StoreFailure {
    let text = error.to_string();
    // A pipeline's errors are the server's, one per failed command.
    let oom = error.code() == Some("OOM")
        || error
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "OOM"));
    if oom {
        StoreFailure::Full(text)
    } else {
        StoreFailure::Failed(text)
    }
}

async fn run<T: redis::FromRedisValue>(
    conn: &mut ConnectionManager,
    pipe: &redis::Pipeline,
) -> Result<T, StoreFailure> {
    match tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<T>(conn)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(failure(error)),
        Err(_) => Err(StoreFailure::Failed(format!(
            "Redis did not answer within {COMMAND_TIMEOUT:?}"
        ))),
    }
}

impl RedisStore {
    pub async fn connect(urls: &[String], expiry: Duration) -> Result<RedisStore, String> {
        let mut conns = Vec::with_capacity(urls.len());
        for url in urls {
            let client = redis::Client::open(url.as_str()).map_err(|e| format!("{url}: {e}"))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(COMMAND_TIMEOUT))
                .set_response_timeout(Some(COMMAND_TIMEOUT))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            let conn = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            conns.push(conn);
        }
        Ok(RedisStore { conns, expiry })
    }

    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    fn conn(&self, app: &str, id: &str) -> ConnectionManager {
        self.conns[shard_of(self.conns.len(), app, id)].clone()
    }

    pub fn begin(&self, app: &str, id: &str, _size: u64) -> RedisWriter {
        RedisWriter {
            conn: self.conn(app, id),
            temp: format!("rtm:media:tmp:{app}:{id}"),
            key: format!("rtm:media:{app}:{id}"),
            buffer: Vec::with_capacity(CHUNK_BYTES),
            chunks: 0,
            size: 0,
            expiry: self.expiry,
            committed: false,
        }
    }

    /// The file and its size, when its key is there (Redis expires it).
    pub async fn open(
        &self,
        app: &str,
        id: &str,
    ) -> Result<Option<(RedisReader, u64)>, StoreFailure> {
        let mut conn = self.conn(app, id);
        let key = format!("rtm:media:{app}:{id}");
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(&key).arg("size");
        let (size,): (Option<u64>,) = run(&mut conn, &pipe).await?;
        Ok(size.map(|size| {
            let reader = RedisReader {
                conn,
                key,
                next_chunk: 0,
            };
            (reader, size)
        }))
    }
}

impl RedisWriter {
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), StoreFailure> {
        while !bytes.is_empty() {
            let room = CHUNK_BYTES - self.buffer.len();
            let take = room.min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == CHUNK_BYTES {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StoreFailure> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(&self.temp)
            .arg(format!("c{}", self.chunks))
            .arg(self.buffer.as_slice())
            .ignore();
        pipe.cmd("PEXPIRE")
            .arg(&self.temp)
            .arg(TEMPORARY_LIFE.as_millis() as u64)
            .ignore();
        run::<()>(&mut self.conn, &pipe).await?;
        self.size += self.buffer.len() as u64;
        self.chunks += 1;
        self.buffer.clear();
        Ok(())
    }

    pub async fn commit(mut self) -> Result<(), StoreFailure> {
        self.flush().await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HSET")
            .arg(&self.temp)
            .arg("size")
            .arg(self.size)
            .ignore();
        pipe.cmd("RENAME").arg(&self.temp).arg(&self.key).ignore();
        pipe.cmd("PEXPIRE")
            .arg(&self.key)
            .arg(self.expiry.as_millis() as u64)
            .ignore();
        run::<()>(&mut self.conn, &pipe).await?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for RedisWriter {
    fn drop(&mut self) {
        if self.committed || (self.chunks == 0 && self.buffer.is_empty()) {
            return;
        }
        // An upload that did not complete: its chunks go now (or with their expiry).
        let mut conn = self.conn.clone();
        let temp = std::mem::take(&mut self.temp);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut pipe = redis::pipe();
                pipe.cmd("DEL").arg(&temp).ignore();
                let _ = run::<()>(&mut conn, &pipe).await;
            });
        }
    }
}

impl RedisReader {
    /// The next chunk (empty when it is gone: the file expired meanwhile).
    pub async fn next(&mut self) -> Result<Bytes, StoreFailure> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET")
            .arg(&self.key)
            .arg(format!("c{}", self.next_chunk));
        let (chunk,): (Option<Vec<u8>>,) = run(&mut self.conn, &pipe).await?;
        self.next_chunk += 1;
        Ok(Bytes::from(chunk.unwrap_or_default()))
    }
}

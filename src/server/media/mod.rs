//! Files and images (docs/protocol.md, "Files and images"): what one node knows of media.
//!
//! - this file: [`Media`], the node's media state: the store, the tickets it gave
//!   (`media_ticket`), the per-user quotas and the node's bound on uploads at once, and
//!   the sweeper of expired media.
//! - `disk.rs`: the store of one node, files under the data directory.
//! - `redis.rs`: the store of several nodes, chunked keys in the engine's Redis.
//!
//! The HTTP side (upload and download) is `http/media.rs`; the op is `session/media.rs`.

mod disk;
mod redis;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::body::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::clock::Instant;
use super::config::Config;
use crate::protocol::MediaFailure;

/// How long a ticket may be used to begin a transfer.
pub(super) const TICKET_LIFE: Duration = Duration::from_secs(60);
/// Tickets one user may ask for per [`TICKET_WINDOW`] on a node (MEDIA 5 past it).
const TICKETS_PER_WINDOW: usize = 60;
const TICKET_WINDOW: Duration = Duration::from_secs(60);
/// The window of [`Config::media_user_bytes_per_hour`].
const QUOTA_WINDOW: Duration = Duration::from_secs(3600);
/// Bytes a store reads or writes at once: what one transfer holds in memory at most
/// (besides the socket's buffers).
pub(super) const CHUNK_BYTES: usize = 256 * 1024;
/// Most users whose quotas a node remembers; past it those with nothing under way and
/// nothing recent are forgotten.
const MAX_REMEMBERED_USERS: usize = 4096;

/// Why a store could not keep or give a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreFailure {
    /// No room (a full disk, Redis over its memory): 507 `storage_full`.
    #[error("the media store is full: {0}")]
    Full(String),
    /// Anything else (an I/O error, Redis away): 500 `storage_failed`.
    #[error("the media store failed: {0}")]
    Failed(String),
}

impl StoreFailure {
    /// The wire failure this is answered with.
    pub fn failure(&self) -> MediaFailure {
        match self {
            StoreFailure::Full(_) => MediaFailure::StorageFull,
            StoreFailure::Failed(_) => MediaFailure::StorageFailed,
        }
    }

    /// An I/O error, read as "full" where it says so.
    pub fn from_io(what: &str, error: &std::io::Error) -> Self {
        // ENOSPC and EDQUOT: no room for this user or on the device.
        if matches!(error.raw_os_error(), Some(28 | 122)) {
            StoreFailure::Full(format!("{what}: {error}"))
        } else {
            StoreFailure::Failed(format!("{what}: {error}"))
        }
    }
}

/// Where a node keeps media.
pub enum MediaStore {
    Disk(disk::DiskStore),
    Redis(redis::RedisStore),
}

/// One upload being written: dropped before [`Writer::commit`], it leaves nothing.
pub enum Writer {
    Disk(disk::DiskWriter),
    Redis(redis::RedisWriter),
}

/// One stored file being read: its size, what is left, and where it comes from.
pub struct Reader {
    size: u64,
    left: u64,
    source: Source,
}

enum Source {
    Disk(disk::DiskReader),
    Redis(redis::RedisReader),
}

impl MediaStore {
    /// Files under `dir/media`, kept for `expiry`.
    pub fn disk(dir: &Path, expiry: Duration) -> std::io::Result<MediaStore> {
        disk::DiskStore::create(dir, expiry).map(MediaStore::Disk)
    }

    /// Chunked keys on the Redis servers of `urls` (one connection of its own to each,
    /// so that a file's chunks never wait in line with the engine's commands).
    pub async fn redis(urls: &[String], expiry: Duration) -> Result<MediaStore, String> {
        redis::RedisStore::connect(urls, expiry)
            .await
            .map(MediaStore::Redis)
    }

    /// Starts writing a file of `size` bytes as `id` of `app`.
    pub async fn begin(&self, app: &str, id: &str, size: u64) -> Result<Writer, StoreFailure> {
        match self {
            MediaStore::Disk(store) => store.begin(app, id, size).await.map(Writer::Disk),
            MediaStore::Redis(store) => Ok(Writer::Redis(store.begin(app, id, size))),
        }
    }

    /// The file `id` of `app`, if it is complete and has not expired.
    pub async fn open(&self, app: &str, id: &str) -> Result<Option<Reader>, StoreFailure> {
        let found = match self {
            MediaStore::Disk(store) => store
                .open(app, id)
                .await?
                .map(|(reader, size)| (Source::Disk(reader), size)),
            MediaStore::Redis(store) => store
                .open(app, id)
                .await?
                .map(|(reader, size)| (Source::Redis(reader), size)),
        };
        Ok(found.map(|(source, size)| Reader {
            size,
            left: size,
            source,
        }))
    }

    /// Removes what has expired (and temporary files a crash left); how many files went.
    /// Redis expires its keys by itself.
    pub async fn sweep(&self) -> Result<usize, StoreFailure> {
        match self {
            MediaStore::Disk(store) => store.sweep().await,
            MediaStore::Redis(_) => Ok(0),
        }
    }

    /// How long a stored file is kept.
    pub fn expiry(&self) -> Duration {
        match self {
            MediaStore::Disk(store) => store.expiry(),
            MediaStore::Redis(store) => store.expiry(),
        }
    }
}

impl Writer {
    /// Appends bytes (buffered up to [`CHUNK_BYTES`]).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreFailure> {
        match self {
            Writer::Disk(writer) => writer.write(bytes).await,
            Writer::Redis(writer) => writer.write(bytes).await,
        }
    }

    /// Makes the file durable and visible under its id; only then may it be answered.
    pub async fn commit(self) -> Result<(), StoreFailure> {
        match self {
            Writer::Disk(writer) => writer.commit().await,
            Writer::Redis(writer) => writer.commit().await,
        }
    }
}

impl Reader {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The next bytes, `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, StoreFailure> {
        if self.left == 0 {
            return Ok(None);
        }
        let chunk = match &mut self.source {
            Source::Disk(reader) => reader.next(self.left).await?,
            Source::Redis(reader) => reader.next().await?,
        };
        // A file that shrank or expired while read: the body ends short, as the client
        // sees by its Content-Length.
        if chunk.is_empty() || chunk.len() as u64 > self.left {
            return Err(StoreFailure::Failed(
                "the file changed or expired while it was read".into(),
            ));
        }
        self.left -= chunk.len() as u64;
        Ok(Some(chunk))
    }
}

/// Who a ticket was given to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketHolder {
    pub app: String,
    pub user: String,
}

/// A user's use of media on this node.
#[derive(Debug, Default)]
struct UserUse {
    /// Uploads under way.
    uploads: usize,
    /// Bytes of uploads begun within the last hour, with when.
    recent: VecDeque<(Instant, u64)>,
    /// Tickets given within the last minute.
    tickets: VecDeque<Instant>,
}

impl UserUse {
    fn forget_before(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= QUOTA_WINDOW)
        {
            self.recent.pop_front();
        }
        while self
            .tickets
            .front()
            .is_some_and(|at| now.duration_since(*at) >= TICKET_WINDOW)
        {
            self.tickets.pop_front();
        }
    }

    fn idle(&self) -> bool {
        self.uploads == 0 && self.recent.is_empty() && self.tickets.is_empty()
    }
}

#[derive(Debug, Default)]
struct Book {
    tickets: HashMap<String, (TicketHolder, Instant)>,
    users: HashMap<(String, String), UserUse>,
}

/// This node's media: the store, tickets, quotas.
pub struct Media {
    pub store: MediaStore,
    book: Mutex<Book>,
    /// One permit per upload under way on the node.
    uploads: Arc<Semaphore>,
    user_uploads: usize,
    user_bytes_per_hour: u64,
}

/// Why an upload may not begin now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The user's uploads at once, or bytes this hour: 429.
    Quota,
    /// The node's uploads at once: 503.
    Busy,
}

/// An upload's place under the quotas, given back when dropped.
pub struct UploadSlot {
    media: Arc<Media>,
    key: (String, String),
    _permit: OwnedSemaphorePermit,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        if let Some(user) = self.media.lock().users.get_mut(&self.key) {
            user.uploads = user.uploads.saturating_sub(1);
        }
    }
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.store {
            MediaStore::Disk(_) => "disk",
            MediaStore::Redis(_) => "redis",
        };
        f.debug_struct("Media")
            .field("store", &kind)
            .finish_non_exhaustive()
    }
}

impl Media {
    pub fn new(store: MediaStore, config: &Config) -> Self {
        Media {
            store,
            book: Mutex::default(),
            uploads: Arc::new(Semaphore::new(config.media_max_uploads.max(1))),
            user_uploads: config.media_user_uploads.max(1),
            user_bytes_per_hour: config.media_user_bytes_per_hour,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh ticket for `holder`, or `None` when the user asked too often.
    pub fn ticket(&self, holder: TicketHolder) -> Option<String> {
        let now = Instant::now();
        let mut book = self.lock();
        let key = (holder.app.clone(), holder.user.clone());
        let user = book.users.entry(key).or_default();
        user.forget_before(now);
        if user.tickets.len() >= TICKETS_PER_WINDOW {
            return None;
        }
        user.tickets.push_back(now);
        // Expired tickets go whenever one is given: the map holds at most a minute's.
        book.tickets
            .retain(|_, (_, given)| now.duration_since(*given) < TICKET_LIFE);
        let ticket = random_id();
        book.tickets.insert(ticket.clone(), (holder, now));
        Some(ticket)
    }

    /// Who holds `ticket`, if it is one of this node's and still good.
    pub fn holder(&self, ticket: &str) -> Option<TicketHolder> {
        let now = Instant::now();
        let book = self.lock();
        let (holder, given) = book.tickets.get(ticket)?;
        (now.duration_since(*given) < TICKET_LIFE).then(|| holder.clone())
    }

    /// Reserves a place for an upload of `size` bytes by `holder`.
    pub fn admit(
        self: &Arc<Self>,
        holder: &TicketHolder,
        size: u64,
    ) -> Result<UploadSlot, Refused> {
        let now = Instant::now();
        let key = (holder.app.clone(), holder.user.clone());
        let mut book = self.lock();
        if book.users.len() > MAX_REMEMBERED_USERS {
            book.users.retain(|_, user| {
                user.forget_before(now);
                !user.idle()
            });
        }
        let user = book.users.entry(key.clone()).or_default();
        user.forget_before(now);
        let used: u64 = user.recent.iter().map(|(_, bytes)| bytes).sum();
        if user.uploads >= self.user_uploads || used + size > self.user_bytes_per_hour {
            return Err(Refused::Quota);
        }
        let permit = Arc::clone(&self.uploads)
            .try_acquire_owned()
            .map_err(|_| Refused::Busy)?;
        user.uploads += 1;
        user.recent.push_back((now, size));
        drop(book);
        Ok(UploadSlot {
            media: Arc::clone(self),
            key,
            _permit: permit,
        })
    }

    /// Sweeps expired media every `every` until `stopping` turns true.
    pub async fn sweep_until(
        self: Arc<Self>,
        every: Duration,
        mut stopping: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            match self.store.sweep().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "expired media removed"),
                Err(error) => tracing::warn!(%error, "media sweep failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stopping.changed() => return,
            }
        }
    }
}

/// How often the sweeper runs for an expiry: a quarter of it, between 100 ms and an hour.
pub(super) fn sweep_interval(expiry: Duration) -> Duration {
    (expiry / 4).clamp(Duration::from_millis(100), Duration::from_secs(3600))
}

/// 128 random bits as 32 lowercase hex digits: media ids and tickets.
pub(super) fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// True for an id this server could have made (32 lowercase hex digits): anything else
/// is unknown without asking the store.
pub(super) fn is_our_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(dir: &Path) -> Arc<Media> {
        let config = Config {
            media_user_uploads: 1,
            media_user_bytes_per_hour: 100,
            media_max_uploads: 2,
            ..Config::default()
        };
        let store = MediaStore::disk(dir, config.media_expiry).unwrap();
        Arc::new(Media::new(store, &config))
    }

    fn holder(user: &str) -> TicketHolder {
        TicketHolder {
            app: "demo".into(),
            user: user.into(),
        }
    }

    #[tokio::test]
    async fn quotas_per_user_and_per_node() {
        let dir = tempfile::tempdir().unwrap();
        let media = media(dir.path());
        let first = media.admit(&holder("alice"), 60).unwrap();
        assert_eq!(media.admit(&holder("alice"), 1).err(), Some(Refused::Quota));
        drop(first);
        // One at a time again, but the hour's bytes count what was begun.
        assert_eq!(
            media.admit(&holder("alice"), 41).err(),
            Some(Refused::Quota)
        );
        let _alice = media.admit(&holder("alice"), 40).unwrap();
        let _bob = media.admit(&holder("bob"), 1).unwrap();
        assert_eq!(media.admit(&holder("carol"), 1).err(), Some(Refused::Busy));
    }

    #[tokio::test]
    async fn tickets_name_their_holder_and_are_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let media = media(dir.path());
        let ticket = media.ticket(holder("alice")).unwrap();
        assert!(is_our_id(&ticket));
        assert_eq!(media.holder(&ticket), Some(holder("alice")));
        assert_eq!(media.holder(&random_id()), None);
        for _ in 1..TICKETS_PER_WINDOW {
            assert!(media.ticket(holder("alice")).is_some());
        }
        assert!(media.ticket(holder("alice")).is_none());
        assert!(media.ticket(holder("bob")).is_some());
    }
}

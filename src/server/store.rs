//! The durable store: SQLite (bundled, WAL) on its own thread.
//!
//! The async side never touches SQLite: it sends a [`StoreCommand`] over a channel and,
//! where it needs an answer, awaits a oneshot. The thread applies queued commands in one
//! transaction per batch, so writes keep the order in which the hub issued them (group commit).
//! Durability per batch: a batch that caches or drops an offline message, or reserves
//! message ids, commits with `synchronous=FULL` (fsync before anyone is told); a batch of history only commits with
//! `NORMAL` (in WAL: no fsync per commit; a power cut may lose the last history batches,
//! never a cached message). A conversation's history is trimmed to its newest N every
//! [`HISTORY_TRIM_EVERY`] messages and before it is read, not per message (a trim scans
//! N index entries). Tables: `history`
//! (last N messages per conversation), `offline` (cached peer messages) and `meta` (the
//! message id counter: the reservation, see [`ID_BLOCK`]). New tables go into [`SCHEMA`].

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::protocol::{HistoryMessage, Message};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "rtm.sqlite3";

/// File locked (exclusively, by the OS: gone with the process) while a server uses the
/// data directory: two servers on one database would hand out the same message ids.
pub const LOCK_FILE: &str = "rtm.lock";

/// Most commands applied in one transaction.
const MAX_BATCH: usize = 4096;

/// How long history writes may wait for company before their transaction: the thread
/// sleeps this long after the first of a batch unless something urgent arrives (a cached
/// message, a read, an id reservation, stop), so that a steady message rate costs one
/// transaction and one thread wake-up per window instead of per message.
const HISTORY_WINDOW: Duration = Duration::from_millis(10);

/// Message ids reserved on disk at a time. The hub hands ids out from memory and answers
/// before their batch commits; it may only use ids below a persisted reservation, so that
/// after a crash ids continue above every id it ever answered (never reused). Large, so
/// that the next reservation (asked for half a block ahead, queued behind whatever the
/// store thread has to write) commits long before the hub would have to wait for it; a
/// restart skips at most this many of the 2^53 ids.
pub(super) const ID_BLOCK: u64 = 1 << 16;

/// Rows a conversation's history may gain past its cap before it is trimmed back. The
/// trim scans the cap's worth of index entries (1000 by default): done per message it
/// was most of the store thread's CPU. Reads trim first, so `history` still sees the cap.
const HISTORY_TRIM_EVERY: u32 = 256;

/// Most conversations waiting for a trim; past it all are trimmed (bounds the memory).
const MAX_PENDING_TRIMS: usize = 4096;

/// A store error that repeats (a full disk fails every write) is logged at most this
/// often, with the count since its last line.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Failed drops of acknowledged cached messages kept to be tried again with the next
/// batch; past it the oldest are given up (counted, and reported at stop).
const MAX_RETRIED: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    app TEXT NOT NULL, conv TEXT NOT NULL, message_id INTEGER NOT NULL,
    sender TEXT NOT NULL, message TEXT NOT NULL, server_ts INTEGER NOT NULL,
    PRIMARY KEY (app, conv, message_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offline (
    app TEXT NOT NULL, receiver TEXT NOT NULL, message_id INTEGER NOT NULL,
    sender TEXT NOT NULL, message TEXT NOT NULL, server_ts INTEGER NOT NULL,
    PRIMARY KEY (app, receiver, message_id)) WITHOUT ROWID;
";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the store thread has stopped")]
    Stopped,
    #[error("the database cannot be used now: {0}")]
    Unavailable(String),
    #[error(
        "the data directory {path} is in use by another rtm-tui server; stop that one, \
         or give this one its own directory with --data-dir (or --ephemeral)"
    )]
    Locked { path: String },
    #[error("cannot lock the data directory {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

/// A cached peer message as loaded at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedMessage {
    pub app: String,
    pub receiver: String,
    pub message: HistoryMessage,
}

/// What the store held when it opened.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Names this database for clients (the login reply's `store`): made once, at random,
    /// when the database is created, so it changes exactly when message ids start over.
    pub store_id: String,
    /// The first message id not used yet (the reservation of the previous run: ids it
    /// may have handed out are all below it).
    pub next_message_id: u64,
    /// Ids below this are reserved on disk for this run (`next_message_id + ID_BLOCK`).
    pub reserved_up_to: u64,
    /// Every cached message younger than the TTL, oldest first.
    pub offline: Vec<CachedMessage>,
}

/// Which messages of a conversation `history` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub limit: u32,
}

enum StoreCommand {
    AppendHistory {
        app: String,
        conv: String,
        message: HistoryMessage,
        keep: u32,
    },
    CacheOffline {
        app: String,
        receiver: String,
        message: HistoryMessage,
        keep: usize,
        done: oneshot::Sender<()>,
    },
    DropOffline {
        app: String,
        receiver: String,
        message_ids: Vec<u64>,
    },
    /// Persists that ids below `up_to` may be in use.
    ReserveIds {
        up_to: u64,
        done: std::sync::mpsc::Sender<()>,
    },
    History {
        app: String,
        conv: String,
        query: HistoryQuery,
        reply: oneshot::Sender<Result<Vec<HistoryMessage>, StoreError>>,
    },
    Stop {
        done: oneshot::Sender<()>,
    },
    /// Panics the store thread, as a bug would.
    #[cfg(test)]
    Panic,
}

impl StoreCommand {
    /// Whether someone waits on this command (or it must not wait): it ends the
    /// thread's [`HISTORY_WINDOW`] at once.
    fn is_urgent(&self) -> bool {
        !matches!(
            self,
            StoreCommand::AppendHistory { .. } | StoreCommand::DropOffline { .. }
        )
    }

    /// Whether the command needs `synchronous=FULL` (see [`Durability`]).
    fn is_durable(&self) -> bool {
        matches!(
            self,
            StoreCommand::CacheOffline { .. }
                | StoreCommand::DropOffline { .. }
                | StoreCommand::ReserveIds { .. }
        )
    }

    /// The message id the command writes, or 0.
    fn message_id(&self) -> u64 {
        match self {
            StoreCommand::AppendHistory { message, .. }
            | StoreCommand::CacheOffline { message, .. } => message.message_id,
            _ => 0,
        }
    }

    /// Tells the waiter, if any, that the command is done (committed, or read).
    fn succeed(self, output: Output) {
        match (self, output) {
            (StoreCommand::CacheOffline { done, .. }, _) => {
                let _ = done.send(());
            }
            (StoreCommand::ReserveIds { done, .. }, _) => {
                let _ = done.send(());
            }
            (StoreCommand::History { reply, .. }, Output::Read(messages)) => {
                let _ = reply.send(Ok(messages));
            }
            _ => {}
        }
    }

    /// Tells the waiter, if any, that the command failed (a dropped `done` reads as a
    /// failure). The drop of acknowledged cached messages goes to `retry` (else they
    /// would be delivered again at the next login); a history write is given up and
    /// counted: retried, it would take the space that returns from cached messages
    /// whose senders wait, and the history of a peer message answered 1 would appear.
    fn fail(self, error: &StoreError, retry: &mut VecDeque<StoreCommand>, given_up: &mut u64) {
        match self {
            StoreCommand::History { reply, .. } => {
                let _ = reply.send(Err(StoreError::Unavailable(error.to_string())));
            }
            StoreCommand::DropOffline { .. } => retry.push_back(self),
            StoreCommand::AppendHistory { .. } => *given_up += 1,
            _ => {}
        }
    }
}

/// Most commands waiting for the store thread. The hub never waits for room (it may hold
/// its lock): past this a write fails at once, as on a full disk (a cached send answers
/// 1, a history write is lost and counted, a read answers HISTORY 1). At the fastest
/// measured rate, 85,000 messages a second, a 10 ms batch holds about 850.
const MAX_QUEUED_COMMANDS: usize = 65_536;

/// Cheap handle to the store thread.
#[derive(Debug, Clone)]
pub struct Store {
    commands: mpsc::SyncSender<StoreCommand>,
    /// Commands refused because the queue was full, logged like the thread's errors.
    refused: std::sync::Arc<std::sync::Mutex<ErrorLog>>,
    /// The store thread, to cut its history window short for an urgent command.
    waker: std::thread::Thread,
    /// The store thread, joined by `stop` so that the database is closed and the
    /// directory unlocked when it returns.
    thread: std::sync::Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// Becomes true when the thread has ended, by `stop` or by dying.
    ended: tokio::sync::watch::Receiver<bool>,
    /// Commands queued for the thread and not yet taken (the metrics' queue depth).
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Marks the store thread ended when dropped: on return and on a panic alike.
struct EndSignal(tokio::sync::watch::Sender<bool>);

impl Drop for EndSignal {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl std::fmt::Debug for StoreCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store::StoreCommand")
    }
}

impl Store {
    /// Opens (or creates) the database in `dir`, loads what start-up needs and starts the
    /// store thread. Blocking: call it from `spawn_blocking`.
    pub fn open(dir: &Path, offline_ttl: Duration) -> Result<(Store, Loaded), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
        let lock = lock_dir(dir)?;
        let db = Connection::open(dir.join(DB_FILE))?;
        // One connection uses the file (the directory lock keeps other servers out):
        // exclusive locking spares a pair of fcntl locks per transaction and, set before
        // WAL, the shared-memory index.
        db.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a message answered "cached by server" (4) survives a power cut.
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(SCHEMA)?;
        let cutoff = crate::protocol::now_ms().saturating_sub(offline_ttl.as_millis() as u64);
        db.execute(
            "DELETE FROM offline WHERE server_ts < ?1",
            params![cutoff as i64],
        )?;
        let mut loaded = load(&db)?;
        loaded.reserved_up_to = loaded.next_message_id + ID_BLOCK;
        persist_reservation(&db, loaded.reserved_up_to)?;
        let (commands, receiver) = mpsc::sync_channel(MAX_QUEUED_COMMANDS);
        let (end_signal, ended) = tokio::sync::watch::channel(false);
        let queued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let taken = std::sync::Arc::clone(&queued);
        let thread = std::thread::Builder::new()
            .name("rtm-store".into())
            .spawn(move || {
                let _ended = EndSignal(end_signal);
                run_thread(db, &receiver, &taken);
                // The database is closed (moved into run_thread); now let others in.
                drop(lock);
            })
            .map_err(|source| StoreError::CreateDir {
                path: "store thread".into(),
                source,
            })?;
        let store = Store {
            commands,
            refused: std::sync::Arc::default(),
            waker: thread.thread().clone(),
            thread: std::sync::Arc::new(std::sync::Mutex::new(Some(thread))),
            ended,
            queued,
        };
        Ok((store, loaded))
    }

    /// Makes the store thread panic, as a bug would (tests of what outlives it).
    #[cfg(test)]
    pub(super) fn panic_for_test(&self) {
        self.send(StoreCommand::Panic);
    }

    /// Commands waiting for the store thread.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn send(&self, command: StoreCommand) {
        let urgent = command.is_urgent();
        let sent = match self.commands.try_send(command) {
            // Stop must get through: the thread is draining, so room comes.
            Err(mpsc::TrySendError::Full(stop @ StoreCommand::Stop { .. })) => {
                self.waker.unpark();
                self.commands.send(stop).map_err(|_| ())
            }
            Err(mpsc::TrySendError::Full(refused)) => {
                // Dropping it answers its waiter with a failure.
                drop(refused);
                self.log_refused();
                return;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => Err(()),
            Ok(()) => {
                self.queued
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
        };
        if sent.is_err() {
            tracing::error!("store thread has stopped; a write was lost");
        } else if urgent {
            self.waker.unpark();
        }
    }

    /// Says that the queue is full, at most once per [`ERROR_LOG_INTERVAL`] with a count.
    fn log_refused(&self) {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .failed(
                Instant::now(),
                &format_args!("its queue is full ({MAX_QUEUED_COMMANDS} commands)"),
            );
    }

    /// Appends a message to a conversation's history, keeping the newest `keep`.
    pub fn append_history(&self, app: &str, conv: &str, message: HistoryMessage, keep: u32) {
        self.send(StoreCommand::AppendHistory {
            app: app.to_string(),
            conv: conv.to_string(),
            message,
            keep,
        });
    }

    /// Caches a peer message for an offline receiver, keeping the newest `keep`. The
    /// returned receiver resolves once the write is committed.
    pub fn cache_offline(
        &self,
        app: &str,
        receiver: &str,
        message: HistoryMessage,
        keep: usize,
    ) -> oneshot::Receiver<()> {
        let (done, committed) = oneshot::channel();
        self.send(StoreCommand::CacheOffline {
            app: app.to_string(),
            receiver: receiver.to_string(),
            message,
            keep,
            done,
        });
        committed
    }

    /// Forgets these cached messages of a receiver (acknowledged or expired).
    pub fn drop_offline(&self, app: &str, receiver: &str, message_ids: Vec<u64>) {
        self.send(StoreCommand::DropOffline {
            app: app.to_string(),
            receiver: receiver.to_string(),
            message_ids,
        });
    }

    /// Reserves the ids below `up_to` on disk; the returned receiver gets `()` once the
    /// reservation is committed (std channel: the hub may have to wait under its lock).
    pub fn reserve_ids(&self, up_to: u64) -> std::sync::mpsc::Receiver<()> {
        let (done, committed) = std::sync::mpsc::channel();
        self.send(StoreCommand::ReserveIds { up_to, done });
        committed
    }

    /// Reads a conversation's history, oldest first; an error when the database cannot
    /// be read (the store thread answers either way).
    pub async fn history(
        &self,
        app: &str,
        conv: &str,
        query: HistoryQuery,
    ) -> Result<Vec<HistoryMessage>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(StoreCommand::History {
            app: app.to_string(),
            conv: conv.to_string(),
            query,
            reply,
        });
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Resolves once the store thread has ended: after `stop`, or when it died (a bug:
    /// I/O errors are answered, never fatal), which the server must not outlive.
    pub async fn ended(&self) {
        let mut ended = self.ended.clone();
        let _ = ended.wait_for(|ended| *ended).await;
    }

    /// Commits everything queued and stops the thread; returns once the database is
    /// closed and the data directory unlocked.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        self.send(StoreCommand::Stop { done });
        let _ = stopped.await;
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Takes the data directory's lock file, or says who has it.
fn lock_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = dir.display().to_string();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(|source| StoreError::Lock {
            path: path.clone(),
            source,
        })?;
    try_lock(&file).map_err(|source| {
        if source.kind() == std::io::ErrorKind::WouldBlock {
            StoreError::Locked { path: path.clone() }
        } else {
            StoreError::Lock {
                path: path.clone(),
                source,
            }
        }
    })?;
    Ok(file)
}

/// An exclusive, non-blocking `flock`: held until the file is closed or the process ends.
#[cfg(unix)]
fn try_lock(file: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
}

/// Elsewhere no lock (the server is deployed on Unix; std's `File::try_lock` can replace
/// this once the minimum Rust version reaches 1.89).
#[cfg(not(unix))]
fn try_lock(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

fn load(db: &Connection) -> Result<Loaded, StoreError> {
    let counter: Option<i64> = db
        .query_row(
            "SELECT value FROM meta WHERE key = 'next_message_id'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    let mut statement = db.prepare(
        "SELECT app, receiver, message_id, sender, message, server_ts FROM offline
         ORDER BY message_id",
    )?;
    let offline = statement
        .query_map([], |row| {
            Ok(CachedMessage {
                app: row.get(0)?,
                receiver: row.get(1)?,
                message: HistoryMessage {
                    message_id: row.get::<_, i64>(2)? as u64,
                    from: row.get(3)?,
                    message: decode_message(&row.get::<_, String>(4)?),
                    server_ts: row.get::<_, i64>(5)? as u64,
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded {
        store_id: store_id(db)?,
        next_message_id: counter.map_or(1, |c| c.max(1) as u64),
        reserved_up_to: 0,
        offline,
    })
}

/// The database's id (see [`Loaded::store_id`]), made on first use.
fn store_id(db: &Connection) -> Result<String, StoreError> {
    let existing: Option<i64> = db
        .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |row| {
            row.get(0)
        })
        .optional()?;
    let id = if let Some(id) = existing {
        id
    } else {
        let id = rand::random::<i64>();
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('store_id', ?1)",
            params![id],
        )?;
        id
    };
    Ok(format!("{:016x}", id as u64))
}

/// Raises the stored id counter to `up_to` (never lowers it).
fn persist_reservation(db: &Connection, up_to: u64) -> Result<(), StoreError> {
    db.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('next_message_id', ?1)
         ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
    )?
    .execute(params![up_to as i64])?;
    Ok(())
}

fn decode_message(json: &str) -> Message {
    serde_json::from_str(json).unwrap_or_else(|_| Message::text(json))
}

/// The `synchronous` setting the connection has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// fsync at every commit: for cached peer messages (answered 4 only once on disk)
    /// and id reservations (ids are handed out only below one on disk).
    Full,
    /// WAL without fsync per commit (synced at checkpoints): enough for history.
    Normal,
}

impl Durability {
    /// What a batch needs: `Full` as soon as it touches cached messages.
    fn needed_by(batch: &[StoreCommand]) -> Durability {
        if batch.iter().any(StoreCommand::is_durable) {
            Durability::Full
        } else {
            Durability::Normal
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

fn run_thread(
    db: Connection,
    commands: &mpsc::Receiver<StoreCommand>,
    queued: &std::sync::atomic::AtomicUsize,
) {
    let mut writer = StoreWriter::new(db);
    while let Ok(first) = commands.recv() {
        if !first.is_urgent() {
            // Sleep through the window (an urgent command unparks the thread early) so
            // that what follows joins this batch without waking the thread per message.
            std::thread::park_timeout(HISTORY_WINDOW);
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        // Saturating: a `Stop` sent past a full queue was not counted.
        let _ = queued.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |n| Some(n.saturating_sub(batch.len())),
        );
        if writer.apply(batch) {
            return;
        }
    }
}

/// What one command produced once its savepoint was released.
enum Output {
    Written,
    Read(Vec<HistoryMessage>),
}

/// The store thread's state between batches.
struct StoreWriter {
    db: Connection,
    /// The `synchronous` setting the connection has now.
    sync: Durability,
    trims: Trims,
    /// Failed drops of acknowledged cached messages, tried again with the next batch:
    /// once the disk has room they land.
    retry: VecDeque<StoreCommand>,
    errors: ErrorLog,
}

impl StoreWriter {
    fn new(db: Connection) -> Self {
        StoreWriter {
            db,
            // `open` left the connection at FULL.
            sync: Durability::Full,
            trims: Trims::default(),
            retry: VecDeque::new(),
            errors: ErrorLog::default(),
        }
    }

    /// Applies a batch and answers every command in it, whatever fails; true when a
    /// `Stop` was among it. One transaction per batch with a savepoint per command, so a
    /// command that fails fails alone; when the commit itself fails (a full disk fails
    /// there), each command is tried again in a transaction of its own.
    fn apply(&mut self, batch: Vec<StoreCommand>) -> bool {
        // Drops that failed before go first (a drop after its receiver's next ack).
        let mut batch: Vec<StoreCommand> = self.retry.drain(..).chain(batch).collect();
        let stop = batch
            .iter()
            .position(|c| matches!(c, StoreCommand::Stop { .. }))
            .map(|at| batch.remove(at));
        let needed = Durability::needed_by(&batch);
        if needed != self.sync {
            match self.db.pragma_update(None, "synchronous", needed.pragma()) {
                Ok(()) => self.sync = needed,
                Err(error) => {
                    self.errors.failed(Instant::now(), &error);
                }
            }
        }
        if self.sync != needed {
            // Never tell a sender "cached" without fsync: those writes fail, the rest go on.
            let error = StoreError::Unavailable("cannot switch to synchronous=FULL".into());
            let (durable, rest) = batch.into_iter().partition(StoreCommand::is_durable);
            self.answer(durable, vec![], &error);
            batch = rest;
        }
        let results = match self.commit(&batch) {
            Ok(results) => results,
            Err(error) if batch.len() > 1 => {
                self.errors.failed(Instant::now(), &error);
                batch
                    .iter()
                    .map(|command| match self.commit(std::slice::from_ref(command)) {
                        Ok(mut one) => one.pop().expect("one result per command"),
                        Err(error) => Err(error),
                    })
                    .collect()
            }
            Err(error) => vec![Err(error)],
        };
        let failed = StoreError::Unavailable("the write failed".into());
        self.answer(batch, results, &failed);
        let Some(StoreCommand::Stop { done }) = stop else {
            return false;
        };
        self.stop();
        let _ = done.send(());
        true
    }

    /// Runs `batch` in one transaction: one result per command, or the error that failed
    /// the transaction as a whole. Optimistic: first without savepoints (each costs two
    /// more statements per command, a third of the store's time at a steady rate); only
    /// when a command fails is the batch run again with a savepoint per command, so that
    /// the bad one fails alone.
    fn commit(
        &mut self,
        batch: &[StoreCommand],
    ) -> Result<Vec<Result<Output, StoreError>>, StoreError> {
        if let Some(results) = self.commit_plain(batch)? {
            return Ok(results);
        }
        self.commit_each_in_a_savepoint(batch)
    }

    /// The batch without savepoints; `None` (rolled back) when a command failed.
    fn commit_plain(
        &mut self,
        batch: &[StoreCommand],
    ) -> Result<Option<Vec<Result<Output, StoreError>>>, StoreError> {
        let tx = self.db.transaction()?;
        let mut results = Vec::with_capacity(batch.len());
        let mut max_id = 0;
        for command in batch {
            let Ok(output) = write(&tx, command, &mut self.trims) else {
                return Ok(None);
            };
            max_id = max_id.max(command.message_id());
            results.push(Ok(output));
        }
        if max_id > 0 {
            persist_reservation(&tx, max_id + 1)?;
        }
        tx.commit()?;
        Ok(Some(results))
    }

    fn commit_each_in_a_savepoint(
        &mut self,
        batch: &[StoreCommand],
    ) -> Result<Vec<Result<Output, StoreError>>, StoreError> {
        let mut tx = self.db.transaction()?;
        let mut results = Vec::with_capacity(batch.len());
        let mut max_id = 0;
        for command in batch {
            let savepoint = tx.savepoint()?;
            match write(&savepoint, command, &mut self.trims) {
                Ok(output) => {
                    savepoint.commit()?;
                    max_id = max_id.max(command.message_id());
                    results.push(Ok(output));
                }
                // Dropping the savepoint rolls this command back, and only it.
                Err(error) => results.push(Err(error)),
            }
        }
        if max_id > 0 {
            persist_reservation(&tx, max_id + 1)?;
        }
        tx.commit()?;
        Ok(results)
    }

    /// Tells each command's waiter how it went; `results` is shorter than `batch` when
    /// the rest failed with `otherwise`.
    fn answer(
        &mut self,
        batch: Vec<StoreCommand>,
        results: Vec<Result<Output, StoreError>>,
        otherwise: &StoreError,
    ) {
        let mut results = results.into_iter();
        let mut all_ok = true;
        for command in batch {
            match results.next() {
                Some(Ok(output)) => command.succeed(output),
                Some(Err(error)) => {
                    all_ok = false;
                    self.errors.failed(Instant::now(), &error);
                    command.fail(&error, &mut self.retry, &mut self.errors.given_up);
                }
                None => {
                    all_ok = false;
                    self.errors.failed(Instant::now(), otherwise);
                    command.fail(otherwise, &mut self.retry, &mut self.errors.given_up);
                }
            }
        }
        if all_ok {
            self.errors.recovered();
        }
        while self.retry.len() > MAX_RETRIED {
            self.retry.pop_front();
            self.errors.given_up += 1;
        }
    }

    /// Last work before the thread ends: trim every conversation, checkpoint the WAL.
    fn stop(&mut self) {
        if !self.retry.is_empty() {
            self.errors.given_up += self.retry.len() as u64;
            self.retry.clear();
        }
        if self.errors.given_up > 0 {
            tracing::error!(
                writes = self.errors.given_up,
                "store: history writes (and drops of acknowledged cached messages) lost \
                 because the database could not be written"
            );
        }
        let trimmed = self
            .db
            .transaction()
            .map_err(StoreError::from)
            .and_then(|tx| {
                self.trims.apply_all(&tx)?;
                tx.commit()?;
                Ok(())
            });
        if let Err(error) = trimmed {
            tracing::error!(%error, "store: final trim failed");
        }
        let _ = self.db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }
}

/// Applies one command to the database (inside its savepoint).
fn write(db: &Connection, command: &StoreCommand, trims: &mut Trims) -> Result<Output, StoreError> {
    match command {
        StoreCommand::AppendHistory {
            app,
            conv,
            message,
            keep,
        } => {
            insert(db, HISTORY, (app, conv), message)?;
            trims.note(db, HISTORY, (app, conv), i64::from(*keep))?;
        }
        StoreCommand::CacheOffline {
            app,
            receiver,
            message,
            keep,
            ..
        } => {
            insert(db, OFFLINE, (app, receiver), message)?;
            trims.note(db, OFFLINE, (app, receiver), *keep as i64)?;
        }
        StoreCommand::DropOffline {
            app,
            receiver,
            message_ids,
        } => {
            let mut delete = db.prepare_cached(
                "DELETE FROM offline WHERE app = ?1 AND receiver = ?2 AND message_id = ?3",
            )?;
            for id in message_ids {
                delete.execute(params![app, receiver, *id as i64])?;
            }
        }
        StoreCommand::ReserveIds { up_to, .. } => persist_reservation(db, *up_to)?,
        StoreCommand::History {
            app, conv, query, ..
        } => {
            // Reads see the conversation at its cap, as if trimmed per message.
            trims.apply_one(db, HISTORY, (app, conv))?;
            return Ok(Output::Read(read_history(db, app, conv, *query)?));
        }
        StoreCommand::Stop { .. } => {}
        #[cfg(test)]
        StoreCommand::Panic => panic!("store thread made to panic"),
    }
    Ok(Output::Written)
}

/// Store errors for the log: the first at once, repeats at most once per
/// [`ERROR_LOG_INTERVAL`] with how many there were, and one line when writes work again.
#[derive(Debug, Default)]
struct ErrorLog {
    /// When the last line was logged, while failing.
    logged_at: Option<Instant>,
    /// Failures since that line.
    since: u64,
    /// History writes given up, and drops given up (retry queue full, or stop): in
    /// every error line, and at stop.
    given_up: u64,
}

impl ErrorLog {
    /// Counts a failure; true when it was logged.
    fn failed(&mut self, now: Instant, error: &dyn std::fmt::Display) -> bool {
        self.since += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= ERROR_LOG_INTERVAL);
        if due {
            tracing::error!(
                %error,
                failures = self.since,
                writes_lost = self.given_up,
                "store: a write or read failed (repeats are logged once per {}s)",
                ERROR_LOG_INTERVAL.as_secs()
            );
            self.logged_at = Some(now);
            self.since = 0;
        }
        due
    }

    /// A batch went through whole: if it had been failing, say so once.
    fn recovered(&mut self) {
        if self.logged_at.take().is_some() {
            tracing::warn!(failures_not_logged = self.since, "store: writes work again");
            self.since = 0;
        }
    }
}

/// A table of messages kept per (app, key), capped at the newest `keep`: `history`
/// (key: conversation) and `offline` (key: receiver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CappedTable {
    table: &'static str,
    key: &'static str,
    /// The insert, written out once (formatting it per row was measurable).
    insert_sql: &'static str,
}

const HISTORY: CappedTable = CappedTable {
    table: "history",
    key: "conv",
    insert_sql: "INSERT OR REPLACE INTO history (app, conv, message_id, sender, message, server_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};
const OFFLINE: CappedTable = CappedTable {
    table: "offline",
    key: "receiver",
    insert_sql:
        "INSERT OR REPLACE INTO offline (app, receiver, message_id, sender, message, server_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

/// The (table, app, key) groups written since their last trim: their cap and new rows.
#[derive(Debug, Default)]
struct Trims(HashMap<(CappedTable, String, String), (i64, u32)>);

impl Trims {
    /// Counts a row written to a group; trims the group once it is due (cached messages
    /// at once: their cap is what a receiver gets at login).
    fn note(
        &mut self,
        tx: &Connection,
        target: CappedTable,
        (app, key): (&str, &str),
        keep: i64,
    ) -> Result<(), StoreError> {
        let every = if target == HISTORY {
            HISTORY_TRIM_EVERY
        } else {
            1
        };
        let group = (target, app.to_string(), key.to_string());
        let pending = self.0.entry(group.clone()).or_insert((keep, 0));
        *pending = (keep, pending.1 + 1);
        if pending.1 >= every {
            self.0.remove(&group);
            trim(tx, target, (&group.1, &group.2), keep)?;
        } else if self.0.len() > MAX_PENDING_TRIMS {
            self.apply_all(tx)?;
        }
        Ok(())
    }

    /// Trims one group now if it has rows past its last trim.
    fn apply_one(
        &mut self,
        tx: &Connection,
        target: CappedTable,
        (app, key): (&str, &str),
    ) -> Result<(), StoreError> {
        if let Some((keep, _)) = self.0.remove(&(target, app.to_string(), key.to_string())) {
            trim(tx, target, (app, key), keep)?;
        }
        Ok(())
    }

    /// Trims every pending group.
    fn apply_all(&mut self, tx: &Connection) -> Result<(), StoreError> {
        for ((target, app, key), (keep, _)) in self.0.drain() {
            trim(tx, target, (&app, &key), keep)?;
        }
        Ok(())
    }
}

/// Inserts `message` under (app, key); [`trim`] keeps the group at its cap.
fn insert(
    tx: &Connection,
    target: CappedTable,
    (app, key): (&str, &str),
    message: &HistoryMessage,
) -> Result<(), StoreError> {
    tx.prepare_cached(target.insert_sql)?.execute(params![
        app,
        key,
        message.message_id as i64,
        message.from,
        crate::protocol::encode(&message.message),
        message.server_ts as i64
    ])?;
    Ok(())
}

/// Drops all but the newest `keep` messages under (app, key).
fn trim(
    tx: &Connection,
    target: CappedTable,
    (app, key): (&str, &str),
    keep: i64,
) -> Result<(), StoreError> {
    let CappedTable {
        table, key: column, ..
    } = target;
    tx.prepare_cached(&format!(
        "DELETE FROM {table} WHERE app = ?1 AND {column} = ?2 AND message_id <=
           (SELECT message_id FROM {table} WHERE app = ?1 AND {column} = ?2
            ORDER BY message_id DESC LIMIT 1 OFFSET ?3)"
    ))?
    .execute(params![app, key, keep])?;
    Ok(())
}

fn read_history(
    tx: &Connection,
    app: &str,
    conv: &str,
    query: HistoryQuery,
) -> Result<Vec<HistoryMessage>, StoreError> {
    let before = query.before.map_or(i64::MAX, |id| id as i64);
    let after = query.after.map_or(-1, |id| id as i64);
    // With `after` we read forward from it; otherwise backward from `before` (or the end).
    let sql = if query.after.is_some() {
        "SELECT message_id, sender, message, server_ts FROM history
         WHERE app = ?1 AND conv = ?2 AND message_id > ?3 AND message_id < ?4
         ORDER BY message_id ASC LIMIT ?5"
    } else {
        "SELECT message_id, sender, message, server_ts FROM history
         WHERE app = ?1 AND conv = ?2 AND message_id > ?3 AND message_id < ?4
         ORDER BY message_id DESC LIMIT ?5"
    };
    let mut statement = tx.prepare_cached(sql)?;
    let mut messages = statement
        .query_map(
            params![app, conv, after, before, i64::from(query.limit)],
            |row| {
                Ok(HistoryMessage {
                    message_id: row.get::<_, i64>(0)? as u64,
                    from: row.get(1)?,
                    message: decode_message(&row.get::<_, String>(2)?),
                    server_ts: row.get::<_, i64>(3)? as u64,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    if query.after.is_none() {
        messages.reverse();
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64) -> HistoryMessage {
        HistoryMessage {
            message_id: id,
            from: "alice".into(),
            message: Message::text(format!("m{id}")),
            server_ts: crate::protocol::now_ms(),
        }
    }

    /// The message ids in `table`, in order.
    fn ids_of(db: &Connection, table: &str) -> Vec<i64> {
        db.prepare(&format!(
            "SELECT message_id FROM {table} ORDER BY message_id"
        ))
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// A writer on a fresh database in `dir`, as `open` leaves it.
    fn writer(dir: &Path) -> StoreWriter {
        let db = Connection::open(dir.join(DB_FILE)).unwrap();
        db.pragma_update(None, "journal_mode", "WAL").unwrap();
        db.execute_batch(SCHEMA).unwrap();
        StoreWriter::new(db)
    }

    fn cache(id: u64) -> (StoreCommand, oneshot::Receiver<()>) {
        let (done, committed) = oneshot::channel();
        let command = StoreCommand::CacheOffline {
            app: "app".into(),
            receiver: "bob".into(),
            message: message(id),
            keep: 10,
            done,
        };
        (command, committed)
    }

    fn append(id: u64) -> StoreCommand {
        StoreCommand::AppendHistory {
            app: "app".into(),
            conv: "c:x".into(),
            message: message(id),
            keep: 10,
        }
    }

    fn read() -> (
        StoreCommand,
        oneshot::Receiver<Result<Vec<HistoryMessage>, StoreError>>,
    ) {
        let (reply, read) = oneshot::channel();
        let query = HistoryQuery {
            before: None,
            after: None,
            limit: 10,
        };
        let command = StoreCommand::History {
            app: "app".into(),
            conv: "c:x".into(),
            query,
            reply,
        };
        (command, read)
    }

    #[test]
    fn a_failing_command_fails_alone_in_its_batch_and_a_failed_drop_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path());
        // History cannot be written or read: its commands fail, cached messages not.
        writer.db.execute_batch("DROP TABLE history").unwrap();
        let (first, first_done) = cache(1);
        let (second, second_done) = cache(2);
        let (history, history_read) = read();
        assert!(!writer.apply(vec![first, append(3), second, history]));
        first_done.blocking_recv().expect("first committed");
        second_done.blocking_recv().expect("second committed");
        let error = history_read.blocking_recv().unwrap().unwrap_err();
        assert!(error.to_string().contains("history"), "{error}");
        let cached: i64 = writer
            .db
            .query_row("SELECT count(*) FROM offline", [], |row| row.get(0))
            .unwrap();
        assert_eq!(cached, 2);
        // A waiter of a failing command learns it at once; a failed drop waits.
        writer
            .db
            .execute_batch("ALTER TABLE offline RENAME TO parked")
            .unwrap();
        let (third, third_done) = cache(4);
        let drop_first = StoreCommand::DropOffline {
            app: "app".into(),
            receiver: "bob".into(),
            message_ids: vec![1],
        };
        writer.apply(vec![third, drop_first]);
        assert!(third_done.blocking_recv().is_err(), "failure, not a hang");
        // The database works again: the drop lands with the next batch; the history
        // write that failed is lost (counted), the next one is written.
        writer
            .db
            .execute_batch("ALTER TABLE parked RENAME TO offline")
            .unwrap();
        writer.db.execute_batch(SCHEMA).unwrap();
        let (history, history_read) = read();
        assert!(!writer.apply(vec![append(5), history]));
        let ids: Vec<u64> = history_read
            .blocking_recv()
            .unwrap()
            .unwrap()
            .iter()
            .map(|m| m.message_id)
            .collect();
        assert_eq!(ids, [5]);
        assert_eq!(writer.errors.given_up, 1);
        assert_eq!(ids_of(&writer.db, "offline"), [2]);
    }

    #[test]
    fn a_repeated_error_is_logged_once_per_interval() {
        let mut log = ErrorLog::default();
        let start = Instant::now();
        let error = StoreError::Unavailable("disk full".into());
        let logged: Vec<bool> = (0..100)
            .map(|ms| log.failed(start + Duration::from_millis(ms * 50), &error))
            .collect();
        // 100 failures over 5 s: the first is logged, the rest wait for the interval.
        assert_eq!(logged.iter().filter(|&&l| l).count(), 1);
        assert!(log.failed(start + ERROR_LOG_INTERVAL, &error));
        assert!(!log.failed(start + ERROR_LOG_INTERVAL, &error));
        log.recovered();
        // After a recovery the next failure is news again.
        assert!(log.failed(start + ERROR_LOG_INTERVAL, &error));
    }

    #[tokio::test]
    async fn history_windows_and_trim() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut loaded) = Store::open(dir.path(), Duration::from_secs(60)).unwrap();
        let first_store_id = std::mem::take(&mut loaded.store_id);
        assert_eq!(loaded.next_message_id, 1);
        assert_eq!(loaded.reserved_up_to, 1 + ID_BLOCK);
        for id in 1..=10 {
            store.append_history("app", "c:x", message(id), 8);
        }
        let ids = |v: Vec<HistoryMessage>| v.iter().map(|m| m.message_id).collect::<Vec<_>>();
        let all = |before, after, limit| HistoryQuery {
            before,
            after,
            limit,
        };
        assert_eq!(
            ids(store
                .history("app", "c:x", all(None, None, 50))
                .await
                .unwrap()),
            (3..=10).collect::<Vec<_>>()
        );
        assert_eq!(
            ids(store
                .history("app", "c:x", all(Some(9), None, 2))
                .await
                .unwrap()),
            vec![7, 8]
        );
        assert_eq!(
            ids(store
                .history("app", "c:x", all(None, Some(4), 3))
                .await
                .unwrap()),
            vec![5, 6, 7]
        );
        store
            .cache_offline("app", "bob", message(11), 2)
            .await
            .unwrap();
        store
            .cache_offline("app", "bob", message(12), 2)
            .await
            .unwrap();
        store
            .cache_offline("app", "bob", message(13), 2)
            .await
            .unwrap();
        store.stop().await;
        let (store, loaded) = Store::open(dir.path(), Duration::from_secs(60)).unwrap();
        // Ids continue above the whole reservation of the previous run, in the same store.
        assert_eq!(loaded.next_message_id, 1 + ID_BLOCK);
        assert_eq!(loaded.store_id, first_store_id);
        let other = tempfile::tempdir().unwrap();
        let (fresh, fresh_loaded) = Store::open(other.path(), Duration::from_secs(60)).unwrap();
        assert_ne!(
            fresh_loaded.store_id, first_store_id,
            "a new database is a new store"
        );
        fresh.stop().await;
        let cached: Vec<_> = loaded
            .offline
            .iter()
            .map(|c| c.message.message_id)
            .collect();
        assert_eq!(cached, vec![12, 13]);
        store.stop().await;
    }

    #[tokio::test]
    async fn one_store_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), Duration::from_secs(60)).unwrap();
        let error = Store::open(dir.path(), Duration::from_secs(60)).unwrap_err();
        assert!(matches!(error, StoreError::Locked { .. }), "{error}");
        store.stop().await;
        // Stopped: the directory is free at once.
        let (store, _) = Store::open(dir.path(), Duration::from_secs(60)).unwrap();
        store.stop().await;
    }

    #[tokio::test]
    async fn id_reservations_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (store, loaded) = Store::open(dir.path(), Duration::from_secs(60)).unwrap();
        let first = loaded.reserved_up_to;
        // A reservation committed, and nothing else written (as before a crash).
        let committed = store.reserve_ids(first + ID_BLOCK);
        committed.recv_timeout(Duration::from_secs(10)).unwrap();
        store.stop().await;
        let (store, loaded) = Store::open(dir.path(), Duration::from_secs(60)).unwrap();
        assert_eq!(loaded.next_message_id, first + ID_BLOCK);
        assert_eq!(loaded.reserved_up_to, first + 2 * ID_BLOCK);
        store.stop().await;
    }

    #[tokio::test]
    async fn history_stays_at_its_cap_on_disk_when_trimmed_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), Duration::from_secs(60)).unwrap();
        // More than one trim step, ending between two steps.
        let written = u64::from(HISTORY_TRIM_EVERY) * 2 + 7;
        for id in 1..=written {
            store.append_history("app", "c:x", message(id), 5);
        }
        store.stop().await;
        let db = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let ids = ids_of(&db, "history");
        let newest = written as i64;
        assert_eq!(ids, ((newest - 4)..=newest).collect::<Vec<_>>());
    }
}

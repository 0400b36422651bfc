//! The durable store: SQLite (bundled, WAL) on its own thread.
//!
//! The async side never touches SQLite: it sends a [`Command`] over a channel and, where it
//! needs an answer, awaits a oneshot. The thread applies queued commands in one transaction
//! per batch, so writes keep the order in which the hub issued them (group commit).
//! Durability per batch: a batch that caches or drops an offline message, or reserves
//! message ids, commits with `synchronous=FULL` (fsync before anyone is told); a batch of history only commits with
//! `NORMAL` (in WAL: no fsync per commit; a power cut may lose the last history batches,
//! never a cached message). A conversation's history is trimmed to its newest N every
//! [`HISTORY_TRIM_EVERY`] messages and before it is read, not per message (a trim scans
//! N index entries). Tables: `history`
//! (last N messages per conversation), `offline` (cached peer messages) and `meta` (the
//! message id counter: the reservation, see [`ID_BLOCK`]). New tables go into [`SCHEMA`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
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
pub const ID_BLOCK: u64 = 1 << 16;

/// Rows a conversation's history may gain past its cap before it is trimmed back. The
/// trim scans the cap's worth of index entries (1000 by default): done per message it
/// was most of the store thread's CPU. Reads trim first, so `history` still sees the cap.
const HISTORY_TRIM_EVERY: u32 = 256;

/// Most conversations waiting for a trim; past it all are trimmed (bounds the memory).
const MAX_PENDING_TRIMS: usize = 4096;

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

enum Command {
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
        reply: oneshot::Sender<Vec<HistoryMessage>>,
    },
    Stop {
        done: oneshot::Sender<()>,
    },
}

impl Command {
    /// Whether someone waits on this command (or it must not wait): it ends the
    /// thread's [`HISTORY_WINDOW`] at once.
    fn is_urgent(&self) -> bool {
        !matches!(
            self,
            Command::AppendHistory { .. } | Command::DropOffline { .. }
        )
    }
}

/// Cheap handle to the store thread.
#[derive(Debug, Clone)]
pub struct Store {
    commands: mpsc::Sender<Command>,
    /// The store thread, to cut its history window short for an urgent command.
    waker: std::thread::Thread,
    /// The store thread, joined by `stop` so that the database is closed and the
    /// directory unlocked when it returns.
    thread: std::sync::Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store::Command")
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
        let (commands, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("rtm-store".into())
            .spawn(move || {
                run_thread(db, &receiver);
                // The database is closed (moved into run_thread); now let others in.
                drop(lock);
            })
            .map_err(|source| StoreError::CreateDir {
                path: "store thread".into(),
                source,
            })?;
        let store = Store {
            commands,
            waker: thread.thread().clone(),
            thread: std::sync::Arc::new(std::sync::Mutex::new(Some(thread))),
        };
        Ok((store, loaded))
    }

    fn send(&self, command: Command) {
        let urgent = command.is_urgent();
        if self.commands.send(command).is_err() {
            tracing::error!("store thread has stopped; a write was lost");
        } else if urgent {
            self.waker.unpark();
        }
    }

    /// Appends a message to a conversation's history, keeping the newest `keep`.
    pub fn append_history(&self, app: &str, conv: &str, message: HistoryMessage, keep: u32) {
        self.send(Command::AppendHistory {
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
        self.send(Command::CacheOffline {
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
        self.send(Command::DropOffline {
            app: app.to_string(),
            receiver: receiver.to_string(),
            message_ids,
        });
    }

    /// Reserves the ids below `up_to` on disk; the returned receiver gets `()` once the
    /// reservation is committed (std channel: the hub may have to wait under its lock).
    pub fn reserve_ids(&self, up_to: u64) -> std::sync::mpsc::Receiver<()> {
        let (done, committed) = std::sync::mpsc::channel();
        self.send(Command::ReserveIds { up_to, done });
        committed
    }

    /// Reads a conversation's history, oldest first.
    pub async fn history(
        &self,
        app: &str,
        conv: &str,
        query: HistoryQuery,
    ) -> Result<Vec<HistoryMessage>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::History {
            app: app.to_string(),
            conv: conv.to_string(),
            query,
            reply,
        });
        answer.await.map_err(|_| StoreError::Stopped)
    }

    /// Commits everything queued and stops the thread; returns once the database is
    /// closed and the data directory unlocked.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        self.send(Command::Stop { done });
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
    fn needed_by(batch: &[Command]) -> Durability {
        let durable = batch.iter().any(|command| {
            matches!(
                command,
                Command::CacheOffline { .. }
                    | Command::DropOffline { .. }
                    | Command::ReserveIds { .. }
            )
        });
        if durable {
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

fn run_thread(mut db: Connection, commands: &mpsc::Receiver<Command>) {
    // `open` left the connection at FULL.
    let mut sync = Durability::Full;
    let mut trims = Trims::default();
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
        let needed = Durability::needed_by(&batch);
        if needed != sync {
            match db.pragma_update(None, "synchronous", needed.pragma()) {
                Ok(()) => sync = needed,
                Err(error) => tracing::error!(%error, "cannot set synchronous"),
            }
        }
        if sync != needed && needed == Durability::Full {
            // Never tell a sender "cached" without fsync: fail the batch's writes instead.
            tracing::error!("cached messages not written: durability unavailable");
            continue;
        }
        match apply_batch(&mut db, batch, &mut trims) {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => tracing::error!(%error, "store write failed"),
        }
    }
}

/// Applies a batch in one transaction; true when a `Stop` was among it.
fn apply_batch(
    db: &mut Connection,
    batch: Vec<Command>,
    trims: &mut Trims,
) -> Result<bool, StoreError> {
    let tx = db.transaction()?;
    let mut committed = Vec::new();
    let mut reserved = Vec::new();
    let mut stop = None;
    let mut max_id = 0;
    for command in batch {
        match command {
            Command::AppendHistory {
                app,
                conv,
                message,
                keep,
            } => {
                max_id = max_id.max(message.message_id);
                insert(&tx, HISTORY, (&app, &conv), &message)?;
                trims.note(&tx, HISTORY, (app, conv), i64::from(keep))?;
            }
            Command::CacheOffline {
                app,
                receiver,
                message,
                keep,
                done,
            } => {
                max_id = max_id.max(message.message_id);
                insert(&tx, OFFLINE, (&app, &receiver), &message)?;
                trims.note(&tx, OFFLINE, (app, receiver), keep as i64)?;
                committed.push(done);
            }
            Command::DropOffline {
                app,
                receiver,
                message_ids,
            } => {
                let mut delete = tx.prepare_cached(
                    "DELETE FROM offline WHERE app = ?1 AND receiver = ?2 AND message_id = ?3",
                )?;
                for id in message_ids {
                    delete.execute(params![app, receiver, id as i64])?;
                }
            }
            Command::ReserveIds { up_to, done } => {
                persist_reservation(&tx, up_to)?;
                reserved.push(done);
            }
            Command::History {
                app,
                conv,
                query,
                reply,
            } => {
                // Reads see the conversation at its cap, as if trimmed per message.
                trims.apply_one(&tx, HISTORY, (&app, &conv))?;
                let _ = reply.send(read_history(&tx, &app, &conv, query)?);
            }
            Command::Stop { done } => stop = Some(done),
        }
    }
    if stop.is_some() {
        trims.apply_all(&tx)?;
    }
    if max_id > 0 {
        persist_reservation(&tx, max_id + 1)?;
    }
    tx.commit()?;
    for done in committed {
        let _ = done.send(());
    }
    for done in reserved {
        let _ = done.send(());
    }
    match stop {
        Some(done) => {
            let _ = db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
            let _ = done.send(());
            Ok(true)
        }
        None => Ok(false),
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
        tx: &Transaction<'_>,
        target: CappedTable,
        (app, key): (String, String),
        keep: i64,
    ) -> Result<(), StoreError> {
        let every = if target == HISTORY {
            HISTORY_TRIM_EVERY
        } else {
            1
        };
        let group = (target, app, key);
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
        tx: &Transaction<'_>,
        target: CappedTable,
        (app, key): (&str, &str),
    ) -> Result<(), StoreError> {
        if let Some((keep, _)) = self.0.remove(&(target, app.to_string(), key.to_string())) {
            trim(tx, target, (app, key), keep)?;
        }
        Ok(())
    }

    /// Trims every pending group.
    fn apply_all(&mut self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        for ((target, app, key), (keep, _)) in self.0.drain() {
            trim(tx, target, (&app, &key), keep)?;
        }
        Ok(())
    }
}

/// Inserts `message` under (app, key); [`trim`] keeps the group at its cap.
fn insert(
    tx: &Transaction<'_>,
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
    tx: &Transaction<'_>,
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
    tx: &Transaction<'_>,
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
        let ids: Vec<i64> = db
            .prepare("SELECT message_id FROM history ORDER BY message_id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let newest = written as i64;
        assert_eq!(ids, ((newest - 4)..=newest).collect::<Vec<_>>());
    }
}

//! The reference server of protocol v1 (`docs/protocol.md`).
//!
//! Layers, outside in:
//!
//! - `run`/`spawn` (this file): the accept loop and shutdown; `admission.rs` at the door
//!   (the connection cap, the login rate per address); `tls.rs` the `wss://` acceptor.
//! - `connection.rs`: the per-connection task: frames ↔ requests, batched writer,
//!   liveness.
//! - `session/`: `session::handle` decides what each request does (unit-testable
//!   without a socket). `session/mod.rs` holds `Session` and the one match over every
//!   op, with no wildcard arm; each family has its file: `login.rs` (login, logout,
//!   renew, ping), `peer.rs`, `channel.rs` (join, leave, send, members, counts),
//!   `history.rs`, `presence.rs`, `attributes.rs`, `invitations.rs`. Refusals are the
//!   typed errors of `protocol::codes` (`JoinError`, `LeaveError`, ...).
//! - `Hub`: this node's connections, pending acks and timers, and its copy of the shared
//!   state, changed only by applying `engine::Change`s, each answering a typed `Outcome`:
//!   users and channels in `hub.rs`; presence in `hub_presence.rs`, attributes in
//!   `hub_attributes.rs`, invitations in `hub_invitations.rs`, the token expiry watch in
//!   `hub_tokens.rs`.
//! - `engine/`: the seam to what nodes share: the order of changes, history and the
//!   durable offline cache; `engine::memory` for one node over `store.rs` (SQLite on its
//!   own thread); `engine::redis` for several nodes on one Redis.
//!
//! - `http/`: the HTTP side of the same listener (`dispatch` below sends a connection there
//!   unless its request line asks for the WebSocket path): Agora's REST API, kick and ban,
//!   health and metrics; `hub_admin.rs` the hub's side of kick, ban and the event feeds.
//!
//! Beside them: `outbox.rs` the bounded queue between the hub and a connection's writer;
//! `prelogin.rs` what a connection may read and have answered before it logs in;
//! `hub_offline.rs` the offline cache's per-app store of cached messages and its quotas;
//! `timers.rs` the one timer wheel of the hub; `rate.rs` the per-connection rate
//! limiters; `clock.rs` the one clock of every timer, window and expiry (tokio time, so
//! tests pause it); `auth.rs` the token check; `config.rs` every knob with docs/protocol.md's
//! defaults, `config_file.rs` the TOML file of `serve`.
//!
//! # Choices where docs/protocol.md is silent
//!
//! - **Frames**: a WebSocket message (one frame or fragmented) may be at most
//!   `Config::max_frame_bytes` (1 MiB) so that a batch of objects fits; a bigger one is
//!   refused by the WebSocket layer before it is buffered, and closes with 1009, as does
//!   any single object over 64 KiB. Binary frames count as unusable input (`error` event).
//!   Objects of one frame are handled in order; replies come in request order except
//!   `send_peer`, whose reply waits for the receiver's ack. Before login a connection may
//!   send 96 KiB and have 16 objects answered, else 1008 (`prelogin.rs`); a connection
//!   whose outbox is over its soft bound is not read until the writer makes room.
//!   WebSocket protocol errors close with 1002, text that is not UTF-8 with 1007.
//! - **Errors**: only unparsable or id-less objects (and binary frames) count toward the
//!   100 errors that close a connection with 1008; unknown ops and bad parameters are
//!   answered (code 1, or the family's invalid-argument code) and do not count. Bad
//!   parameters answer the code of the field that failed where the family has one:
//!   `send_peer` with a missing or non-string `to` is 6, with a bad `message` 7;
//!   `send_channel` with a bad `message` is 4. Before login, bad parameters of any op
//!   but `login` are 102 like every other op (an unknown op stays 1).
//! - **Message ids** come from one counter per server (so unique per app and increasing
//!   per conversation). Ids are reserved in SQLite in blocks of `store::ID_BLOCK` (65536)
//!   before they are handed out (the next block is asked for half a block ahead), so
//!   after a restart, even after SIGKILL, ids continue above any id ever answered; a
//!   restart skips the rest of the last block.
//! - **Peer messages**: the receiver's `ack` must come from the receiving user; an `ack`
//!   sent with an `id` is also answered (code 0). A message to an online receiver is in
//!   the pair's history as soon as it is sent, even if the ack then times out (2); an
//!   unreachable send (3) is not stored. Sending to yourself is allowed.
//! - **Cached messages** are answered 4 only once committed to SQLite (`synchronous=FULL`).
//!   They are delivered at login right after the reply and forgotten only when the
//!   receiver acks each one (at least once: a connection that drops before acking gets
//!   the rest again at its next login); the 200-per-receiver cap drops the oldest; the
//!   quotas (32 MiB for the server, 8 MiB per sender: `hub_offline.rs`) answer 3;
//!   messages older than 7 days are dropped at start-up and at delivery. The login
//!   backlog is exempt from the outbox bound (it is bounded by its own cap) and does not
//!   count toward it, so the replies and events behind it are not cut off.
//! - **Login**: an invalid app id, or an unknown one when the registry is closed, is 4;
//!   an invalid user id is 3; a second `login` on a logged-in connection is 8. After a
//!   `logout` the connection may log in again. The kicked connection of a remote login
//!   gets `kicked` and a close frame 1000 "remote_login"; its channels are held for the
//!   grace period, as for a dropped connection, so a client that re-logs in and rejoins
//!   causes no leave/join events.
//! - **Tokens** (apps with a certificate): `token_privilege_will_expire` goes 30 s before
//!   the expiry, or right after login/renewal when less is left. An expired token kicks
//!   with `kicked` token_expired and close 1000 "token_expired", and the user is gone at
//!   once (channels left, presence offline; no grace). Apps without a certificate ignore
//!   tokens; `renew_token` there answers 0 with no expiry. `renew_token` is rate limited
//!   (`RateLimits::renew_token`, 2 per 5 s, RENEW 4 "too often"; only renewals that
//!   succeed count: a refused token changes nothing), and a renewal cancels the timers
//!   of the token it replaces.
//! - **Grace**: during it the user's channel memberships stay (counts and `get_members`
//!   include the user) but no channel events reach it until it rejoins; a rejoin within
//!   the grace answers 0 with the current count and sends nothing to others. The 20-channel
//!   cap counts the channels the current connection joined.
//! - **Channels**: `get_members` and `history` of a channel need membership (5); an
//!   invalid channel id in `leave`/`send_channel`/`get_members` reads as "not in channel".
//!   `member_count_updated` goes to every member (the joiner included) after each change,
//!   at most once per second per channel, carrying the latest count. `member_joined` is
//!   not sent to the joiner; `member_left` goes to the remaining members.
//! - **History**: every channel message and every delivered or cached peer message is
//!   kept (last 1000 per conversation). With both `before` and `after`, the oldest `limit`
//!   messages strictly between them. A peer conversation needs no membership. A page is
//!   cut to one 64 KiB object (`"truncated": true`, docs/protocol.md).
//! - **History durability**: history is written in group commits: the store thread
//!   gathers history writes for up to 10 ms (`store::HISTORY_WINDOW`; anything a client
//!   waits on, a cached message, a read, ends the window at once) and commits them in one
//!   transaction with `synchronous=NORMAL` in WAL: no fsync per commit, so a power cut may
//!   lose the last history written before it, and a crash of the process the last 10 ms
//!   of it (the messages themselves were delivered). Any batch holding a cached message
//!   (or the drop of delivered ones) commits with `FULL`, which also syncs the history
//!   before it. On disk a conversation is trimmed back to its cap every 256 messages and
//!   before it is read, so readers see the cap exactly; after a crash up to 255 older
//!   messages may stay until the next trim. The database is opened with exclusive
//!   locking (one server per data directory anyway): no file lock per transaction.
//! - **Writes to a connection**: everything queued goes out as one frame and one write.
//!   A reply goes at once; events alone wait until `write_delay` (20 ms, `serve
//!   --write-delay`) has passed since the connection's last write, unless 8 objects are
//!   queued: a connection fed events faster than that gets a write per 20 ms instead of
//!   one per event (a busy channel costs a few writes per member per second, not one per
//!   message), and the first event after a quiet spell goes at once. So a chat line
//!   waits at most 20 ms behind another one to the same connection.
//! - **Slow consumers** (`outbox::OutboxLimits`): past 1 MiB or 8192 queued objects a
//!   connection must keep making progress: once its writer has completed no write for
//!   10 s (a write blocked that long, or a push while none completed for that long) it is
//!   cut off; it may never hold more than 64 MiB, and when all outboxes together hold
//!   512 MiB, connections over their soft bound are cut off. So a reader that keeps
//!   reading survives any burst the rate limits allow. A cut-off connection gets no close
//!   frame (it would not be read), its queue is freed at once, it is logged, and it then
//!   counts as a dropped connection (grace period). All settable in `[limits]`.
//! - **Timers** (ack timeouts, grace periods, member-count throttles, token, invitation
//!   and attribute expiry) are entries in one timer wheel (`timers`): an ack removes its
//!   timeout at once, so nothing per message outlives its ack.
//! - **Threads**: `serve` runs `--threads` workers, by default one fewer than the cores
//!   (at least one): the kernel's network stack, the store thread and, on a test box, the
//!   load generator need the rest, and on two cores one worker wakes fewer threads than two.
//! - **Store id**: the login reply carries `store`, an id made at random with the
//!   database: clients reset what they have seen when it changes (ids started over).
//! - **Liveness**: a connection silent for 30 s (no data, Ping or Pong) is dropped without
//!   a close frame; the server Pings every 15 s.
//! - **Rate limits** are per connection and sliding windows; a request refused by a
//!   limit does not count against that limit (a `join` refused by the per-channel limit
//!   still counts toward the 50 per 3 s). `get_channel_member_count` has no rate limit;
//!   `history` has 40 per 5 s (HISTORY 1 "history too often").
//! - **Presence**: one rate limit (10 per 5 s) covers `query_peers_online`,
//!   `(un)subscribe_peers_online` and `query_subscribed_peers`. The states sent after a
//!   subscribe cover every peer of that request, in its order, right after the reply.
//!   A remote login causes no presence event. Subscriptions belong to the user: they
//!   survive a reconnect within the grace and end at logout or when the grace ends.
//!   Subscribing to yourself is allowed.
//! - **User attributes**: `get_user_attributes` needs the user online (a user in the grace
//!   is 6). Limits apply to the set a write would produce: a refused write changes
//!   nothing. An empty value or a bad key character is 3, any size or count overflow 4.
//! - **Channel attributes**: readable and writable without membership; an unknown channel
//!   has an empty list. `updated_by`/`updated_ts` change only on the keys a write sets.
//!   `notify` sends the full list to every member, the writer too if it is one. A
//!   channel's attributes go 5 minutes after it became empty (or after they were set on
//!   a channel without members). They live in memory, not in SQLite.
//! - **Invitations** are keyed by (caller, callee, invitation id) and live in memory. The
//!   same pending triple again is 4; an offline callee is 1. Code 0 means queued to the
//!   callee's connection. Only the caller cancels and only the callee answers (anyone
//!   else gets 5, as does an answered, canceled or expired invitation). Answering while
//!   the caller is offline is 1 and ends the invitation. On expiry both sides, if online,
//!   get `invitation_failure` with reason 3. So that invitations cannot flood a callee's
//!   outbox, `invite` is rate limited (`RateLimits::invitations`, 10 per 5 s) and a caller
//!   may have at most `max_pending_invitations` (32) pending; INVITE has no "too often",
//!   so both answer 4 (invalid argument), the rate limit with the reason "invitations
//!   too often".
//! - **Store queue**: commands go to the store thread over a queue of at most 65,536
//!   (`store::MAX_QUEUED_COMMANDS`). The hub never waits for room (it may hold its lock):
//!   past it a command fails at once, as on a full disk (a cached send answers 1, a read
//!   HISTORY 1, a history write is lost and counted), logged once per 10 s. The
//!   per-connection rate limits keep clients far from it; the thread commits everything
//!   queued in one transaction per batch.
//! - **Time**: every timer, rate window, throttle and expiry runs on tokio time through
//!   `Config::clock` (`clock.rs`), so tests run them on paused time; token expiry is
//!   judged in unix seconds from the same clock (the wall clock by default,
//!   `Clock::following_tokio` in tests). `server_ts` and `updated_ts` stay wall clock.
//! - **Store failures** (a full disk, an unwritable file): the store thread answers every
//!   command whatever fails, and no I/O error ends it. A cached send it cannot write
//!   answers 1 (and is not delivered); a `history` it cannot read answers HISTORY 1; what
//!   needs no disk goes on. Each command runs in its own savepoint of its batch's
//!   transaction, so a failing command fails alone; when the commit itself fails (where
//!   a full disk fails), each command is tried again in its own transaction. A history
//!   write that fails is lost (counted in the log); the drop of an acknowledged cached
//!   message is retried with the next batches. Writes work again as soon as there is
//!   room, without a restart. A repeated error is logged at most once per 10 s with a
//!   count, and once when writes work again. If the store thread dies all the same (a
//!   bug), the server shuts down and `run` returns an error: never half alive.
//! - **Shutdown**: stop accepting, close every connection with 1001 "server shutting
//!   down" after its queued frames, end every timer task (pending ack timeouts, grace
//!   periods, token and invitation expiries fire no more), commit the store.
//! - **Data directory**: one server at a time. `Store::open` takes an exclusive OS lock
//!   on `rtm.lock` there (released when the store thread ends, or the process dies); a
//!   second server on the same directory refuses to start, naming the directory and
//!   suggesting `--data-dir` or `--ephemeral`.
//! - **Admission** (`admission`): past `max_connections`, or `max_connections_per_address`
//!   (64; loopback exempt with `loopback_exempt`), a new TCP connection gets an HTTP 503
//!   (plain `ws://`; closed on `wss://`) right after `accept`, before any handshake work. The TLS and WebSocket handshakes
//!   must finish within `login_timeout` (10 s), and a connection must log in within it
//!   after connecting or after a `logout`, else it is closed (1008 "login timeout").
//!   `login` attempts count against `logins_per_address` (50 per second per IP, all
//!   connections together, answered 10 when over); loopback peers are exempt unless
//!   `loopback_exempt` is off, so local benches and demos are not throttled.
//! - **Several nodes** (`serve --engine redis://…[,redis://…]`, `engine/redis.rs`):
//!   every rule above holds across nodes. Changes to the shared state (logins, joins,
//!   presence, attributes, invitations, the offline cache) go through one Redis stream
//!   that every node applies in order, so reads (members, counts, presence, attributes)
//!   come from the node's own copy; a cached message is in Redis before it is answered 4.
//!   Messages go straight to the nodes concerned over Redis PUB/SUB: a peer message to
//!   the receiver's node, a channel message to the nodes with members in the channel, on
//!   the Redis (of several) that holds the conversation by a stable hash; ids come from
//!   that Redis' counter (unique per app, growing within each conversation). A node whose
//!   heartbeat stops for 5 s is gone: its users are disconnected (grace, then they leave
//!   their channels). While Redis is away, requests that need it are answered with their
//!   family's failure code within 3 s (`history` too), everything else goes on, and the
//!   node resumes by itself when Redis is back; channel messages published meanwhile are
//!   read from history. A node that lost its place (a Redis lost its data, or it fell
//!   behind a trim) reloads and closes its connections with 1012; their clients log in
//!   again.
//! - **Open mode** is the default only on a loopback address with no app configured
//!   (`open_mode`): once `--app` or the file lists an app, any other app id is refused
//!   (LOGIN 4) unless `--open` (or `open = true`) is given; elsewhere `serve` needs
//!   `--open` too, and prints a warning.

mod admission;
mod auth;
mod clock;
mod config;
mod config_file;
mod connection;
mod engine;
pub mod http;
mod hub;
mod outbox;
mod prelogin;
mod rate;
mod session;
mod store;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use clock::Clock;
pub use config::{
    ApiKey, AppLookup, AppRegistry, Config, ConfigError, RateLimit, RateLimits, RedisSettings,
    StoreLocation,
};
pub use config_file::{
    open_mode, open_mode_warning, AppEntry, ConfigFileError, LimitsSection, ServerFile,
};
pub use engine::redis::shards::{shard_of_channel, shard_of_peers};
pub use engine::redis::SNAPSHOT_EVERY;
pub use hub::Hub;
pub use outbox::ConnHandle;
pub use session::{handle, Identity, Session};
pub use store::{StoreError, DB_FILE, LOCK_FILE};
pub use tls::{tls_acceptor, tls_acceptor_from_der, ServerTls, TlsError, TlsFiles};

/// How long shutdown waits for connections to send their close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server task failed: {0}")]
    Task(String),
    #[error("engine: {0}")]
    Engine(#[from] engine::redis::RedisEngineError),
    #[error("bad setting: {0}")]
    Config(#[from] config::ConfigError),
}

/// An opened store plus what keeps an ephemeral one alive.
struct Prepared {
    hub: Hub,
    /// The `--ephemeral` store's directory, removed when the server stops.
    _temp: Option<tempfile::TempDir>,
}

async fn prepare(config: Config) -> Result<Prepared, ServerError> {
    config.validate()?;
    let (dir, temp) = match &config.store {
        StoreLocation::Path(dir) => (dir.clone(), None),
        StoreLocation::Ephemeral => {
            let temp = tempfile::Builder::new().prefix("rtm-tui-").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
        StoreLocation::Redis(settings) => {
            tracing::info!(urls = ?settings.urls, settings.node, "joining the nodes on redis");
            let (engine, snapshot) = engine::redis::RedisEngine::connect(settings).await?;
            let hub = Hub::with_snapshot(Arc::new(config), Box::new(engine), snapshot.as_deref())
                .map_err(engine::redis::RedisEngineError::Snapshot)?;
            return Ok(Prepared { hub, _temp: None });
        }
    };
    let ttl = config.offline_ttl;
    tracing::info!(dir = %dir.display(), "opening the store");
    let (store, loaded) = tokio::task::spawn_blocking(move || store::Store::open(&dir, ttl))
        .await
        .map_err(|e| ServerError::Task(e.to_string()))??;
    Ok(Prepared {
        hub: Hub::with_store(Arc::new(config), store, loaded),
        _temp: temp,
    })
}

/// Serves protocol v1 on `listener` until `shutdown` resolves, then closes every
/// connection and commits the store.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_with_admin(listener, None, config, shutdown).await
}

/// `run`, with `/healthz`, `/readyz` and `/metrics` served on `admin` alone when given
/// (`serve --admin-listen`; then `config.admin_listen` is set too, and the main listener
/// serves them no more).
pub async fn run_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let prepared = prepare(config).await?;
    serve(listener, admin, prepared, shutdown).await
}

async fn serve(
    listener: TcpListener,
    admin: Option<TcpListener>,
    prepared: Prepared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let hub = prepared.hub.clone();
    let admission = Arc::new(admission::Admission::new(hub.config()));
    // Refusals are logged at most once a second, with a count: a flood must not flood the log.
    let now = tokio::time::Instant::now();
    let mut refused = (0u64, now.checked_sub(Duration::from_secs(1)).unwrap_or(now));
    let (stop_connections, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    if let Some(admin) = admin {
        let ctx = http::Ctx {
            hub: hub.clone(),
            admission: Arc::clone(&admission),
            surface: http::Surface::Admin,
        };
        connections.spawn(serve_admin(admin, ctx, stopping.clone()));
    }
    tokio::pin!(shutdown);
    let store_ended = hub.engine().failed();
    tokio::pin!(store_ended);
    let mut failed = None;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Not half alive: without its store the server stops, loudly.
            () = &mut store_ended => {
                tracing::error!("the store thread died; shutting the server down");
                failed = Some(ServerError::Store(StoreError::Stopped));
                break;
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    // Over a cap the socket gets a 503 (or is closed): no handshake work is done.
                    let Some(slot) = admission.admit(peer.ip()) else {
                        admission.refuse(tcp, hub.config().tls.is_none());
                        refused.0 += 1;
                        if refused.1.elapsed() >= Duration::from_secs(1) {
                            tracing::warn!(%peer, refused = refused.0, "connections refused: max_connections (or per address) reached");
                            refused = (0, tokio::time::Instant::now());
                        }
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let admitted = connection::Admitted {
                        peer: Some(peer),
                        admission: Arc::clone(&admission),
                        _slot: slot,
                    };
                    connections.spawn(serve_accepted(tcp, admitted, hub.clone(), stopping.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::info!("shutting down");
    drop(listener);
    // The admin listener's task ends with the others (it watches `stopping`).
    let _ = stop_connections.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    // Timer tasks (acks, grace, tokens, invitations) must not outlive the server.
    hub.stop_timers();
    hub.engine().stop().await;
    drop(prepared);
    if let Some(error) = failed {
        return Err(error);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs the TLS handshake if the server has TLS, then serves the connection. Both ways
/// are boxed so that a connection's task holds no room for the way it did not take (an
/// idle connection's memory is mostly its task and buffers).
async fn serve_accepted(
    tcp: tokio::net::TcpStream,
    admitted: connection::Admitted,
    hub: Hub,
    stopping: watch::Receiver<bool>,
) {
    match hub.config().tls.clone() {
        None => Box::pin(dispatch(tcp, admitted, hub, stopping)).await,
        Some(tls) => Box::pin(serve_tls(tls, tcp, admitted, hub, stopping)).await,
    }
}

/// Sends a connection by its request line: `GET /rtm/v1` to the WebSocket side as ever,
/// anything else to the HTTP API (`http`). The request line must come within the
/// handshake's time (`login_timeout`).
async fn dispatch<S: connection::Transport>(
    stream: S,
    admitted: connection::Admitted,
    hub: Hub,
    stopping: watch::Receiver<bool>,
) {
    // Boxed: the look's buffer is freed once it is done, not kept in this task for the
    // connection's life.
    let look = Box::pin(http::rewind::peek_route(stream));
    let peeked = tokio::time::timeout(hub.config().login_timeout, look);
    let Ok(Some((stream, route))) = peeked.await else {
        tracing::debug!(peer = ?admitted.peer, "no request line in time");
        return;
    };
    match route {
        http::rewind::Route::WebSocket => {
            Box::pin(connection::serve(stream, admitted, hub, stopping)).await;
        }
        http::rewind::Route::Http => {
            let health = hub.config().admin_listen.is_none();
            let ctx = http::Ctx {
                hub,
                admission: Arc::clone(&admitted.admission),
                surface: http::Surface::Main { health },
            };
            Box::pin(http::serve(stream, ctx, stopping)).await;
            drop(admitted); // the connection's slot, held until now
        }
    }
}

/// The `--admin-listen` listener: health and metrics only, until the server stops.
async fn serve_admin(listener: TcpListener, ctx: http::Ctx, mut stopping: watch::Receiver<bool>) {
    let mut served = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopping.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    served.spawn(http::serve(tcp, ctx.clone(), stopping.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = served.join_next(), if !served.is_empty() => {}
        }
    }
    while served.join_next().await.is_some() {}
}

async fn serve_tls(
    tls: ServerTls,
    tcp: tokio::net::TcpStream,
    admitted: connection::Admitted,
    hub: Hub,
    stopping: watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(hub.config().login_timeout, tls.0.accept(tcp));
    match handshake.await {
        Ok(Ok(stream)) => Box::pin(dispatch(stream, admitted, hub, stopping)).await,
        Ok(Err(error)) => tracing::debug!(peer = ?admitted.peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = ?admitted.peer, "TLS handshake timed out"),
    }
}

/// A server running on its own task (tests, the TUI's embedded server, demo, bench).
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

/// Starts `run` on a task once the store is open.
pub async fn spawn(listener: TcpListener, config: Config) -> Result<RunningServer, ServerError> {
    let addr = listener.local_addr()?;
    let tls = config.tls.is_some();
    let prepared = prepare(config).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, None, prepared, async move {
        let _ = stopped.await;
    }));
    Ok(RunningServer {
        addr,
        tls,
        stop: Some(stop),
        task,
    })
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://{addr}/rtm/v1`, or `wss://` when the server has TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.addr, crate::protocol::WS_PATH)
    }

    /// Graceful stop: close frames to every client, store committed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "server stopped with an error"),
            Err(error) => tracing::error!(%error, "server task failed"),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop anyway (the store commits what it has).
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_store_takes_the_server_down() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = Config::ephemeral();
        let (store, loaded) = store::Store::open(dir.path(), config.offline_ttl).unwrap();
        let prepared = Prepared {
            hub: Hub::with_store(Arc::new(config), store.clone(), loaded),
            _temp: None,
        };
        let server = tokio::spawn(serve(listener, None, prepared, std::future::pending()));
        let url = format!("ws://{addr}{}", crate::protocol::WS_PATH);
        let (mut client, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        store.panic_for_test();
        let ended = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops instead of running without its store")
            .expect("no panic in the accept loop");
        assert!(matches!(ended, Err(ServerError::Store(_))), "{ended:?}");
        // Its connections are closed with it.
        use futures_util::StreamExt as _;
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(frame)) = client.next().await {
                if frame.is_close() {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the connection was closed");
    }
}

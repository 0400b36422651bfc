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
//! - `hub/`: this node's connections, pending acks and timers, and its copy of the shared
//!   state, changed only by applying `engine::Change`s, each answering a typed `Outcome`;
//!   one file per family as in `session/` (`hub/mod.rs` has the map), its timer wheel in
//!   `hub/timers.rs`, the offline cache and its quotas in `hub/offline.rs`, kick, ban and
//!   the event feeds in `hub/admin.rs`.
//! - `engine/`: below the hub, the seam to what nodes share: the order of changes,
//!   history and the durable offline cache; `engine::memory` for one node over `store.rs`
//!   (SQLite on its own thread); `engine::redis` for several nodes on one or several
//!   Redis. It drives the hub through `engine::Node` and never names it.
//!
//! - `http/`: the HTTP side of the same listener (`dispatch` below sends a connection there
//!   unless its request line asks for the WebSocket path): Agora's REST API, kick and ban,
//!   health and metrics; uploads and downloads of files and images (`http/media.rs`).
//! - `media/`: files and images (docs/protocol.md, "Files and images"): the node's
//!   tickets and quotas, and the store: files under the data directory for one node,
//!   chunked keys in the engine's Redis for several.
//!
//! Beside them: `outbox.rs` the bounded queue between the hub and a connection's writer;
//! `prelogin.rs` what a connection may read and have answered before it logs in;
//! `rate.rs` the per-connection rate limiters; `clock.rs` the one clock of every timer,
//! window and expiry (tokio time, so tests pause it); `auth.rs` the token check;
//! `config.rs` every knob with docs/protocol.md's defaults, `config_file.rs` the TOML
//! file of `serve`.
//!
//! # Choices where docs/protocol.md is silent
//!
//! `docs/server.md` lists them (frames, errors, message ids, the offline cache, login,
//! tokens, grace, history and its durability, writes and slow consumers, timers, rate
//! limits, presence, attributes, invitations, store failures, shutdown, admission, several
//! nodes, open mode, files and images): a change of behaviour here changes that page too.

mod admission;
mod auth;
mod clock;
mod config;
mod config_file;
mod connection;
// The engine and the hub still say `pub` for what is `pub(crate)` at most (`unreachable_pub`,
// Cargo.toml): theirs to narrow, listed in the shape branch's report.
#[allow(unreachable_pub)]
mod engine;
pub mod http;
#[allow(unreachable_pub)]
mod hub;
mod media;
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
pub use engine::redis::shards::{shard_of_app, shard_of_channel, shard_of_peers, shard_of_user};
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
    #[error("media store: {0}")]
    Media(String),
}

/// An opened store plus what keeps an ephemeral one alive.
struct OpenedStore {
    hub: Hub,
    /// The `--ephemeral` store's directory, removed when the server stops.
    _temp: Option<tempfile::TempDir>,
}

async fn prepare(config: Config) -> Result<OpenedStore, ServerError> {
    config.validate()?;
    let (dir, temp) = match &config.store {
        StoreLocation::Path(dir) => (dir.clone(), None),
        StoreLocation::Ephemeral => {
            let temp = tempfile::Builder::new().prefix("rtm-tui-").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
        StoreLocation::Redis(settings) => {
            tracing::info!(urls = ?settings.urls, settings.node, "joining the nodes on redis");
            let engine = engine::redis::RedisEngine::connect(settings).await?;
            let media = if config.media {
                let store = media::MediaStore::redis(&settings.urls, config.media_expiry)
                    .await
                    .map_err(ServerError::Media)?;
                Some(media::Media::new(store, &config))
            } else {
                None
            };
            let hub = Hub::with_engine(Arc::new(config), Box::new(engine));
            if let Some(media) = media {
                hub.set_media(Arc::new(media));
            }
            return Ok(OpenedStore { hub, _temp: None });
        }
    };
    let media_dir = dir.clone();
    let ttl = config.offline_ttl;
    tracing::info!(dir = %dir.display(), "opening the store");
    let (store, loaded) = tokio::task::spawn_blocking(move || store::Store::open(&dir, ttl))
        .await
        .map_err(|e| ServerError::Task(e.to_string()))??;
    // After the store: its lock says that this server alone uses the directory.
    let media = if config.media {
        let store = media::MediaStore::disk(&media_dir, config.media_expiry).map_err(|e| {
            ServerError::Media(format!("{}: {e}", media_dir.join("media").display()))
        })?;
        Some(media::Media::new(store, &config))
    } else {
        None
    };
    let hub = Hub::with_store(Arc::new(config), store, loaded);
    if let Some(media) = media {
        hub.set_media(Arc::new(media));
    }
    Ok(OpenedStore { hub, _temp: temp })
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
    prepared: OpenedStore,
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
        let ctx = http::HttpCtx {
            hub: hub.clone(),
            admission: Arc::clone(&admission),
            surface: http::Surface::Admin,
        };
        connections.spawn(serve_admin(admin, ctx, stopping.clone()));
    }
    if let Some(media) = hub.media() {
        let every = media::sweep_interval(media.store.expiry());
        connections.spawn(Arc::clone(media).sweep_until(every, stopping.clone()));
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
            let ctx = http::HttpCtx {
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
async fn serve_admin(
    listener: TcpListener,
    ctx: http::HttpCtx,
    mut stopping: watch::Receiver<bool>,
) {
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
        let prepared = OpenedStore {
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

//! The hub: this node's copy of the shared state (who is online where, channels, the
//! offline cache), its connections and pending acks, behind one cheap, cloneable handle.
//!
//! The shared state changes only through `Hub::apply`, one [`Change`] at a time, in the
//! order the engine (`engine/`) gives: at once on one node, the Redis stream's order on
//! several. Applying the same changes in the same order gives every node the same state;
//! the node-local effects of a change (a reply, events to this node's connections, a
//! timer) happen only where they belong: replies and timers on the origin (the node that
//! submitted the change), events on the node that holds the receiving connection.
//!
//! `apply` runs under the state lock, never awaits, and appends to outboxes inside the
//! critical section (appending never waits: a full outbox cuts its connection off), so
//! every receiver of a channel or peer pair sees the same order, the order of the changes.
//! Socket writes happen later in each connection's writer task, without any hub lock.
//!
//! The engine sits below the hub and never names it: it drives the hub through
//! `engine::Node`, which `delivery.rs` implements. One file per family, as in `session/`:
//!
//! | file | what |
//! |---|---|
//! | `state.rs` | the shared state's types ([`Shared`], per app a `Tenant`) and this node's |
//! | `login.rs` | login, logout, the grace period after a drop, a node found gone |
//! | `peer.rs` | peer messages, the offline cache's use, acks |
//! | `channel.rs` | join, leave, member events and counts, channel messages |
//! | `presence.rs`, `attributes.rs`, `invitations.rs`, `tokens.rs` | those families |
//! | `admin.rs` | kick, ban, the events of the REST API's feeds (kept by the engine) |
//! | `delivery.rs` | what the engine asks of the hub; messages it routed itself |
//! | `timers.rs` | one timer wheel for acks, grace periods and expiries |
//! | `offline.rs`, `feeds.rs` | data of the shared state: the offline cache (its quotas are judged in `peer.rs`), the feeds' online users |
//! | `watchers.rs` | data of this node: whose presence its connections follow |
//!
//! Family files name `state.rs` and the data files; `state.rs` names only the data files,
//! and they name nothing of the hub: the files import one way.

pub(in crate::server) mod admin;
mod attributes;
mod channel;
mod delivery;
mod feeds;
mod invitations;
mod login;
mod offline;
mod peer;
mod presence;
mod state;
mod timers;
mod tokens;
mod watchers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::server::config::Config;
use crate::server::engine::event_feeds::feed_place;
use crate::server::engine::{Change, ConnId, Engine, NodeId, Outcome, Stamp, Submitted};
use crate::server::outbox::ConnHandle;

use state::{ConnRef, Here, Shared, State};
use timers::Timers;

/// A hub timer: cancels it ([`timers::TimerHandle::abort`]).
type HubTimer = timers::TimerHandle<Hub>;

/// Close code sent with `kicked` (normal closure: the server ended the session on purpose).
pub const CLOSE_KICKED: u16 = 1000;

#[derive(Debug)]
struct HubInner {
    config: Arc<Config>,
    engine: Box<dyn Engine>,
    state: Mutex<State>,
    next_conn_id: AtomicU64,
    /// Every connection's outbox bounds, and the bytes queued in all of them.
    outbox_limits: Arc<crate::server::outbox::OutboxLimits>,
    queued: crate::server::outbox::QueuedTotal,
    /// Every timer; stopped at shutdown (the timer task then drops its hub handle).
    timers: Timers<Hub>,
    /// The HTTP API's metrics and rate limits (`server::http`).
    http: crate::server::http::state::HttpState,
    /// Files and images (`server::media`), once the server has opened their store.
    media: std::sync::OnceLock<Arc<crate::server::media::Media>>,
}

/// Cheap handle to the shared state.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl Hub {
    /// A hub over an engine, starting from `shared` (what the engine loaded), its
    /// background work started.
    fn new(config: Arc<Config>, engine: Box<dyn Engine>, shared: Shared) -> Self {
        let state = State {
            shared,
            ..State::default()
        };
        let outbox_limits = Arc::new(config.outbox.clone());
        let hub = Hub {
            inner: Arc::new(HubInner {
                config,
                engine,
                state: Mutex::new(state),
                next_conn_id: AtomicU64::new(1),
                outbox_limits,
                queued: crate::server::outbox::QueuedTotal::default(),
                timers: Timers::default(),
                http: crate::server::http::state::HttpState::default(),
                media: std::sync::OnceLock::new(),
            }),
        };
        hub.inner.timers.spawn(hub.clone());
        hub.inner.engine.start(&hub);
        hub
    }

    /// A hub over an engine of several nodes, holding nothing at first: the engine loads
    /// an app's state when this node's first user of it comes (`engine/redis/apps.rs`).
    pub(super) fn with_engine(config: Arc<Config>, engine: Box<dyn Engine>) -> Self {
        Hub::new(config, engine, Shared::default())
    }

    /// A one-node hub over an opened SQLite store (the default engine).
    pub fn with_store(
        config: Arc<Config>,
        store: crate::server::store::Store,
        loaded: crate::server::store::Loaded,
    ) -> Self {
        let engine = crate::server::engine::memory::MemoryEngine::new(store, &loaded);
        Hub::new(
            config,
            Box::new(engine),
            Shared::with_offline(loaded.offline),
        )
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn engine(&self) -> &dyn Engine {
        self.inner.engine.as_ref()
    }

    /// The HTTP API's metrics and rate limits.
    pub fn http(&self) -> &crate::server::http::state::HttpState {
        &self.inner.http
    }

    /// This node's files and images; `None` when the server keeps none.
    pub fn media(&self) -> Option<&Arc<crate::server::media::Media>> {
        self.inner.media.get()
    }

    /// Gives the hub its media (once, as the server starts).
    pub(crate) fn set_media(&self, media: Arc<crate::server::media::Media>) {
        let _ = self.inner.media.set(media);
    }

    /// Bytes queued in all of this node's outboxes.
    pub fn queued_bytes(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.inner.engine.node()
    }

    /// Where `conn` is, as the shared state names it.
    pub fn conn_id(&self, conn: &ConnHandle) -> ConnId {
        ConnId {
            node: self.node(),
            conn: conn.id(),
        }
    }

    /// A fresh outbox for a new connection.
    pub fn new_conn(&self) -> ConnHandle {
        let id = self.inner.next_conn_id.fetch_add(1, Ordering::Relaxed);
        ConnHandle::new(
            id,
            Arc::clone(&self.inner.outbox_limits),
            Arc::clone(&self.inner.queued),
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `then` on the hub after `delay` (one entry in the timer wheel); the handle
    /// cancels it.
    fn after(&self, delay: Duration, then: impl FnOnce(&Hub) + Send + 'static) -> HubTimer {
        self.inner.timers.start(delay, then)
    }

    /// Submits `change` when a timer fires after `delay`.
    fn change_after(&self, delay: Duration, change: Change) -> HubTimer {
        self.after(delay, move |hub| hub.submit_detached(change))
    }

    /// Timers pending now (acks, grace periods, expiries): for tests and diagnostics.
    pub fn pending_timers(&self) -> usize {
        self.inner.timers.pending()
    }

    /// Ends every timer now (shutdown): none may run after, outlive the server or keep
    /// its store alive. Timers started afterwards never run.
    pub fn stop_timers(&self) {
        self.inner.timers.stop();
    }

    /// Every node the shared state names, with the apps naming it (the engine watches
    /// that they are alive).
    pub fn nodes_named(&self) -> BTreeMap<NodeId, BTreeSet<String>> {
        self.lock().shared.nodes()
    }

    /// Submits `change` for the requesting connection `conn` and waits for its outcome.
    pub async fn submit(&self, change: Change, conn: Option<&ConnHandle>) -> Outcome {
        match self.inner.engine.submit(self, change, conn.cloned()) {
            Submitted::Applied(outcome) => outcome,
            Submitted::Pending(outcome) => outcome.await.unwrap_or(Outcome::Unavailable),
        }
    }

    /// Waits until this node's copy of `app` holds every change answered anywhere before
    /// now, so that a read after another node's write sees it (on one node: at once),
    /// loading the app's state first if this node does not hold it yet. If the engine
    /// cannot tell (Redis away), the read goes on with what this node has.
    pub async fn caught_up(&self, app: &str) {
        if let Some(caught_up) = self.inner.engine.caught_up(self, Some(app)) {
            caught_up.await;
        }
    }

    /// Before a login's reads: loads `app`'s state if this node does not hold it yet
    /// (its first user here), so that the login knows whether the user is known.
    pub async fn hold_app(&self, app: &str) {
        if !self.lock().shared.apps.contains_key(app) {
            self.caught_up(app).await;
        }
    }

    /// `user`'s generation while `conn` is its session (it ends with a kick, a remote
    /// login elsewhere or a logout): what a write of the user's own records is of.
    fn session_generation(&self, app: &str, user: &str, conn: ConnId) -> Option<u64> {
        self.lock().shared.session_generation(app, user, conn)
    }

    /// [`Hub::caught_up`] for every app this node holds (the metrics count them all).
    pub async fn caught_up_on_all(&self) {
        if let Some(caught_up) = self.inner.engine.caught_up(self, None) {
            caught_up.await;
        }
    }

    /// Submits `change` and lets it take its course (timers, disconnects).
    pub fn submit_detached(&self, change: Change) {
        if let Submitted::Pending(outcome) = self.inner.engine.submit(self, change, None) {
            drop(outcome);
        }
    }

    /// Applies one change to this node's copy of the shared state. The engine calls it
    /// with the state locked, in the shared order; `conn` is the requesting connection
    /// when this node is the origin. The feed events the change made go to the engine's
    /// feed store from the origin (`feeds.rs`).
    fn apply(
        &self,
        state: &mut State,
        change: Change,
        stamp: Stamp,
        conn: Option<&ConnHandle>,
    ) -> Outcome {
        let here = Here {
            stamp,
            origin: stamp.origin == self.node(),
            conn,
        };
        // Messages make no feed events and change no presence: their hot path skips the
        // look.
        let app = (!change.is_message()).then(|| change.app().to_string());
        let outcome = self.apply_change(state, change, here);
        let Some(app) = app else {
            return outcome;
        };
        if let Some(app_state) = state.shared.apps.get_mut(&app) {
            let noted = std::mem::take(&mut app_state.admin.noted);
            if here.origin {
                let feeds = self.engine().event_feeds();
                for (rank, (feed, event)) in noted.into_iter().enumerate() {
                    feeds.record(&app, feed, feed_place(stamp.number, rank), event);
                }
            }
            let changed = std::mem::take(&mut app_state.presence_noted);
            presence::tell_followers(app_state, &state.watchers, &app, changed);
        }
        outcome
    }

    /// [`Hub::apply`] of one change, the feed events aside.
    fn apply_change(&self, state: &mut State, change: Change, here: Here) -> Outcome {
        match change {
            Change::Login {
                app,
                user,
                conn,
                request_id,
                token_expires_at,
            } => {
                let conn = self.conn_ref(conn, here);
                let reply = self.login_reply(request_id, &user, token_expires_at);
                self.login(state, &app, &user, conn, &reply, here);
                Outcome::Done
            }
            Change::Logout { app, user, conn } => {
                self.logout(state, &app, &user, conn, here);
                Outcome::Done
            }
            Change::Disconnected { app, user, conn } => {
                self.disconnected(state, &app, &user, conn, here);
                Outcome::Done
            }
            Change::SendPeer {
                app,
                from,
                to,
                message,
                offline,
                server_cache_full,
                request_id,
                message_id,
            } => {
                // An id given before the change wins over one stamped now.
                let here = Here {
                    stamp: Stamp {
                        message_id: message_id.or(here.stamp.message_id),
                        ..here.stamp
                    },
                    ..here
                };
                Outcome::Peer(self.send_peer(
                    state,
                    (&app, &from, &to),
                    message,
                    (offline, server_cache_full),
                    request_id,
                    here,
                ))
            }
            Change::Ack {
                app,
                user,
                message_id,
            } => {
                self.ack(state, &app, &user, message_id, here);
                Outcome::Done
            }
            Change::ForgetCached {
                app,
                receiver,
                message_id,
            } => {
                peer::forget_cached(state, &app, &receiver, message_id);
                Outcome::Done
            }
            Change::Join { app, user, channel } => {
                Outcome::Joined(self.join(state, (&app, &user, &channel), here))
            }
            Change::Leave { app, user, channel } => {
                Outcome::Left(self.leave(state, &app, &user, &channel, here))
            }
            Change::SendChannel {
                app,
                user,
                channel,
                message,
                from_server,
            } => Outcome::Sent(self.send_channel(
                state,
                (&app, &user, &channel),
                message,
                from_server,
                here,
            )),
            Change::WatchToken {
                app,
                user,
                conn,
                expires_at,
            } => {
                self.watch_token(state, &app, &user, conn, expires_at, here.stamp.now_ms);
                Outcome::Done
            }
            Change::GraceOver { app, user, epoch } => {
                self.grace_over(state, &app, &user, epoch, here);
                Outcome::Done
            }
            Change::TokenExpired { app, user, epoch } => {
                self.token_expired(state, &app, &user, epoch, here);
                Outcome::Done
            }
            Change::NodeGone { app, node } => {
                self.node_gone(state, &app, node, here);
                Outcome::Done
            }
            Change::Admin(change) => Outcome::Admin(admin::apply(self, state, change, here)),
        }
    }

    /// The shared state's reference to `id`, with its outbox if this node holds it.
    fn conn_ref(&self, id: ConnId, here: Here<'_>) -> ConnRef {
        let local = here
            .conn
            .filter(|c| id.node == self.node() && c.id() == id.conn);
        ConnRef {
            id,
            local: local.cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timers_end_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::ephemeral();
        let (store, loaded) =
            crate::server::store::Store::open(dir.path(), config.offline_ttl).unwrap();
        let hub = Hub::with_store(Arc::new(config), store, loaded);
        let held = Arc::new(());
        let in_timer = Arc::clone(&held);
        hub.after(Duration::from_secs(3600), move |_| drop(in_timer));
        assert_eq!(hub.pending_timers(), 1);
        hub.stop_timers();
        // Its closure is gone, and the timer task has dropped its hub handle.
        assert_eq!(Arc::strong_count(&held), 1);
        tokio::time::timeout(Duration::from_secs(10), async {
            while Arc::strong_count(&hub.inner) > 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the timer task ended at shutdown");
        // Started after the stop: never runs.
        hub.after(Duration::ZERO, |_| panic!("ran after shutdown"));
        assert_eq!(hub.pending_timers(), 0);
        hub.engine().stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_timer_leaves_nothing_and_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::ephemeral();
        let (store, loaded) =
            crate::server::store::Store::open(dir.path(), config.offline_ttl).unwrap();
        let hub = Hub::with_store(Arc::new(config), store, loaded);
        let (ran, mut fired) = tokio::sync::mpsc::unbounded_channel();
        let cancelled = {
            let ran = ran.clone();
            hub.after(Duration::from_secs(10), move |_| {
                ran.send("cancelled").unwrap();
            })
        };
        hub.after(Duration::from_secs(20), move |_| {
            ran.send("kept").unwrap();
        });
        assert_eq!(hub.pending_timers(), 2);
        cancelled.abort();
        assert_eq!(hub.pending_timers(), 1);
        assert_eq!(fired.recv().await, Some("kept"));
        assert_eq!(hub.pending_timers(), 0);
        hub.stop_timers();
        hub.engine().stop().await;
    }
}

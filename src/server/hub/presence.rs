//! The hub's presence: online status, subscriptions and the events subscribers get.
//!
//! Same rules as the hub's (`hub/mod.rs`): changes are applied under the state lock,
//! never await, and append to outboxes inside the critical section; reads take the lock
//! themselves, and the ops on subscriptions await the engine's store outside it. A
//! user's subscriptions are no change to the shared state: they live in the engine's
//! store (`engine/subscriptions.rs`), and the node holding the user's connection follows
//! them (`watchers.rs`), so a presence change, which every node serving the app applies,
//! reaches each subscriber from its own node only. Results carry the op's family's typed
//! error (`QueryError`); `session/presence.rs` validates input and turns them into
//! replies.

use crate::protocol::limits::MAX_SUBSCRIBED_PEERS;
use crate::protocol::reply::OrderedPeers;
use crate::protocol::{Event, PeerStatus, QueryError, Reply};

use crate::server::engine::subscriptions::Subscribed;
use crate::server::engine::{ConnId, Unavailable};
use crate::server::outbox::ConnHandle;

use super::state::{State, Tenant};
use super::watchers::Watchers;
use super::Hub;

/// Notes that `user`'s presence changed with the change being applied: its followers on
/// this node hear of it once the change is applied ([`tell_followers`]), and the REST
/// API's user feed gets its event at `now_ms` (the change's stamp, the same on every
/// node).
pub(super) fn presence_changed(app_state: &mut Tenant, user: &str, now_ms: u64) {
    super::admin::presence_event(app_state, user, now_ms);
    if app_state.presence_noted.last().map(String::as_str) != Some(user) {
        app_state.presence_noted.push(user.to_string());
    }
}

/// Tells this node's followers of each user in `changed` its state (called by
/// `Hub::apply` after each change, under the state lock). A follower whose connection is
/// no longer its user's (logged in elsewhere since) is passed over.
pub(super) fn tell_followers(
    app_state: &Tenant,
    watchers: &Watchers,
    app: &str,
    changed: Vec<String>,
) {
    for user in changed {
        let mut line = None;
        for (conn, follower) in watchers.followers_of(app, &user) {
            let Some(follower) = app_state.conn_of(follower).filter(|c| c.id == conn) else {
                continue;
            };
            let line = line.get_or_insert_with(|| {
                let peers = app_state.statuses_of(std::slice::from_ref(&user));
                ConnHandle::encode_shared(&Event::PeersOnlineStatus { peers })
            });
            follower.push_line(line);
        }
    }
}

impl Hub {
    /// `query_peers_online`: online or offline (a user in the grace is offline here).
    pub fn query_online(&self, app: &str, peers: &[String]) -> OrderedPeers {
        let state = self.lock();
        let app_state = state.shared.apps.get(app);
        peers
            .iter()
            .map(|peer| {
                let online = app_state.and_then(|a| a.conn_of(peer)).is_some();
                let status = if online {
                    PeerStatus::Online
                } else {
                    PeerStatus::Offline
                };
                (peer.clone(), status)
            })
            .collect()
    }

    /// `query_subscribed_peers` of the session on `conn`: what it follows here.
    pub fn subscriptions(&self, conn: ConnId) -> Vec<String> {
        self.lock().watchers.peers_of(conn)
    }

    /// `subscribe_peers_online` from the session of `user` on `conn`: adds the peers to
    /// the user's subscriptions in the engine's store (which holds the cap), then, under
    /// the state lock, follows them here, answers, and sends their current states, so
    /// that every later change of theirs follows the reply.
    pub async fn subscribe(
        &self,
        (app, user): (&str, &str),
        conn: &ConnHandle,
        peers: &[String],
        request_id: u32,
    ) -> Result<(), QueryError> {
        let id = self.conn_id(conn);
        let generation = self
            .session_generation(app, user, id)
            .ok_or(QueryError::Failure)?;
        let store = self.engine().subscriptions();
        match store
            .add(app, user, generation, peers, MAX_SUBSCRIBED_PEERS)
            .await
        {
            Ok(Subscribed::Done) => {}
            Ok(Subscribed::Overflow) => return Err(QueryError::Overflow),
            Ok(Subscribed::Stale) | Err(Unavailable) => return Err(QueryError::Failure),
        }
        let mut state = self.lock();
        let state = &mut *state;
        if state.shared.session_generation(app, user, id) != Some(generation) {
            return Err(QueryError::Failure);
        }
        // All of them: a peer stored already (a retry after a timeout) is followed too.
        state.watchers.follow(id, peers);
        let app_state = state
            .shared
            .apps
            .get(app)
            .expect("the session's app is held");
        conn.send_reply(&Reply::ok_empty(request_id));
        let peers = app_state.statuses_of(peers);
        conn.send_event(&Event::PeersOnlineStatus { peers });
        Ok(())
    }

    /// `unsubscribe_peers_online` from the session of `user` on `conn`.
    pub async fn unsubscribe(
        &self,
        (app, user): (&str, &str),
        conn: ConnId,
        peers: &[String],
    ) -> Result<(), QueryError> {
        let generation = self
            .session_generation(app, user, conn)
            .ok_or(QueryError::Failure)?;
        self.engine()
            .subscriptions()
            .remove(app, user, generation, peers)
            .await
            .map_err(|Unavailable| QueryError::Failure)?;
        self.lock().watchers.unfollow(conn, peers);
        Ok(())
    }

    /// Before a login on `conn` is submitted (its app held here: [`Hub::hold_app`]): reads
    /// the subscriptions `user` has kept (a login within the grace period, or elsewhere,
    /// keeps them), for the login to follow them as it is applied (`login.rs`), so that no
    /// presence change falls between.
    pub async fn load_subscriptions(
        &self,
        app: &str,
        user: &str,
        conn: ConnId,
    ) -> Result<(), Unavailable> {
        self.end_following(conn);
        let known = self.lock().shared.user(app, user).map(|u| u.generation);
        let Some(generation) = known else {
            return Ok(()); // unknown: a new generation, with no subscriptions
        };
        let peers = self
            .engine()
            .subscriptions()
            .read(app, user, generation)
            .await?;
        self.lock().watchers.keep_loaded(conn, generation, peers);
        Ok(())
    }

    /// The connection `conn` ended or logged out: it follows nobody's presence any more.
    pub fn end_following(&self, conn: ConnId) {
        self.lock().watchers.end(conn);
    }

    /// `user` logged in on `conn`, here, as `generation` (`known`: it was known before,
    /// so it may have kept subscriptions): follows what the login read before its change
    /// ([`Hub::load_subscriptions`]), or, if that was of another generation (the login
    /// and another node's change crossed), reads them again now.
    pub(super) fn follow_at_login(
        &self,
        state: &mut State,
        (app, user): (&str, &str),
        conn: ConnId,
        (generation, known): (u64, bool),
    ) {
        let loaded = state.watchers.take_loaded(conn);
        state.watchers.open(conn, (app, user));
        match loaded {
            Some((loaded, peers)) if loaded == generation => {
                state.watchers.follow(conn, &peers);
            }
            _ if known => {
                let (hub, app, user) = (self.clone(), app.to_string(), user.to_string());
                tokio::spawn(async move { hub.follow_later(&app, &user, conn, generation).await });
            }
            _ => {}
        }
    }

    /// [`Hub::follow_at_login`] for a login whose read was of another generation: reads
    /// the subscriptions (again every [`FOLLOW_RETRY`] while the store is away, and again
    /// at once if the session subscribed or unsubscribed meanwhile), follows them while
    /// the session lasts, and sends their current states, since a change of theirs may
    /// have come between the login and the read.
    async fn follow_later(&self, app: &str, user: &str, conn: ConnId, generation: u64) {
        let store = self.engine().subscriptions();
        let lasts = |state: &State| {
            state.shared.session_generation(app, user, conn) == Some(generation)
                && state.watchers.changes(conn).is_some()
        };
        loop {
            let Some(before) = self.lock().watchers.changes(conn) else {
                return;
            };
            let Ok(peers) = store.read(app, user, generation).await else {
                tracing::warn!(app, user, "presence subscriptions not read after a login");
                tokio::time::sleep(FOLLOW_RETRY).await;
                if !lasts(&self.lock()) {
                    return;
                }
                continue;
            };
            let mut state = self.lock();
            let state = &mut *state;
            if !lasts(state) || peers.is_empty() {
                return;
            }
            if state.watchers.changes(conn) != Some(before) {
                continue; // subscribed or unsubscribed meanwhile: read again
            }
            state.watchers.follow(conn, &peers);
            let Some(app_state) = state.shared.apps.get(app) else {
                return;
            };
            if let Some(local) = app_state.conn_of(user) {
                let peers = app_state.statuses_of(&peers);
                local.send_event(&Event::PeersOnlineStatus { peers });
            }
            return;
        }
    }
}

/// How long a login's late read of its subscriptions waits before it tries again.
const FOLLOW_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

//! The hub's LOGIN family: binding a user to a connection (and kicking an older one),
//! logout, a dropped connection's grace period, and a node found gone.

use crate::protocol::{Event, KickReason, LoginResult, Reply};
use crate::server::engine::{Change, ConnId, NodeId};
use crate::server::outbox::ConnHandle;

use super::state::{ConnRef, Here, State, Tenant, User};
use super::{Hub, CLOSE_KICKED};

impl Hub {
    /// Binds `user` to `conn`: kicks an older connection of the same user, answers the
    /// login, then delivers the cached messages (all in one critical section, so nothing
    /// else can slip between the reply and the backlog).
    pub(super) fn login(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        conn: ConnRef,
        reply: &Reply,
        here: Here<'_>,
    ) {
        let epoch = state.next_epoch(app, here.stamp.now_ms);
        let app_state = state.apps().entry(app.to_string()).or_default();
        let known = app_state.users.contains_key(user);
        let entry = app_state
            .users
            .entry(user.to_string())
            .or_insert_with(|| User {
                generation: epoch,
                ..User::default()
            });
        let (generation, conn_id) = (entry.generation, conn.id);
        let was_online = entry.conn.is_some();
        if let Some(old) = entry.conn.take() {
            if let Some(old) = &old.local {
                tracing::info!(
                    app,
                    user,
                    old = old.id(),
                    new = conn.id.conn,
                    "remote login"
                );
                old.send_event(&Event::Kicked {
                    reason: KickReason::RemoteLogin,
                });
                old.close(CLOSE_KICKED, "remote_login");
            }
            self.hold_channels(app_state, app, user, epoch, here);
        }
        let entry = app_state.users.get_mut(user).expect("inserted above");
        // A new connection's token timers are its node's to start (`WatchToken`).
        for timer in entry.token_timers.drain(..) {
            timer.abort();
        }
        let local = conn.local.clone();
        if here.origin && local.is_none() {
            // Applied after its request gave up waiting (Redis was slow): nobody holds
            // this connection, so it goes as a dropped one would (after this change).
            let hub = self.clone();
            let change = Change::Disconnected {
                app: app.to_string(),
                user: user.to_string(),
                conn: conn.id,
            };
            tokio::spawn(async move { hub.submit_detached(change) });
        }
        entry.conn = Some(conn);
        if let Some(local) = &local {
            local.send_reply(reply);
        }
        // The backlog stays cached until the receiver acks each message (a connection
        // that drops first gets the rest again at its next login); only expired ones go now.
        {
            let ttl = self.config().offline_ttl.as_millis() as u64;
            let cutoff = here.stamp.now_ms.saturating_sub(ttl);
            let expired = app_state
                .offline
                .retain(user, |message| message.server_ts >= cutoff);
            if let Some(local) = &local {
                for message in app_state.offline.backlog(user) {
                    local.push_line_unbounded(ConnHandle::encode_shared(&Event::MessageFromPeer {
                        from: message.from.clone(),
                        message: message.message.clone(),
                        message_id: message.message_id,
                        server_ts: message.server_ts,
                        offline: true,
                    }));
                }
            }
            if !expired.is_empty() && here.origin {
                self.engine().messages().drop_offline(app, user, expired);
            }
        }
        if !was_online {
            super::presence::presence_changed(app_state, user, here.stamp.now_ms);
        }
        if local.is_some() {
            self.follow_at_login(state, (app, user), conn_id, (generation, known));
        }
    }

    /// Moves the user's joined channels to `held`, detaches its connection from them and
    /// starts a grace timer (on the origin) that drops whatever is not rejoined in time.
    pub(super) fn hold_channels(
        &self,
        app_state: &mut Tenant,
        app: &str,
        user: &str,
        epoch: u64,
        here: Here,
    ) {
        let Some(entry) = app_state.users.get_mut(user) else {
            return;
        };
        for timer in entry.token_timers.drain(..) {
            timer.abort();
        }
        let joined = std::mem::take(&mut entry.joined);
        for channel in &joined {
            if let Some(channel) = app_state.channels.get_mut(channel) {
                if let Some(slot) = channel.members.get_mut(user) {
                    *slot = None;
                }
            }
        }
        entry.held.extend(joined);
        entry.grace = Some((epoch, here.stamp.origin));
        if here.origin {
            self.start_grace(app, user, epoch);
        }
    }

    pub(super) fn start_grace(&self, app: &str, user: &str, epoch: u64) {
        let change = Change::GraceOver {
            app: app.to_string(),
            user: user.to_string(),
            epoch,
        };
        self.change_after(self.config().grace, change);
    }

    /// A connection ended without logout: the user's channels and presence enter the grace.
    pub(super) fn disconnected(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        conn: ConnId,
        here: Here,
    ) {
        let epoch = state.next_epoch(app, here.stamp.now_ms);
        let Some(app_state) = state.apps().get_mut(app) else {
            return;
        };
        let Some(entry) = app_state.users.get_mut(user) else {
            return;
        };
        if entry.conn.as_ref().map(|c| c.id) != Some(conn) {
            return; // replaced by a newer login already
        }
        entry.conn = None;
        self.hold_channels(app_state, app, user, epoch, here);
        super::presence::presence_changed(app_state, user, here.stamp.now_ms);
    }

    pub(super) fn grace_over(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        epoch: u64,
        here: Here,
    ) {
        let Some(app_state) = state.apps().get_mut(app) else {
            return;
        };
        let Some(entry) = app_state.users.get_mut(user) else {
            return;
        };
        if entry.grace.map(|(e, _)| e) != Some(epoch) {
            return;
        }
        entry.grace = None;
        let held = std::mem::take(&mut entry.held);
        let gone = entry.conn.is_none();
        for channel in held {
            self.remove_member(app_state, app, &channel, user, here);
        }
        if gone {
            tracing::debug!(app, user, "grace period over");
            if let Some(removed) = app_state.users.remove(user) {
                self.user_removed(app_state, app, user, &removed, here);
            }
        }
    }

    /// `logout`: leaves every channel and forgets the user (attributes, subscriptions).
    pub(super) fn logout(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        conn: ConnId,
        here: Here,
    ) {
        let Some(app_state) = state.apps().get_mut(app) else {
            return;
        };
        let Some(entry) = app_state.users.get(user) else {
            return;
        };
        if entry.conn.as_ref().map(|c| c.id) != Some(conn) {
            return;
        }
        self.remove_user(app_state, app, user, here);
    }

    /// Forgets a user at once: leaves its channels (with events), presence goes offline.
    pub(super) fn remove_user(&self, app_state: &mut Tenant, app: &str, user: &str, here: Here) {
        let Some(removed) = app_state.users.remove(user) else {
            return;
        };
        for channel in removed.joined.iter().chain(&removed.held) {
            self.remove_member(app_state, app, channel, user, here);
        }
        self.user_removed(app_state, app, user, &removed, here);
    }

    /// `user` is gone from the state: its presence goes offline, its timers end, and (on
    /// the origin, once for the cluster) its attributes and subscriptions are forgotten.
    fn user_removed(
        &self,
        app_state: &mut Tenant,
        app: &str,
        user: &str,
        removed: &User,
        here: Here,
    ) {
        super::presence::presence_changed(app_state, user, here.stamp.now_ms);
        for timer in &removed.token_timers {
            timer.abort();
        }
        if here.origin {
            let engine = self.engine();
            engine
                .user_attributes()
                .forget(app, user, removed.generation);
            engine.subscriptions().forget(app, user, removed.generation);
        }
    }

    /// The login reply of docs/protocol.md for `user`.
    pub fn login_reply(&self, id: u32, user: &str, token_expires_at: Option<u64>) -> Reply {
        Reply::ok(
            id,
            &LoginResult {
                user: user.to_string(),
                server_ts: crate::protocol::now_ms(),
                protocol: crate::protocol::PROTOCOL_VERSION,
                server: self.config().name.clone(),
                token_expires_at,
                store: Some(self.engine().store_id()),
            },
        )
    }

    /// A node stopped beating: its users' connections are gone (the grace starts, run by
    /// the origin; the expiry of the invitations between its users and others runs on the
    /// others' nodes too: `invitations.rs`). If that
    /// node is this one (it was only cut off), its connections are closed: the others
    /// already count them gone.
    pub(super) fn node_gone(&self, state: &mut State, app: &str, node: NodeId, here: Here) {
        let epoch = state.next_epoch(app, here.stamp.now_ms);
        let Some(app_state) = state.shared.apps.get_mut(app) else {
            return;
        };
        let graced_there = |u: &User| u.grace.is_some_and(|(_, n)| n == node);
        // Back on another node within the grace, before the node was found gone: the
        // channels it held then are still to be left (or rejoined) when the grace ends,
        // which the gone node's timer was to say. Its grace moves here, as it is.
        let moved_on: Vec<String> = app_state
            .users
            .iter()
            .filter(|(_, u)| u.conn.as_ref().is_some_and(|c| c.id.node != node) && graced_there(u))
            .map(|(name, _)| name.clone())
            .collect();
        for user in moved_on {
            let entry = app_state.users.get_mut(&user).expect("listed above");
            entry.grace = Some((epoch, here.stamp.origin));
            if here.origin {
                self.start_grace(app, &user, epoch);
            }
        }
        let users: Vec<String> = app_state
            .users
            .iter()
            .filter(|(_, u)| {
                u.conn.as_ref().is_some_and(|c| c.id.node == node)
                    || (u.conn.is_none() && graced_there(u))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for user in users {
            let entry = app_state.users.get_mut(&user).expect("listed above");
            let old = entry.conn.take();
            let was_online = old.is_some();
            // Taken for dead while alive (it could not beat): its clients start over.
            if let Some(local) = old.and_then(|c| c.local) {
                local.close(1012, "node taken for gone");
            }
            self.hold_channels(app_state, app, &user, epoch, here);
            if was_online {
                super::presence::presence_changed(app_state, &user, here.stamp.now_ms);
            }
        }
    }
}

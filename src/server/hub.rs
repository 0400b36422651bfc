//! The hub: this node's copy of the shared state (who is online where, channels, the
//! offline cache), its connections and pending acks, behind one cheap, cloneable handle.
//!
//! The shared state changes only through [`Hub::apply`], one [`Change`] at a time, in the
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
//! Timers are entries in one wheel (`timers.rs`); a timer that changes shared state
//! submits a change when it fires. Presence, attributes, invitations and token timers
//! live in `hub_presence.rs`, `hub_attributes.rs`, `hub_invitations.rs` and
//! `hub_tokens.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::Instant;

use crate::protocol::limits::MAX_LISTED_MEMBERS;
use crate::protocol::{
    AttrError, ChannelMsgError, Event, HistoryMessage, InviteError, JoinError, KickReason,
    LeaveError, LoginResult, MembersError, Message, PeerError, QueryError, Reply, SendResult,
    WireCode,
};

use super::config::Config;
use super::engine::{Change, Engine, Stamp, Submitted};
use super::outbox::ConnHandle;
use super::store::CachedMessage;
use super::timers::{TimerHandle, Timers};

/// Close code sent with `kicked` (normal closure: the server ended the session on purpose).
pub const CLOSE_KICKED: u16 = 1000;

/// A node of the cluster (0 on one node; a random id per process on Redis).
pub type NodeId = u64;

/// A connection anywhere in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnId {
    pub node: NodeId,
    pub conn: u64,
}

/// A connection as the shared state holds it: where it is, and its outbox if it is here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnRef {
    pub id: ConnId,
    #[serde(skip)]
    pub local: Option<ConnHandle>,
}

impl PartialEq for ConnRef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl ConnRef {
    /// Queues an encoded event if the connection is on this node.
    pub fn push_line(&self, line: &Arc<str>) {
        if let Some(conn) = &self.local {
            conn.push_line(line.clone());
        }
    }

    /// Queues an event if the connection is on this node.
    pub fn send_event(&self, event: &Event) {
        if let Some(conn) = &self.local {
            conn.send_event(event);
        }
    }
}

/// One user as the hub knows it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct User {
    /// The logged-in connection; `None` during the grace period after a drop.
    pub conn: Option<ConnRef>,
    /// Channels the current connection joined.
    pub joined: BTreeSet<String>,
    /// Channels kept from a dropped connection until the grace ends or they are rejoined.
    pub held: BTreeSet<String>,
    /// The running grace timer and the node that runs it; an older timer finding another
    /// epoch does nothing.
    pub grace: Option<(u64, NodeId)>,
    /// User attributes.
    pub attributes: crate::protocol::Attributes,
    /// Peers whose presence this user subscribed to.
    pub subscriptions: BTreeSet<String>,
    /// When the login token ends (unix seconds) and which timer watches it.
    pub token: Option<(u64, u64)>,
    /// The running token timers (warning, expiry) on the connection's node: aborted when
    /// a renewal replaces them or the user goes, so that renewals do not pile up.
    #[serde(skip)]
    pub token_timers: Vec<TimerHandle>,
}

/// One channel.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Channel {
    /// Members, with the connection that gets the channel's events (`None` while held).
    pub members: BTreeMap<String, Option<ConnRef>>,
    /// When this node last sent `member_count_updated` (each node throttles its own).
    #[serde(skip)]
    pub count_sent_at: Option<Instant>,
    #[serde(skip)]
    pub count_timer: bool,
    /// Channel attributes by key.
    pub attributes: BTreeMap<String, crate::protocol::ChannelAttribute>,
    /// Since the channel became empty: the epoch of the attribute expiry timer and the
    /// node that runs it.
    pub empty: Option<(u64, NodeId)>,
    /// How many times the channel became empty (the expiry timers' epochs).
    pub emptied: u64,
}

impl Channel {
    /// Queues an encoded event for every member on this node, except `skip`.
    pub fn broadcast(&self, line: &Arc<str>, skip: Option<&str>) {
        for (user, conn) in &self.members {
            if Some(user.as_str()) != skip {
                if let Some(conn) = conn {
                    conn.push_line(line);
                }
            }
        }
    }
}

/// One app's world.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct App {
    pub users: HashMap<String, User>,
    pub channels: HashMap<String, Channel>,
    /// Cached peer messages per receiver, oldest first, with their quotas' totals.
    pub offline: super::hub_offline::OfflineCache,
    /// Presence watchers: target user → subscribers.
    pub watchers: HashMap<String, BTreeSet<String>>,
    /// Pending invitations.
    #[serde(with = "super::hub_invitations::as_list")]
    pub invitations:
        HashMap<super::hub_invitations::InvitationKey, super::hub_invitations::Invitation>,
    /// Bans and the REST API's event feeds (`hub_admin.rs`).
    #[serde(default)]
    pub admin: super::hub_admin::AppAdmin,
}

#[derive(Debug)]
struct PendingAck {
    app: String,
    receiver: String,
    sender: ConnHandle,
    request_id: u32,
    result: SendResult,
    /// The ack timeout, cancelled when the ack comes.
    timer: TimerHandle,
}

/// The shared state every node holds alike (what a new node loads).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Shared {
    pub apps: HashMap<String, App>,
    next_epoch: u64,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub shared: Shared,
    /// Acks this node waits for (its senders'), by message id.
    pending_acks: HashMap<u64, PendingAck>,
}

impl Shared {
    /// `user` of `app`, if the state knows it.
    pub fn user(&self, app: &str, user: &str) -> Option<&User> {
        self.apps.get(app)?.users.get(user)
    }

    /// `channel` of `app`, if the state knows it.
    pub fn channel(&self, app: &str, channel: &str) -> Option<&Channel> {
        self.apps.get(app)?.channels.get(channel)
    }

    /// A state holding only the cached messages a store loaded.
    pub fn with_offline(offline: Vec<CachedMessage>) -> Self {
        let mut shared = Shared::default();
        for cached in offline {
            shared.apps.entry(cached.app).or_default().offline.push(
                &cached.receiver,
                cached.message,
                usize::MAX,
            );
        }
        shared
    }

    /// Every node the state names: connections, and the owners of grace and expiry timers.
    fn nodes(&self) -> BTreeSet<NodeId> {
        let mut nodes = BTreeSet::new();
        for app in self.apps.values() {
            for user in app.users.values() {
                nodes.extend(user.conn.as_ref().map(|c| c.id.node));
                nodes.extend(user.grace.map(|(_, node)| node));
            }
            for channel in app.channels.values() {
                nodes.extend(channel.empty.map(|(_, node)| node));
            }
            nodes.extend(app.invitations.values().map(|i| i.owner));
        }
        nodes
    }
}

impl State {
    pub(super) fn next_epoch(&mut self) -> u64 {
        self.shared.next_epoch += 1;
        self.shared.next_epoch
    }

    pub(super) fn apps(&mut self) -> &mut HashMap<String, App> {
        &mut self.shared.apps
    }

    /// Replaces the shared state (an engine that lost its place): this node's
    /// connections are closed with `close_code` first, since the new state knows nothing
    /// of them; their clients log in again.
    pub(super) fn replace_shared(&mut self, shared: Shared, close_code: u16) {
        for app in self.shared.apps.values() {
            for user in app.users.values() {
                if let Some(conn) = user.conn.as_ref().and_then(|c| c.local.as_ref()) {
                    conn.close(close_code, "server state reloaded");
                }
            }
        }
        self.shared = shared;
    }
}

/// How a change is being applied here: its stamp, whether this node submitted it, and
/// then the requesting connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Here<'a> {
    pub stamp: Stamp,
    pub origin: bool,
    pub conn: Option<&'a ConnHandle>,
}

/// What applying a change answers its origin: one variant per kind of change that can be
/// refused, carrying its family's typed error (`codes::WireCode`), so that a code of one
/// op cannot come back as another's.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing to answer (or answered already, inside the change).
    Done,
    /// `join`: the member count.
    Joined(Result<u64, JoinError>),
    /// `leave`.
    Left(Result<(), LeaveError>),
    /// `send_channel`: the id and timestamp.
    Sent(Result<SendResult, ChannelMsgError>),
    /// `send_peer`.
    Peer(PeerSend),
    /// `subscribe_peers_online` (on success the hub answered already, with the states).
    Subscribed(Result<(), QueryError>),
    /// A write of user or channel attributes.
    AttributesWritten(Result<(), AttrError>),
    /// `invite`, `cancel_invitation`, `accept_invitation`, `refuse_invitation`.
    Invitation(Result<(), InviteError>),
    /// An operator's change (`hub_admin.rs`).
    Admin(super::hub_admin::AdminOutcome),
    /// The engine could not order the change (Redis away): the family's failure code.
    Unavailable,
}

#[derive(Debug)]
struct HubInner {
    config: Arc<Config>,
    engine: Box<dyn Engine>,
    state: Mutex<State>,
    next_conn_id: AtomicU64,
    /// Every connection's outbox bounds, and the bytes queued in all of them.
    outbox_limits: Arc<super::outbox::OutboxLimits>,
    queued: super::outbox::QueuedTotal,
    /// Every timer; stopped at shutdown (the timer task then drops its hub handle).
    timers: Timers,
    /// The HTTP API's metrics and rate limits (`server::http`).
    http: super::http::HttpState,
}

/// Cheap handle to the shared state.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// What happened to a `send_peer`.
#[derive(Debug)]
pub enum PeerSend {
    /// Delivered to the receiver's connection; the reply comes with its ack (or timeout).
    AwaitingAck,
    /// Receiver offline and `offline: true`: answered 4 once `committed` resolves.
    Cached {
        result: SendResult,
        committed: tokio::sync::oneshot::Receiver<()>,
    },
    /// Receiver offline: 3.
    Unreachable,
    /// Receiver offline and the offline cache's quota spent (the server's, or the
    /// sender's; `hub_offline.rs`): 3, with why.
    CacheFull(&'static str),
}

/// The conversation key of a peer pair in the history table.
pub fn peer_conversation(a: &str, b: &str) -> String {
    // User ids cannot contain NUL, so the pair is unambiguous.
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("p:{low}\u{0}{high}")
}

/// The conversation key of a channel in the history table.
pub fn channel_conversation(channel: &str) -> String {
    format!("c:{channel}")
}

impl Hub {
    /// A hub over an engine, starting from `shared` (what the engine loaded), its
    /// background work started.
    pub(super) fn new(config: Arc<Config>, engine: Box<dyn Engine>, shared: Shared) -> Self {
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
                queued: super::outbox::QueuedTotal::default(),
                timers: Timers::default(),
                http: super::http::HttpState::default(),
            }),
        };
        hub.inner.timers.spawn(hub.clone());
        hub.inner.engine.start(&hub);
        hub
    }

    /// A one-node hub over an opened SQLite store (the default engine).
    pub fn with_store(
        config: Arc<Config>,
        store: super::store::Store,
        loaded: super::store::Loaded,
    ) -> Self {
        let engine = super::engine::memory::MemoryEngine::new(store, &loaded);
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
    pub fn http(&self) -> &super::http::HttpState {
        &self.inner.http
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

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `then` on the hub after `delay` (one entry in the timer wheel); the handle
    /// cancels it.
    pub(super) fn after(
        &self,
        delay: Duration,
        then: impl FnOnce(&Hub) + Send + 'static,
    ) -> TimerHandle {
        self.inner.timers.start(delay, then)
    }

    /// Submits `change` when a timer fires after `delay`.
    pub(super) fn change_after(&self, delay: Duration, change: Change) -> TimerHandle {
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

    /// Every node the shared state names (the engine watches that they are alive).
    pub fn nodes_named(&self) -> BTreeSet<NodeId> {
        self.lock().shared.nodes()
    }

    /// Submits `change` for the requesting connection `conn` and waits for its outcome.
    pub async fn submit(&self, change: Change, conn: Option<&ConnHandle>) -> Outcome {
        match self.inner.engine.submit(self, change, conn.cloned()) {
            Submitted::Applied(outcome) => outcome,
            Submitted::Pending(outcome) => outcome.await.unwrap_or(Outcome::Unavailable),
        }
    }

    /// Waits until this node's copy holds every change answered anywhere before now, so
    /// that a read after another node's write sees it (on one node: at once). If the
    /// engine cannot tell (Redis away), the read goes on with what this node has.
    pub async fn caught_up(&self) {
        if let Some(caught_up) = self.inner.engine.caught_up() {
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
    /// when this node is the origin.
    pub(super) fn apply(
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
                    offline,
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
                forget_cached(state, &app, &receiver, message_id);
                Outcome::Done
            }
            Change::Join { app, user, channel } => {
                Outcome::Joined(self.join(state, &app, &user, &channel))
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
            Change::Subscribe {
                app,
                user,
                peers,
                request_id,
            } => Outcome::Subscribed(super::hub_presence::subscribe(
                state, &app, &user, &peers, request_id, here,
            )),
            Change::Unsubscribe { app, user, peers } => {
                super::hub_presence::unsubscribe(state, &app, &user, &peers);
                Outcome::Done
            }
            Change::UserAttributes { app, user, write } => Outcome::AttributesWritten(
                super::hub_attributes::write_user_attributes(state, &app, &user, &write),
            ),
            Change::ChannelAttributes {
                app,
                user,
                channel,
                write,
                notify,
            } => Outcome::AttributesWritten(self.write_channel_attributes(
                state,
                (&app, &user, &channel),
                &write,
                notify,
                here,
            )),
            Change::Invite {
                app,
                caller,
                callee,
                invitation_id,
                content,
                channel,
            } => Outcome::Invitation(self.invite(
                state,
                &app,
                (caller, callee, invitation_id),
                (content, channel),
                here,
            )),
            Change::CancelInvitation {
                app,
                caller,
                callee,
                invitation_id,
            } => Outcome::Invitation(super::hub_invitations::cancel_invitation(
                state,
                &app,
                (&caller, &callee, &invitation_id),
            )),
            Change::AnswerInvitation {
                app,
                callee,
                caller,
                invitation_id,
                answer,
                response,
            } => Outcome::Invitation(super::hub_invitations::answer_invitation(
                state,
                &app,
                (&caller, &callee, &invitation_id),
                (answer, response),
            )),
            Change::WatchToken {
                app,
                user,
                conn,
                expires_at,
            } => {
                self.watch_token(state, &app, &user, conn, expires_at);
                Outcome::Done
            }
            Change::GraceOver { app, user, epoch } => {
                self.grace_over(state, &app, &user, epoch, here);
                Outcome::Done
            }
            Change::AttributesExpired {
                app,
                channel,
                epoch,
            } => {
                super::hub_attributes::attributes_expired(state, &app, &channel, epoch);
                Outcome::Done
            }
            Change::InvitationExpired { app, key, epoch } => {
                super::hub_invitations::invitation_expired(state, &app, &key, epoch);
                Outcome::Done
            }
            Change::TokenExpired { app, user, epoch } => {
                self.token_expired(state, &app, &user, epoch, here);
                Outcome::Done
            }
            Change::NodeGone { node } => {
                self.node_gone(state, node, here);
                Outcome::Done
            }
            Change::Admin(change) => {
                Outcome::Admin(super::hub_admin::apply(self, state, change, here))
            }
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

    /// Binds `user` to `conn`: kicks an older connection of the same user, answers the
    /// login, then delivers the cached messages (all in one critical section, so nothing
    /// else can slip between the reply and the backlog).
    fn login(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        conn: ConnRef,
        reply: &Reply,
        here: Here<'_>,
    ) {
        let epoch = state.next_epoch();
        let app_state = state.apps().entry(app.to_string()).or_default();
        let entry = app_state.users.entry(user.to_string()).or_default();
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
            super::hub_presence::presence_changed(app_state, user);
        }
    }

    /// Moves the user's joined channels to `held`, detaches its connection from them and
    /// starts a grace timer (on the origin) that drops whatever is not rejoined in time.
    fn hold_channels(&self, app_state: &mut App, app: &str, user: &str, epoch: u64, here: Here) {
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

    fn start_grace(&self, app: &str, user: &str, epoch: u64) {
        let change = Change::GraceOver {
            app: app.to_string(),
            user: user.to_string(),
            epoch,
        };
        self.change_after(self.config().grace, change);
    }

    /// A connection ended without logout: the user's channels and presence enter the grace.
    fn disconnected(&self, state: &mut State, app: &str, user: &str, conn: ConnId, here: Here) {
        let epoch = state.next_epoch();
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
        super::hub_presence::presence_changed(app_state, user);
    }

    fn grace_over(&self, state: &mut State, app: &str, user: &str, epoch: u64, here: Here) {
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
                super::hub_presence::presence_changed(app_state, user);
                super::hub_presence::forget_user(app_state, user, &removed);
            }
        }
    }

    /// `logout`: leaves every channel and forgets the user (attributes, subscriptions).
    fn logout(&self, state: &mut State, app: &str, user: &str, conn: ConnId, here: Here) {
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
    pub(super) fn remove_user(&self, app_state: &mut App, app: &str, user: &str, here: Here) {
        let Some(removed) = app_state.users.remove(user) else {
            return;
        };
        for channel in removed.joined.iter().chain(&removed.held) {
            self.remove_member(app_state, app, channel, user, here);
        }
        super::hub_presence::presence_changed(app_state, user);
        super::hub_presence::forget_user(app_state, user, &removed);
    }

    /// The message id and timestamp of a message in the change stamped `stamp`.
    fn stamp_message(&self, stamp: Stamp) -> (u64, u64) {
        let id = stamp
            .message_id
            .unwrap_or_else(|| self.engine().next_message_id());
        (id, stamp.now_ms)
    }

    /// `send_peer` after validation and rate limiting.
    fn send_peer(
        &self,
        state: &mut State,
        (app, from, to): (&str, &str, &str),
        message: Message,
        offline: bool,
        request_id: u32,
        here: Here<'_>,
    ) -> PeerSend {
        let receiver = state.shared.user(app, to).and_then(|u| u.conn.clone());
        if receiver.is_none() && !offline {
            return PeerSend::Unreachable;
        }
        if receiver.is_none() {
            if let Some(why) = self.offline_quota_spent(state, app, from, &message) {
                return PeerSend::CacheFull(why);
            }
        }
        let (message_id, server_ts) = self.stamp_message(here.stamp);
        let stored = HistoryMessage {
            message_id,
            from: from.to_string(),
            message,
            server_ts,
        };
        let config = self.config();
        if here.origin {
            self.engine().messages().append_history(
                app,
                &peer_conversation(from, to),
                stored.clone(),
                config.history_limit,
            );
        }
        let result = SendResult {
            message_id,
            server_ts,
        };
        if let Some(receiver) = receiver {
            receiver.send_event(&Event::MessageFromPeer {
                from: stored.from,
                message: stored.message,
                message_id,
                server_ts,
                offline: false,
            });
            if let Some(sender) = here.conn.filter(|_| here.origin) {
                let timer = self.after(config.ack_timeout, move |hub| hub.ack_expired(message_id));
                state.pending_acks.insert(
                    message_id,
                    PendingAck {
                        app: app.to_string(),
                        receiver: to.to_string(),
                        sender: sender.clone(),
                        request_id,
                        result,
                        timer,
                    },
                );
            }
            return PeerSend::AwaitingAck;
        }
        state
            .apps()
            .entry(app.to_string())
            .or_default()
            .offline
            .push(to, stored.clone(), config.offline_cap);
        let committed = if here.origin {
            self.engine()
                .messages()
                .cache_offline(app, to, stored, config.offline_cap)
        } else {
            tokio::sync::oneshot::channel().1
        };
        PeerSend::Cached { result, committed }
    }

    /// The receiver's `ack`: its sender's node answers the sender with 0; a cached
    /// message leaves the cache.
    fn ack(&self, state: &mut State, app: &str, user: &str, message_id: u64, here: Here) {
        let matches = state
            .pending_acks
            .get(&message_id)
            .is_some_and(|p| p.app == app && p.receiver == user);
        if matches {
            let pending = state.pending_acks.remove(&message_id).expect("checked");
            pending.timer.abort();
            pending
                .sender
                .send_reply(&Reply::ok(pending.request_id, &pending.result));
            return;
        }
        // Otherwise it may be a cached message delivered at login: now it can go.
        let Some(app_state) = state.apps().get_mut(app) else {
            return;
        };
        if !app_state.offline.remove(user, message_id) {
            return;
        }
        if here.origin {
            self.engine()
                .messages()
                .drop_offline(app, user, vec![message_id]);
        }
    }

    fn ack_expired(&self, message_id: u64) {
        let mut state = self.lock();
        if let Some(pending) = state.pending_acks.remove(&message_id) {
            pending.sender.send_reply(&Reply::code(
                pending.request_id,
                PeerError::Timeout.code(),
                "the peer did not acknowledge the message in time",
            ));
        }
    }

    /// `join`: the member count.
    fn join(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        channel: &str,
    ) -> Result<u64, JoinError> {
        let app_state = state.apps().entry(app.to_string()).or_default();
        let entry = app_state.users.get_mut(user).ok_or(JoinError::Failure)?;
        if entry.joined.contains(channel) {
            return Err(JoinError::AlreadyJoined);
        }
        if entry.joined.len() >= crate::protocol::limits::MAX_JOINED_CHANNELS {
            return Err(JoinError::ExceedsLimit);
        }
        let conn = entry.conn.clone();
        let rejoin = entry.held.remove(channel);
        entry.joined.insert(channel.to_string());
        let state_channel = app_state.channels.entry(channel.to_string()).or_default();
        let count = if rejoin && state_channel.members.contains_key(user) {
            // Back within the grace: quietly reattach, nobody saw the user leave.
            state_channel.members.insert(user.to_string(), conn);
            state_channel.members.len()
        } else {
            state_channel.members.insert(user.to_string(), conn);
            state_channel.empty = None;
            let count = state_channel.members.len();
            super::hub_admin::channel_event(app_state, channel, user, true);
            let state_channel = app_state.channels.get_mut(channel).expect("joined above");
            if count <= MAX_LISTED_MEMBERS {
                let line = ConnHandle::encode_shared(&Event::MemberJoined {
                    channel: channel.to_string(),
                    user: user.to_string(),
                });
                state_channel.broadcast(&line, Some(user));
            }
            self.count_changed(app_state, app, channel);
            count
        };
        Ok(count as u64)
    }

    /// `leave`.
    fn leave(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        channel: &str,
        here: Here,
    ) -> Result<(), LeaveError> {
        let app_state = state.apps().get_mut(app).ok_or(LeaveError::NotInChannel)?;
        let entry = app_state
            .users
            .get_mut(user)
            .ok_or(LeaveError::NotInChannel)?;
        if !entry.joined.remove(channel) {
            return Err(LeaveError::NotInChannel);
        }
        self.remove_member(app_state, app, channel, user, here);
        Ok(())
    }

    fn remove_member(&self, app_state: &mut App, app: &str, channel: &str, user: &str, here: Here) {
        let Some(state_channel) = app_state.channels.get_mut(channel) else {
            return;
        };
        let listed = state_channel.members.len() <= MAX_LISTED_MEMBERS;
        if state_channel.members.remove(user).is_none() {
            return;
        }
        super::hub_admin::channel_event(app_state, channel, user, false);
        let state_channel = app_state.channels.get_mut(channel).expect("held a member");
        if listed {
            let line = ConnHandle::encode_shared(&Event::MemberLeft {
                channel: channel.to_string(),
                user: user.to_string(),
            });
            state_channel.broadcast(&line, None);
        }
        if state_channel.members.is_empty() {
            if state_channel.attributes.is_empty() && !state_channel.count_timer {
                app_state.channels.remove(channel);
                return;
            }
            super::hub_attributes::channel_emptied(self, app_state, app, channel, here);
        }
        self.count_changed(app_state, app, channel);
    }

    /// Sends `member_count_updated` to this node's members now, or schedules it so that
    /// a channel gets at most one per `member_count_interval`, carrying the latest count.
    fn count_changed(&self, app_state: &mut App, app: &str, channel: &str) {
        let Some(state_channel) = app_state.channels.get_mut(channel) else {
            return;
        };
        if state_channel.count_timer {
            return; // the scheduled update will carry the latest count
        }
        let interval = self.config().member_count_interval;
        let now = Instant::now();
        match state_channel.count_sent_at {
            Some(sent) if now.duration_since(sent) < interval => {
                state_channel.count_timer = true;
                let (app, channel) = (app.to_string(), channel.to_string());
                self.after(
                    interval.saturating_sub(now.duration_since(sent)),
                    move |hub| {
                        hub.flush_count(&app, &channel);
                    },
                );
            }
            _ => send_count(state_channel, channel, now),
        }
    }

    fn flush_count(&self, app: &str, channel: &str) {
        let mut state = self.lock();
        let Some(app_state) = state.apps().get_mut(app) else {
            return;
        };
        let Some(state_channel) = app_state.channels.get_mut(channel) else {
            return;
        };
        state_channel.count_timer = false;
        send_count(state_channel, channel, Instant::now());
        if state_channel.members.is_empty() && state_channel.attributes.is_empty() {
            app_state.channels.remove(channel);
        }
    }

    /// `send_channel` (or the REST API's, `from_server`, which needs no membership): the
    /// id and timestamp.
    fn send_channel(
        &self,
        state: &mut State,
        (app, user, channel): (&str, &str, &str),
        message: Message,
        from_server: bool,
        here: Here,
    ) -> Result<SendResult, ChannelMsgError> {
        let app_state = state.shared.apps.get(app);
        let joined = app_state
            .and_then(|a| a.users.get(user))
            .is_some_and(|u| u.joined.contains(channel));
        if !joined && !from_server {
            return Err(ChannelMsgError::NotInChannel);
        }
        let (message_id, server_ts) = self.stamp_message(here.stamp);
        let line = ConnHandle::encode_shared(&Event::MessageFromChannel {
            channel: channel.to_string(),
            from: user.to_string(),
            message: message.clone(),
            message_id,
            server_ts,
        });
        if let Some(state_channel) = app_state.and_then(|a| a.channels.get(channel)) {
            state_channel.broadcast(&line, Some(user));
        }
        if here.origin {
            self.engine().messages().append_history(
                app,
                &channel_conversation(channel),
                HistoryMessage {
                    message_id,
                    from: user.to_string(),
                    message,
                    server_ts,
                },
                self.config().history_limit,
            );
        }
        Ok(SendResult {
            message_id,
            server_ts,
        })
    }

    /// `get_members` (at most 512).
    pub fn members(
        &self,
        app: &str,
        user: &str,
        channel: &str,
    ) -> Result<Vec<String>, MembersError> {
        let state = self.lock();
        let app_state = state
            .shared
            .apps
            .get(app)
            .ok_or(MembersError::NotInChannel)?;
        if !app_state
            .users
            .get(user)
            .is_some_and(|u| u.joined.contains(channel))
        {
            return Err(MembersError::NotInChannel);
        }
        Ok(app_state
            .channels
            .get(channel)
            .map(|c| c.members.keys().take(MAX_LISTED_MEMBERS).cloned().collect())
            .unwrap_or_default())
    }

    /// True if `user`'s current connection joined `channel`.
    pub fn is_member(&self, app: &str, user: &str, channel: &str) -> bool {
        self.lock()
            .shared
            .user(app, user)
            .is_some_and(|u| u.joined.contains(channel))
    }

    /// `get_channel_member_count`: unknown channels count 0.
    pub fn member_counts(&self, app: &str, channels: &[String]) -> BTreeMap<String, u64> {
        let state = self.lock();
        let app_state = state.shared.apps.get(app);
        channels
            .iter()
            .map(|channel| {
                let count = app_state
                    .and_then(|a| a.channels.get(channel))
                    .map_or(0, |c| c.members.len() as u64);
                (channel.clone(), count)
            })
            .collect()
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
    /// the origin), and the grace and expiry timers it ran are the origin's now. If that
    /// node is this one (it was only cut off), its connections are closed: the others
    /// already count them gone.
    fn node_gone(&self, state: &mut State, node: NodeId, here: Here) {
        let epoch = state.next_epoch();
        for (app, app_state) in &mut state.shared.apps {
            let users: Vec<String> = app_state
                .users
                .iter()
                .filter(|(_, u)| {
                    u.conn.as_ref().is_some_and(|c| c.id.node == node)
                        || (u.conn.is_none() && u.grace.is_some_and(|(_, n)| n == node))
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
                    super::hub_presence::presence_changed(app_state, &user);
                }
            }
            super::hub_attributes::adopt_expiries(self, app_state, app, node, here);
            super::hub_invitations::adopt_expiries(self, app_state, app, node, here);
        }
    }
}

fn forget_cached(state: &mut State, app: &str, receiver: &str, message_id: u64) {
    if let Some(app_state) = state.apps().get_mut(app) {
        app_state.offline.remove(receiver, message_id);
    }
}

fn send_count(state_channel: &mut Channel, channel: &str, now: Instant) {
    state_channel.count_sent_at = Some(now);
    let line = ConnHandle::encode_shared(&Event::MemberCountUpdated {
        channel: channel.to_string(),
        count: state_channel.members.len() as u64,
    });
    state_channel.broadcast(&line, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timers_end_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::ephemeral();
        let (store, loaded) =
            super::super::store::Store::open(dir.path(), config.offline_ttl).unwrap();
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
            super::super::store::Store::open(dir.path(), config.offline_ttl).unwrap();
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

//! The hub: state shared by all connections (who is online, channels, pending acks, the
//! in-memory mirror of cached messages) behind one cheap, cloneable handle.
//!
//! Every method takes the state lock, changes state, appends to outboxes and returns; none
//! awaits while holding the lock. Appending to an outbox never waits (a full outbox cuts
//! its connection off), so fan-out happens inside the critical section: that is what gives
//! every receiver of a channel or peer pair the same order, the order of the answers.
//! Socket writes happen later in each connection's writer task, without any hub lock.
//! Timers (ack timeout, grace period, throttled member counts) are tasks that sleep and
//! then call back into the hub. Presence, attributes, invitations and token timers live in
//! `hub_presence.rs`, `hub_attributes.rs`, `hub_invitations.rs` and `hub_tokens.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::clock::Instant;

use crate::protocol::codes::{channel_msg, join, leave, members};
use crate::protocol::limits::MAX_LISTED_MEMBERS;
use crate::protocol::{
    codes, now_ms, Event, HistoryMessage, KickReason, LoginResult, Message, Reply, SendResult,
};

use super::config::Config;
use super::outbox::ConnHandle;
use super::store::{Loaded, Store};
use super::timers::{TimerHandle, Timers};

/// Close code sent with `kicked` (normal closure: the server ended the session on purpose).
pub const CLOSE_KICKED: u16 = 1000;

/// One user as the hub knows it.
#[derive(Debug, Default)]
pub(super) struct User {
    /// The logged-in connection; `None` during the grace period after a drop.
    pub conn: Option<ConnHandle>,
    /// Channels the current connection joined.
    pub joined: BTreeSet<String>,
    /// Channels kept from a dropped connection until the grace ends or they are rejoined.
    pub held: BTreeSet<String>,
    /// Identifies the running grace timer; an older timer finding another value does nothing.
    pub grace_epoch: Option<u64>,
    /// User attributes.
    pub attributes: crate::protocol::Attributes,
    /// Peers whose presence this user subscribed to.
    pub subscriptions: BTreeSet<String>,
    /// When the login token ends (unix seconds) and which timer watches it.
    pub token: Option<(u64, u64)>,
    /// The running token timers (warning, expiry): aborted when a renewal replaces them
    /// or the user goes, so that renewals do not pile up sleeping tasks.
    pub token_timers: Vec<TimerHandle>,
}

/// One channel.
#[derive(Debug, Default)]
pub(super) struct Channel {
    /// Members, with the connection that gets the channel's events (`None` while held).
    pub members: BTreeMap<String, Option<ConnHandle>>,
    pub count_sent_at: Option<Instant>,
    pub count_timer: bool,
    /// Channel attributes by key.
    pub attributes: BTreeMap<String, crate::protocol::ChannelAttribute>,
    /// When the last member left; attributes go after `channel_attributes_ttl`.
    pub empty_since: Option<Instant>,
}

impl Channel {
    /// Queues an encoded event for every member with a connection, except `skip`.
    pub fn broadcast(&self, line: &Arc<str>, skip: Option<&str>) {
        for (user, conn) in &self.members {
            if Some(user.as_str()) != skip {
                if let Some(conn) = conn {
                    conn.push_line(line.clone());
                }
            }
        }
    }
}

/// One app's world.
#[derive(Debug, Default)]
pub(super) struct App {
    pub users: HashMap<String, User>,
    pub channels: HashMap<String, Channel>,
    /// Cached peer messages per receiver, oldest first (mirrors the store's `offline`).
    pub offline: HashMap<String, VecDeque<HistoryMessage>>,
    /// Presence watchers: target user → subscribers.
    pub watchers: HashMap<String, BTreeSet<String>>,
    /// Pending invitations.
    pub invitations:
        HashMap<super::hub_invitations::InvitationKey, super::hub_invitations::Invitation>,
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

#[derive(Debug, Default)]
pub(super) struct State {
    pub apps: HashMap<String, App>,
    pending_acks: HashMap<u64, PendingAck>,
    next_message_id: u64,
    /// Ids below this are reserved on disk: the only ones that may be handed out.
    ids_reserved: u64,
    /// The next reservation, asked for ahead of need: (its bound, committed signal).
    ids_reserving: Option<(u64, std::sync::mpsc::Receiver<()>)>,
    next_epoch: u64,
}

impl State {
    fn allocate_message(&mut self, store: &Store) -> (u64, u64) {
        let id = self.next_message_id;
        self.next_message_id += 1;
        self.keep_ids_reserved(store);
        (id, now_ms())
    }

    /// Keeps `next_message_id` within the persisted reservation: asks for the next block
    /// half a block ahead, and in the rare case that it is not committed by the time it is
    /// needed, waits for it (an fsync, under the lock: ids must never outrun the disk).
    fn keep_ids_reserved(&mut self, store: &Store) {
        if let Some((up_to, committed)) = &self.ids_reserving {
            let needed = self.next_message_id >= self.ids_reserved;
            let done = if needed {
                committed.recv().is_ok()
            } else {
                committed.try_recv().is_ok()
            };
            if done {
                self.ids_reserved = *up_to;
                self.ids_reserving = None;
            } else if needed {
                tracing::error!("message id reservation failed; ids may repeat after a crash");
                self.ids_reserved = *up_to;
                self.ids_reserving = None;
            }
        }
        if self.ids_reserving.is_none()
            && self.next_message_id + super::store::ID_BLOCK / 2 >= self.ids_reserved
        {
            let up_to = self.ids_reserved.max(self.next_message_id) + super::store::ID_BLOCK;
            self.ids_reserving = Some((up_to, store.reserve_ids(up_to)));
        }
    }

    pub(super) fn next_epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }
}

#[derive(Debug)]
struct HubInner {
    config: Arc<Config>,
    store: Store,
    state: Mutex<State>,
    next_conn_id: AtomicU64,
    /// The store's id, named in every login reply.
    store_id: String,
    /// Every connection's outbox bounds, and the bytes queued in all of them.
    outbox_limits: Arc<super::outbox::OutboxLimits>,
    queued: super::outbox::QueuedTotal,
    /// Every timer; stopped at shutdown (the timer task then drops its hub handle).
    timers: Timers,
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
    /// A hub over an opened store and what it loaded.
    pub fn new(config: Arc<Config>, store: Store, loaded: Loaded) -> Self {
        let mut state = State {
            next_message_id: loaded.next_message_id.max(1),
            ids_reserved: loaded.reserved_up_to,
            ..State::default()
        };
        for cached in loaded.offline {
            state
                .apps
                .entry(cached.app)
                .or_default()
                .offline
                .entry(cached.receiver)
                .or_default()
                .push_back(cached.message);
        }
        let outbox_limits = Arc::new(config.outbox.clone());
        let hub = Hub {
            inner: Arc::new(HubInner {
                config,
                store,
                state: Mutex::new(state),
                next_conn_id: AtomicU64::new(1),
                store_id: loaded.store_id,
                outbox_limits,
                queued: super::outbox::QueuedTotal::default(),
                timers: Timers::default(),
            }),
        };
        hub.inner.timers.spawn(hub.clone());
        hub
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
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

    /// Timers pending now (acks, grace periods, expiries): for tests and diagnostics.
    pub fn pending_timers(&self) -> usize {
        self.inner.timers.pending()
    }

    /// Ends every timer now (shutdown): none may run after, outlive the server or keep
    /// its store alive. Timers started afterwards never run.
    pub fn stop_timers(&self) {
        self.inner.timers.stop();
    }

    /// Binds `user` to `conn`: kicks an older connection of the same user, answers the
    /// login, then delivers the cached messages (all in one critical section, so nothing
    /// else can slip between the reply and the backlog).
    pub fn login(&self, app: &str, user: &str, conn: &ConnHandle, reply: &Reply) {
        let mut state = self.lock();
        let epoch = state.next_epoch();
        let app_state = state.apps.entry(app.to_string()).or_default();
        let entry = app_state.users.entry(user.to_string()).or_default();
        let was_online = entry.conn.is_some();
        if let Some(old) = entry.conn.take() {
            tracing::info!(app, user, old = old.id(), new = conn.id(), "remote login");
            old.send_event(&Event::Kicked {
                reason: KickReason::RemoteLogin,
            });
            old.close(CLOSE_KICKED, "remote_login");
            self.hold_channels(app_state, app, user, epoch);
        }
        let entry = app_state.users.get_mut(user).expect("inserted above");
        entry.conn = Some(conn.clone());
        conn.send_reply(reply);
        // The backlog stays cached until the receiver acks each message (a connection
        // that drops first gets the rest again at its next login); only expired ones go now.
        if let Some(backlog) = app_state.offline.get_mut(user) {
            let cutoff = now_ms().saturating_sub(self.config().offline_ttl.as_millis() as u64);
            let mut expired = Vec::new();
            backlog.retain(|message| {
                let keep = message.server_ts >= cutoff;
                if !keep {
                    expired.push(message.message_id);
                }
                keep
            });
            for message in backlog.iter() {
                conn.push_line_unbounded(ConnHandle::encode_shared(&Event::MessageFromPeer {
                    from: message.from.clone(),
                    message: message.message.clone(),
                    message_id: message.message_id,
                    server_ts: message.server_ts,
                    offline: true,
                }));
            }
            if backlog.is_empty() {
                app_state.offline.remove(user);
            }
            if !expired.is_empty() {
                self.store().drop_offline(app, user, expired);
            }
        }
        if !was_online {
            super::hub_presence::presence_changed(app_state, user);
        }
    }

    /// Moves the user's joined channels to `held`, detaches its connection from them and
    /// starts a grace timer that drops whatever is not rejoined in time.
    fn hold_channels(&self, app_state: &mut App, app: &str, user: &str, epoch: u64) {
        let Some(entry) = app_state.users.get_mut(user) else {
            return;
        };
        let joined = std::mem::take(&mut entry.joined);
        for channel in &joined {
            if let Some(channel) = app_state.channels.get_mut(channel) {
                if let Some(slot) = channel.members.get_mut(user) {
                    *slot = None;
                }
            }
        }
        entry.held.extend(joined);
        entry.grace_epoch = Some(epoch);
        let (app, user) = (app.to_string(), user.to_string());
        self.after(self.config().grace, move |hub| {
            hub.grace_expired(&app, &user, epoch);
        });
    }

    /// A connection ended without logout: the user's channels and presence enter the grace.
    pub fn disconnected(&self, app: &str, user: &str, conn: &ConnHandle) {
        let mut state = self.lock();
        let epoch = state.next_epoch();
        let Some(app_state) = state.apps.get_mut(app) else {
            return;
        };
        let Some(entry) = app_state.users.get_mut(user) else {
            return;
        };
        if entry.conn.as_ref() != Some(conn) {
            return; // replaced by a newer login already
        }
        entry.conn = None;
        self.hold_channels(app_state, app, user, epoch);
        super::hub_presence::presence_changed(app_state, user);
    }

    fn grace_expired(&self, app: &str, user: &str, epoch: u64) {
        let mut state = self.lock();
        let Some(app_state) = state.apps.get_mut(app) else {
            return;
        };
        let Some(entry) = app_state.users.get_mut(user) else {
            return;
        };
        if entry.grace_epoch != Some(epoch) {
            return;
        }
        entry.grace_epoch = None;
        let held = std::mem::take(&mut entry.held);
        let gone = entry.conn.is_none();
        for channel in held {
            self.remove_member(app_state, app, &channel, user);
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
    pub fn logout(&self, app: &str, user: &str, conn: &ConnHandle) {
        let mut state = self.lock();
        let Some(app_state) = state.apps.get_mut(app) else {
            return;
        };
        let Some(entry) = app_state.users.get_mut(user) else {
            return;
        };
        if entry.conn.as_ref() != Some(conn) {
            return;
        }
        self.remove_user(app_state, app, user);
    }

    /// Forgets a user at once: leaves its channels (with events), presence goes offline.
    pub(super) fn remove_user(&self, app_state: &mut App, app: &str, user: &str) {
        let Some(removed) = app_state.users.remove(user) else {
            return;
        };
        for channel in removed.joined.iter().chain(&removed.held) {
            self.remove_member(app_state, app, channel, user);
        }
        super::hub_presence::presence_changed(app_state, user);
        super::hub_presence::forget_user(app_state, user, &removed);
    }

    /// `send_peer` after validation and rate limiting.
    pub fn send_peer(
        &self,
        app: &str,
        from: &str,
        to: &str,
        message: Message,
        offline: bool,
        (sender, request_id): (&ConnHandle, u32),
    ) -> PeerSend {
        let mut state = self.lock();
        let receiver = state
            .apps
            .get(app)
            .and_then(|a| a.users.get(to))
            .and_then(|u| u.conn.clone());
        if receiver.is_none() && !offline {
            return PeerSend::Unreachable;
        }
        let (message_id, server_ts) = state.allocate_message(self.store());
        let stored = HistoryMessage {
            message_id,
            from: from.to_string(),
            message,
            server_ts,
        };
        let config = self.config();
        self.store().append_history(
            app,
            &peer_conversation(from, to),
            stored.clone(),
            config.history_limit,
        );
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
            return PeerSend::AwaitingAck;
        }
        let queue = state
            .apps
            .entry(app.to_string())
            .or_default()
            .offline
            .entry(to.to_string())
            .or_default();
        queue.push_back(stored.clone());
        while queue.len() > config.offline_cap {
            queue.pop_front();
        }
        let committed = self
            .store()
            .cache_offline(app, to, stored, config.offline_cap);
        PeerSend::Cached { result, committed }
    }

    /// The receiver's `ack`: answers the sender with 0.
    pub fn ack(&self, app: &str, user: &str, message_id: u64) {
        let mut state = self.lock();
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
        let Some(app_state) = state.apps.get_mut(app) else {
            return;
        };
        let Some(backlog) = app_state.offline.get_mut(user) else {
            return;
        };
        let Some(position) = backlog.iter().position(|m| m.message_id == message_id) else {
            return;
        };
        backlog.remove(position);
        if backlog.is_empty() {
            app_state.offline.remove(user);
        }
        self.store().drop_offline(app, user, vec![message_id]);
    }

    /// Takes back a cached message whose write failed (its sender is answered 1).
    pub fn forget_cached(&self, app: &str, receiver: &str, message_id: u64) {
        let mut state = self.lock();
        if let Some(app_state) = state.apps.get_mut(app) {
            if let Some(backlog) = app_state.offline.get_mut(receiver) {
                backlog.retain(|m| m.message_id != message_id);
                if backlog.is_empty() {
                    app_state.offline.remove(receiver);
                }
            }
        }
    }

    fn ack_expired(&self, message_id: u64) {
        let mut state = self.lock();
        if let Some(pending) = state.pending_acks.remove(&message_id) {
            pending.sender.send_reply(&Reply::code(
                pending.request_id,
                codes::peer::TIMEOUT,
                "the peer did not acknowledge the message in time",
            ));
        }
    }

    /// `join`: the member count, or a JOIN code.
    pub fn join(&self, app: &str, user: &str, channel: &str) -> Result<u64, u32> {
        let mut state = self.lock();
        let app_state = state.apps.entry(app.to_string()).or_default();
        let entry = app_state.users.get_mut(user).ok_or(join::FAILURE)?;
        if entry.joined.contains(channel) {
            return Err(join::ALREADY_JOINED);
        }
        if entry.joined.len() >= crate::protocol::limits::MAX_JOINED_CHANNELS {
            return Err(join::EXCEEDS_LIMIT);
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
            state_channel.empty_since = None;
            let count = state_channel.members.len();
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

    /// `leave`, or LEAVE's "not in channel".
    pub fn leave(&self, app: &str, user: &str, channel: &str) -> Result<(), u32> {
        let mut state = self.lock();
        let app_state = state.apps.get_mut(app).ok_or(leave::NOT_IN_CHANNEL)?;
        let entry = app_state.users.get_mut(user).ok_or(leave::NOT_IN_CHANNEL)?;
        if !entry.joined.remove(channel) {
            return Err(leave::NOT_IN_CHANNEL);
        }
        self.remove_member(app_state, app, channel, user);
        Ok(())
    }

    fn remove_member(&self, app_state: &mut App, app: &str, channel: &str, user: &str) {
        let Some(state_channel) = app_state.channels.get_mut(channel) else {
            return;
        };
        let listed = state_channel.members.len() <= MAX_LISTED_MEMBERS;
        if state_channel.members.remove(user).is_none() {
            return;
        }
        if listed {
            let line = ConnHandle::encode_shared(&Event::MemberLeft {
                channel: channel.to_string(),
                user: user.to_string(),
            });
            state_channel.broadcast(&line, None);
        }
        if state_channel.members.is_empty() {
            state_channel.empty_since = Some(Instant::now());
            if state_channel.attributes.is_empty() && !state_channel.count_timer {
                app_state.channels.remove(channel);
                return;
            }
            super::hub_attributes::schedule_attribute_expiry(self, app, channel);
        }
        self.count_changed(app_state, app, channel);
    }

    /// Sends `member_count_updated` now, or schedules it so that a channel gets at most
    /// one per `member_count_interval`, carrying the latest count.
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
        let Some(app_state) = state.apps.get_mut(app) else {
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

    /// `send_channel`: the id and timestamp, or CHANNEL_MSG's "not in channel".
    pub fn send_channel(
        &self,
        app: &str,
        user: &str,
        channel: &str,
        message: Message,
    ) -> Result<SendResult, u32> {
        let mut state = self.lock();
        let joined = state
            .apps
            .get(app)
            .and_then(|a| a.users.get(user))
            .is_some_and(|u| u.joined.contains(channel));
        if !joined {
            return Err(channel_msg::NOT_IN_CHANNEL);
        }
        let (message_id, server_ts) = state.allocate_message(self.store());
        let app_state = state.apps.get(app).expect("checked above");
        let state_channel = app_state.channels.get(channel).expect("member of it");
        let line = ConnHandle::encode_shared(&Event::MessageFromChannel {
            channel: channel.to_string(),
            from: user.to_string(),
            message: message.clone(),
            message_id,
            server_ts,
        });
        state_channel.broadcast(&line, Some(user));
        self.store().append_history(
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
        Ok(SendResult {
            message_id,
            server_ts,
        })
    }

    /// `get_members` (at most 512), or MEMBERS' "not in channel".
    pub fn members(&self, app: &str, user: &str, channel: &str) -> Result<Vec<String>, u32> {
        let state = self.lock();
        let app_state = state.apps.get(app).ok_or(members::NOT_IN_CHANNEL)?;
        if !app_state
            .users
            .get(user)
            .is_some_and(|u| u.joined.contains(channel))
        {
            return Err(members::NOT_IN_CHANNEL);
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
            .apps
            .get(app)
            .and_then(|a| a.users.get(user))
            .is_some_and(|u| u.joined.contains(channel))
    }

    /// `get_channel_member_count`: unknown channels count 0.
    pub fn member_counts(&self, app: &str, channels: &[String]) -> BTreeMap<String, u64> {
        let state = self.lock();
        let app_state = state.apps.get(app);
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

    /// The login reply of protocol.md for `user`.
    pub fn login_reply(&self, id: u32, user: &str, token_expires_at: Option<u64>) -> Reply {
        Reply::ok(
            id,
            &LoginResult {
                user: user.to_string(),
                server_ts: now_ms(),
                protocol: crate::protocol::PROTOCOL_VERSION,
                server: self.config().name.clone(),
                token_expires_at,
                store: Some(self.inner.store_id.clone()),
            },
        )
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
        let (store, loaded) = Store::open(dir.path(), config.offline_ttl).unwrap();
        let hub = Hub::new(Arc::new(config), store, loaded);
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
        hub.store().stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_timer_leaves_nothing_and_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::ephemeral();
        let (store, loaded) = Store::open(dir.path(), config.offline_ttl).unwrap();
        let hub = Hub::new(Arc::new(config), store, loaded);
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
        hub.store().stop().await;
    }
}

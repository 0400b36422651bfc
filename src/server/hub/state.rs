//! The shared state every node holds alike ([`Shared`]: per app a [`Tenant`] of users,
//! channels (their members) and the offline cache; attributes, presence subscriptions,
//! bans, the REST API's event feeds and pending invitations are the engine's),
//! this node's part beside it ([`State`]: the acks its senders wait for, who its
//! connections follow), and how a change is being applied here ([`Here`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::reply::OrderedPeers;
use crate::protocol::{Event, PeerStatus, SendResult};
use crate::server::clock::Instant;
use crate::server::engine::{ConnId, NodeId, Stamp};
use crate::server::outbox::ConnHandle;
use crate::server::store::CachedMessage;

use super::feeds::AppAdmin;
use super::offline::OfflineCache;
use super::watchers::Watchers;
use super::HubTimer;

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
    /// Tells this user's attributes from those of an earlier user of the same id: new
    /// when it logs in unknown, kept through remote logins and the grace period (the
    /// attributes are the engine's: `engine/user_attributes.rs`).
    #[serde(default)]
    pub generation: u64,
    /// When the login token ends (unix seconds) and which timer watches it.
    pub token: Option<(u64, u64)>,
    /// The running token timers (warning, expiry) on the connection's node: aborted when
    /// a renewal replaces them or the user goes, so that renewals do not pile up.
    #[serde(skip)]
    pub token_timers: Vec<HubTimer>,
}

/// One channel.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct ChannelRecord {
    /// Members, with the connection that gets the channel's events (`None` while held).
    pub members: BTreeMap<String, Option<ConnRef>>,
    /// When this node last sent `member_count_updated` (each node throttles its own).
    #[serde(skip)]
    pub count_sent_at: Option<Instant>,
    #[serde(skip)]
    pub count_timer: bool,
}

impl ChannelRecord {
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

/// One app's world (an app id is a tenant of the server).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Tenant {
    pub users: HashMap<String, User>,
    pub channels: HashMap<String, ChannelRecord>,
    /// Cached peer messages per receiver, oldest first, with their quotas' totals.
    pub offline: OfflineCache,
    /// Users whose presence the change being applied changed, in order, until
    /// `Hub::apply` tells their followers on this node (never kept across changes).
    #[serde(skip)]
    pub presence_noted: Vec<String>,
    /// Who the REST API's user feed holds as online (`feeds.rs`; `admin.rs` changes it).
    #[serde(default)]
    pub admin: AppAdmin,
    /// The last epoch given in this app (see `Tenant::next_epoch`).
    #[serde(default)]
    next_epoch: u64,
}

impl Tenant {
    /// A new epoch of this app, for a change applied at `now_ms` (its stamp, so every
    /// node gives the same): larger than any given before in the app, and, as it counts
    /// from the clock (in units of 1/1024 ms), larger than those of before too should
    /// Redis lose the app's state (and so this counter). Timers tell their current run
    /// from a stale one by it, a user's attributes tell its generations apart
    /// (`engine/user_attributes.rs`), and a channel's attributes which of two views of
    /// its membership is the later (`engine/channel_attributes.rs`). Below 2^53 until the
    /// year 2248: exact in Lua's numbers.
    pub fn next_epoch(&mut self, now_ms: u64) -> u64 {
        self.next_epoch = (self.next_epoch + 1).max(now_ms << 10);
        self.next_epoch
    }

    /// The last epoch given (see [`Tenant::next_epoch`]).
    pub fn epoch(&self) -> u64 {
        self.next_epoch
    }

    /// `user`'s presence as peers see it.
    pub fn status_of(&self, user: &str) -> PeerStatus {
        match self.users.get(user) {
            Some(entry) if entry.conn.is_some() => PeerStatus::Online,
            Some(_) => PeerStatus::Unreachable,
            None => PeerStatus::Offline,
        }
    }

    /// The presence of each of `peers` as peers see it, in their order (an id named twice
    /// is listed once: the map keeps the first).
    pub fn statuses_of(&self, peers: &[String]) -> OrderedPeers {
        peers
            .iter()
            .map(|peer| (peer.clone(), self.status_of(peer)))
            .collect()
    }

    /// The connection `user` is logged in on, if online.
    pub fn conn_of(&self, user: &str) -> Option<&ConnRef> {
        self.users.get(user).and_then(|u| u.conn.as_ref())
    }

    /// Every node this app's state names: those holding its connections, and the owners
    /// of its grace timers.
    pub fn nodes(&self) -> BTreeSet<NodeId> {
        let mut named = BTreeSet::new();
        for user in self.users.values() {
            named.extend(user.conn.as_ref().map(|c| c.id.node));
            named.extend(user.grace.map(|(_, node)| node));
        }
        named
    }
}

/// A peer message this node's sender waits to see acked.
#[derive(Debug)]
pub(super) struct PendingAck {
    pub app: String,
    pub receiver: String,
    pub sender: ConnHandle,
    pub request_id: u32,
    pub result: SendResult,
    /// The ack timeout, cancelled when the ack comes.
    pub timer: HubTimer,
}

/// The shared state: per app, what every node serving that app holds alike (what a node
/// loads when its first user of the app logs in).
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub apps: HashMap<String, Tenant>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub shared: Shared,
    /// Acks this node waits for (its senders'), by message id.
    pub pending_acks: HashMap<u64, PendingAck>,
    /// Whose presence this node's connections follow (`watchers.rs`).
    pub watchers: Watchers,
}

impl Shared {
    /// `user` of `app`, if the state knows it.
    pub fn user(&self, app: &str, user: &str) -> Option<&User> {
        self.apps.get(app)?.users.get(user)
    }

    /// `user`'s generation while `conn` is its session (it ends with a kick, a remote
    /// login elsewhere or a logout).
    pub fn session_generation(&self, app: &str, user: &str, conn: ConnId) -> Option<u64> {
        self.user(app, user)
            .filter(|u| u.conn.as_ref().map(|c| c.id) == Some(conn))
            .map(|u| u.generation)
    }

    /// `channel` of `app`, if the state knows it.
    pub fn channel(&self, app: &str, channel: &str) -> Option<&ChannelRecord> {
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

    /// Every node the state names, with the apps that name it: connections, and the
    /// owners of grace timers.
    pub(super) fn nodes(&self) -> BTreeMap<NodeId, BTreeSet<String>> {
        let mut nodes: BTreeMap<NodeId, BTreeSet<String>> = BTreeMap::new();
        for (name, app) in &self.apps {
            for node in app.nodes() {
                nodes.entry(node).or_default().insert(name.clone());
            }
        }
        nodes
    }
}

impl State {
    /// A new epoch of `app` ([`Tenant::next_epoch`]): counted per app, so that every node
    /// holding the app gives the same one whatever other apps it holds.
    pub(super) fn next_epoch(&mut self, app: &str, now_ms: u64) -> u64 {
        let apps = &mut self.shared.apps;
        if !apps.contains_key(app) {
            apps.insert(app.to_string(), Tenant::default());
        }
        apps.get_mut(app)
            .expect("inserted above")
            .next_epoch(now_ms)
    }

    pub(super) fn apps(&mut self) -> &mut HashMap<String, Tenant> {
        &mut self.shared.apps
    }

    /// Replaces `app`'s state with `tenant` (loaded, or reloaded by an engine that lost
    /// its place; `None`: forgotten): this node's connections to the app are closed with
    /// `close_code` first, since the new state knows nothing of them; their clients log
    /// in again.
    pub(super) fn replace_app(&mut self, app: &str, tenant: Option<Tenant>, close_code: u16) {
        if let Some(old) = self.shared.apps.get(app) {
            for user in old.users.values() {
                if let Some(conn) = user.conn.as_ref().and_then(|c| c.local.as_ref()) {
                    conn.close(close_code, "server state reloaded");
                }
            }
        }
        match tenant {
            Some(tenant) => {
                self.shared.apps.insert(app.to_string(), tenant);
            }
            None => {
                self.shared.apps.remove(app);
            }
        }
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

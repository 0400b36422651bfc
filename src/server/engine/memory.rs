//! The single-node engine (the default): a change is applied the moment it is submitted,
//! under the hub's lock, so the order of changes is the order of the lock. SQLite (`Store`)
//! keeps history, the offline cache and the message id counter; attributes, presence
//! subscriptions and bans are in memory (`user_attributes.rs`, `channel_attributes.rs`,
//! `subscriptions.rs`, `bans.rs`).

use std::sync::Mutex;

use crate::protocol::HistoryMessage;
use crate::server::outbox::ConnHandle;
use crate::server::store::{HistoryQuery, Loaded, Store, ID_BLOCK};

use super::bans::{BanStore, InMemoryBans};
use super::channel_attributes::InMemoryChannelAttributes;
use super::event_feeds::{EventFeedStore, InMemoryEventFeeds};
use super::invitations::{InMemoryInvitations, InvitationStore};
use super::subscriptions::{InMemorySubscriptions, SubscriptionStore};
use super::user_attributes::InMemoryUserAttributes;
use super::{
    BoxFuture, Change, ChannelAttributeStore, Engine, MessageStore, Node, NodeId, ReadError, Stamp,
    Submitted, UserAttributeStore,
};

/// One node, its state in memory, its data in SQLite.
#[derive(Debug)]
pub struct MemoryEngine {
    store: Store,
    store_id: String,
    ids: Mutex<Ids>,
    user_attributes: InMemoryUserAttributes,
    channel_attributes: InMemoryChannelAttributes,
    event_feeds: InMemoryEventFeeds,
    invitations: InMemoryInvitations,
    subscriptions: InMemorySubscriptions,
    bans: InMemoryBans,
}

/// The message id counter and its reservation on disk.
#[derive(Debug)]
struct Ids {
    next: u64,
    /// Ids below this are reserved on disk: the only ones that may be handed out.
    reserved: u64,
    /// The next reservation, asked for ahead of need: (its bound, committed signal).
    reserving: Option<(u64, std::sync::mpsc::Receiver<()>)>,
}

impl MemoryEngine {
    /// The engine over an opened store and what it loaded at start-up (the offline cache
    /// goes to the hub: see `Hub::new`).
    pub fn new(store: Store, loaded: &Loaded) -> Self {
        MemoryEngine {
            store,
            store_id: loaded.store_id.clone(),
            ids: Mutex::new(Ids {
                next: loaded.next_message_id.max(1),
                reserved: loaded.reserved_up_to,
                reserving: None,
            }),
            user_attributes: InMemoryUserAttributes::default(),
            channel_attributes: InMemoryChannelAttributes::default(),
            event_feeds: InMemoryEventFeeds::default(),
            invitations: InMemoryInvitations::default(),
            subscriptions: InMemorySubscriptions::default(),
            bans: InMemoryBans::default(),
        }
    }
}

impl Ids {
    /// Keeps `next` within the persisted reservation: asks for the next block half a
    /// block ahead, and in the rare case that it is not committed by the time it is
    /// needed, waits for it (an fsync, under the hub's lock: ids must never outrun the
    /// disk).
    fn keep_reserved(&mut self, store: &Store) {
        if let Some((up_to, committed)) = &self.reserving {
            let needed = self.next >= self.reserved;
            let done = if needed {
                committed.recv().is_ok()
            } else {
                committed.try_recv().is_ok()
            };
            if done {
                self.reserved = *up_to;
                self.reserving = None;
            } else if needed {
                tracing::error!("message id reservation failed; ids may repeat after a crash");
                self.reserved = *up_to;
                self.reserving = None;
            }
        }
        if self.reserving.is_none() && self.next + ID_BLOCK / 2 >= self.reserved {
            let up_to = self.reserved.max(self.next) + ID_BLOCK;
            self.reserving = Some((up_to, store.reserve_ids(up_to)));
        }
    }
}

impl Engine for MemoryEngine {
    fn node(&self) -> NodeId {
        0
    }

    fn submit(&self, node: &dyn Node, change: Change, conn: Option<ConnHandle>) -> Submitted {
        let stamp = Stamp {
            origin: 0,
            message_id: None,
            now_ms: crate::protocol::now_ms(),
            number: 0,
        };
        let mut change = Some(change);
        let mut outcome = None;
        node.with_state(&mut |state| {
            if let Some(change) = change.take() {
                outcome = Some(state.apply(change, stamp, conn.as_ref()));
            }
        });
        Submitted::Applied(outcome.unwrap_or(super::Outcome::Done))
    }

    fn caught_up(&self, _node: &dyn Node, _app: Option<&str>) -> Option<BoxFuture<()>> {
        None
    }

    fn next_message_id(&self) -> u64 {
        let mut ids = self
            .ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = ids.next;
        ids.next += 1;
        ids.keep_reserved(&self.store);
        id
    }

    fn messages(&self) -> &dyn MessageStore {
        &self.store
    }

    fn user_attributes(&self) -> &dyn UserAttributeStore {
        &self.user_attributes
    }

    fn channel_attributes(&self) -> &dyn ChannelAttributeStore {
        &self.channel_attributes
    }

    fn event_feeds(&self) -> &dyn EventFeedStore {
        &self.event_feeds
    }

    fn invitations(&self) -> &dyn InvitationStore {
        &self.invitations
    }

    fn subscriptions(&self) -> &dyn SubscriptionStore {
        &self.subscriptions
    }

    fn bans(&self) -> &dyn BanStore {
        &self.bans
    }

    fn queue_depth(&self) -> usize {
        self.store.queue_depth()
    }

    fn store_id(&self) -> String {
        self.store_id.clone()
    }

    fn start(&self, _node: &dyn Node) {}

    fn stop(&self) -> BoxFuture<()> {
        let store = self.store.clone();
        Box::pin(async move { store.stop().await })
    }

    fn failed(&self) -> BoxFuture<()> {
        let store = self.store.clone();
        Box::pin(async move { store.ended().await })
    }
}

impl MessageStore for Store {
    fn append_history(&self, app: &str, conv: &str, message: HistoryMessage, keep: u32) {
        Store::append_history(self, app, conv, message, keep);
    }

    fn cache_offline(
        &self,
        app: &str,
        receiver: &str,
        message: HistoryMessage,
        cap: usize,
    ) -> tokio::sync::oneshot::Receiver<()> {
        Store::cache_offline(self, app, receiver, message, cap)
    }

    fn drop_offline(&self, app: &str, receiver: &str, message_ids: Vec<u64>) {
        Store::drop_offline(self, app, receiver, message_ids);
    }

    fn history(
        &self,
        app: &str,
        conv: &str,
        query: HistoryQuery,
    ) -> BoxFuture<Result<Vec<HistoryMessage>, ReadError>> {
        let (store, app, conv) = (self.clone(), app.to_string(), conv.to_string());
        Box::pin(async move { Ok(Store::history(&store, &app, &conv, query).await?) })
    }
}

//! The hub's PEER family: a peer message delivered, cached for an offline receiver, or
//! refused; its ack and the ack's timeout.

use crate::protocol::{Event, HistoryMessage, Message, PeerError, Reply, SendResult, WireCode};
use crate::server::engine::{peer_conversation, PeerSend, Stamp};

use super::state::{Here, PendingAck, State};
use super::Hub;

impl Hub {
    /// The message id and timestamp of a message in the change stamped `stamp`.
    pub(super) fn stamp_message(&self, stamp: Stamp) -> (u64, u64) {
        let id = stamp
            .message_id
            .unwrap_or_else(|| self.engine().next_message_id());
        (id, stamp.now_ms)
    }

    /// `send_peer` after validation and rate limiting; `server_cache_full`: the origin's
    /// verdict on the whole server's offline cache (`Change::SendPeer`).
    pub(super) fn send_peer(
        &self,
        state: &mut State,
        (app, from, to): (&str, &str, &str),
        message: Message,
        (offline, server_cache_full): (bool, bool),
        request_id: u32,
        here: Here<'_>,
    ) -> PeerSend {
        let receiver = state.shared.user(app, to).and_then(|u| u.conn.clone());
        if receiver.is_none() && !offline {
            return PeerSend::Unreachable;
        }
        if receiver.is_none() {
            if let Some(why) =
                self.offline_quota_spent(state, (app, from, &message), server_cache_full)
            {
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
    pub(super) fn ack(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        message_id: u64,
        here: Here,
    ) {
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

    pub(super) fn ack_expired(&self, message_id: u64) {
        let mut state = self.lock();
        if let Some(pending) = state.pending_acks.remove(&message_id) {
            pending.sender.send_reply(&Reply::code(
                pending.request_id,
                PeerError::Timeout.code(),
                "the peer did not acknowledge the message in time",
            ));
        }
    }

    /// Whether caching `message` from `from` to `to` would overfill the whole server's
    /// offline cache: every app this node holds (false at once if `to` is online, as
    /// this node's copy has it: then it is not cached). Judged by the origin of a
    /// `send_peer` before it submits the change (`Change::SendPeer::server_cache_full`):
    /// the apps a node holds differ from node to node, the verdict every node applies
    /// must not.
    pub fn offline_cache_full(
        &self,
        (app, from, to): (&str, &str, &str),
        message: &Message,
    ) -> bool {
        let state = self.lock();
        if state.shared.user(app, to).is_some_and(|u| u.conn.is_some()) {
            return false;
        }
        let size = super::offline::size_of(from, message);
        let total: usize = state.shared.apps.values().map(|a| a.offline.bytes()).sum();
        total + size > self.config().offline_max_bytes
    }

    /// Why `message` from `from` cannot be cached, if its quotas are spent: the server's
    /// whole cache (the origin's verdict, `server_cache_full`) or its sender's share in
    /// `app` (judged on the app's state, alike on every node).
    pub(super) fn offline_quota_spent(
        &self,
        state: &State,
        (app, from, message): (&str, &str, &Message),
        server_cache_full: bool,
    ) -> Option<&'static str> {
        if server_cache_full {
            return Some("the server's offline cache is full");
        }
        let config = self.config();
        let size = super::offline::size_of(from, message);
        let sent = state
            .shared
            .apps
            .get(app)
            .map_or(0, |a| a.offline.sent_by(from));
        if sent + size > config.offline_per_sender_bytes {
            return Some("your messages fill your share of the offline cache");
        }
        None
    }
}

pub(super) fn forget_cached(state: &mut State, app: &str, receiver: &str, message_id: u64) {
    if let Some(app_state) = state.apps().get_mut(app) {
        app_state.offline.remove(receiver, message_id);
    }
}

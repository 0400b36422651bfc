//! The offline cache of one app as the hub holds it: cached peer messages per receiver,
//! oldest first, with the bytes and the per-sender totals its quotas need. A new cached
//! message is refused (`PeerSend::CacheFull`, answered 3) when the whole server's cache
//! holds `Config::offline_max_bytes` or its sender's cached messages hold
//! `Config::offline_per_sender_bytes`: ids never seen cost at most that much memory, on
//! disk and again at the next start. Every node must decide alike: the sender's share is
//! judged on the app's state when the change is applied, the whole server's by the
//! origin of the `send_peer` over every app it holds, carried in the change
//! (`Change::SendPeer::server_cache_full`; on several nodes a node holds only the apps it
//! serves, so the sum differs from node to node).
//!
//! Every change to the cache goes through these methods, so the totals cannot drift; a
//! loaded or received copy (`Deserialize`) counts them anew.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::protocol::{HistoryMessage, Message};

/// Bytes a cached message counts for: its body as JSON, its sender, and the room its
/// entry takes besides.
pub(super) fn size_of(from: &str, message: &Message) -> usize {
    message.encoded_len() + from.len() + 64
}

fn size(message: &HistoryMessage) -> usize {
    size_of(&message.from, &message.message)
}

/// One app's cached messages; see the module header.
#[derive(Debug, Default)]
pub(super) struct OfflineCache {
    receivers: HashMap<String, VecDeque<HistoryMessage>>,
    bytes: usize,
    /// Sender → bytes of its messages cached (senders with none are not kept).
    per_sender: HashMap<String, usize>,
}

impl OfflineCache {
    /// Bytes of every message cached in this app.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of the messages `sender` has cached.
    pub fn sent_by(&self, sender: &str) -> usize {
        self.per_sender.get(sender).copied().unwrap_or(0)
    }

    /// Caches `message` for `receiver`; past `cap` messages the receiver's oldest go.
    pub fn push(&mut self, receiver: &str, message: HistoryMessage, cap: usize) {
        self.count(&message, true);
        let queue = self.receivers.entry(receiver.to_string()).or_default();
        queue.push_back(message);
        let mut dropped = Vec::new();
        while queue.len() > cap {
            dropped.extend(queue.pop_front());
        }
        for message in &dropped {
            self.count(message, false);
        }
    }

    /// The receiver's backlog, oldest first.
    pub fn backlog(&self, receiver: &str) -> impl Iterator<Item = &HistoryMessage> {
        self.receivers.get(receiver).into_iter().flatten()
    }

    /// Keeps the receiver's messages for which `keep` holds; returns the ids of the others.
    pub fn retain(
        &mut self,
        receiver: &str,
        mut keep: impl FnMut(&HistoryMessage) -> bool,
    ) -> Vec<u64> {
        let Some(queue) = self.receivers.get_mut(receiver) else {
            return Vec::new();
        };
        let mut gone = Vec::new();
        queue.retain(|message| {
            let kept = keep(message);
            if !kept {
                gone.push(message.clone());
            }
            kept
        });
        if queue.is_empty() {
            self.receivers.remove(receiver);
        }
        for message in &gone {
            self.count(message, false);
        }
        gone.into_iter().map(|m| m.message_id).collect()
    }

    /// Forgets one cached message; true if it was there.
    pub fn remove(&mut self, receiver: &str, message_id: u64) -> bool {
        !self
            .retain(receiver, |m| m.message_id != message_id)
            .is_empty()
    }

    fn count(&mut self, message: &HistoryMessage, added: bool) {
        let size = size(message);
        if added {
            self.bytes += size;
            *self.per_sender.entry(message.from.clone()).or_default() += size;
        } else {
            self.bytes = self.bytes.saturating_sub(size);
            if let Some(sent) = self.per_sender.get_mut(&message.from) {
                *sent = sent.saturating_sub(size);
                if *sent == 0 {
                    self.per_sender.remove(&message.from);
                }
            }
        }
    }
}

impl Serialize for OfflineCache {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.receivers.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for OfflineCache {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let receivers = HashMap::<String, VecDeque<HistoryMessage>>::deserialize(deserializer)?;
        let mut cache = OfflineCache::default();
        for (receiver, queue) in receivers {
            for message in queue {
                cache.push(&receiver, message, usize::MAX);
            }
        }
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;

    fn message(id: u64, from: &str) -> HistoryMessage {
        HistoryMessage {
            message_id: id,
            from: from.into(),
            message: Message::text("x".repeat(100)),
            server_ts: id,
        }
    }

    #[test]
    fn totals_follow_every_change() {
        let mut cache = OfflineCache::default();
        let (spam, ham) = (size(&message(1, "spam")), size(&message(3, "ham")));
        cache.push("a", message(1, "spam"), 2);
        cache.push("a", message(2, "spam"), 2);
        cache.push("a", message(3, "ham"), 2);
        // The cap of 2 dropped the oldest.
        assert_eq!(cache.bytes(), spam + ham);
        assert_eq!(cache.sent_by("spam"), spam);
        assert_eq!(cache.sent_by("ham"), ham);
        assert!(cache.remove("a", 2));
        assert!(!cache.remove("a", 2));
        assert_eq!(cache.retain("a", |_| false), vec![3]);
        assert_eq!(cache.bytes(), 0);
        assert!(cache.per_sender.is_empty() && cache.receivers.is_empty());
        cache.push("b", message(5, "ham"), 10);
        let copy: OfflineCache =
            serde_json::from_str(&serde_json::to_string(&cache).unwrap()).unwrap();
        assert_eq!(copy.bytes(), ham);
        assert_eq!(copy.backlog("b").count(), 1);
    }
}

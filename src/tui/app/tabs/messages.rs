//! The tabs' messages: ours going out (shown at once, pending, then marked by the answer:
//! delivered, cached, unreachable, timed out, failed; `/retry` sends a failed one again)
//! and others' coming in.

use crate::protocol::{Message, SendResult};

use super::Tabs;
use crate::tui::app::jobs::{Jobs, Pending};
use crate::tui::job::{Failure, Job};
use crate::tui::tab::{Body, ChatMessage, Entry, EntryKind, Mark};
use crate::tui::target::Target;

impl Tabs {
    /// Sends `message` to a conversation: shown at once, pending, and asked of the loop.
    pub fn send(&mut self, target: &Target, message: Message, me: &str, now: u64, jobs: &mut Jobs) {
        let local_id = self.next_local_id;
        self.next_local_id += 1;
        let i = self.open(target, jobs);
        let tab = &mut self.list[i];
        tab.push(Entry {
            ts: now,
            kind: EntryKind::Message(ChatMessage {
                id: None,
                local_id: Some(local_id),
                from: me.to_string(),
                body: Body::from_message(&message),
                mark: Some(Mark::Pending),
                offline: false,
                mention: false,
                own: true,
            }),
        });
        tab.scroll = 0;
        ask_send(jobs, target, local_id, message);
    }

    /// Resends the newest message of the tab in front whose send failed.
    pub fn retry(&mut self, now: u64, jobs: &mut Jobs) {
        let tab = &mut self.list[self.active];
        let Some(target) = tab.target.clone() else {
            return;
        };
        let found = tab
            .entries
            .iter_mut()
            .rev()
            .find_map(|e| match &mut e.kind {
                EntryKind::Message(m) if m.mark.as_ref().is_some_and(Mark::retryable) => Some(m),
                _ => None,
            });
        let Some(message) = found else {
            tab.info(now, "nothing to retry: no failed message in this tab");
            return;
        };
        message.mark = Some(Mark::Pending);
        let wire = message.body.to_message();
        let local_id = message.local_id.unwrap_or(0);
        ask_send(jobs, &target, local_id, wire);
    }

    /// The answer to our message `local_id` to `target`: its mark, and the server's id
    /// and time.
    pub fn on_sent(&mut self, target: &Target, local_id: u64, result: Result<SendResult, Failure>) {
        let Some(i) = self.index_of(target) else {
            return;
        };
        let peer = matches!(target, Target::Peer(_));
        if peer && result.is_ok() {
            // Its client acknowledged the message: the peer is online.
            self.list[i].peer_seen_online();
        }
        let Some(entry) = self.list[i].own_entry_mut(local_id) else {
            return;
        };
        let EntryKind::Message(message) = &mut entry.kind else {
            return;
        };
        match result {
            Ok(sent) => {
                let mark = if peer { Mark::Received } else { Mark::Accepted };
                message.id = Some(sent.message_id);
                message.mark = Some(mark.clone());
                // The server's time, as history will have it (and what repeats match).
                entry.ts = sent.server_ts;
                self.marks.insert((target.clone(), sent.message_id), mark);
            }
            Err(failure) if peer => message.mark = Some(peer_mark(&failure)),
            Err(failure) => message.mark = Some(channel_mark(&failure)),
        }
    }

    /// A message that arrived in tab `index`, sent at `ts`; `false` for one shown already.
    pub fn receive(&mut self, index: usize, ts: u64, message: ChatMessage) -> bool {
        let in_front = index == self.active;
        let tab = &mut self.list[index];
        // A reconnect's catch-up may bring a message again (same id and time).
        if message.id.is_some_and(|id| tab.holds(id, ts)) {
            return false;
        }
        if tab.peer().is_some() && !message.own {
            // The peer talks, so it has had what was cached for it; live, it is online.
            if message.offline {
                tab.cached_delivered();
            } else {
                tab.peer_seen_online();
            }
        }
        if !(in_front && tab.scroll == 0) {
            if tab.unread == 0 && tab.unread_marker.is_none() {
                // The first one not seen: the marker goes above it (push counts it).
                tab.unread_marker = Some(0);
            }
            tab.unread += 1;
        }
        if message.mention && !in_front {
            tab.mentions += 1;
        }
        tab.push(Entry {
            ts,
            kind: EntryKind::Message(message),
        });
        true
    }
}

fn ask_send(jobs: &mut Jobs, target: &Target, local_id: u64, message: Message) {
    let request = match target {
        Target::Peer(peer) => Job::SendPeer {
            peer: peer.clone(),
            message,
        },
        Target::Channel(channel) => Job::SendChannel {
            channel: channel.clone(),
            message,
        },
    };
    jobs.ask_with(Pending::Send { local_id }, request);
}

/// A failed peer send's mark, from its PEER code (docs/protocol.md, "Result codes, by
/// family": 4 cached, 3 unreachable, 2 timeout).
fn peer_mark(failure: &Failure) -> Mark {
    use crate::protocol::codes::peer;
    match failure.code {
        Some(peer::CACHED_BY_SERVER) => Mark::Cached,
        Some(peer::PEER_UNREACHABLE) => Mark::Unreachable,
        Some(peer::TIMEOUT) => Mark::TimedOut,
        _ => Mark::Failed(failure.to_string()),
    }
}

fn channel_mark(failure: &Failure) -> Mark {
    match failure.code {
        Some(crate::protocol::codes::channel_msg::TIMEOUT) => Mark::TimedOut,
        _ => Mark::Failed(failure.to_string()),
    }
}

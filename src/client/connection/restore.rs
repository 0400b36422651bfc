//! What a client remembers of its session ([`Memory`], changed by the [`MemoryChange`] of each
//! successful reply) and how it restores it after a reconnect: rejoin channels,
//! re-subscribe presence, re-send attributes, catch up on missed channel messages with
//! `history` (after the last message delivered, or after the newest one at join time,
//! which a fresh join asks for), then deliver what arrived meanwhile. A repeated channel
//! message is recognised by its id and server time (`ChannelMark::admit`), never by an id
//! alone: a server restarted on a fresh store starts its ids over; when the login reply
//! names another `store`, what was seen is forgotten (`lifecycle.rs`). Something new to
//! remember goes in [`Memory`], [`MemoryChange`] and `start_restore`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tokio::time::Instant;

use super::{ConnectionHandler, HeldAnswer, Phase, Purpose};
use crate::protocol::codes::{join, leave};
use crate::protocol::limits::MAX_HISTORY_LIMIT;
use crate::protocol::{
    now_ms, AttributeOwner, AttributeWrite, Attributes, ChangeReason, ConnectionState, Event,
    HistoryResult, Op, Reply,
};

/// What the client re-establishes after a reconnect: the effects of its successful ops.
#[derive(Default)]
pub(super) struct Memory {
    /// Joined channels, with how far the application has seen each.
    pub(super) channels: BTreeMap<String, ChannelMark>,
    pub(super) subscribed: BTreeSet<String>,
    pub(super) attributes: Attributes,
    /// Server clock minus local clock, in ms, measured at login.
    pub(super) server_offset_ms: i64,
    /// The `store` the server named at the last login (`None`: it names none).
    pub(super) store: Option<String>,
}

/// How many delivered messages per channel are remembered to recognise a repeat.
const RECENT_MESSAGES: usize = 256;

/// Dedupe key of a message: its id and server time. A repeat of a message (catch-up and
/// live stream overlapping) has both; a new message of a server whose ids started over
/// reuses an id but not its time, so it is never taken for a repeat.
pub(super) type MessageKey = (u64, u64);

/// How far a joined channel has been delivered to the application.
#[derive(Debug, Clone)]
pub(super) struct ChannelMark {
    /// The last `message_id` delivered, if any: where catch-up starts.
    pub(super) last_seen: Option<u64>,
    /// The keys of the last [`RECENT_MESSAGES`] delivered, to skip repeats.
    pub(super) recent: VecDeque<MessageKey>,
    /// The newest message id at join time (from a `history` of one message). Only a
    /// starting point for catch-up, never a reason to drop a live message: the reply may
    /// overtake the event of that very message.
    pub(super) baseline: Option<u64>,
    /// When the channel was joined, in server time (ms): without a `last_seen`, catch-up
    /// takes the messages stored after it.
    pub(super) joined_at_ms: u64,
}

impl ChannelMark {
    fn new(joined_at_ms: u64) -> Self {
        ChannelMark {
            last_seen: None,
            recent: VecDeque::new(),
            baseline: None,
            joined_at_ms,
        }
    }

    /// Whether a message is to be delivered (and then remembers it), or is a repeat of one
    /// already delivered. Only an exact repeat is skipped: an id at or below the last one
    /// seen that is not a repeat means the server's ids started over (a restart on a fresh
    /// store, from a server that does not name its store), so it is delivered, and the
    /// cursor follows the new ids.
    pub(super) fn admit(&mut self, key: MessageKey) -> bool {
        if self.recent.contains(&key) {
            return false;
        }
        if self.recent.len() == RECENT_MESSAGES {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        self.last_seen = Some(key.0);
        true
    }

    /// Forgets what was seen on another store: catch-up starts again from the join time.
    pub(super) fn forget_store(&mut self) {
        *self = ChannelMark::new(self.joined_at_ms);
    }

    /// Where catch-up starts: after the last message delivered, else after the newest
    /// one at join time.
    fn cursor(&self) -> Option<u64> {
        self.last_seen.or(self.baseline)
    }
}

/// What a successful reply changes in [`Memory`].
pub(super) enum MemoryChange {
    None,
    Joined(String),
    Left(String),
    Subscribed(Vec<String>),
    Unsubscribed(Vec<String>),
    /// A write of the user's own attributes.
    Attributes(AttributeWrite),
    Renewed(String),
}

impl MemoryChange {
    pub(super) fn of(op: &Op) -> Self {
        match op {
            Op::Join { channel } => MemoryChange::Joined(channel.clone()),
            Op::Leave { channel } => MemoryChange::Left(channel.clone()),
            Op::SubscribePeersOnline { peers } => MemoryChange::Subscribed(peers.clone()),
            Op::UnsubscribePeersOnline { peers } => MemoryChange::Unsubscribed(peers.clone()),
            Op::RenewToken { token } => MemoryChange::Renewed(token.clone()),
            other => match other.attribute_write() {
                Some((AttributeOwner::Me, write)) => MemoryChange::Attributes(write),
                _ => MemoryChange::None,
            },
        }
    }
}

pub(super) enum RestoreStep {
    Join(String),
    History(String),
    Other,
}

impl ConnectionHandler {
    pub(super) fn start_restore(&mut self) {
        self.phase = Phase::Restoring;
        self.catch_up.clear();
        self.restore_outstanding = 0;
        let deadline = Instant::now() + self.config.request_timeout;
        let channels: Vec<String> = self.memory.channels.keys().cloned().collect();
        for channel in channels {
            self.send_restore(
                Op::Join {
                    channel: channel.clone(),
                },
                RestoreStep::Join(channel),
                deadline,
            );
        }
        if !self.memory.subscribed.is_empty() {
            let peers = self.memory.subscribed.iter().cloned().collect();
            self.send_restore(
                Op::SubscribePeersOnline { peers },
                RestoreStep::Other,
                deadline,
            );
        }
        if !self.memory.attributes.is_empty() {
            let attributes = self.memory.attributes.clone();
            self.send_restore(
                Op::SetUserAttributes { attributes },
                RestoreStep::Other,
                deadline,
            );
        }
        if self.restore_outstanding == 0 {
            self.finish_restore();
        }
    }

    fn send_restore(&mut self, op: Op, step: RestoreStep, deadline: Instant) {
        self.restore_outstanding += 1;
        self.send_request(op, Purpose::Restore(step), deadline);
    }

    /// A restore step was answered (`reply`) or timed out (`None`).
    pub(super) fn on_restore_reply(&mut self, step: RestoreStep, reply: Option<&Reply>) {
        self.restore_outstanding = self.restore_outstanding.saturating_sub(1);
        let code = reply.map(|r| r.code);
        match step {
            RestoreStep::Join(channel) => match code {
                Some(join::OK | join::ALREADY_JOINED) => self.fetch_missed(&channel),
                _ => {
                    // Kept in memory: the next reconnect tries again.
                    tracing::warn!(%channel, ?code, "could not rejoin channel after reconnect");
                }
            },
            RestoreStep::History(channel) => {
                if let Some(reply) = reply.filter(|r| r.code == 0) {
                    match reply.result::<HistoryResult>() {
                        Ok(result) => self.on_missed(&channel, result),
                        Err(e) => tracing::warn!(%channel, error = %e, "bad history reply"),
                    }
                } else {
                    tracing::warn!(%channel, ?code, "could not fetch missed messages");
                }
            }
            RestoreStep::Other => {
                if code != Some(0) {
                    tracing::warn!(?code, "could not restore subscriptions or attributes");
                }
            }
        }
        if self.restore_outstanding == 0 && self.phase == Phase::Restoring {
            self.finish_restore();
        }
    }

    /// Asks for the messages of `channel` after the last one delivered (or caught up).
    fn fetch_missed(&mut self, channel: &str) {
        let Some(mark) = self.memory.channels.get(channel) else {
            return;
        };
        let after = self
            .catch_up
            .get(channel)
            .and_then(|messages| messages.last())
            .and_then(message_id)
            .or(mark.cursor());
        let deadline = Instant::now() + self.config.request_timeout;
        self.send_restore(
            Op::History {
                peer: None,
                channel: Some(channel.to_string()),
                before: None,
                after,
                limit: Some(MAX_HISTORY_LIMIT),
            },
            RestoreStep::History(channel.to_string()),
            deadline,
        );
    }

    fn on_missed(&mut self, channel: &str, result: HistoryResult) {
        let Some(mark) = self.memory.channels.get(channel).cloned() else {
            return;
        };
        let own_user = self.login_state.as_ref().map(|s| s.user.clone());
        // A page cut to one object's size (`truncated`) has more behind it too.
        let full_page = result.truncated || result.messages.len() >= MAX_HISTORY_LIMIT as usize;
        let missed = result.messages.into_iter().filter(|m| {
            // The sender does not get its own messages back; neither does catch-up.
            Some(&m.from) != own_user.as_ref()
                && (mark.cursor().is_some() || m.server_ts > mark.joined_at_ms)
        });
        self.catch_up
            .entry(channel.to_string())
            .or_default()
            .extend(missed.map(|m| Event::MessageFromChannel {
                channel: channel.to_string(),
                from: m.from,
                message: m.message,
                message_id: m.message_id,
                server_ts: m.server_ts,
            }));
        // With a cursor the pages go forward in time; without one we only have the newest.
        if full_page && mark.cursor().is_some() {
            self.fetch_missed(channel);
        }
    }

    fn finish_restore(&mut self) {
        self.phase = Phase::Online;
        if let Some(login_state) = &mut self.login_state {
            login_state.attempt = 0;
        }
        self.set_state(ConnectionState::Connected, ChangeReason::LoginSuccess, None);
        for (_, messages) in std::mem::take(&mut self.catch_up) {
            for event in messages {
                self.deliver(event);
            }
        }
        for event in std::mem::take(&mut self.held) {
            self.deliver(event);
        }
        for queued in std::mem::take(&mut self.queued) {
            if queued.reply.is_closed() {
                continue;
            }
            let effect = MemoryChange::of(&queued.op);
            let purpose = Purpose::Caller {
                reply: queued.reply,
                effect,
            };
            let deadline = Instant::now() + self.config.request_timeout;
            self.send_request(queued.op, purpose, deadline);
        }
    }

    /// Asks for the newest message of a channel just joined, so that a catch-up after a
    /// reconnect starts exactly after it even if nothing arrives before the drop. The
    /// caller's join is answered after it (one more round trip), so that a drop right
    /// after `join` returns still catches up exactly.
    pub(super) fn request_baseline(&mut self, channel: String, join: HeldAnswer) {
        let deadline = Instant::now() + self.config.request_timeout;
        let op = Op::History {
            peer: None,
            channel: Some(channel.clone()),
            before: None,
            after: None,
            limit: Some(1),
        };
        self.send_request(op, Purpose::Baseline { channel, join }, deadline);
    }

    pub(super) fn on_baseline(&mut self, channel: &str, reply: &Reply) {
        let Ok(result) = reply.result::<HistoryResult>() else {
            return;
        };
        let newest = result.messages.iter().map(|m| m.message_id).max();
        if let Some(mark) = self.memory.channels.get_mut(channel) {
            mark.baseline = newest;
        }
    }

    /// Records what a successful reply changed; returns the channel of a fresh join, whose
    /// baseline is to be asked for before the caller is answered.
    pub(super) fn apply(&mut self, effect: MemoryChange, code: u32) -> Option<String> {
        let memory = &mut self.memory;
        match effect {
            MemoryChange::Joined(channel) if code == join::OK || code == join::ALREADY_JOINED => {
                if !memory.channels.contains_key(&channel) {
                    let joined_at_ms = server_now(memory.server_offset_ms);
                    memory
                        .channels
                        .insert(channel.clone(), ChannelMark::new(joined_at_ms));
                    return Some(channel);
                }
            }
            MemoryChange::Left(channel) if code == leave::OK || code == leave::NOT_IN_CHANNEL => {
                memory.channels.remove(&channel);
            }
            _ if code != 0 => {}
            MemoryChange::Subscribed(peers) => memory.subscribed.extend(peers),
            MemoryChange::Unsubscribed(peers) => {
                for peer in peers {
                    memory.subscribed.remove(&peer);
                }
            }
            MemoryChange::Attributes(write) => write.apply(&mut memory.attributes),
            MemoryChange::Renewed(token) => {
                if let Some(login_state) = &mut self.login_state {
                    login_state.token = Some(token);
                }
            }
            MemoryChange::None | MemoryChange::Joined(_) | MemoryChange::Left(_) => {}
        }
        None
    }
}

fn message_id(event: &Event) -> Option<u64> {
    match event {
        Event::MessageFromChannel { message_id, .. }
        | Event::MessageFromPeer { message_id, .. } => Some(*message_id),
        _ => None,
    }
}

/// The server's clock now, estimated from the offset measured at login.
fn server_now(offset_ms: i64) -> u64 {
    (now_ms() as i64 + offset_ms).max(0) as u64
}

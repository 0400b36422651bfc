//! One tab (buffer): a conversation's scrollback, unread and mention counts, input history,
//! and for channels the member list and attributes. The home tab (`target: None`) holds
//! what belongs to no conversation. Scrollback entries are appended in O(1) and the view
//! is anchored by entry count, so a tab with a million entries costs no more to show.

use std::collections::VecDeque;

use base64::Engine as _;

use crate::protocol::{ChannelAttribute, HistoryMessage, Message, PeerStatus};

use super::input_history::InputHistory;
use super::target::Target;

/// What became of a message you sent, from the server's result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Sent, no answer yet.
    Pending,
    /// Peer message: the peer's client acknowledged it (PEER 0).
    Received,
    /// Channel message: the server accepted it (CHANNEL_MSG 0); or any message of ours
    /// from the history of an earlier run (the server took it).
    Accepted,
    /// Peer offline; stored for delivery at their next login (PEER 4).
    Cached,
    /// Peer offline and not stored (PEER 3).
    Unreachable,
    /// No acknowledgement in time (PEER 2 / CHANNEL_MSG 2, or the client's timeout).
    TimedOut,
    /// Any other failure, with the reason.
    Failed(String),
}

impl Mark {
    /// The short text drawn after the message.
    pub fn label(&self) -> String {
        match self {
            Mark::Pending => "…".into(),
            Mark::Received | Mark::Accepted => "✓".into(),
            Mark::Cached => "✓ cached".into(),
            Mark::Unreachable => "✗ unreachable".into(),
            Mark::TimedOut => "✗ timed out".into(),
            Mark::Failed(reason) => format!("✗ {reason}"),
        }
    }

    /// True for outcomes that `/retry` may resend.
    pub fn retryable(&self) -> bool {
        matches!(self, Mark::Unreachable | Mark::TimedOut | Mark::Failed(_))
    }
}

/// A message body as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Text(String),
    /// `/me` actions, sent as text starting with "/me ".
    Action(String),
    Raw {
        description: String,
        data: Vec<u8>,
    },
    /// A file (`/file`): a line with its name and size; `/save` downloads it.
    File(Attachment),
    /// An image (`/image`): its thumbnail drawn inline; `/save` downloads the picture.
    Image {
        media: Attachment,
        width: u32,
        height: u32,
        /// PNG or JPEG as the sender made it (empty: none; it is drawn as a file).
        thumbnail: std::sync::Arc<[u8]>,
        thumbnail_width: u32,
        thumbnail_height: u32,
    },
}

/// A file or image a message carries: its media id on the server, its name and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub media_id: String,
    pub name: String,
    pub size: u64,
}

impl Body {
    pub fn from_message(message: &Message) -> Body {
        match message {
            Message::Text { text } => match text.strip_prefix("/me ") {
                Some(action) => Body::Action(action.to_string()),
                None => Body::Text(text.clone()),
            },
            Message::Raw { description, .. } => Body::Raw {
                description: description.clone(),
                data: message.raw_bytes().unwrap_or_default(),
            },
            Message::File {
                media_id,
                name,
                size,
            } => Body::File(Attachment {
                media_id: media_id.clone(),
                name: name.clone(),
                size: *size,
            }),
            Message::Image {
                media_id,
                name,
                size,
                width,
                height,
                thumbnail_width,
                thumbnail_height,
                ..
            } => Body::Image {
                media: Attachment {
                    media_id: media_id.clone(),
                    name: name.clone(),
                    size: *size,
                },
                width: *width,
                height: *height,
                // A thumbnail that is not base64 is no thumbnail: the image is a line.
                thumbnail: message.thumbnail_bytes().unwrap_or_default().into(),
                thumbnail_width: *thumbnail_width,
                thumbnail_height: *thumbnail_height,
            },
        }
    }

    /// The message to send again (`/retry`).
    pub fn to_message(&self) -> Message {
        match self {
            Body::Text(t) => Message::text(t.clone()),
            Body::Action(t) => Message::text(format!("/me {t}")),
            Body::Raw { description, data } => Message::raw(data, description.clone()),
            Body::File(media) => Message::File {
                media_id: media.media_id.clone(),
                name: media.name.clone(),
                size: media.size,
            },
            Body::Image {
                media,
                width,
                height,
                thumbnail,
                thumbnail_width,
                thumbnail_height,
            } => Message::Image {
                media_id: media.media_id.clone(),
                name: media.name.clone(),
                size: media.size,
                width: *width,
                height: *height,
                thumbnail: base64::engine::general_purpose::STANDARD.encode(thumbnail),
                thumbnail_width: *thumbnail_width,
                thumbnail_height: *thumbnail_height,
            },
        }
    }

    /// The text searched for mentions.
    pub fn text(&self) -> &str {
        match self {
            Body::Text(t) | Body::Action(t) => t,
            Body::Raw { description, .. } => description,
            Body::File(media) | Body::Image { media, .. } => &media.name,
        }
    }
}

/// One chat message in a scrollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Server id, once known (received messages, accepted sends).
    pub id: Option<u64>,
    /// Our id for a message we sent, to find it when the result comes back.
    pub local_id: Option<u64>,
    pub from: String,
    pub body: Body,
    /// Only on our own messages.
    pub mark: Option<Mark>,
    /// Delivered from the server's offline cache at login.
    pub offline: bool,
    pub mention: bool,
    pub own: bool,
}

impl ChatMessage {
    /// A message `from` someone (ourselves, on another device) with the server's `id`.
    pub fn received(from: String, message: &Message, id: u64, offline: bool, me: &str) -> Self {
        let body = Body::from_message(message);
        let own = from == me;
        ChatMessage {
            id: Some(id),
            local_id: None,
            mention: !own && mentions(body.text(), me),
            from,
            body,
            mark: None,
            offline,
            own,
        }
    }
}

/// What one scrollback line is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Message(ChatMessage),
    Membership { user: String, joined: bool },
    Info(String),
    Error(String),
}

/// One scrollback entry with its time (UTC ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ts: u64,
    pub kind: EntryKind,
}

impl Entry {
    pub fn message(&self) -> Option<&ChatMessage> {
        match &self.kind {
            EntryKind::Message(m) => Some(m),
            _ => None,
        }
    }
}

/// Whether older history may still be fetched for a tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryState {
    NotLoaded,
    Loading,
    More,
    Complete,
}

/// A tab: a conversation (or the home tab) and what is shown about it.
#[derive(Debug, Clone)]
pub struct Tab {
    pub target: Option<Target>,
    pub entries: VecDeque<Entry>,
    pub unread: usize,
    pub mentions: usize,
    /// Entries hidden below the view (0 = following the newest).
    pub scroll: usize,
    pub input_history: InputHistory,
    /// Channel members, sorted.
    pub members: Vec<String>,
    pub member_count: Option<u64>,
    pub member_filter: String,
    pub member_scroll: usize,
    pub presence: Option<PeerStatus>,
    pub history: HistoryState,
    pub joined: bool,
    /// How many entries the tab held when the user asked to join: whatever arrives before
    /// the join's reply came after the join, so "you joined" goes in before it.
    pub join_asked_at: Option<usize>,
    pub attributes: Vec<ChannelAttribute>,
    pub expand_joins: bool,
    /// The members when our connection was last lost: their rejoins are no news.
    pub returning: Vec<String>,
    /// Where the unread messages begin, as the number of entries below that point
    /// (counted from the end, so older history put in above leaves it in place); shown
    /// as a line until the tab is left after being read.
    pub unread_marker: Option<usize>,
}

/// How far back a repeated message is looked for (a catch-up repeats only recent ones).
const REPEAT_WINDOW: usize = 256;

/// Most search results listed, and most entries looked through for them (newest first):
/// a search costs the same in a tab of a million entries.
pub const MAX_SEARCH_RESULTS: usize = 100;
const MAX_SEARCH_SCAN: usize = 100_000;

/// Messages asked for per `history` page.
pub const HISTORY_PAGE: u32 = 50;

impl Tab {
    pub fn new(target: Option<Target>) -> Tab {
        Tab {
            target,
            entries: VecDeque::new(),
            unread: 0,
            mentions: 0,
            scroll: 0,
            input_history: InputHistory::default(),
            members: Vec::new(),
            member_count: None,
            member_filter: String::new(),
            member_scroll: 0,
            presence: None,
            history: HistoryState::NotLoaded,
            joined: false,
            join_asked_at: None,
            attributes: Vec::new(),
            expand_joins: false,
            returning: Vec::new(),
            unread_marker: None,
        }
    }

    /// The name shown in the tab list: `#channel`, `@peer`, or `rtm`.
    pub fn name(&self) -> String {
        match &self.target {
            None => "rtm".into(),
            Some(Target::Channel(c)) => format!("#{c}"),
            Some(Target::Peer(p)) => format!("@{p}"),
        }
    }

    pub fn channel(&self) -> Option<&str> {
        match &self.target {
            Some(Target::Channel(c)) => Some(c),
            _ => None,
        }
    }

    pub fn peer(&self) -> Option<&str> {
        match &self.target {
            Some(Target::Peer(p)) => Some(p),
            _ => None,
        }
    }

    /// Appends an entry; a view scrolled up stays where it is.
    pub fn push(&mut self, entry: Entry) {
        if self.scroll > 0 {
            self.scroll += 1;
        }
        if let Some(below) = &mut self.unread_marker {
            *below += 1;
        }
        self.entries.push_back(entry);
    }

    /// The index of the first entry below the unread marker, if there is one.
    pub fn unread_marker_at(&self) -> Option<usize> {
        self.unread_marker
            .filter(|&below| below > 0 && below <= self.entries.len())
            .map(|below| self.entries.len() - below)
    }

    pub fn info(&mut self, ts: u64, text: impl Into<String>) {
        self.push(Entry {
            ts,
            kind: EntryKind::Info(text.into()),
        });
    }

    /// An info line at `index` (clamped to the end) rather than at the bottom.
    pub fn insert_info(&mut self, index: usize, ts: u64, text: impl Into<String>) {
        if self.scroll > 0 {
            self.scroll += 1;
        }
        let entry = Entry {
            ts,
            kind: EntryKind::Info(text.into()),
        };
        let index = index.min(self.entries.len());
        if let Some(below) = &mut self.unread_marker {
            if index >= self.entries.len() - (*below).min(self.entries.len()) {
                *below += 1;
            }
        }
        self.entries.insert(index, entry);
    }

    pub fn error(&mut self, ts: u64, text: impl Into<String>) {
        self.push(Entry {
            ts,
            kind: EntryKind::Error(text.into()),
        });
    }

    /// The entry of our own message with `local_id`, searched from the newest (results
    /// come back soon).
    pub fn own_entry_mut(&mut self, local_id: u64) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .rev()
            .find(|e| e.message().is_some_and(|m| m.local_id == Some(local_id)))
    }

    /// Whether the message with this server id and time is already shown. Both must
    /// match: a server restarted on a fresh store starts its ids over, and a new message
    /// that reuses an old id is not a repeat.
    pub fn holds(&self, id: u64, ts: u64) -> bool {
        self.entries
            .iter()
            .rev()
            .take(REPEAT_WINDOW)
            .any(|e| e.ts == ts && e.message().and_then(|m| m.id) == Some(id))
    }

    /// Our messages marked "cached" were delivered: the peer is online, and a login
    /// delivers the cache first thing (docs/protocol.md).
    pub fn cached_delivered(&mut self) {
        for entry in &mut self.entries {
            if let EntryKind::Message(m) = &mut entry.kind {
                if m.mark == Some(Mark::Cached) {
                    m.mark = Some(Mark::Received);
                }
            }
        }
    }

    /// The peer showed it is online (it sent a message, or its client acknowledged ours):
    /// the header says so even if a presence event was missed or came from a server that
    /// lost track of it.
    pub fn peer_seen_online(&mut self) {
        self.presence = Some(PeerStatus::Online);
        self.cached_delivered();
    }

    /// The oldest server message id held, for fetching the page before it.
    pub fn oldest_id(&self) -> Option<u64> {
        self.entries
            .iter()
            .find_map(|e| e.message().and_then(|m| m.id))
    }

    /// Puts fetched history in place: messages already held are skipped, older ones go
    /// in id order before the first newer one. Returns how many were added.
    pub fn merge_history(&mut self, messages: &[HistoryMessage], me: &str) -> usize {
        // Id and time, as in `holds`: ids alone start over with a fresh server store.
        let known: std::collections::HashSet<(u64, u64)> = self
            .entries
            .iter()
            .filter_map(|e| e.message().and_then(|m| m.id).map(|id| (id, e.ts)))
            .collect();
        let mut added = 0;
        let mut position = 0;
        for message in messages {
            if known.contains(&(message.message_id, message.server_ts)) {
                continue;
            }
            // Entries without ids (info lines, pending sends) keep their place after it.
            while position < self.entries.len()
                && self.entries[position]
                    .message()
                    .and_then(|m| m.id)
                    .is_some_and(|id| id < message.message_id)
            {
                position += 1;
            }
            let own = message.from == me;
            self.entries.insert(
                position,
                Entry {
                    ts: message.server_ts,
                    kind: EntryKind::Message(ChatMessage {
                        id: Some(message.message_id),
                        local_id: None,
                        from: message.from.clone(),
                        body: Body::from_message(&message.message),
                        mark: None,
                        offline: false,
                        mention: !own && mentions(message.message.summary().as_str(), me),
                        own,
                    }),
                },
            );
            position += 1;
            added += 1;
        }
        // `scroll` counts entries below the view, so inserting older ones keeps it still.
        added
    }

    /// Takes a channel's attributes as they are now; returns what changed, in words
    /// (`me` is "you").
    pub fn set_attributes(&mut self, attributes: Vec<ChannelAttribute>, me: &str) -> Vec<String> {
        let changes = attribute_changes(&self.attributes, &attributes, me);
        self.attributes = attributes;
        changes
    }

    /// The topic (the `topic` attribute), which the header shows first.
    pub fn topic(&self) -> Option<&ChannelAttribute> {
        self.attributes.iter().find(|a| a.key == TOPIC)
    }

    /// The messages whose text or sender contains `query` (any case), as entry indices,
    /// newest first.
    pub fn search(&self, query: &str) -> Vec<usize> {
        let query = query.trim().to_lowercase();
        if query.is_empty() {
            return Vec::new();
        }
        self.entries
            .iter()
            .enumerate()
            .rev()
            .take(MAX_SEARCH_SCAN)
            .filter(|(_, e)| {
                e.message().is_some_and(|m| {
                    m.body.text().to_lowercase().contains(&query)
                        || m.from.to_lowercase().contains(&query)
                })
            })
            .map(|(i, _)| i)
            .take(MAX_SEARCH_RESULTS)
            .collect()
    }

    /// Scrolls so that entry `index` is the last one in view.
    pub fn show_entry(&mut self, index: usize) {
        self.scroll = self.entries.len().saturating_sub(index + 1);
    }

    /// Members matching the filter, for the member pane.
    pub fn visible_members(&self) -> impl Iterator<Item = &String> {
        let filter = self.member_filter.to_lowercase();
        self.members
            .iter()
            .filter(move |m| filter.is_empty() || m.to_lowercase().contains(&filter))
    }

    pub fn add_member(&mut self, user: &str) {
        if let Err(i) = self.members.binary_search_by(|m| m.as_str().cmp(user)) {
            self.members.insert(i, user.to_string());
        }
    }

    pub fn remove_member(&mut self, user: &str) {
        if let Ok(i) = self.members.binary_search_by(|m| m.as_str().cmp(user)) {
            self.members.remove(i);
        }
    }
}

/// The channel attribute that `/topic` sets and the header shows first.
pub const TOPIC: &str = "topic";

/// What changed from `old` to `new` attributes, one line per key: "alice changed the
/// topic to: …", "you set status: away", "the topic was removed".
fn attribute_changes(old: &[ChannelAttribute], new: &[ChannelAttribute], me: &str) -> Vec<String> {
    let who = |a: &ChannelAttribute| {
        if a.updated_by == me {
            "you".to_string()
        } else {
            a.updated_by.clone()
        }
    };
    let mut lines = Vec::new();
    for attribute in new {
        let before = old.iter().find(|a| a.key == attribute.key);
        if before.is_some_and(|b| b.value == attribute.value) {
            continue;
        }
        let by = who(attribute);
        lines.push(if attribute.key == TOPIC {
            format!("{by} changed the topic to: {}", attribute.value)
        } else {
            format!("{by} set {}: {}", attribute.key, attribute.value)
        });
    }
    for gone in old.iter().filter(|a| !new.iter().any(|n| n.key == a.key)) {
        lines.push(if gone.key == TOPIC {
            "the topic was removed".to_string()
        } else {
            format!("{} was removed", gone.key)
        });
    }
    lines
}

/// True when `text` mentions `me` as a word (case-insensitive), as IRC clients highlight.
pub fn mentions(text: &str, me: &str) -> bool {
    if me.is_empty() {
        return false;
    }
    let lower = text.to_lowercase();
    let me = me.to_lowercase();
    let is_word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    lower.match_indices(&me).any(|(i, _)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + me.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mention_rules() {
        assert!(mentions("hey alice, look", "alice"));
        assert!(mentions("@Alice: hi", "alice"));
        assert!(!mentions("malice aforethought", "alice"));
        assert!(!mentions("alice_2 is here", "alice"));
    }

    fn history(id: u64, text: &str) -> HistoryMessage {
        HistoryMessage {
            message_id: id,
            from: "bob".into(),
            message: Message::text(text),
            server_ts: id * 1000,
        }
    }

    #[test]
    fn history_merges_in_order_without_duplicates() {
        let mut tab = Tab::new(Some(Target::Peer("bob".into())));
        tab.merge_history(&[history(5, "e"), history(6, "f")], "me");
        assert_eq!(
            tab.merge_history(&[history(2, "b"), history(5, "e")], "me"),
            1
        );
        tab.merge_history(&[history(1, "a"), history(3, "c")], "me");
        let ids: Vec<u64> = tab
            .entries
            .iter()
            .filter_map(|e| e.message().and_then(|m| m.id))
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 5, 6]);
        assert_eq!(tab.oldest_id(), Some(1));
    }
}

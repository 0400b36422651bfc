//! Replies (server → client): `{"id", "code", "reason"?, ...result}` and the typed results.
//!
//! A reply does not name its op; the asker knows what it asked and reads the fields with
//! [`Reply::result`] into the matching result type below.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};

use super::message::Message;

/// One reply. `fields` holds the op's result (or nothing) besides `id`, `code`, `reason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: u32,
    pub code: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Reply {
    /// A success reply carrying `result`'s fields (it must serialize to an object or unit).
    pub fn ok<T: Serialize>(id: u32, result: &T) -> Self {
        let fields = match serde_json::to_value(result) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Reply {
            id,
            code: 0,
            reason: None,
            fields,
        }
    }

    /// A success reply with no result fields.
    pub fn ok_empty(id: u32) -> Self {
        Reply {
            id,
            code: 0,
            reason: None,
            fields: Map::new(),
        }
    }

    /// A reply with a code and human reason (code 0 gets no reason).
    pub fn code(id: u32, code: u32, reason: impl Into<String>) -> Self {
        Reply {
            id,
            code,
            reason: (code != 0).then(|| reason.into()),
            fields: Map::new(),
        }
    }

    /// Reads the result fields into a typed result.
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(Value::Object(self.fields.clone()))
    }
}

/// Result of `login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResult {
    pub user: String,
    pub server_ts: u64,
    pub protocol: u32,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<u64>,
    /// Names the server's message store (its epoch): it changes when the server starts on
    /// a fresh store, where message ids start over. Optional, so v1 peers that neither send
    /// nor read it keep working; a client resets what it has seen when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// Result of `renew_token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<u64>,
}

/// Result of `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResult {
    pub server_ts: u64,
}

/// Result of `send_peer` and `send_channel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    pub message_id: u64,
    pub server_ts: u64,
}

/// Online state of a peer, as presence reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    Online,
    /// Dropped but within the grace period (subscriptions only).
    Unreachable,
    Offline,
}

/// Peer ids with their status, as a JSON object whose keys keep the order they were
/// inserted in: `query_peers_online` answers "in input order" (an id asked twice is listed
/// once, where first asked).
pub type OrderedPeers = IndexMap<String, PeerStatus>;

/// Result of `query_peers_online`: ids in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersOnlineResult {
    pub peers: OrderedPeers,
}

/// Result of `query_subscribed_peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedPeersResult {
    pub peers: Vec<String>,
}

/// Result of `get_user_attributes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAttributesResult {
    pub attributes: BTreeMap<String, String>,
}

/// One channel attribute as `get_channel_attributes` and its event list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAttribute {
    pub key: String,
    pub value: String,
    pub updated_by: String,
    pub updated_ts: u64,
}

/// Result of `get_channel_attributes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAttributesResult {
    pub attributes: Vec<ChannelAttribute>,
}

/// Result of `join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResult {
    pub member_count: u64,
}

/// Result of `get_members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersResult {
    pub members: Vec<String>,
}

/// Result of `get_channel_member_count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCountResult {
    pub counts: BTreeMap<String, u64>,
}

/// One stored message as `history` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMessage {
    pub message_id: u64,
    pub from: String,
    pub message: Message,
    pub server_ts: u64,
}

/// Result of `history`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResult {
    pub messages: Vec<HistoryMessage>,
    /// True when fewer than `limit` messages came because the page is full: the reply is
    /// one object of at most 64 KiB (docs/protocol.md). Ask again from the last one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

//! Events (server → client): `{"event": "...", ...fields}`, one variant per event of docs/protocol.md.

use serde::{Deserialize, Serialize};

use super::message::Message;
use super::reply::{ChannelAttribute, OrderedPeers};

/// Why the server closed a session on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KickReason {
    RemoteLogin,
    Banned,
    TokenExpired,
}

/// Every event of protocol v1. Its wire name is the variant's name in snake_case, for
/// serde (`event`) and for [`EventName`] alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "event", rename_all = "snake_case")]
#[strum_discriminants(
    name(EventName),
    derive(Hash, strum::EnumString, strum::IntoStaticStr, strum::EnumIter),
    strum(serialize_all = "snake_case")
)]
pub enum Event {
    MessageFromPeer {
        from: String,
        message: Message,
        message_id: u64,
        server_ts: u64,
        #[serde(default)]
        offline: bool,
    },
    MessageFromChannel {
        channel: String,
        from: String,
        message: Message,
        message_id: u64,
        server_ts: u64,
    },
    MemberJoined {
        channel: String,
        user: String,
    },
    MemberLeft {
        channel: String,
        user: String,
    },
    MemberCountUpdated {
        channel: String,
        count: u64,
    },
    ChannelAttributesUpdated {
        channel: String,
        attributes: Vec<ChannelAttribute>,
    },
    PeersOnlineStatus {
        peers: OrderedPeers,
    },
    InvitationReceived {
        invitation_id: String,
        caller: String,
        #[serde(default)]
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    InvitationAccepted {
        invitation_id: String,
        callee: String,
        #[serde(default)]
        response: String,
    },
    InvitationRefused {
        invitation_id: String,
        callee: String,
        #[serde(default)]
        response: String,
    },
    InvitationCanceled {
        invitation_id: String,
        caller: String,
    },
    InvitationFailure {
        invitation_id: String,
        reason: u32,
    },
    TokenPrivilegeWillExpire {
        expires_at: u64,
    },
    Kicked {
        reason: KickReason,
    },
    Error {
        code: u32,
        reason: String,
    },
}

impl Event {
    /// The wire name of this event.
    pub fn name(&self) -> &'static str {
        EventName::from(self).into()
    }

    /// The channel this event belongs to, if any.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Event::MessageFromChannel { channel, .. }
            | Event::MemberJoined { channel, .. }
            | Event::MemberLeft { channel, .. }
            | Event::MemberCountUpdated { channel, .. }
            | Event::ChannelAttributesUpdated { channel, .. } => Some(channel),
            _ => None,
        }
    }
}

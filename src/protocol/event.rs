//! Events (server → client): `{"event": "...", ...fields}`, one variant per event of protocol.md.

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

/// Every event of protocol v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
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
        match self {
            Event::MessageFromPeer { .. } => "message_from_peer",
            Event::MessageFromChannel { .. } => "message_from_channel",
            Event::MemberJoined { .. } => "member_joined",
            Event::MemberLeft { .. } => "member_left",
            Event::MemberCountUpdated { .. } => "member_count_updated",
            Event::ChannelAttributesUpdated { .. } => "channel_attributes_updated",
            Event::PeersOnlineStatus { .. } => "peers_online_status",
            Event::InvitationReceived { .. } => "invitation_received",
            Event::InvitationAccepted { .. } => "invitation_accepted",
            Event::InvitationRefused { .. } => "invitation_refused",
            Event::InvitationCanceled { .. } => "invitation_canceled",
            Event::InvitationFailure { .. } => "invitation_failure",
            Event::TokenPrivilegeWillExpire { .. } => "token_privilege_will_expire",
            Event::Kicked { .. } => "kicked",
            Event::Error { .. } => "error",
        }
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

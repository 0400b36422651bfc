//! Requests (client → server): the `op` and its parameters, plus the request `id`.
//!
//! Every op of protocol.md is a variant of [`Op`]. Adding an op means a variant here, a
//! row in [`OPS`] (its wire name and code family), and its reply type in `reply.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codes::Family;
use super::message::Message;

/// Attribute maps are ordered so that encoding is deterministic.
pub type Attributes = BTreeMap<String, String>;

/// One request. `id` is absent only on notices (`ack`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    #[serde(flatten)]
    pub op: Op,
}

/// Every op of protocol v1 with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Login {
        app_id: String,
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    Logout,
    RenewToken {
        token: String,
    },
    Ping,
    SendPeer {
        to: String,
        message: Message,
        #[serde(default)]
        offline: bool,
    },
    Ack {
        message_id: u64,
    },
    QueryPeersOnline {
        peers: Vec<String>,
    },
    SubscribePeersOnline {
        peers: Vec<String>,
    },
    UnsubscribePeersOnline {
        peers: Vec<String>,
    },
    QuerySubscribedPeers,
    SetUserAttributes {
        attributes: Attributes,
    },
    AddOrUpdateUserAttributes {
        attributes: Attributes,
    },
    DeleteUserAttributes {
        keys: Vec<String>,
    },
    ClearUserAttributes,
    GetUserAttributes {
        user: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keys: Option<Vec<String>>,
    },
    Join {
        channel: String,
    },
    Leave {
        channel: String,
    },
    SendChannel {
        channel: String,
        message: Message,
    },
    GetMembers {
        channel: String,
    },
    GetChannelMemberCount {
        channels: Vec<String>,
    },
    SetChannelAttributes {
        channel: String,
        attributes: Attributes,
        #[serde(default)]
        notify: bool,
    },
    AddOrUpdateChannelAttributes {
        channel: String,
        attributes: Attributes,
        #[serde(default)]
        notify: bool,
    },
    DeleteChannelAttributes {
        channel: String,
        keys: Vec<String>,
        #[serde(default)]
        notify: bool,
    },
    ClearChannelAttributes {
        channel: String,
        #[serde(default)]
        notify: bool,
    },
    GetChannelAttributes {
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keys: Option<Vec<String>>,
    },
    Invite {
        invitation_id: String,
        callee: String,
        #[serde(default)]
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    CancelInvitation {
        invitation_id: String,
        callee: String,
    },
    AcceptInvitation {
        invitation_id: String,
        caller: String,
        #[serde(default)]
        response: String,
    },
    RefuseInvitation {
        invitation_id: String,
        caller: String,
        #[serde(default)]
        response: String,
    },
    History {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
}

/// Wire name and code family of every op, in protocol.md's order.
pub const OPS: &[(&str, Family)] = &[
    ("login", Family::Login),
    ("logout", Family::Login),
    ("renew_token", Family::Renew),
    ("ping", Family::Ping),
    ("send_peer", Family::Peer),
    ("ack", Family::Peer),
    ("query_peers_online", Family::Query),
    ("subscribe_peers_online", Family::Query),
    ("unsubscribe_peers_online", Family::Query),
    ("query_subscribed_peers", Family::Query),
    ("set_user_attributes", Family::Attr),
    ("add_or_update_user_attributes", Family::Attr),
    ("delete_user_attributes", Family::Attr),
    ("clear_user_attributes", Family::Attr),
    ("get_user_attributes", Family::Attr),
    ("join", Family::Join),
    ("leave", Family::Leave),
    ("send_channel", Family::ChannelMsg),
    ("get_members", Family::Members),
    ("get_channel_member_count", Family::Count),
    ("set_channel_attributes", Family::Attr),
    ("add_or_update_channel_attributes", Family::Attr),
    ("delete_channel_attributes", Family::Attr),
    ("clear_channel_attributes", Family::Attr),
    ("get_channel_attributes", Family::Attr),
    ("invite", Family::Invite),
    ("cancel_invitation", Family::Invite),
    ("accept_invitation", Family::Invite),
    ("refuse_invitation", Family::Invite),
    ("history", Family::History),
];

/// The family of the op with this wire name, or `None` for an unknown op.
pub fn family_of(op_name: &str) -> Option<Family> {
    OPS.iter()
        .find(|(name, _)| *name == op_name)
        .map(|(_, family)| *family)
}

impl Op {
    /// The wire name of this op, as in `"op": "send_peer"`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Login { .. } => "login",
            Op::Logout => "logout",
            Op::RenewToken { .. } => "renew_token",
            Op::Ping => "ping",
            Op::SendPeer { .. } => "send_peer",
            Op::Ack { .. } => "ack",
            Op::QueryPeersOnline { .. } => "query_peers_online",
            Op::SubscribePeersOnline { .. } => "subscribe_peers_online",
            Op::UnsubscribePeersOnline { .. } => "unsubscribe_peers_online",
            Op::QuerySubscribedPeers => "query_subscribed_peers",
            Op::SetUserAttributes { .. } => "set_user_attributes",
            Op::AddOrUpdateUserAttributes { .. } => "add_or_update_user_attributes",
            Op::DeleteUserAttributes { .. } => "delete_user_attributes",
            Op::ClearUserAttributes => "clear_user_attributes",
            Op::GetUserAttributes { .. } => "get_user_attributes",
            Op::Join { .. } => "join",
            Op::Leave { .. } => "leave",
            Op::SendChannel { .. } => "send_channel",
            Op::GetMembers { .. } => "get_members",
            Op::GetChannelMemberCount { .. } => "get_channel_member_count",
            Op::SetChannelAttributes { .. } => "set_channel_attributes",
            Op::AddOrUpdateChannelAttributes { .. } => "add_or_update_channel_attributes",
            Op::DeleteChannelAttributes { .. } => "delete_channel_attributes",
            Op::ClearChannelAttributes { .. } => "clear_channel_attributes",
            Op::GetChannelAttributes { .. } => "get_channel_attributes",
            Op::Invite { .. } => "invite",
            Op::CancelInvitation { .. } => "cancel_invitation",
            Op::AcceptInvitation { .. } => "accept_invitation",
            Op::RefuseInvitation { .. } => "refuse_invitation",
            Op::History { .. } => "history",
        }
    }

    /// The code family that answers this op.
    pub fn family(&self) -> Family {
        family_of(self.name()).unwrap_or(Family::Login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_a_family() {
        let op = Op::SendPeer {
            to: "bob".into(),
            message: Message::text("hi"),
            offline: false,
        };
        assert_eq!(op.name(), "send_peer");
        assert_eq!(op.family(), Family::Peer);
        assert_eq!(family_of("history"), Some(Family::History));
        assert_eq!(family_of("fly"), None);
        assert_eq!(OPS.len(), 30);
    }
}

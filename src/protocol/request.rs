//! Requests (client → server): the `op` and its parameters, plus the request `id`.
//!
//! Every op of the protocol (docs/protocol.md) is a variant of [`Op`]. Adding an op means
//! a variant here, its arm in [`OpName::family`] (the compiler asks for it), and its
//! reply type in `reply.rs`.

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
///
/// The wire name of each op is its variant's name in snake_case, for serde (`op`) and
/// for [`OpName`] alike; [`OpName::family`] says which code family answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "op", rename_all = "snake_case")]
#[strum_discriminants(
    name(OpName),
    derive(Hash, strum::EnumString, strum::IntoStaticStr, strum::EnumIter),
    strum(serialize_all = "snake_case"),
    doc = "The name of an op, without its parameters."
)]
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
    /// rtm-tui's addition: a short-lived ticket for uploads and downloads over HTTP.
    MediaTicket,
}

impl OpName {
    /// The wire name, as in `"op": "send_peer"`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The code family that answers this op.
    pub fn family(self) -> Family {
        match self {
            OpName::Login | OpName::Logout => Family::Login,
            OpName::RenewToken => Family::Renew,
            OpName::Ping => Family::Ping,
            OpName::SendPeer | OpName::Ack => Family::Peer,
            OpName::QueryPeersOnline
            | OpName::SubscribePeersOnline
            | OpName::UnsubscribePeersOnline
            | OpName::QuerySubscribedPeers => Family::Query,
            OpName::SetUserAttributes
            | OpName::AddOrUpdateUserAttributes
            | OpName::DeleteUserAttributes
            | OpName::ClearUserAttributes
            | OpName::GetUserAttributes
            | OpName::SetChannelAttributes
            | OpName::AddOrUpdateChannelAttributes
            | OpName::DeleteChannelAttributes
            | OpName::ClearChannelAttributes
            | OpName::GetChannelAttributes => Family::Attr,
            OpName::Join => Family::Join,
            OpName::Leave => Family::Leave,
            OpName::SendChannel => Family::ChannelMsg,
            OpName::GetMembers => Family::Members,
            OpName::GetChannelMemberCount => Family::Count,
            OpName::Invite
            | OpName::CancelInvitation
            | OpName::AcceptInvitation
            | OpName::RefuseInvitation => Family::Invite,
            OpName::History => Family::History,
            OpName::MediaTicket => Family::Media,
        }
    }

    /// Every op, in docs/protocol.md's order.
    pub fn all() -> impl Iterator<Item = OpName> {
        <OpName as strum::IntoEnumIterator>::iter()
    }
}

/// The family of the op with this wire name, or `None` for an unknown op.
pub fn family_of(op_name: &str) -> Option<Family> {
    op_name.parse::<OpName>().ok().map(OpName::family)
}

impl Op {
    /// The wire name of this op, as in `"op": "send_peer"`.
    pub fn name(&self) -> &'static str {
        OpName::from(self).as_str()
    }

    /// The code family that answers this op.
    pub fn family(&self) -> Family {
        OpName::from(self).family()
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
        assert_eq!(OpName::all().count(), 31);
    }

    #[test]
    fn serde_and_op_name_agree() {
        let op = Op::AddOrUpdateChannelAttributes {
            channel: "c".into(),
            attributes: Attributes::new(),
            notify: false,
        };
        let wire = serde_json::to_value(&op).unwrap();
        assert_eq!(wire["op"], op.name());
        assert_eq!(op.name(), "add_or_update_channel_attributes");
    }
}

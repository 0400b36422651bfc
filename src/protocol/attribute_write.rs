//! [`AttributeWrite`]: the four ways to write a set of attributes (set, add or update,
//! delete, clear), for the user's own set and for a channel's alike.
//!
//! The one model of an attribute write: the client builds its eight Agora-named methods
//! on it, remembers the user's set with it across reconnects, the TUI asks with it, and
//! the server applies it ([`AttributeWrite::apply`]) and shares it between nodes.

use serde::{Deserialize, Serialize};

use super::request::{Attributes, Op};

/// How a write changes a set of attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "write", content = "attributes", rename_all = "snake_case")]
pub enum AttributeWrite {
    /// Replace the whole set.
    Set(Attributes),
    /// Insert or overwrite these keys.
    AddOrUpdate(Attributes),
    /// Remove these keys (missing keys are fine).
    Delete(Vec<String>),
    /// Remove everything.
    Clear,
}

impl AttributeWrite {
    /// The keys and values this write puts into the set.
    pub fn written(&self) -> Option<&Attributes> {
        match self {
            AttributeWrite::Set(a) | AttributeWrite::AddOrUpdate(a) => Some(a),
            AttributeWrite::Delete(_) | AttributeWrite::Clear => None,
        }
    }

    /// Changes `set` as this write says.
    pub fn apply(&self, set: &mut Attributes) {
        match self {
            AttributeWrite::Set(attributes) => set.clone_from(attributes),
            AttributeWrite::AddOrUpdate(attributes) => set.extend(attributes.clone()),
            AttributeWrite::Delete(keys) => {
                for key in keys {
                    set.remove(key);
                }
            }
            AttributeWrite::Clear => set.clear(),
        }
    }

    /// The op that writes the user's own attributes this way.
    pub fn user_op(self) -> Op {
        match self {
            AttributeWrite::Set(attributes) => Op::SetUserAttributes { attributes },
            AttributeWrite::AddOrUpdate(attributes) => Op::AddOrUpdateUserAttributes { attributes },
            AttributeWrite::Delete(keys) => Op::DeleteUserAttributes { keys },
            AttributeWrite::Clear => Op::ClearUserAttributes,
        }
    }

    /// The op that writes `channel`'s attributes this way; `notify` tells its members.
    pub fn channel_op(self, channel: String, notify: bool) -> Op {
        match self {
            AttributeWrite::Set(attributes) => Op::SetChannelAttributes {
                channel,
                attributes,
                notify,
            },
            AttributeWrite::AddOrUpdate(attributes) => Op::AddOrUpdateChannelAttributes {
                channel,
                attributes,
                notify,
            },
            AttributeWrite::Delete(keys) => Op::DeleteChannelAttributes {
                channel,
                keys,
                notify,
            },
            AttributeWrite::Clear => Op::ClearChannelAttributes { channel, notify },
        }
    }
}

/// Whose attributes a write op changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeOwner {
    /// The user who sends the op.
    Me,
    /// A channel, with whether its members are told.
    Channel { channel: String, notify: bool },
}

impl Op {
    /// An attribute write op as its owner and write (copied out); `None` for any other
    /// op. The inverse of [`AttributeWrite::user_op`] and [`AttributeWrite::channel_op`].
    pub fn attribute_write(&self) -> Option<(AttributeOwner, AttributeWrite)> {
        let channel = |channel: &String, notify: &bool| AttributeOwner::Channel {
            channel: channel.clone(),
            notify: *notify,
        };
        Some(match self {
            Op::SetUserAttributes { attributes } => {
                (AttributeOwner::Me, AttributeWrite::Set(attributes.clone()))
            }
            Op::AddOrUpdateUserAttributes { attributes } => (
                AttributeOwner::Me,
                AttributeWrite::AddOrUpdate(attributes.clone()),
            ),
            Op::DeleteUserAttributes { keys } => {
                (AttributeOwner::Me, AttributeWrite::Delete(keys.clone()))
            }
            Op::ClearUserAttributes => (AttributeOwner::Me, AttributeWrite::Clear),
            Op::SetChannelAttributes {
                channel: id,
                attributes,
                notify,
            } => (channel(id, notify), AttributeWrite::Set(attributes.clone())),
            Op::AddOrUpdateChannelAttributes {
                channel: id,
                attributes,
                notify,
            } => (
                channel(id, notify),
                AttributeWrite::AddOrUpdate(attributes.clone()),
            ),
            Op::DeleteChannelAttributes {
                channel: id,
                keys,
                notify,
            } => (channel(id, notify), AttributeWrite::Delete(keys.clone())),
            Op::ClearChannelAttributes {
                channel: id,
                notify,
            } => (channel(id, notify), AttributeWrite::Clear),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn writes_change_a_set() {
        let mut set = attrs(&[("a", "1"), ("b", "2")]);
        AttributeWrite::AddOrUpdate(attrs(&[("b", "3"), ("c", "4")])).apply(&mut set);
        assert_eq!(set, attrs(&[("a", "1"), ("b", "3"), ("c", "4")]));
        AttributeWrite::Delete(vec!["a".into(), "zz".into()]).apply(&mut set);
        assert_eq!(set, attrs(&[("b", "3"), ("c", "4")]));
        AttributeWrite::Set(attrs(&[("x", "y")])).apply(&mut set);
        assert_eq!(set, attrs(&[("x", "y")]));
        AttributeWrite::Clear.apply(&mut set);
        assert!(set.is_empty());
    }

    #[test]
    fn ops_and_writes_convert_both_ways() {
        let write = AttributeWrite::Delete(vec!["k".into()]);
        let op = write.clone().channel_op("lobby".into(), true);
        assert_eq!(op.name(), "delete_channel_attributes");
        let owner = AttributeOwner::Channel {
            channel: "lobby".into(),
            notify: true,
        };
        assert_eq!(op.attribute_write(), Some((owner, write)));
        let op = AttributeWrite::Clear.user_op();
        assert_eq!(op.name(), "clear_user_attributes");
        assert_eq!(
            op.attribute_write(),
            Some((AttributeOwner::Me, AttributeWrite::Clear))
        );
        assert!(Op::Ping.attribute_write().is_none());
    }
}

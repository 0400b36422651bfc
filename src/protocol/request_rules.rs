//! What each op's parameters must be, beyond their JSON shape: ids, sizes, counts and
//! ranges (docs/protocol.md, "Limits"), and the code each family answers when they are
//! broken.
//!
//! The one place these rules are written: the client refuses a request that breaks them
//! before sending it (`ClientError::Invalid`), the server answers it with
//! [`Refusal::code`] before anything else happens. What only the server can know (rate
//! limits, membership, who is online, the size of a set after a write) is the server's.

use super::codes::{
    AttrError, ChannelMsgError, CountError, HistoryError, InviteError, JoinError, LoginError,
    PeerError, QueryError, WireCode,
};
use super::limits::{
    validate_app_id, validate_attribute_key, validate_attributes, validate_channel_id,
    validate_user_id, ValidationError, DEFAULT_HISTORY_LIMIT, MAX_CHANNEL_ATTRIBUTES_BYTES,
    MAX_COUNT_CHANNELS, MAX_HISTORY_LIMIT, MAX_INVITATION_ID_BYTES, MAX_INVITATION_PAYLOAD_BYTES,
    MAX_MESSAGE_ID, MAX_QUERY_PEERS, MAX_SUBSCRIBED_PEERS, MAX_USER_ATTRIBUTES_BYTES,
};
use super::request::Op;

/// A request the rules refuse: the code its family answers, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Refusal {
    /// The reply code (in the op's family).
    pub code: u32,
    /// The rule that was broken.
    pub error: ValidationError,
}

/// Refuses with `code` when `check` fails.
fn with(code: impl WireCode, check: Result<(), ValidationError>) -> Result<(), Refusal> {
    check.map_err(|error| Refusal {
        code: code.code(),
        error,
    })
}

fn user_ids(ids: &[String]) -> Result<(), ValidationError> {
    ids.iter().try_for_each(|id| validate_user_id(id))
}

fn attribute_keys(keys: &[String]) -> Result<(), ValidationError> {
    keys.iter().try_for_each(|key| validate_attribute_key(key))
}

fn optional_keys(keys: Option<&Vec<String>>) -> Result<(), ValidationError> {
    keys.map_or(Ok(()), |keys| attribute_keys(keys))
}

/// `min..=max` items of `what`.
fn count(what: &'static str, len: usize, max: usize) -> Result<(), ValidationError> {
    if (1..=max).contains(&len) {
        Ok(())
    } else {
        Err(ValidationError::Count { what, min: 1, max })
    }
}

/// A presence op's peer list: 1..=`max` valid user ids.
fn peers(peers: &[String], max: usize) -> Result<(), Refusal> {
    with(
        QueryError::InvalidArgument,
        count("peer ids", peers.len(), max).and_then(|()| user_ids(peers)),
    )
}

/// An attribute set to write, against the limit of the whole set (what it adds already
/// breaks the limit the whole set must keep).
fn written(attributes: &super::Attributes, max_bytes: usize) -> Result<(), Refusal> {
    validate_attributes(attributes, max_bytes).map_err(|error| Refusal {
        code: if error.is_size() {
            AttrError::SizeOverflow.code()
        } else {
            AttrError::InvalidArgument.code()
        },
        error,
    })
}

fn channel_then(channel: &str, rest: Result<(), Refusal>) -> Result<(), Refusal> {
    with(AttrError::InvalidArgument, validate_channel_id(channel))?;
    rest
}

/// An invitation's id (1..64 bytes), the other party and a content or response of at
/// most 8 KiB.
fn invitation(
    invitation_id: &str,
    peer: &str,
    (what, payload): (&'static str, &str),
) -> Result<(), Refusal> {
    let id = if invitation_id.is_empty() {
        Err(ValidationError::Empty {
            what: "invitation id",
        })
    } else if invitation_id.len() > MAX_INVITATION_ID_BYTES {
        Err(ValidationError::TooLong {
            what: "invitation id",
            max: MAX_INVITATION_ID_BYTES,
        })
    } else {
        Ok(())
    };
    let payload = if payload.len() > MAX_INVITATION_PAYLOAD_BYTES {
        Err(ValidationError::TooLong {
            what,
            max: MAX_INVITATION_PAYLOAD_BYTES,
        })
    } else {
        Ok(())
    };
    with(
        InviteError::InvalidArgument,
        id.and_then(|()| validate_user_id(peer)).and(payload),
    )
}

/// A login's app id and user id (the server checks them after its login rate limit).
pub fn check_login(app_id: &str, user: &str) -> Result<(), Refusal> {
    with(LoginError::InvalidAppId, validate_app_id(app_id))?;
    with(LoginError::InvalidArgument, validate_user_id(user))
}

impl Op {
    /// Checks the parameters against the protocol's rules; the refusal carries the code
    /// the op's family answers.
    ///
    /// ```
    /// use rtm::protocol::{Message, Op};
    /// let op = Op::SendPeer { to: "bad/id".into(), message: Message::text("hi"), offline: false };
    /// assert_eq!(op.check().unwrap_err().code, 6); // PEER_MESSAGE_ERR_INVALID_USERID
    /// ```
    pub fn check(&self) -> Result<(), Refusal> {
        match self {
            Op::Login { app_id, user, .. } => check_login(app_id, user),
            Op::SendPeer { to, message, .. } => {
                with(PeerError::InvalidUserId, validate_user_id(to))?;
                with(PeerError::InvalidMessage, message.validate())
            }
            Op::QueryPeersOnline { peers: ids } => peers(ids, MAX_QUERY_PEERS),
            Op::SubscribePeersOnline { peers: ids } | Op::UnsubscribePeersOnline { peers: ids } => {
                peers(ids, MAX_SUBSCRIBED_PEERS)
            }
            Op::SetUserAttributes { attributes } | Op::AddOrUpdateUserAttributes { attributes } => {
                written(attributes, MAX_USER_ATTRIBUTES_BYTES)
            }
            Op::DeleteUserAttributes { keys } => {
                with(AttrError::InvalidArgument, attribute_keys(keys))
            }
            Op::GetUserAttributes { user, keys } => with(
                AttrError::InvalidArgument,
                validate_user_id(user).and_then(|()| optional_keys(keys.as_ref())),
            ),
            Op::Join { channel } => with(JoinError::InvalidArgument, validate_channel_id(channel)),
            Op::SendChannel { message, .. } => {
                with(ChannelMsgError::InvalidMessage, message.validate())
            }
            Op::GetChannelMemberCount { channels } => {
                if channels.len() > MAX_COUNT_CHANNELS {
                    return with(
                        CountError::ExceedsLimit,
                        count("channel ids", channels.len(), MAX_COUNT_CHANNELS),
                    );
                }
                with(
                    CountError::InvalidArgument,
                    count("channel ids", channels.len(), MAX_COUNT_CHANNELS)
                        .and_then(|()| channels.iter().try_for_each(|c| validate_channel_id(c))),
                )
            }
            Op::SetChannelAttributes {
                channel,
                attributes,
                ..
            }
            | Op::AddOrUpdateChannelAttributes {
                channel,
                attributes,
                ..
            } => channel_then(channel, written(attributes, MAX_CHANNEL_ATTRIBUTES_BYTES)),
            Op::DeleteChannelAttributes { channel, keys, .. } => channel_then(
                channel,
                with(AttrError::InvalidArgument, attribute_keys(keys)),
            ),
            Op::ClearChannelAttributes { channel, .. } => channel_then(channel, Ok(())),
            Op::GetChannelAttributes { channel, keys } => channel_then(
                channel,
                with(AttrError::InvalidArgument, optional_keys(keys.as_ref())),
            ),
            Op::Invite {
                invitation_id,
                callee,
                content,
                channel,
            } => {
                invitation(invitation_id, callee, ("invitation content", content))?;
                let channel = channel.as_deref().map_or(Ok(()), validate_channel_id);
                with(InviteError::InvalidArgument, channel)
            }
            Op::CancelInvitation {
                invitation_id,
                callee,
            } => invitation(invitation_id, callee, ("", "")),
            Op::AcceptInvitation {
                invitation_id,
                caller,
                response,
            }
            | Op::RefuseInvitation {
                invitation_id,
                caller,
                response,
            } => invitation(invitation_id, caller, ("invitation response", response)),
            Op::History {
                peer,
                channel,
                limit,
                before,
                after,
            } => with(
                HistoryError::InvalidArgument,
                history(peer.as_ref(), channel.as_ref(), *limit)
                    .and_then(|()| history_bounds(*before, *after)),
            ),
            // Nothing to check beyond the JSON shape; a bad `leave` or `get_members`
            // channel reads as "not in channel", a bad `send_channel` channel too.
            Op::Logout
            | Op::RenewToken { .. }
            | Op::Ping
            | Op::Ack { .. }
            | Op::QuerySubscribedPeers
            | Op::ClearUserAttributes
            | Op::Leave { .. }
            | Op::GetMembers { .. }
            | Op::MediaTicket => Ok(()),
        }
    }
}

/// `before` and `after` are message ids, so below 2^53 (docs/protocol.md): a larger one
/// is refused rather than read as another number.
fn history_bounds(before: Option<u64>, after: Option<u64>) -> Result<(), ValidationError> {
    if before
        .into_iter()
        .chain(after)
        .any(|id| id > MAX_MESSAGE_ID)
    {
        return Err(ValidationError::OutOfRange {
            what: "a history bound (a message id)",
            min: 0,
            max: MAX_MESSAGE_ID,
        });
    }
    Ok(())
}

/// A history query: a limit of 1..100, and exactly one valid peer or channel.
fn history(
    peer: Option<&String>,
    channel: Option<&String>,
    limit: Option<u32>,
) -> Result<(), ValidationError> {
    let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(ValidationError::OutOfRange {
            what: "history limit",
            min: 1,
            max: u64::from(MAX_HISTORY_LIMIT),
        });
    }
    match (peer, channel) {
        (Some(peer), None) => validate_user_id(peer),
        (None, Some(channel)) => validate_channel_id(channel),
        _ => Err(ValidationError::ExactlyOne("\"peer\" and \"channel\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;

    fn code(op: &Op) -> Option<u32> {
        op.check().err().map(|refusal| refusal.code)
    }

    #[test]
    fn each_family_answers_its_own_code() {
        let peers = |n: usize| (0..n).map(|i| format!("u{i}")).collect::<Vec<_>>();
        assert_eq!(code(&Op::QueryPeersOnline { peers: peers(1) }), None);
        assert_eq!(code(&Op::QueryPeersOnline { peers: peers(257) }), Some(2));
        assert_eq!(code(&Op::SubscribePeersOnline { peers: vec![] }), Some(2));
        let channels = |n: usize| (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>();
        assert_eq!(
            code(&Op::GetChannelMemberCount {
                channels: channels(33)
            }),
            Some(CountError::ExceedsLimit.code())
        );
        assert_eq!(
            code(&Op::GetChannelMemberCount {
                channels: channels(0)
            }),
            Some(CountError::InvalidArgument.code())
        );
        assert_eq!(
            code(&Op::Join {
                channel: "null".into()
            }),
            Some(3)
        );
        assert_eq!(
            code(&Op::SendPeer {
                to: "bob".into(),
                message: Message::text(""),
                offline: false
            }),
            Some(PeerError::InvalidMessage.code())
        );
        let big = |n: usize| {
            (0..n)
                .map(|i| (format!("k{i}"), "x".repeat(8 * 1024)))
                .collect()
        };
        assert_eq!(
            code(&Op::SetUserAttributes { attributes: big(3) }),
            Some(AttrError::SizeOverflow.code())
        );
        assert_eq!(
            code(&Op::SetChannelAttributes {
                channel: "c".into(),
                attributes: big(3),
                notify: false
            }),
            None
        );
        assert_eq!(
            code(&Op::History {
                peer: Some("bob".into()),
                channel: Some("c".into()),
                before: None,
                after: None,
                limit: None
            }),
            Some(HistoryError::InvalidArgument.code())
        );
        for (before, after) in [(Some(1 << 63), None), (None, Some(u64::MAX))] {
            assert_eq!(
                code(&Op::History {
                    peer: Some("bob".into()),
                    channel: None,
                    before,
                    after,
                    limit: None
                }),
                Some(HistoryError::InvalidArgument.code())
            );
        }
        assert_eq!(
            code(&Op::Invite {
                invitation_id: String::new(),
                callee: "bob".into(),
                content: String::new(),
                channel: None
            }),
            Some(InviteError::InvalidArgument.code())
        );
        assert_eq!(
            code(&Op::Leave {
                channel: String::new()
            }),
            None
        );
    }
}

//! `handle`'s PEER family: `send_peer` and the receiver's `ack` (a notice, or a request
//! with an id).
//!
//! The hub delivers, waits for the ack (`hub.rs`, `PendingAck`) or caches the message;
//! the reply to a delivered message goes out with its ack or its timeout, from the hub.

use crate::protocol::codes::peer::CACHED_BY_SERVER;
use crate::protocol::limits::validate_user_id;
use crate::protocol::{Message, PeerError, Reply, WireCode};

use super::super::engine::Change;
use super::super::hub::{Outcome, PeerSend};
use super::{Ask, Identity};

/// The change an `ack` of `me` submits, answered or not.
pub(super) fn ack_change(me: &Identity, message_id: u64) -> Change {
    Change::Ack {
        app: me.app.clone(),
        user: me.user.clone(),
        message_id,
    }
}

/// An `ack` with an id: answered 0 once applied.
pub(super) async fn ack(ask: &Ask<'_>, message_id: u64) {
    let change = ack_change(&ask.me, message_id);
    match ask.hub.submit(change, None).await {
        Outcome::Done => ask.ok_empty(),
        other => ask.unavailable(&other),
    }
}

/// `send_peer`: answered when the receiver acks (0) or the ack times out (2), at once
/// when the receiver is unreachable (3), once on disk when cached (4).
pub(super) async fn send(ask: &mut Ask<'_>, to: String, message: Message, offline: bool) {
    if let Err(e) = validate_user_id(&to) {
        return ask.refuse_why(PeerError::InvalidUserId, e.to_string());
    }
    if let Err(e) = message.validate() {
        return ask.refuse_why(PeerError::InvalidMessage, e.to_string());
    }
    if !ask.session.limits.send.allow(ask.now) {
        return ask.refuse(PeerError::TooOften);
    }
    let change = Change::SendPeer {
        app: ask.me.app.clone(),
        from: ask.me.user.clone(),
        to: to.clone(),
        message,
        offline,
        request_id: ask.id,
    };
    let sent = match ask.submit(change).await {
        Outcome::Peer(sent) => sent,
        other => return ask.unavailable(&other),
    };
    match sent {
        PeerSend::AwaitingAck => {}
        PeerSend::Unreachable => ask.refuse(PeerError::PeerUnreachable),
        PeerSend::Cached { result, committed } => {
            // Answer 4 only once the message is on disk.
            if committed.await.is_ok() {
                let mut reply = Reply::ok(ask.id, &result);
                reply.code = CACHED_BY_SERVER;
                reply.reason = Some(PeerError::FAMILY.describe(CACHED_BY_SERVER).into());
                ask.reply(&reply);
            } else {
                // Not on disk (the store could not write): not cached either.
                ask.hub.submit_detached(Change::ForgetCached {
                    app: ask.me.app.clone(),
                    receiver: to,
                    message_id: result.message_id,
                });
                ask.refuse(PeerError::Failure);
            }
        }
    }
}

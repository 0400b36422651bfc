//! `handle`'s PEER family: `send_peer` and the receiver's `ack` (a notice, or a request
//! with an id).
//!
//! The hub delivers, waits for the ack (`hub/peer.rs`, `PendingAck`) or caches the message;
//! the reply to a delivered message goes out with its ack or its timeout, from the hub.

use crate::protocol::codes::peer::CACHED_BY_SERVER;
use crate::protocol::{Message, PeerError, Reply, WireCode};

use super::{Ask, Identity, RoutedTurn, UNAVAILABLE};
use crate::server::engine::{Change, PeerRoute, RoutedMessage, Submitted};
use crate::server::engine::{Outcome, PeerSend};
use crate::server::hub::Hub;
use crate::server::outbox::ConnHandle;

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
    if ask
        .hub
        .engine()
        .ack_routed(&ask.me.app, &ask.me.user, message_id)
    {
        return ask.ok_empty();
    }
    let change = ack_change(&ask.me, message_id);
    match ask.hub.submit(change, None).await {
        Outcome::Done => ask.ok_empty(),
        other => ask.unavailable(&other),
    }
}

/// The receiver's `ack` notice: to the sender's node straight if the engine routed the
/// message there, otherwise through the shared order.
pub(super) fn ack_notice(hub: &Hub, me: &Identity, message_id: u64) {
    if !hub.engine().ack_routed(&me.app, &me.user, message_id) {
        hub.submit_detached(ack_change(me, message_id));
    }
}

/// `send_peer`: answered when the receiver acks (0) or the ack times out (2), at once
/// when the receiver is unreachable (3), once on disk when cached (4).
pub(super) async fn send(ask: &mut Ask<'_>, to: String, message: Message, offline: bool) {
    if !ask.within(|limits| &mut limits.send, PeerError::TooOften) {
        return;
    }
    let reply_to = PeerReplyTo {
        conn: ask.session.conn.clone(),
        hub: ask.hub.clone(),
        id: ask.id,
        app: ask.me.app.clone(),
        to,
    };
    let from = ask.me.user.clone();
    send_from(
        reply_to,
        from,
        (message, offline),
        &mut ask.session.routed_order,
    )
    .await;
}

/// `send_peer` past its rate limit, from `from`: a session's user, or the REST API's
/// sender (`server::http`, whose stand-in connection in `reply_to` gets the answers).
/// `order` chains the routed sends of one sender (`Session::routed_order`).
pub(in crate::server) async fn send_from(
    reply_to: PeerReplyTo,
    from: String,
    (message, offline): (Message, bool),
    order: &mut Option<tokio::sync::oneshot::Receiver<()>>,
) {
    let hub = reply_to.hub.clone();
    let routed = hub.engine().route_peer(
        &hub,
        &RoutedMessage {
            app: &reply_to.app,
            from: &from,
            to: &reply_to.to,
            message: &message,
            server_ts: crate::protocol::now_ms(),
            from_server: false,
        },
    );
    let app = reply_to.app.clone();
    let (to, request_id) = (reply_to.to.clone(), reply_to.id);
    // Judged now, on this node's view of the whole cache, and carried in the change.
    let server_cache_full = offline && hub.offline_cache_full((&app, &from, &to), &message);
    let change = move |message_id| Change::SendPeer {
        app,
        from,
        to,
        message,
        offline,
        server_cache_full,
        request_id,
        message_id,
    };
    if let Some(routed) = routed {
        // Straight to the receiver's node; the connection goes on meanwhile, but its
        // sends are routed one after the other, so that they keep their order.
        let mut turn = RoutedTurn::take(order);
        let ack_timeout = hub.config().ack_timeout;
        tokio::spawn(async move {
            turn.begin().await;
            let outcome = match routed.await {
                PeerRoute::Sent(answer) => {
                    turn.end();
                    match tokio::time::timeout(ack_timeout, answer).await {
                        Ok(Ok(answer)) => answer,
                        Ok(Err(_)) => PeerRoute::Unavailable,
                        Err(_) => return reply_to.refuse(PeerError::Timeout),
                    }
                }
                other => other,
            };
            match outcome {
                PeerRoute::Acked(result) => {
                    reply_to.conn.send_reply(&Reply::ok(reply_to.id, &result));
                }
                PeerRoute::NotThere { message_id } => {
                    // Queued in the shared order before the next send is routed.
                    let conn = reply_to.conn.clone();
                    let hub = reply_to.hub.clone();
                    let submitted = hub
                        .engine()
                        .submit(&hub, change(Some(message_id)), Some(conn));
                    turn.end();
                    let outcome = match submitted {
                        Submitted::Applied(outcome) => outcome,
                        Submitted::Pending(outcome) => {
                            outcome.await.unwrap_or(Outcome::Unavailable)
                        }
                    };
                    reply_to.finish(outcome).await;
                }
                PeerRoute::Sent(_) | PeerRoute::Unavailable => {
                    reply_to.finish(Outcome::Unavailable).await;
                }
            }
        });
        return;
    }
    let change = change(None);
    match hub
        .engine()
        .submit(&hub, change, Some(reply_to.conn.clone()))
    {
        // One node: known now; a cached message is awaited here, as its reply is.
        Submitted::Applied(outcome) => reply_to.finish(outcome).await,
        // Several nodes: the connection goes on with its next request while this one
        // crosses Redis (`send_peer` replies may come out of order anyway).
        Submitted::Pending(outcome) => {
            tokio::spawn(async move {
                let outcome = outcome.await.unwrap_or(Outcome::Unavailable);
                reply_to.finish(outcome).await;
            });
        }
    }
}

/// Where a `send_peer`'s outcome is answered, whenever it comes: a connection, or the
/// REST API's stand-in for one (`server::http`).
pub(in crate::server) struct PeerReplyTo {
    pub conn: ConnHandle,
    pub hub: Hub,
    pub id: u32,
    pub app: String,
    pub to: String,
}

impl PeerReplyTo {
    fn refuse(&self, error: PeerError) {
        self.conn
            .send_reply(&Reply::code(self.id, error.code(), error.describe()));
    }

    /// Answers the outcome: nothing yet when delivered (the ack answers), 3 at once, 4
    /// once the message is durable.
    pub(in crate::server) async fn finish(self, outcome: Outcome) {
        let sent = match outcome {
            Outcome::Peer(sent) => sent,
            other => {
                if !matches!(other, Outcome::Unavailable) {
                    tracing::error!(?other, "unexpected outcome");
                }
                return self.conn.send_reply(&Reply::code(
                    self.id,
                    PeerError::FAMILY.failure(),
                    UNAVAILABLE,
                ));
            }
        };
        match sent {
            PeerSend::AwaitingAck => {}
            PeerSend::Unreachable => self.refuse(PeerError::PeerUnreachable),
            PeerSend::CacheFull(why) => self.conn.send_reply(&Reply::code(
                self.id,
                PeerError::PeerUnreachable.code(),
                why,
            )),
            PeerSend::Cached { result, committed } => {
                // Answer 4 only once the message is durable.
                if committed.await.is_ok() {
                    let mut reply = Reply::ok(self.id, &result);
                    reply.code = CACHED_BY_SERVER;
                    reply.reason = Some(PeerError::FAMILY.describe(CACHED_BY_SERVER).into());
                    self.conn.send_reply(&reply);
                } else {
                    // Not on disk (the store could not write): not cached either.
                    self.hub.submit_detached(Change::ForgetCached {
                        app: self.app.clone(),
                        receiver: self.to.clone(),
                        message_id: result.message_id,
                    });
                    self.refuse(PeerError::Failure);
                }
            }
        }
    }
}

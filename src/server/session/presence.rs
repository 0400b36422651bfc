//! `handle`'s presence ops (QUERY codes): `query_peers_online`,
//! `(un)subscribe_peers_online` and `query_subscribed_peers`, all under one rate limit.
//!
//! Subscriptions and the events subscribers get are the hub's (`hub/presence.rs`; the
//! subscriptions themselves are kept in the engine's store, no change to the shared state).

use crate::protocol::{PeersOnlineResult, QueryError, SubscribedPeersResult};

use super::Ask;

/// Counts the request against the presence rate limit; answers "too often" if over.
fn within_rate(ask: &mut Ask<'_>) -> bool {
    ask.within(|limits| &mut limits.presence, QueryError::TooOften)
}

/// `query_peers_online`, from this node's copy.
pub(super) fn query(ask: &mut Ask<'_>, peers: &[String]) {
    if within_rate(ask) {
        let peers = ask.hub.query_online(&ask.me.app, peers);
        ask.ok(&PeersOnlineResult { peers });
    }
}

/// `subscribe_peers_online`: the hub answers itself, so that the current states follow
/// the reply.
pub(super) async fn subscribe(ask: &mut Ask<'_>, peers: Vec<String>) {
    if !within_rate(ask) {
        return;
    }
    let me = (ask.me.app.as_str(), ask.me.user.as_str());
    let subscribed = ask
        .hub
        .subscribe(me, &ask.session.conn, &peers, ask.id)
        .await;
    if let Err(error) = subscribed {
        ask.refuse(error);
    }
}

/// `unsubscribe_peers_online`.
pub(super) async fn unsubscribe(ask: &mut Ask<'_>, peers: Vec<String>) {
    if !within_rate(ask) {
        return;
    }
    let me = (ask.me.app.as_str(), ask.me.user.as_str());
    let conn = ask.hub.conn_id(&ask.session.conn);
    match ask.hub.unsubscribe(me, conn, &peers).await {
        Ok(()) => ask.ok_empty(),
        Err(error) => ask.refuse(error),
    }
}

/// `query_subscribed_peers`: what this session follows.
pub(super) fn query_subscribed(ask: &mut Ask<'_>) {
    if within_rate(ask) {
        let peers = ask.hub.subscriptions(ask.hub.conn_id(&ask.session.conn));
        ask.ok(&SubscribedPeersResult { peers });
    }
}

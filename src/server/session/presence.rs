//! `handle`'s presence ops (QUERY codes): `query_peers_online`,
//! `(un)subscribe_peers_online` and `query_subscribed_peers`, all under one rate limit.
//!
//! Subscriptions and the events subscribers get are the hub's (`hub/presence.rs`).

use crate::protocol::{PeersOnlineResult, QueryError, SubscribedPeersResult};

use super::Ask;
use crate::server::engine::Change;
use crate::server::engine::Outcome;

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
    let change = Change::Subscribe {
        app: ask.me.app.clone(),
        user: ask.me.user.clone(),
        peers,
        request_id: ask.id,
    };
    match ask.submit(change).await {
        Outcome::Subscribed(Ok(())) => {}
        Outcome::Subscribed(Err(error)) => ask.refuse(error),
        other => ask.unavailable(&other),
    }
}

/// `unsubscribe_peers_online`.
pub(super) async fn unsubscribe(ask: &mut Ask<'_>, peers: Vec<String>) {
    if !within_rate(ask) {
        return;
    }
    let change = Change::Unsubscribe {
        app: ask.me.app.clone(),
        user: ask.me.user.clone(),
        peers,
    };
    match ask.submit(change).await {
        Outcome::Done => ask.ok_empty(),
        other => ask.unavailable(&other),
    }
}

/// `query_subscribed_peers`.
pub(super) fn query_subscribed(ask: &mut Ask<'_>) {
    if within_rate(ask) {
        let peers = ask.hub.subscriptions(&ask.me.app, &ask.me.user);
        ask.ok(&SubscribedPeersResult { peers });
    }
}

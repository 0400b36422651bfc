//! `handle`'s channel ops: `join` (JOIN codes), `leave` (LEAVE), `send_channel`
//! (CHANNEL_MSG), `get_members` (MEMBERS) and `get_channel_member_count` (COUNT), each
//! under its rate limit.
//!
//! Membership, events and the member count's throttle are the hub's (`hub/`).

use crate::protocol::{
    ChannelMsgError, CountError, JoinError, JoinResult, MemberCountResult, MembersError,
    MembersResult, Message, Reply, WireCode,
};

use super::{Ask, RoutedTurn, UNAVAILABLE};
use crate::server::engine::Outcome;
use crate::server::engine::{BoxFuture, Change, RoutedMessage};
use crate::server::hub::Hub;

/// `join`: the member count, after the join rate limits (all channels, then this one).
pub(super) async fn join(ask: &mut Ask<'_>, channel: String) {
    if !ask.within(|limits| &mut limits.join, JoinError::TooOften) {
        return;
    }
    if !ask.session.limits.join_channel(&channel, ask.now) {
        return ask.refuse(JoinError::SameChannelTooOften);
    }
    // Several nodes: this node takes the channel's messages before its user is in it.
    if let Some(watching) = ask.hub.engine().watch_channel(&ask.me.app, &channel) {
        if !watching.await {
            return ask.unavailable(&Outcome::Unavailable);
        }
    }
    let change = Change::Join {
        app: ask.me.app.clone(),
        user: ask.me.user.clone(),
        channel,
    };
    match ask.submit(change).await {
        Outcome::Joined(Ok(member_count)) => ask.ok(&JoinResult { member_count }),
        Outcome::Joined(Err(error)) => ask.refuse(error),
        other => ask.unavailable(&other),
    }
}

/// `leave` (an invalid channel id reads as "not in channel").
pub(super) async fn leave(ask: &Ask<'_>, channel: String) {
    let change = Change::Leave {
        app: ask.me.app.clone(),
        user: ask.me.user.clone(),
        channel,
    };
    match ask.submit(change).await {
        Outcome::Left(result) => ask.ok_or_refuse(result),
        other => ask.unavailable(&other),
    }
}

/// `send_channel`: the message's id and timestamp once the hub has sent it to members.
pub(super) async fn send(ask: &mut Ask<'_>, channel: String, message: Message) {
    if !ask.within(|limits| &mut limits.send, ChannelMsgError::TooOften) {
        return;
    }
    let (app, from) = (ask.me.app.clone(), ask.me.user.clone());
    match route(ask.hub, (&app, &from, &channel), message, false) {
        Err(change) => match ask.submit(*change).await {
            Outcome::Sent(Ok(result)) => ask.ok(&result),
            Outcome::Sent(Err(error)) => ask.refuse(error),
            other => ask.unavailable(&other),
        },
        // Several nodes: the connection goes on while the message crosses Redis; its
        // sends go out one after the other, in order.
        Ok(routed) => {
            let mut turn = RoutedTurn::take(&mut ask.session.routed_order);
            let (conn, id) = (ask.session.conn.clone(), ask.id);
            tokio::spawn(async move {
                turn.begin().await;
                let reply = match routed.await {
                    Outcome::Sent(Ok(result)) => Reply::ok(id, &result),
                    Outcome::Sent(Err(error)) => Reply::code(id, error.code(), error.describe()),
                    _ => Reply::code(id, ChannelMsgError::FAMILY.failure(), UNAVAILABLE),
                };
                turn.end();
                conn.send_reply(&reply);
            });
        }
    }
}

/// Where a channel message from `from` goes: straight to the nodes with members when the
/// engine routes messages (`Ok`: its outcome to come), else the change to submit to the
/// shared order. `from_server`: the REST API's sender (`server::http`), who need not be
/// a member.
pub(in crate::server) fn route(
    hub: &Hub,
    (app, from, channel): (&str, &str, &str),
    message: Message,
    from_server: bool,
) -> Result<BoxFuture<Outcome>, Box<Change>> {
    let routed = hub.engine().route_channel(
        hub,
        &RoutedMessage {
            app,
            from,
            to: channel,
            message: &message,
            server_ts: crate::protocol::now_ms(),
            from_server,
        },
    );
    routed.ok_or_else(|| {
        Box::new(Change::SendChannel {
            app: app.to_string(),
            user: from.to_string(),
            channel: channel.to_string(),
            message,
            from_server,
        })
    })
}

/// `get_members`, from this node's copy (members only), after its rate limit.
pub(super) fn members(ask: &mut Ask<'_>, channel: &str) {
    if !ask.within(|limits| &mut limits.members, MembersError::TooOften) {
        return;
    }
    match ask.hub.members(&ask.me.app, &ask.me.user, channel) {
        Ok(members) => ask.ok(&MembersResult { members }),
        Err(error) => ask.refuse(error),
    }
}

/// `get_channel_member_count` of up to 32 channels, from this node's copy, after its
/// rate limit.
pub(super) fn counts(ask: &mut Ask<'_>, channels: &[String]) {
    if !ask.within(|limits| &mut limits.member_counts, CountError::TooOften) {
        return;
    }
    let counts = ask.hub.member_counts(&ask.me.app, channels);
    ask.ok(&MemberCountResult { counts });
}

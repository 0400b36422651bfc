//! `handle`'s arms for the issue-5 ops: presence, attributes, invitations.
//!
//! Validation and rate limits here, state changes in `hub_presence.rs`,
//! `hub_attributes.rs` and `hub_invitations.rs`.

use super::clock::Instant;

use crate::protocol::codes::{attr, invite, query, Family};
use crate::protocol::limits::{
    validate_attribute_key, validate_channel_id, validate_user_id, MAX_INVITATION_ID_BYTES,
    MAX_INVITATION_PAYLOAD_BYTES, MAX_QUERY_PEERS, MAX_SUBSCRIBED_PEERS,
};
use crate::protocol::{
    ChannelAttributesResult, Op, PeersOnlineResult, Reply, SubscribedPeersResult,
    UserAttributesResult,
};

use super::engine::Change;
use super::hub::{Hub, Outcome};
use super::hub_attributes::AttributeWrite;
use super::hub_invitations::Answer;
use super::session::{Identity, Session};

/// Answers a hub result: 0 on `Ok`, the family's code with its description otherwise.
fn answer(session: &Session, id: u32, family: Family, result: Result<(), u32>) {
    session.conn.send_reply(&match result {
        Ok(()) => Reply::ok_empty(id),
        Err(code) => Reply::code(id, code, family.describe(code)),
    });
}

fn refuse(session: &Session, id: u32, code: u32, reason: impl Into<String>) {
    session.conn.send_reply(&Reply::code(id, code, reason));
}

/// Checks a list of peer ids for presence ops: 1..=`max` valid user ids.
fn check_peers(peers: &[String], max: usize) -> Result<(), String> {
    if peers.is_empty() || peers.len() > max {
        return Err(format!("give 1 to {max} peer ids"));
    }
    peers
        .iter()
        .try_for_each(|p| validate_user_id(p).map_err(|e| e.to_string()))
}

fn check_keys(keys: &[String]) -> Result<(), String> {
    keys.iter()
        .try_for_each(|k| validate_attribute_key(k).map_err(|e| e.to_string()))
}

/// Handles every op `session::handle` does not.
pub(super) async fn handle_extra(
    id: u32,
    op: Op,
    me: &Identity,
    session: &mut Session,
    hub: &Hub,
    now: Instant,
) {
    let family = op.family();
    let op = match attribute_write(op) {
        Ok((None, write)) => return write_user(id, me, session, hub, now, write).await,
        Ok((Some((channel, notify)), write)) => {
            return write_channel(id, me, session, hub, now, (channel, write, notify)).await
        }
        Err(op) => op,
    };
    match op {
        Op::QueryPeersOnline { peers } => {
            if let Err(why) = check_peers(&peers, MAX_QUERY_PEERS) {
                return refuse(session, id, query::INVALID_ARGUMENT, why);
            }
            if !session.limits.presence.allow(now) {
                return answer(session, id, family, Err(query::TOO_OFTEN));
            }
            let peers = hub.query_online(&me.app, &peers);
            session
                .conn
                .send_reply(&Reply::ok(id, &PeersOnlineResult { peers }));
        }
        Op::SubscribePeersOnline { peers } => {
            if let Err(why) = check_peers(&peers, MAX_SUBSCRIBED_PEERS) {
                return refuse(session, id, query::INVALID_ARGUMENT, why);
            }
            if !session.limits.presence.allow(now) {
                return answer(session, id, family, Err(query::TOO_OFTEN));
            }
            // The hub answers itself so that the current states follow the reply.
            let change = Change::Subscribe {
                app: me.app.clone(),
                user: me.user.clone(),
                peers,
                request_id: id,
            };
            match hub.submit(change, Some(&session.conn)).await {
                Outcome::Code(Ok(())) => {}
                other => session.reply_outcome(id, family, other),
            }
        }
        Op::UnsubscribePeersOnline { peers } => {
            if let Err(why) = check_peers(&peers, MAX_SUBSCRIBED_PEERS) {
                return refuse(session, id, query::INVALID_ARGUMENT, why);
            }
            if !session.limits.presence.allow(now) {
                return answer(session, id, family, Err(query::TOO_OFTEN));
            }
            let change = Change::Unsubscribe {
                app: me.app.clone(),
                user: me.user.clone(),
                peers,
            };
            let outcome = hub.submit(change, Some(&session.conn)).await;
            session.reply_outcome(id, family, outcome);
        }
        Op::QuerySubscribedPeers => {
            if !session.limits.presence.allow(now) {
                return answer(session, id, family, Err(query::TOO_OFTEN));
            }
            let peers = hub.subscriptions(&me.app, &me.user);
            session
                .conn
                .send_reply(&Reply::ok(id, &SubscribedPeersResult { peers }));
        }
        Op::GetUserAttributes { user, keys } => {
            if let Err(e) = validate_user_id(&user) {
                return refuse(session, id, attr::INVALID_ARGUMENT, e.to_string());
            }
            if let Some(Err(why)) = keys.as_deref().map(check_keys) {
                return refuse(session, id, attr::INVALID_ARGUMENT, why);
            }
            match hub.user_attributes(&me.app, &user, keys.as_deref()) {
                Ok(attributes) => session
                    .conn
                    .send_reply(&Reply::ok(id, &UserAttributesResult { attributes })),
                Err(code) => answer(session, id, family, Err(code)),
            }
        }
        Op::GetChannelAttributes { channel, keys } => {
            if let Err(e) = validate_channel_id(&channel) {
                return refuse(session, id, attr::INVALID_ARGUMENT, e.to_string());
            }
            if let Some(Err(why)) = keys.as_deref().map(check_keys) {
                return refuse(session, id, attr::INVALID_ARGUMENT, why);
            }
            let attributes = hub.channel_attributes(&me.app, &channel, keys.as_deref());
            session
                .conn
                .send_reply(&Reply::ok(id, &ChannelAttributesResult { attributes }));
        }
        Op::Invite {
            invitation_id,
            callee,
            content,
            channel,
        } => {
            if let Err(why) = check_invitation(&invitation_id, &callee, &content) {
                return refuse(session, id, invite::INVALID_ARGUMENT, why);
            }
            if let Some(Err(e)) = channel.as_deref().map(validate_channel_id) {
                return refuse(session, id, invite::INVALID_ARGUMENT, e.to_string());
            }
            // INVITE has no "too often": 4 (invalid argument) with a reason that says so.
            if !session.limits.invitations.allow(now) {
                return refuse(
                    session,
                    id,
                    invite::INVALID_ARGUMENT,
                    "invitations too often",
                );
            }
            let change = Change::Invite {
                app: me.app.clone(),
                caller: me.user.clone(),
                callee,
                invitation_id,
                content,
                channel,
            };
            let outcome = hub.submit(change, Some(&session.conn)).await;
            session.reply_outcome(id, family, outcome);
        }
        Op::CancelInvitation {
            invitation_id,
            callee,
        } => {
            if let Err(why) = check_invitation(&invitation_id, &callee, "") {
                return refuse(session, id, invite::INVALID_ARGUMENT, why);
            }
            let change = Change::CancelInvitation {
                app: me.app.clone(),
                caller: me.user.clone(),
                callee,
                invitation_id,
            };
            let outcome = hub.submit(change, Some(&session.conn)).await;
            session.reply_outcome(id, family, outcome);
        }
        Op::AcceptInvitation {
            invitation_id,
            caller,
            response,
        } => {
            answer_invitation(
                id,
                me,
                session,
                hub,
                (invitation_id, caller, response),
                Answer::Accept,
            )
            .await;
        }
        Op::RefuseInvitation {
            invitation_id,
            caller,
            response,
        } => {
            answer_invitation(
                id,
                me,
                session,
                hub,
                (invitation_id, caller, response),
                Answer::Refuse,
            )
            .await;
        }
        other => refuse(
            session,
            id,
            family.failure(),
            format!("{} is not handled here", other.name()),
        ),
    }
}

/// The channel (with `notify`; `None` for the user's own set) and the write an
/// attribute-writing op asks for; any other op comes back unchanged.
fn attribute_write(op: Op) -> Result<(Option<(String, bool)>, AttributeWrite), Op> {
    use AttributeWrite::{AddOrUpdate, Clear, Delete, Set};
    Ok(match op {
        Op::SetUserAttributes { attributes } => (None, Set(attributes)),
        Op::AddOrUpdateUserAttributes { attributes } => (None, AddOrUpdate(attributes)),
        Op::DeleteUserAttributes { keys } => (None, Delete(keys)),
        Op::ClearUserAttributes => (None, Clear),
        Op::SetChannelAttributes {
            channel,
            attributes,
            notify,
        } => (Some((channel, notify)), Set(attributes)),
        Op::AddOrUpdateChannelAttributes {
            channel,
            attributes,
            notify,
        } => (Some((channel, notify)), AddOrUpdate(attributes)),
        Op::DeleteChannelAttributes {
            channel,
            keys,
            notify,
        } => (Some((channel, notify)), Delete(keys)),
        Op::ClearChannelAttributes { channel, notify } => (Some((channel, notify)), Clear),
        other => return Err(other),
    })
}

async fn write_user(
    id: u32,
    me: &Identity,
    session: &mut Session,
    hub: &Hub,
    now: Instant,
    write: AttributeWrite,
) {
    if let AttributeWrite::Delete(keys) = &write {
        if let Err(why) = check_keys(keys) {
            return refuse(session, id, attr::INVALID_ARGUMENT, why);
        }
    }
    if !session.limits.attribute_writes.allow(now) {
        return answer(session, id, Family::Attr, Err(attr::TOO_OFTEN));
    }
    let change = Change::UserAttributes {
        app: me.app.clone(),
        user: me.user.clone(),
        write,
    };
    let outcome = hub.submit(change, Some(&session.conn)).await;
    session.reply_outcome(id, Family::Attr, outcome);
}

async fn write_channel(
    id: u32,
    me: &Identity,
    session: &mut Session,
    hub: &Hub,
    now: Instant,
    (channel, write, notify): (String, AttributeWrite, bool),
) {
    if let Err(e) = validate_channel_id(&channel) {
        return refuse(session, id, attr::INVALID_ARGUMENT, e.to_string());
    }
    if let AttributeWrite::Delete(keys) = &write {
        if let Err(why) = check_keys(keys) {
            return refuse(session, id, attr::INVALID_ARGUMENT, why);
        }
    }
    if !session.limits.attribute_writes.allow(now) {
        return answer(session, id, Family::Attr, Err(attr::TOO_OFTEN));
    }
    let change = Change::ChannelAttributes {
        app: me.app.clone(),
        user: me.user.clone(),
        channel,
        write,
        notify,
    };
    let outcome = hub.submit(change, Some(&session.conn)).await;
    session.reply_outcome(id, Family::Attr, outcome);
}

/// An invitation id (1..64 bytes), a valid peer id, and a payload of at most 8 KiB.
fn check_invitation(invitation_id: &str, peer: &str, payload: &str) -> Result<(), String> {
    if invitation_id.is_empty() || invitation_id.len() > MAX_INVITATION_ID_BYTES {
        return Err(format!(
            "invitation id must be 1 to {MAX_INVITATION_ID_BYTES} bytes"
        ));
    }
    validate_user_id(peer).map_err(|e| e.to_string())?;
    if payload.len() > MAX_INVITATION_PAYLOAD_BYTES {
        return Err(format!(
            "content and response are at most {MAX_INVITATION_PAYLOAD_BYTES} bytes"
        ));
    }
    Ok(())
}

async fn answer_invitation(
    id: u32,
    me: &Identity,
    session: &Session,
    hub: &Hub,
    (invitation_id, caller, response): (String, String, String),
    kind: Answer,
) {
    if let Err(why) = check_invitation(&invitation_id, &caller, &response) {
        return refuse(session, id, invite::INVALID_ARGUMENT, why);
    }
    let change = Change::AnswerInvitation {
        app: me.app.clone(),
        callee: me.user.clone(),
        caller,
        invitation_id,
        answer: kind,
        response,
    };
    let outcome = hub.submit(change, Some(&session.conn)).await;
    session.reply_outcome(id, Family::Invite, outcome);
}

//! One connection's session and `handle`, which decides what every request does.
//!
//! `handle(request, &mut Session, &Hub)` validates, applies rate limits, asks the hub, and
//! queues the reply on the session's outbox; it knows nothing of sockets, so unit tests
//! drive it with a bare outbox. A new op gets an arm in `handle` and, if it touches shared
//! state, a method on the hub.

use super::clock::Instant;

use crate::protocol::codes::{self, Family};
use crate::protocol::limits::{
    validate_app_id, validate_channel_id, validate_user_id, DEFAULT_HISTORY_LIMIT,
    MAX_COUNT_CHANNELS, MAX_HISTORY_LIMIT,
};
use crate::protocol::{
    now_ms, HistoryResult, JoinResult, MemberCountResult, MembersResult, Op, PingResult, Reply,
    Request,
};

use super::auth::{verify_token, AuthError};
use super::config::AppLookup;
use super::engine::Change;
use super::hub::{channel_conversation, peer_conversation, Hub, Outcome, PeerSend};
use super::outbox::ConnHandle;
use super::rate::SessionLimits;
use super::store::HistoryQuery;

/// Who a session is logged in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub app: String,
    pub user: String,
}

/// The state of one connection.
#[derive(Debug)]
pub struct Session {
    pub conn: ConnHandle,
    pub identity: Option<Identity>,
    pub limits: SessionLimits,
    /// Unparsable objects so far (closed with 1008 at `max_errors`).
    pub errors: u32,
}

impl Session {
    pub fn new(conn: ConnHandle, hub: &Hub) -> Self {
        Session {
            conn,
            identity: None,
            limits: SessionLimits::new(&hub.config().rate_limits),
            errors: 0,
        }
    }

    fn reply(&self, reply: &Reply) {
        self.conn.send_reply(reply);
    }

    /// Answers `code` with the family's human text as reason.
    fn reply_code(&self, id: u32, family: Family, code: u32) {
        self.reply(&Reply::code(id, code, family.describe(code)));
    }

    /// Answers `code` with a specific reason.
    fn reply_why(&self, id: u32, code: u32, reason: impl Into<String>) {
        self.reply(&Reply::code(id, code, reason));
    }

    /// Answers the family's failure because the engine could not take the change.
    pub(super) fn reply_unavailable(&self, id: u32, family: Family) {
        self.reply_why(
            id,
            family.failure(),
            "the shared engine is unavailable; try again",
        );
    }

    /// Answers an outcome that is 0 or a code of `family`.
    pub(super) fn reply_outcome(&self, id: u32, family: Family, outcome: Outcome) {
        match outcome {
            Outcome::Code(Ok(())) | Outcome::Done => self.reply(&Reply::ok_empty(id)),
            Outcome::Code(Err(code)) => self.reply_code(id, family, code),
            other => {
                if !matches!(other, Outcome::Unavailable) {
                    tracing::error!(?other, "unexpected outcome");
                }
                self.reply_unavailable(id, family);
            }
        }
    }
}

/// Decides what one request does and queues its reply (now, or later for `send_peer`).
pub async fn handle(request: Request, session: &mut Session, hub: &Hub) {
    let Request { id, op } = request;
    let Some(id) = id else {
        // A notice: only `ack` exists, and it is never answered.
        if let (Op::Ack { message_id }, Some(me)) = (op, &session.identity) {
            hub.submit_detached(ack(me, message_id));
        }
        return;
    };
    let family = op.family();
    let Some(me) = session.identity.clone() else {
        if let Op::Login {
            app_id,
            user,
            token,
        } = op
        {
            login(id, &app_id, &user, token.as_deref(), session, hub).await;
        } else {
            session.reply_code(id, family, codes::NOT_LOGGED_IN);
        }
        return;
    };
    let now = hub.config().clock.now();
    match op {
        Op::Login { .. } => session.reply_code(id, family, codes::login::ALREADY_LOGGED_IN),
        Op::Logout => {
            let change = Change::Logout {
                conn: hub.conn_id(&session.conn),
                app: me.app,
                user: me.user,
            };
            let outcome = hub.submit(change, Some(&session.conn)).await;
            if matches!(outcome, Outcome::Unavailable) {
                // Still logged in everywhere else: the session stays.
                return session.reply_unavailable(id, family);
            }
            session.identity = None;
            session.reply(&Reply::ok_empty(id));
        }
        Op::RenewToken { token } => renew(id, &me, &token, session, hub, now).await,
        Op::Ping if hub.config().panic_on_ping_from.as_ref() == Some(&me.user) => {
            panic!("fault injection: a ping from {}", me.user)
        }
        Op::Ping => session.reply(&Reply::ok(
            id,
            &PingResult {
                server_ts: now_ms(),
            },
        )),
        Op::Ack { message_id } => {
            let outcome = hub.submit(ack(&me, message_id), None).await;
            session.reply_outcome(id, family, outcome);
        }
        Op::SendPeer {
            to,
            message,
            offline,
        } => {
            use codes::peer;
            if let Err(e) = validate_user_id(&to) {
                return session.reply_why(id, peer::INVALID_USER_ID, e.to_string());
            }
            if let Err(e) = message.validate() {
                return session.reply_why(id, peer::INVALID_MESSAGE, e.to_string());
            }
            if !session.limits.send.allow(now) {
                return session.reply_code(id, family, peer::TOO_OFTEN);
            }
            let change = Change::SendPeer {
                app: me.app.clone(),
                from: me.user.clone(),
                to: to.clone(),
                message,
                offline,
                request_id: id,
            };
            let outcome = match hub.submit(change, Some(&session.conn)).await {
                Outcome::Peer(outcome) => outcome,
                other => return session.reply_outcome(id, family, other),
            };
            match outcome {
                PeerSend::AwaitingAck => {}
                PeerSend::Unreachable => session.reply_code(id, family, peer::PEER_UNREACHABLE),
                PeerSend::Cached { result, committed } => {
                    // Answer 4 only once the message is on disk.
                    if committed.await.is_ok() {
                        let mut reply = Reply::ok(id, &result);
                        reply.code = peer::CACHED_BY_SERVER;
                        reply.reason = Some(family.describe(peer::CACHED_BY_SERVER).into());
                        session.reply(&reply);
                    } else {
                        // Not on disk (the store could not write): not cached either.
                        hub.submit_detached(Change::ForgetCached {
                            app: me.app.clone(),
                            receiver: to,
                            message_id: result.message_id,
                        });
                        session.reply_code(id, family, peer::FAILURE);
                    }
                }
            }
        }
        Op::Join { channel } => {
            use codes::join;
            if let Err(e) = validate_channel_id(&channel) {
                return session.reply_why(id, join::INVALID_ARGUMENT, e.to_string());
            }
            if !session.limits.join.allow(now) {
                return session.reply_code(id, family, join::TOO_OFTEN);
            }
            if !session.limits.join_channel(&channel, now) {
                return session.reply_code(id, family, join::SAME_CHANNEL_TOO_OFTEN);
            }
            let change = Change::Join {
                app: me.app,
                user: me.user,
                channel,
            };
            match hub.submit(change, Some(&session.conn)).await {
                Outcome::Joined(Ok(member_count)) => {
                    session.reply(&Reply::ok(id, &JoinResult { member_count }));
                }
                Outcome::Joined(Err(code)) => session.reply_code(id, family, code),
                other => session.reply_outcome(id, family, other),
            }
        }
        Op::Leave { channel } => {
            let change = Change::Leave {
                app: me.app,
                user: me.user,
                channel,
            };
            let outcome = hub.submit(change, Some(&session.conn)).await;
            session.reply_outcome(id, family, outcome);
        }
        Op::SendChannel { channel, message } => {
            use codes::channel_msg;
            if let Err(e) = message.validate() {
                return session.reply_why(id, channel_msg::INVALID_MESSAGE, e.to_string());
            }
            if !session.limits.send.allow(now) {
                return session.reply_code(id, family, channel_msg::TOO_OFTEN);
            }
            let change = Change::SendChannel {
                app: me.app,
                user: me.user,
                channel,
                message,
            };
            match hub.submit(change, Some(&session.conn)).await {
                Outcome::Sent(Ok(result)) => session.reply(&Reply::ok(id, &result)),
                Outcome::Sent(Err(code)) => session.reply_code(id, family, code),
                other => session.reply_outcome(id, family, other),
            }
        }
        Op::GetMembers { channel } => match hub.members(&me.app, &me.user, &channel) {
            Ok(members) => session.reply(&Reply::ok(id, &MembersResult { members })),
            Err(code) => session.reply_code(id, family, code),
        },
        Op::GetChannelMemberCount { channels } => {
            use codes::count;
            if channels.len() > MAX_COUNT_CHANNELS {
                return session.reply_code(id, family, count::EXCEEDS_LIMIT);
            }
            if channels.is_empty() {
                return session.reply_why(id, count::INVALID_ARGUMENT, "no channels given");
            }
            if let Some(e) = channels.iter().find_map(|c| validate_channel_id(c).err()) {
                return session.reply_why(id, count::INVALID_ARGUMENT, e.to_string());
            }
            let counts = hub.member_counts(&me.app, &channels);
            session.reply(&Reply::ok(id, &MemberCountResult { counts }));
        }
        Op::History {
            peer,
            channel,
            before,
            after,
            limit,
        } => history(id, &me, peer, channel, (before, after, limit), session, hub).await,
        other => super::session_extra::handle_extra(id, other, &me, session, hub, now).await,
    }
}

fn ack(me: &Identity, message_id: u64) -> Change {
    Change::Ack {
        app: me.app.clone(),
        user: me.user.clone(),
        message_id,
    }
}

async fn login(
    id: u32,
    app_id: &str,
    user: &str,
    token: Option<&str>,
    session: &mut Session,
    hub: &Hub,
) {
    use codes::login;
    let family = Family::Login;
    if !session.limits.login.allow(hub.config().clock.now()) {
        return session.reply_code(id, family, login::TOO_OFTEN);
    }
    if let Err(e) = validate_app_id(app_id) {
        return session.reply_why(id, login::INVALID_APP_ID, e.to_string());
    }
    if let Err(e) = validate_user_id(user) {
        return session.reply_why(id, login::INVALID_ARGUMENT, e.to_string());
    }
    let expires_at = match hub.config().apps.lookup(app_id) {
        AppLookup::Unknown => {
            return session.reply_why(id, login::INVALID_APP_ID, "unknown app id")
        }
        AppLookup::NoCertificate => None,
        AppLookup::Certificate(cert) => {
            match verify_token(token, app_id, cert, user, hub.config().clock.unix_secs()) {
                Ok(expires_at) => expires_at,
                Err(e @ AuthError::Invalid(_)) => {
                    return session.reply_why(id, login::INVALID_TOKEN, e.to_string())
                }
                Err(e @ AuthError::Expired { .. }) => {
                    return session.reply_why(id, login::TOKEN_EXPIRED, e.to_string())
                }
            }
        }
    };
    let conn = hub.conn_id(&session.conn);
    let change = Change::Login {
        app: app_id.to_string(),
        user: user.to_string(),
        conn,
        request_id: id,
        token_expires_at: expires_at,
    };
    // The login reply goes out when the change is applied, before the cached messages.
    if let Outcome::Unavailable = hub.submit(change, Some(&session.conn)).await {
        return session.reply_unavailable(id, family);
    }
    let watch = Change::WatchToken {
        app: app_id.to_string(),
        user: user.to_string(),
        conn,
        expires_at,
    };
    hub.submit(watch, Some(&session.conn)).await;
    session.identity = Some(Identity {
        app: app_id.to_string(),
        user: user.to_string(),
    });
    tracing::info!(app = app_id, user, conn = session.conn.id(), "login");
}

async fn renew(
    id: u32,
    me: &Identity,
    token: &str,
    session: &mut Session,
    hub: &Hub,
    now: Instant,
) {
    use crate::protocol::RenewResult;
    use codes::renew;
    // Only renewals that succeed count: a refused token changes nothing, the limit included.
    if session.limits.renew_token.is_full(now) {
        return session.reply_code(id, Family::Renew, renew::TOO_OFTEN);
    }
    match hub.config().apps.lookup(&me.app) {
        AppLookup::NoCertificate | AppLookup::Unknown => {
            session.limits.renew_token.allow(now);
            session.reply(&Reply::ok(
                id,
                &RenewResult {
                    token_expires_at: None,
                },
            ));
        }
        AppLookup::Certificate(cert) => {
            let now_secs = hub.config().clock.unix_secs();
            match verify_token(Some(token), &me.app, cert, &me.user, now_secs) {
                Ok(token_expires_at) => {
                    session.limits.renew_token.allow(now);
                    session.reply(&Reply::ok(id, &RenewResult { token_expires_at }));
                    // After the reply: a warning for a short token follows it.
                    let watch = Change::WatchToken {
                        app: me.app.clone(),
                        user: me.user.clone(),
                        conn: hub.conn_id(&session.conn),
                        expires_at: token_expires_at,
                    };
                    if let Outcome::Unavailable = hub.submit(watch, Some(&session.conn)).await {
                        tracing::warn!(app = me.app, user = me.user, "token renewal not shared");
                    }
                }
                Err(e @ AuthError::Invalid(_)) => {
                    session.reply_why(id, renew::INVALID_TOKEN, e.to_string());
                }
                Err(e @ AuthError::Expired { .. }) => {
                    session.reply_why(id, renew::TOKEN_EXPIRED, e.to_string());
                }
            }
        }
    }
}

async fn history(
    id: u32,
    me: &Identity,
    peer: Option<String>,
    channel: Option<String>,
    (before, after, limit): (Option<u64>, Option<u64>, Option<u32>),
    session: &Session,
    hub: &Hub,
) {
    use codes::history;
    let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return session.reply_why(id, history::INVALID_ARGUMENT, "limit must be 1..100");
    }
    let conv = match (peer, channel) {
        (Some(peer), None) => match validate_user_id(&peer) {
            Ok(()) => peer_conversation(&me.user, &peer),
            Err(e) => return session.reply_why(id, history::INVALID_ARGUMENT, e.to_string()),
        },
        (None, Some(channel)) => {
            if let Err(e) = validate_channel_id(&channel) {
                return session.reply_why(id, history::INVALID_ARGUMENT, e.to_string());
            }
            if !hub.is_member(&me.app, &me.user, &channel) {
                return session.reply_code(id, Family::History, history::NOT_IN_CHANNEL);
            }
            channel_conversation(&channel)
        }
        _ => {
            return session.reply_why(
                id,
                history::INVALID_ARGUMENT,
                "give exactly one of \"peer\" and \"channel\"",
            )
        }
    };
    let query = HistoryQuery {
        before,
        after,
        limit,
    };
    match hub.engine().messages().history(&me.app, &conv, query).await {
        Ok(messages) => session.reply(&Reply::ok(id, &HistoryResult { messages })),
        Err(e) => session.reply_why(id, history::FAILURE, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode_request, Message};
    use crate::server::config::Config;
    use crate::server::store::Store;
    use std::sync::Arc;

    fn hub(dir: &std::path::Path) -> Hub {
        let config = Config {
            store: crate::server::StoreLocation::Path(dir.to_path_buf()),
            ..Config::default()
        };
        let (store, loaded) = Store::open(dir, config.offline_ttl).unwrap();
        Hub::with_store(Arc::new(config), store, loaded)
    }

    async fn run(session: &mut Session, hub: &Hub, json: &str) -> Vec<serde_json::Value> {
        handle(decode_request(json).unwrap(), session, hub).await;
        session
            .conn
            .take_lines()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn handle_works_without_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let mut alice = Session::new(hub.new_conn(), &hub);
        let mut bob = Session::new(hub.new_conn(), &hub);
        let out = run(&mut alice, &hub, r#"{"id":1,"op":"ping"}"#).await;
        assert_eq!(out[0]["code"], codes::NOT_LOGGED_IN);
        let out = run(
            &mut alice,
            &hub,
            r#"{"id":2,"op":"login","app_id":"a","user":"alice"}"#,
        )
        .await;
        assert_eq!(out[0]["code"], 0);
        run(
            &mut bob,
            &hub,
            r#"{"id":1,"op":"login","app_id":"a","user":"bob"}"#,
        )
        .await;

        // A peer message: delivered to bob, answered to alice only after bob's ack.
        let send = crate::protocol::encode(&Request {
            id: Some(3),
            op: Op::SendPeer {
                to: "bob".into(),
                message: Message::text("hi"),
                offline: false,
            },
        });
        assert!(run(&mut alice, &hub, &send).await.is_empty());
        let delivered = bob.conn.take_lines();
        let event: serde_json::Value = serde_json::from_str(&delivered[0]).unwrap();
        assert_eq!(event["event"], "message_from_peer");
        let ack = format!(r#"{{"op":"ack","message_id":{}}}"#, event["message_id"]);
        assert!(run(&mut bob, &hub, &ack).await.is_empty());
        let replies = alice.conn.take_lines();
        let reply: serde_json::Value = serde_json::from_str(&replies[0]).unwrap();
        assert_eq!(reply["id"], 3);
        assert_eq!(reply["code"], 0);
        hub.engine().stop().await;
    }

    /// Lets spawned timer tasks run after a clock change.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn events(session: &Session) -> Vec<serde_json::Value> {
        session
            .conn
            .take_lines()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn default_ack_timeout_and_grace() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let mut alice = Session::new(hub.new_conn(), &hub);
        let mut bob = Session::new(hub.new_conn(), &hub);
        run(
            &mut alice,
            &hub,
            r#"{"id":1,"op":"login","app_id":"a","user":"alice"}"#,
        )
        .await;
        run(
            &mut bob,
            &hub,
            r#"{"id":1,"op":"login","app_id":"a","user":"bob"}"#,
        )
        .await;
        run(&mut alice, &hub, r#"{"id":2,"op":"join","channel":"c"}"#).await;
        run(&mut bob, &hub, r#"{"id":2,"op":"join","channel":"c"}"#).await;
        let send = r#"{"id":3,"op":"send_peer","to":"bob","message":{"type":"text","text":"hi"}}"#;
        run(&mut alice, &hub, send).await;
        events(&alice);

        // No ack: nothing at 9.9 s, code 2 at 10 s (protocol.md's default).
        tokio::time::advance(Duration::from_millis(9_900)).await;
        settle().await;
        assert!(events(&alice).iter().all(|e| e["id"] != 3));
        tokio::time::advance(Duration::from_millis(200)).await;
        settle().await;
        let replies: Vec<_> = events(&alice)
            .into_iter()
            .filter(|e| e["id"] == 3)
            .collect();
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0]["code"], codes::peer::TIMEOUT);

        // Bob's connection drops: alice sees him leave only after the 30 s grace.
        hub.submit_detached(Change::Disconnected {
            app: "a".into(),
            user: "bob".into(),
            conn: hub.conn_id(&bob.conn),
        });
        tokio::time::advance(Duration::from_secs(29)).await;
        settle().await;
        assert!(events(&alice).iter().all(|e| e["event"] != "member_left"));
        tokio::time::advance(Duration::from_secs(2)).await;
        settle().await;
        let left: Vec<_> = events(&alice)
            .into_iter()
            .filter(|e| e["event"] == "member_left")
            .collect();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["user"], "bob");
        hub.engine().stop().await;
    }
}

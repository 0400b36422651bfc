//! One connection's session and `handle`, which decides what every request does.
//!
//! `handle(request, &mut Session, &Hub)` checks the request against the protocol's rules
//! (`Op::check`, shared with the client), applies rate limits, asks the hub, and
//! queues the reply on the session's outbox; it knows nothing of sockets, so unit tests
//! drive it with a bare outbox. Every op has its arm in the one `match` of `handle`, with
//! no wildcard (a new `Op` does not compile until it is answered), and each arm hands the
//! request to its family's file:
//!
//! - `login.rs`: `login` (the one op before a session has an identity), `logout`,
//!   `renew_token`, `ping`;
//! - `peer.rs`: `send_peer`, `ack`;
//! - `channel.rs`: `join`, `leave`, `send_channel`, `get_members`,
//!   `get_channel_member_count`;
//! - `history.rs`: `history`;
//! - `presence.rs`: `query_peers_online`, `(un)subscribe_peers_online`,
//!   `query_subscribed_peers`;
//! - `attributes.rs`: user and channel attributes, reads and writes;
//! - `invitations.rs`: `invite`, `cancel_invitation`, `accept_invitation`,
//!   `refuse_invitation`;
//! - `media.rs`: `media_ticket` (files and images).
//!
//! A handler gets the request as an [`Ask`], answers refusals with its family's typed
//! error (`codes::WireCode`) and, for shared state, submits an `engine::Change` and
//! answers the hub's typed `Outcome`. A new op gets an arm here, a function in its
//! family's file and, if it touches shared state, a `Change` and a hub method.

mod attributes;
mod channel;
mod history;
mod invitations;
mod login;
mod media;
mod peer;
mod presence;

pub(super) use channel::route as route_channel_message;
pub(super) use peer::{send_from as send_peer_from, PeerReplyTo};

use serde::Serialize;

use super::clock::Instant;

use crate::protocol::codes::{self, Family};
use crate::protocol::InvitationAnswer::{Accept, Refuse};
use crate::protocol::{HistoryError, LoginError, Op, Refusal, Reply, Request, WireCode};

use super::engine::Change;
use super::engine::Outcome;
use super::hub::Hub;
use super::outbox::ConnHandle;
use super::rate::{RateLimiter, SessionLimits};
use crate::protocol::AttributeWrite::{AddOrUpdate, Clear, Delete, Set};

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
    /// Resolves once this connection's last routed send is on its way (several nodes:
    /// the next one waits for it, so a connection's messages keep their order).
    pub routed_order: Option<tokio::sync::oneshot::Receiver<()>>,
    /// When the frame being handled arrived (the connection's reader reads ahead while a
    /// request waits on the engine): rate limits count requests at this instant.
    pub arrived: Option<crate::server::clock::Instant>,
}

/// A routed send's place in its connection's order (see `Session::routed_order`): it
/// waits for the one before, and ends its own turn once its message is on its way.
struct RoutedTurn {
    previous: Option<tokio::sync::oneshot::Receiver<()>>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RoutedTurn {
    /// The next turn after `order` (a session's `routed_order`).
    fn take(order: &mut Option<tokio::sync::oneshot::Receiver<()>>) -> Self {
        let (done, next) = tokio::sync::oneshot::channel();
        RoutedTurn {
            previous: order.replace(next),
            done: Some(done),
        }
    }

    /// Waits for the previous send's turn to end.
    async fn begin(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = previous.await;
        }
    }

    /// Lets the next send go.
    fn end(&mut self) {
        self.done.take();
    }
}

impl Session {
    pub fn new(conn: ConnHandle, hub: &Hub) -> Self {
        Session {
            conn,
            identity: None,
            limits: SessionLimits::new(&hub.config().rate_limits),
            errors: 0,
            routed_order: None,
            arrived: None,
        }
    }

    fn reply(&self, reply: &Reply) {
        self.conn.send_reply(reply);
    }

    /// Answers `error`'s code with its family's human text as reason.
    fn refuse(&self, id: u32, error: impl WireCode) {
        self.reply(&Reply::code(id, error.code(), error.describe()));
    }

    /// Answers `error`'s code with a specific reason.
    fn refuse_why(&self, id: u32, error: impl WireCode, reason: impl Into<String>) {
        self.reply(&Reply::code(id, error.code(), reason));
    }

    /// Answers a request that breaks the protocol's rules (`Op::check`).
    fn refuse_invalid(&self, id: u32, refusal: &Refusal) {
        self.reply(&Reply::code(id, refusal.code, refusal.to_string()));
    }

    /// Answers the family's failure because the engine could not take the change.
    fn reply_unavailable(&self, id: u32, family: Family) {
        self.reply(&Reply::code(id, family.failure(), UNAVAILABLE));
    }
}

/// The reason of a failure because the engine could not take a change (Redis away).
const UNAVAILABLE: &str = "the shared engine is unavailable; try again";

/// The answer to any op but `login` before login (well-formed or not): 102, whatever
/// the family.
pub(super) fn not_logged_in_reply(id: u32, family: Family) -> Reply {
    let reason = family.describe(codes::NOT_LOGGED_IN);
    Reply::code(id, codes::NOT_LOGGED_IN, reason)
}

/// A logged-in session's request on its way through `handle`: what every family's
/// handler gets, and the ways to answer it.
struct Ask<'a> {
    id: u32,
    /// The op's family: whose failure code answers when the engine is unavailable.
    family: Family,
    me: Identity,
    session: &'a mut Session,
    hub: &'a Hub,
    /// When the request came, for the rate limits.
    now: Instant,
}

impl Ask<'_> {
    fn reply(&self, reply: &Reply) {
        self.session.reply(reply);
    }

    /// Answers 0 with `result`.
    fn ok(&self, result: &impl Serialize) {
        self.reply(&Reply::ok(self.id, result));
    }

    /// Answers 0 with no result.
    fn ok_empty(&self) {
        self.reply(&Reply::ok_empty(self.id));
    }

    fn refuse(&self, error: impl WireCode) {
        self.session.refuse(self.id, error);
    }

    fn refuse_why(&self, error: impl WireCode, reason: impl Into<String>) {
        self.session.refuse_why(self.id, error, reason);
    }

    /// Counts this request against the connection's `limit` (`SessionLimits`' field);
    /// past it, answers `too_often` and gives false.
    fn within(
        &mut self,
        limit: fn(&mut SessionLimits) -> &mut RateLimiter,
        too_often: impl WireCode,
    ) -> bool {
        let allowed = limit(&mut self.session.limits).allow(self.now);
        if !allowed {
            self.refuse(too_often);
        }
        allowed
    }

    /// Answers 0, or the error's code with its family's text.
    fn ok_or_refuse(&self, result: Result<(), impl WireCode>) {
        match result {
            Ok(()) => self.ok_empty(),
            Err(error) => self.refuse(error),
        }
    }

    /// Submits `change` for this request's connection and waits for its outcome.
    async fn submit(&self, change: Change) -> Outcome {
        self.hub.submit(change, Some(&self.session.conn)).await
    }

    /// Answers an outcome that is not the op's own: `Unavailable` (the engine could not
    /// take the change) or, a bug, another op's outcome (logged). The family's failure
    /// code either way.
    fn unavailable(&self, outcome: &Outcome) {
        if !matches!(outcome, Outcome::Unavailable) {
            tracing::error!(?outcome, "unexpected outcome");
        }
        self.session.reply_unavailable(self.id, self.family);
    }
}

/// Decides what one request does and queues its reply (now, or later for `send_peer`).
pub async fn handle(request: Request, session: &mut Session, hub: &Hub) {
    let Request { id, op } = request;
    let Some(id) = id else {
        // A notice: only `ack` exists, and it is never answered.
        if let (Op::Ack { message_id }, Some(me)) = (op, &session.identity) {
            peer::ack_notice(hub, me, message_id);
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
            let login = (app_id.as_str(), user.as_str(), token.as_deref());
            login::login(id, login, session, hub).await;
        } else {
            session.reply(&not_logged_in_reply(id, family));
        }
        return;
    };
    // A second login is refused as such, whatever its parameters.
    let checked = match op {
        Op::Login { .. } => Ok(()),
        _ => op.check(),
    };
    if let Err(refusal) = checked {
        return session.refuse_invalid(id, &refusal);
    }
    let now = session.arrived.unwrap_or_else(|| hub.config().clock.now());
    let ask = &mut Ask {
        id,
        family,
        me,
        session,
        hub,
        now,
    };
    match op {
        Op::Login { .. } => ask.refuse(LoginError::AlreadyLoggedIn),
        Op::Logout => login::logout(ask).await,
        Op::RenewToken { token } => login::renew(ask, &token).await,
        Op::Ping => login::ping(ask),
        Op::SendPeer {
            to,
            message,
            offline,
        } => peer::send(ask, to, message, offline).await,
        Op::Ack { message_id } => peer::ack(ask, message_id).await,
        Op::QueryPeersOnline { peers } => {
            hub.caught_up(&ask.me.app).await;
            presence::query(ask, &peers);
        }
        Op::SubscribePeersOnline { peers } => presence::subscribe(ask, peers).await,
        Op::UnsubscribePeersOnline { peers } => presence::unsubscribe(ask, peers).await,
        Op::QuerySubscribedPeers => {
            hub.caught_up(&ask.me.app).await;
            presence::query_subscribed(ask);
        }
        Op::SetUserAttributes { attributes } => attributes::write_user(ask, Set(attributes)).await,
        Op::AddOrUpdateUserAttributes { attributes } => {
            attributes::write_user(ask, AddOrUpdate(attributes)).await;
        }
        Op::DeleteUserAttributes { keys } => attributes::write_user(ask, Delete(keys)).await,
        Op::ClearUserAttributes => attributes::write_user(ask, Clear).await,
        Op::GetUserAttributes { user, keys } => {
            hub.caught_up(&ask.me.app).await;
            attributes::get_user(ask, &user, keys.as_deref()).await;
        }
        Op::Join { channel } => channel::join(ask, channel).await,
        Op::Leave { channel } => channel::leave(ask, channel).await,
        Op::SendChannel { channel, message } => channel::send(ask, channel, message).await,
        Op::GetMembers { channel } => {
            hub.caught_up(&ask.me.app).await;
            channel::members(ask, &channel);
        }
        Op::GetChannelMemberCount { channels } => {
            hub.caught_up(&ask.me.app).await;
            channel::counts(ask, &channels);
        }
        Op::SetChannelAttributes {
            channel,
            attributes,
            notify,
        } => attributes::write_channel(ask, channel, Set(attributes), notify).await,
        Op::AddOrUpdateChannelAttributes {
            channel,
            attributes,
            notify,
        } => attributes::write_channel(ask, channel, AddOrUpdate(attributes), notify).await,
        Op::DeleteChannelAttributes {
            channel,
            keys,
            notify,
        } => attributes::write_channel(ask, channel, Delete(keys), notify).await,
        Op::ClearChannelAttributes { channel, notify } => {
            attributes::write_channel(ask, channel, Clear, notify).await;
        }
        Op::GetChannelAttributes { channel, keys } => {
            hub.caught_up(&ask.me.app).await;
            attributes::get_channel(ask, &channel, keys.as_deref()).await;
        }
        Op::Invite {
            invitation_id,
            callee,
            content,
            channel,
        } => invitations::invite(ask, (invitation_id, callee), content, channel).await,
        Op::CancelInvitation {
            invitation_id,
            callee,
        } => invitations::cancel(ask, invitation_id, callee).await,
        Op::AcceptInvitation {
            invitation_id,
            caller,
            response,
        } => invitations::answer(ask, Accept, (invitation_id, caller), response).await,
        Op::RefuseInvitation {
            invitation_id,
            caller,
            response,
        } => invitations::answer(ask, Refuse, (invitation_id, caller), response).await,
        Op::History {
            peer,
            channel,
            before,
            after,
            limit,
        } => {
            if !ask.session.limits.history.allow(ask.now) {
                // HISTORY has no "too often": its failure code, with a reason that says so.
                return ask.refuse_why(HistoryError::Failure, "history too often");
            }
            hub.caught_up(&ask.me.app).await;
            history::history(ask, (peer, channel), (before, after), limit).await;
        }
        Op::MediaTicket => media::ticket(ask),
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

    /// Handles one request; what it queued (replies and events).
    async fn run(session: &mut Session, hub: &Hub, json: &str) -> Vec<serde_json::Value> {
        handle(decode_request(json).unwrap(), session, hub).await;
        events(session)
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

    /// What the session's outbox holds, taken out.
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

        // No ack: nothing at 9.9 s, code 2 at 10 s (docs/protocol.md's default).
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

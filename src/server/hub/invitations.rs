//! The hub's call invitations: `invite`, `cancel_invitation`, `accept_invitation` and
//! `refuse_invitation`, and the expiry.
//!
//! Pending invitations are the engine's (`engine/invitations.rs`; on several nodes one
//! hash per caller on the caller's Redis), not the shared state's: each step is one call
//! to that store from the node of the user who asks, which then tells the other side
//! wherever its connection is (here, or on another node through the engine). Whoever
//! closes an invitation (an answer, a cancel, the expiry) tells both sides what they
//! hear, so each ends once. The expiry is a timer on the caller's node; when a node is
//! gone, the node that applies `NodeGone` reads its users' pending invitations and runs
//! their expiry instead (`adopt_expiries`). Results carry the INVITE family's typed error
//! (`Outcome::Invitation`) or `Outcome::Unavailable` (the store is away);
//! `session/invitations.rs` validates input and turns them into replies.

use std::time::Duration;

use crate::protocol::{Event, InvitationAnswer, InviteError, WireCode};

use crate::server::engine::invitations::{InvitationTerms, Opened};
use crate::server::engine::{InvitationKey, Outcome};
use crate::server::outbox::ConnHandle;

use super::Hub;

/// How long an expiry that found the store away waits before it tries again.
const EXPIRY_RETRY: Duration = Duration::from_secs(1);

impl Hub {
    /// `invite`: delivers `invitation_received` to an online callee and starts the
    /// expiry here.
    pub async fn invite(
        &self,
        app: &str,
        key: InvitationKey,
        (content, channel): (String, Option<String>),
    ) -> Outcome {
        // The callee may have logged in on another node a moment ago.
        self.caught_up(app).await;
        if self.locate(app, &key.1).is_none() {
            return Outcome::Invitation(Err(InviteError::PeerOffline));
        }
        let timeout = self.config().invitation_timeout;
        let terms = InvitationTerms {
            // Below 2^53, as every number the stores keep.
            epoch: rand::random::<u64>() >> 11,
            expires_at_ms: crate::protocol::now_ms() + timeout.as_millis() as u64,
        };
        let cap = self.config().max_pending_invitations;
        match self
            .engine()
            .invitations()
            .open(app, &key, terms, cap)
            .await
        {
            Ok(Opened::Done) => {}
            // A cap per caller, so that no one can flood a callee's outbox with them.
            Ok(Opened::Duplicate | Opened::TooMany) => {
                return Outcome::Invitation(Err(InviteError::InvalidArgument))
            }
            Err(_) => return Outcome::Unavailable,
        }
        let (caller, callee, invitation_id) = key.clone();
        let received = Event::InvitationReceived {
            invitation_id,
            caller,
            content,
            channel,
        };
        self.tell(app, &callee, &received);
        self.expire_after(app, key, terms.epoch, timeout);
        Outcome::Invitation(Ok(()))
    }

    /// `cancel_invitation` by the caller: the callee gets `invitation_canceled`.
    pub async fn cancel_invitation(&self, app: &str, key: InvitationKey) -> Outcome {
        match self.engine().invitations().close(app, &key, None).await {
            Ok(true) => {}
            Ok(false) => return Outcome::Invitation(Err(InviteError::NotFound)),
            Err(_) => return Outcome::Unavailable,
        }
        let (caller, callee, invitation_id) = key;
        let canceled = Event::InvitationCanceled {
            invitation_id,
            caller,
        };
        self.tell(app, &callee, &canceled);
        Outcome::Invitation(Ok(()))
    }

    /// `accept_invitation` / `refuse_invitation` by the callee: the caller hears the
    /// answer (an offline caller: 1, the invitation is closed all the same).
    pub async fn answer_invitation(
        &self,
        app: &str,
        key: InvitationKey,
        (answer, response): (InvitationAnswer, String),
    ) -> Outcome {
        match self.engine().invitations().close(app, &key, None).await {
            Ok(true) => {}
            Ok(false) => return Outcome::Invitation(Err(InviteError::NotFound)),
            Err(_) => return Outcome::Unavailable,
        }
        let (caller, callee, invitation_id) = key;
        let answered = answer.event(invitation_id, callee, response);
        if !self.tell(app, &caller, &answered) {
            return Outcome::Invitation(Err(InviteError::PeerOffline));
        }
        Outcome::Invitation(Ok(()))
    }

    /// Queues `event` on `user`'s connection, here or on its node; false if `user` is not
    /// online anywhere (as this node's copy has it).
    fn tell(&self, app: &str, user: &str, event: &Event) -> bool {
        let line = ConnHandle::encode_shared(event);
        let node = {
            let state = self.lock();
            match state.shared.user(app, user).and_then(|u| u.conn.as_ref()) {
                None => return false,
                Some(conn) if conn.local.is_some() => {
                    conn.push_line(&line);
                    return true;
                }
                Some(conn) => conn.id.node,
            }
        };
        self.engine().deliver_on(node, app, user, &line);
        true
    }

    /// Closes the invitation after `delay` if it is still the pending one of `epoch`;
    /// then both sides hear it expired.
    fn expire_after(&self, app: &str, key: InvitationKey, epoch: u64, delay: Duration) {
        let app = app.to_string();
        self.after(delay, move |hub| {
            let hub = hub.clone();
            tokio::spawn(async move { hub.invitation_expired(app, key, epoch).await });
        });
    }

    async fn invitation_expired(&self, app: String, key: InvitationKey, epoch: u64) {
        match self
            .engine()
            .invitations()
            .close(&app, &key, Some(epoch))
            .await
        {
            Ok(true) => {
                let failure = Event::InvitationFailure {
                    invitation_id: key.2.clone(),
                    reason: InviteError::Expired.code(),
                };
                for user in [&key.0, &key.1] {
                    self.tell(&app, user, &failure);
                }
            }
            // Answered, canceled, or gone with its Redis' data.
            Ok(false) => {}
            // Until the store is back (its record goes by itself a minute after the
            // expiry, and then this ends with nothing to close).
            Err(_) => self.expire_after(&app, key, epoch, EXPIRY_RETRY),
        }
    }

    /// `users` were on a node that is gone: the expiry of the invitations they sent ran
    /// there, and runs here now, each at its time (called on the origin of `NodeGone`).
    pub(super) fn adopt_expiries(&self, app: &str, users: Vec<String>) {
        let hub = self.clone();
        let app = app.to_string();
        tokio::spawn(async move {
            let now = crate::protocol::now_ms();
            for caller in users {
                let Ok(pending) = hub.engine().invitations().pending(&app, &caller).await else {
                    tracing::warn!(app, caller, "pending invitations of a gone node unread");
                    continue;
                };
                for (key, terms) in pending {
                    let left = Duration::from_millis(terms.expires_at_ms.saturating_sub(now));
                    hub.expire_after(&app, key, terms.epoch, left);
                }
            }
        });
    }
}

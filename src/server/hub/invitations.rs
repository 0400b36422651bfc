//! The hub's call invitations: `invite`, `cancel_invitation`, `accept_invitation` and
//! `refuse_invitation`, and the expiry.
//!
//! Pending invitations are the engine's (`engine/invitations.rs`; on several nodes one
//! hash per caller on the caller's Redis), not the shared state's: each step is one call
//! to that store from the node of the user who asks, which then tells the other side
//! wherever its connection is (here, or on another node through the engine, in order).
//! Whoever closes an invitation (an answer, a cancel, the expiry) tells both sides what
//! they hear, so each ends once. The expiry is a timer on the caller's node and, when the
//! callee is on another node, on the callee's too (it comes with `invitation_received`):
//! the first to close it tells both, so it expires even if one of the two nodes dies.
//! Results carry the INVITE family's typed error (`Outcome::Invitation`) or
//! `Outcome::Unavailable` (the store is away); `session/invitations.rs` validates input
//! and turns them into replies.

use std::time::Duration;

use crate::protocol::{Event, InvitationAnswer, InviteError, WireCode};

use crate::server::engine::invitations::{ExpiryWatch, InvitationTerms, Opened};
use crate::server::engine::{InvitationKey, Outcome};
use crate::server::outbox::ConnHandle;

use super::Hub;

/// How long an expiry that found the store away waits before it tries again.
const EXPIRY_RETRY: Duration = Duration::from_secs(1);

impl Hub {
    /// `invite`: delivers `invitation_received` to an online callee and starts the
    /// expiry (here, and on the callee's node).
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
        let now = self.config().clock.unix_ms();
        let terms = InvitationTerms {
            // Below 2^53, as every number the stores keep.
            epoch: rand::random::<u64>() >> 11,
            expires_at_ms: now + timeout.as_millis() as u64,
        };
        let cap = self.config().max_pending_invitations;
        let store = self.engine().invitations();
        match store.open(app, &key, terms, (cap, now)).await {
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
        let watch = ExpiryWatch {
            key: key.clone(),
            epoch: terms.epoch,
            after_ms: timeout.as_millis() as u64,
        };
        if !self.tell(app, &callee, &received, Some(watch)) {
            // Gone since it was seen online: not invited after all.
            let _ = store.close(app, &key, Some(terms.epoch)).await;
            return Outcome::Invitation(Err(InviteError::PeerOffline));
        }
        self.expire_after(app, key, terms.epoch, timeout);
        Outcome::Invitation(Ok(()))
    }

    /// `cancel_invitation` by the caller: the callee gets `invitation_canceled`.
    pub async fn cancel_invitation(&self, app: &str, key: InvitationKey) -> Outcome {
        if let Err(refused) = self.close_invitation(app, &key).await {
            return refused;
        }
        let (caller, callee, invitation_id) = key;
        let canceled = Event::InvitationCanceled {
            invitation_id,
            caller,
        };
        self.tell(app, &callee, &canceled, None);
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
        // The caller may have moved to another node a moment ago.
        self.caught_up(app).await;
        if let Err(refused) = self.close_invitation(app, &key).await {
            return refused;
        }
        let (caller, callee, invitation_id) = key;
        let answered = answer.event(invitation_id, callee, response);
        if !self.tell(app, &caller, &answered, None) {
            return Outcome::Invitation(Err(InviteError::PeerOffline));
        }
        Outcome::Invitation(Ok(()))
    }

    /// Closes a pending invitation for an answer or a cancel; the outcome to answer if
    /// it was not pending (or the store is away).
    async fn close_invitation(&self, app: &str, key: &InvitationKey) -> Result<(), Outcome> {
        match self.engine().invitations().close(app, key, None).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Outcome::Invitation(Err(InviteError::NotFound))),
            Err(_) => Err(Outcome::Unavailable),
        }
    }

    /// Queues `event` on `user`'s connection, here or on its node (with `expiry`, which
    /// that node runs too); false if `user` is not online anywhere (as this node's copy
    /// has it).
    fn tell(&self, app: &str, user: &str, event: &Event, expiry: Option<ExpiryWatch>) -> bool {
        let line = ConnHandle::encode_shared(event);
        if self.deliver_peer(app, user, &line) {
            return true;
        }
        match self.locate(app, user) {
            Some(node) => {
                self.engine().deliver_on(node, (app, user), &line, expiry);
                true
            }
            None => false,
        }
    }

    /// Closes the invitation after `delay` if it is still the pending one of `epoch`;
    /// then both sides hear it expired.
    pub(super) fn expire_after(&self, app: &str, key: InvitationKey, epoch: u64, delay: Duration) {
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
                    self.tell(&app, user, &failure, None);
                }
            }
            // Answered, canceled, expired by the other side's node, or dropped with its
            // Redis' data (or when the close went through but its answer was lost: then
            // neither side hears of the expiry).
            Ok(false) => {}
            // Until the store is back (after a minute past the expiry the invitation is
            // dropped there, and this ends with nothing to close).
            Err(_) => self.expire_after(&app, key, epoch, EXPIRY_RETRY),
        }
    }
}

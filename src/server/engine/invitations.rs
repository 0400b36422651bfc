//! Pending call invitations, kept outside the shared state: per caller, its invitations
//! that no answer, cancel or expiry has closed yet, so that no node holds the invitations
//! of users it does not serve and an invitation is not a change every node applies.
//!
//! - **Open** (`invite`): refused if the same (caller, callee, id) is pending, or if the
//!   caller has its cap pending; otherwise kept with its *epoch* (a random number telling
//!   this invitation from a later one that reuses the id) and when it expires.
//! - **Close** (an answer, a cancel, the expiry): removes it if pending, and says whether
//!   it was; the expiry closes only its own epoch's. Whoever closes it tells both sides,
//!   so each invitation ends once.
//! - **Expiry** runs as a timer on the caller's node and, when the callee is on another
//!   node, on the callee's too ([`ExpiryWatch`]): the first to close it tells both sides,
//!   so it expires even if one of the two nodes dies (`hub/invitations.rs`).
//!
//! Two stores: [`InMemoryInvitations`] (one node) and the Redis engine's (one hash per
//! caller on the caller's Redis: `redis/invitations.rs`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{BoxFuture, InvitationKey, Unavailable};

/// An invitation as its store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvitationTerms {
    /// Tells this invitation from a later one with the same key.
    pub epoch: u64,
    /// When it expires (unix ms).
    pub expires_at_ms: u64,
}

/// An invitation's expiry as it travels to the callee's node with `invitation_received`,
/// so that node runs it too (`Engine::deliver_on`): the expiry still comes should the
/// caller's node die.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExpiryWatch {
    pub key: InvitationKey,
    pub epoch: u64,
    /// How long after it was sent the invitation expires (ms).
    pub after_ms: u64,
}

/// How an open went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Done,
    /// The same (caller, callee, id) is pending.
    Duplicate,
    /// The caller has its cap of invitations pending.
    TooMany,
}

/// Pending invitations; see the module header.
pub trait InvitationStore: Send + Sync {
    /// Opens `key`'s invitation on `terms` unless it is pending or its caller (`key.0`)
    /// has `cap` invitations pending (`now`: unix ms).
    fn open(
        &self,
        app: &str,
        key: &InvitationKey,
        terms: InvitationTerms,
        cap_now: (usize, u64),
    ) -> BoxFuture<Result<Opened, Unavailable>>;

    /// Closes `key`'s invitation if it is pending (with `epoch`: only that one); true if
    /// it was.
    fn close(
        &self,
        app: &str,
        key: &InvitationKey,
        epoch: Option<u64>,
    ) -> BoxFuture<Result<bool, Unavailable>>;
}

/// A caller's pending invitations: (callee, id) → terms.
type CallerInvitations = HashMap<(String, String), InvitationTerms>;

/// The pending invitations of one node, in memory.
#[derive(Debug, Default)]
pub struct InMemoryInvitations {
    /// By (app, caller).
    callers: Mutex<HashMap<(String, String), CallerInvitations>>,
}

impl InMemoryInvitations {
    fn callers(&self) -> MutexGuard<'_, HashMap<(String, String), CallerInvitations>> {
        self.callers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl InvitationStore for InMemoryInvitations {
    fn open(
        &self,
        app: &str,
        (caller, callee, id): &InvitationKey,
        terms: InvitationTerms,
        (cap, _now): (usize, u64),
    ) -> BoxFuture<Result<Opened, Unavailable>> {
        // Nothing is left unclosed on one node: its timers end every invitation.
        let mut callers = self.callers();
        let pending = callers
            .entry((app.to_string(), caller.clone()))
            .or_default();
        let opened = if pending.contains_key(&(callee.clone(), id.clone())) {
            Opened::Duplicate
        } else if pending.len() >= cap {
            Opened::TooMany
        } else {
            pending.insert((callee.clone(), id.clone()), terms);
            Opened::Done
        };
        if pending.is_empty() {
            callers.remove(&(app.to_string(), caller.clone()));
        }
        Box::pin(std::future::ready(Ok(opened)))
    }

    fn close(
        &self,
        app: &str,
        (caller, callee, id): &InvitationKey,
        epoch: Option<u64>,
    ) -> BoxFuture<Result<bool, Unavailable>> {
        let mut callers = self.callers();
        let key = (app.to_string(), caller.clone());
        let Some(pending) = callers.get_mut(&key) else {
            return Box::pin(std::future::ready(Ok(false)));
        };
        let invitation = (callee.clone(), id.clone());
        let closed = pending
            .get(&invitation)
            .is_some_and(|terms| epoch.is_none_or(|epoch| terms.epoch == epoch));
        if closed {
            pending.remove(&invitation);
            if pending.is_empty() {
                callers.remove(&key);
            }
        }
        Box::pin(std::future::ready(Ok(closed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(callee: &str, id: &str) -> InvitationKey {
        ("alice".into(), callee.into(), id.into())
    }

    fn terms(epoch: u64) -> InvitationTerms {
        InvitationTerms {
            epoch,
            expires_at_ms: 1_000,
        }
    }

    #[tokio::test]
    async fn an_invitation_opens_once_within_the_cap_and_closes_once() {
        let store = InMemoryInvitations::default();
        let open = |k: InvitationKey, epoch| store.open("app", &k, terms(epoch), (2, 0));
        assert_eq!(open(key("bob", "1"), 1).await, Ok(Opened::Done));
        assert_eq!(open(key("bob", "1"), 2).await, Ok(Opened::Duplicate));
        assert_eq!(open(key("carol", "1"), 3).await, Ok(Opened::Done));
        assert_eq!(open(key("dave", "1"), 4).await, Ok(Opened::TooMany));
        // The expiry of another epoch closes nothing; an answer closes it once.
        assert_eq!(
            store.close("app", &key("bob", "1"), Some(9)).await,
            Ok(false)
        );
        assert_eq!(store.close("app", &key("bob", "1"), None).await, Ok(true));
        assert_eq!(store.close("app", &key("bob", "1"), None).await, Ok(false));
        assert_eq!(
            store.close("app", &key("carol", "1"), Some(3)).await,
            Ok(true)
        );
        assert!(store.callers().is_empty(), "no empty entries are kept");
        // Another app is another world.
        assert_eq!(
            store.close("other", &key("bob", "1"), None).await,
            Ok(false)
        );
    }
}

//! What the engine asks of the hub ([`Node`], implemented here): applying changes in
//! the shared order, snapshots, and, for messages an engine routes itself (several
//! nodes), where a user is and handing a message that came from another node to this
//! node's connections.
//!
//! On one node every message goes through `Hub::apply`. The Redis engine sends peer and
//! channel messages straight to the nodes concerned instead (`engine/redis/feed.rs`):
//! it asks the hub where the receiver is, and hands what arrives to the hub here, which
//! queues it on the local connections (under the state lock, so the order in which a
//! node hands messages over is the order every local receiver sees).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::server::config::Config;
use crate::server::engine::invitations::ExpiryWatch;
use crate::server::engine::{Change, Node, NodeId, NodeRef, Outcome, SharedState, Stamp};
use crate::server::outbox::ConnHandle;

use super::state::{State, Tenant};
use super::Hub;

/// The state locked for the engine: changes are applied by the hub that locked it.
struct Locked<'a> {
    hub: &'a Hub,
    state: &'a mut State,
}

impl SharedState for Locked<'_> {
    fn apply(&mut self, change: Change, stamp: Stamp, conn: Option<&ConnHandle>) -> Outcome {
        self.hub.apply(self.state, change, stamp, conn)
    }

    fn replace(
        &mut self,
        app: &str,
        snapshot: Option<&str>,
        close_code: u16,
    ) -> Result<(), String> {
        let tenant = match snapshot {
            Some(json) => Some(serde_json::from_str(json).map_err(|e| e.to_string())?),
            None => None,
        };
        self.state.replace_app(app, tenant, close_code);
        Ok(())
    }

    fn snapshot(&self, app: &str) -> Result<String, String> {
        let empty = Tenant::default();
        let tenant = self.state.shared.apps.get(app).unwrap_or(&empty);
        serde_json::to_string(tenant).map_err(|e| e.to_string())
    }

    fn forget_if_unused(&mut self, app: &str) -> bool {
        let apps = &mut self.state.shared.apps;
        // Used: it names this node (a connection here, a timer this node runs).
        if apps
            .get(app)
            .is_some_and(|tenant| tenant.nodes().contains(&self.hub.node()))
        {
            return false;
        }
        apps.remove(app);
        true
    }
}

impl Node for Hub {
    fn config(&self) -> &Config {
        Hub::config(self)
    }

    fn to_ref(&self) -> NodeRef {
        Arc::new(self.clone())
    }

    fn with_state(&self, batch: &mut dyn FnMut(&mut dyn SharedState)) {
        let mut state = self.lock();
        batch(&mut Locked {
            hub: self,
            state: &mut state,
        });
    }

    fn submit_detached(&self, change: Change) {
        Hub::submit_detached(self, change);
    }

    fn nodes_named(&self) -> BTreeMap<NodeId, BTreeSet<String>> {
        Hub::nodes_named(self)
    }

    fn locate(&self, app: &str, user: &str) -> Option<NodeId> {
        Hub::locate(self, app, user)
    }

    fn is_member(&self, app: &str, user: &str, channel: &str) -> bool {
        Hub::is_member(self, app, user, channel)
    }

    fn deliver_peer(&self, app: &str, to: &str, line: &Arc<str>) -> bool {
        Hub::deliver_peer(self, app, to, line)
    }

    fn deliver_channel(&self, app: &str, channel: &str, skip: Option<&str>, line: &Arc<str>) {
        Hub::deliver_channel(self, app, channel, skip, line);
    }

    fn has_local_member(&self, app: &str, channel: &str) -> bool {
        Hub::has_local_member(self, app, channel)
    }

    fn watch_invitation_expiry(&self, app: &str, expiry: ExpiryWatch) {
        let after = std::time::Duration::from_millis(expiry.after_ms);
        self.expire_after(app, expiry.key, expiry.epoch, after);
    }
}

impl Hub {
    /// The node holding `user`'s connection, as this node's copy has it (`None`: not
    /// logged in anywhere, or in its grace period).
    pub fn locate(&self, app: &str, user: &str) -> Option<NodeId> {
        let state = self.lock();
        let app_state = state.shared.apps.get(app)?;
        app_state.users.get(user)?.conn.as_ref().map(|c| c.id.node)
    }

    /// Queues an encoded peer event on `to`'s connection if it is on this node; false if
    /// it is not (the sender's node then sends the message another way).
    pub fn deliver_peer(&self, app: &str, to: &str, line: &Arc<str>) -> bool {
        let state = self.lock();
        let local = state
            .shared
            .user(app, to)
            .and_then(|u| u.conn.as_ref())
            .and_then(|c| c.local.as_ref());
        match local {
            Some(conn) => {
                conn.push_line(line.clone());
                true
            }
            None => false,
        }
    }

    /// Queues an encoded channel event on every member of `channel` on this node but
    /// `skip` (a message's sender).
    pub fn deliver_channel(&self, app: &str, channel: &str, skip: Option<&str>, line: &Arc<str>) {
        let state = self.lock();
        if let Some(members) = state.shared.channel(app, channel) {
            members.broadcast(line, skip);
        }
    }

    /// True if a member of `channel` has its connection on this node.
    pub fn has_local_member(&self, app: &str, channel: &str) -> bool {
        let state = self.lock();
        state.shared.channel(app, channel).is_some_and(|c| {
            c.members
                .values()
                .any(|conn| conn.as_ref().is_some_and(|c| c.local.is_some()))
        })
    }
}

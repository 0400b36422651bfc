//! This node's presence watchers: which of its connections follow whose presence
//! ([`Watchers`], in `State`, never shared). A subscription belongs to its user and lives
//! in the engine's store (`engine/subscriptions.rs`); the node holding the user's
//! connection follows the user's peers here, loading them as the user logs in, so a
//! presence change reaches its subscribers from the node that holds them, and no node
//! keeps the subscriptions of users it does not serve.
//!
//! Entries are per connection: one opens as its login is applied here and goes when its
//! connection ends (its session) or logs out, so a read that comes back late follows
//! nothing for a connection that has gone; one whose connection is no longer its user's
//! (a remote login elsewhere) is passed over by `presence.rs` until then.

use std::collections::{BTreeSet, HashMap};

use crate::server::engine::ConnId;

/// What one connection's user follows (see the module header).
#[derive(Debug)]
struct Following {
    app: String,
    user: String,
    peers: BTreeSet<String>,
    /// Follows and unfollows so far: a read that began before one must not override it.
    changes: u64,
}

/// This node's watchers; see the module header.
#[derive(Debug, Default)]
pub(super) struct Watchers {
    by_conn: HashMap<ConnId, Following>,
    /// (app, peer) → the connections following it.
    by_peer: HashMap<(String, String), BTreeSet<ConnId>>,
    /// The subscriptions a login read before its change was applied, by its connection
    /// (`Hub::login` takes them: `hub/presence.rs`), with the generation they are of.
    loaded: HashMap<ConnId, (u64, Vec<String>)>,
}

impl Watchers {
    /// `conn` logged in here as `user` of `app`, following nobody yet.
    pub fn open(&mut self, conn: ConnId, (app, user): (&str, &str)) {
        self.end(conn);
        let following = Following {
            app: app.to_string(),
            user: user.to_string(),
            peers: BTreeSet::new(),
            changes: 0,
        };
        self.by_conn.insert(conn, following);
    }

    /// How many times `conn`'s entry changed since it opened, if it is open
    /// ([`Watchers::open`], not [`Watchers::end`]ed since).
    pub fn changes(&self, conn: ConnId) -> Option<u64> {
        self.by_conn.get(&conn).map(|f| f.changes)
    }

    /// `conn` follows `peers` too, if it is open.
    pub fn follow(&mut self, conn: ConnId, peers: &[String]) {
        let Some(following) = self.by_conn.get_mut(&conn) else {
            return;
        };
        following.changes += 1;
        for peer in peers {
            if following.peers.insert(peer.clone()) {
                let key = (following.app.clone(), peer.clone());
                self.by_peer.entry(key).or_default().insert(conn);
            }
        }
    }

    /// `conn` no longer follows `peers`.
    pub fn unfollow(&mut self, conn: ConnId, peers: &[String]) {
        let Some(following) = self.by_conn.get_mut(&conn) else {
            return;
        };
        following.changes += 1;
        for peer in peers {
            if following.peers.remove(peer) {
                stop_following(&mut self.by_peer, (&following.app, peer), conn);
            }
        }
    }

    /// `conn` ended or logged out: it follows nothing any more.
    pub fn end(&mut self, conn: ConnId) {
        self.loaded.remove(&conn);
        let Some(following) = self.by_conn.remove(&conn) else {
            return;
        };
        for peer in &following.peers {
            stop_following(&mut self.by_peer, (&following.app, peer), conn);
        }
    }

    /// The peers `conn` follows, in id order.
    pub fn peers_of(&self, conn: ConnId) -> Vec<String> {
        self.by_conn
            .get(&conn)
            .map(|f| f.peers.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The connections following `peer` of `app`, each with its user.
    pub fn followers_of<'a>(
        &'a self,
        app: &str,
        peer: &str,
    ) -> impl Iterator<Item = (ConnId, &'a str)> + 'a {
        self.by_peer
            .get(&(app.to_string(), peer.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|conn| Some((*conn, self.by_conn.get(conn)?.user.as_str())))
    }

    /// Keeps the subscriptions of `generation` a login on `conn` read, until its change
    /// is applied ([`Watchers::take_loaded`]).
    pub fn keep_loaded(&mut self, conn: ConnId, generation: u64, peers: Vec<String>) {
        self.loaded.insert(conn, (generation, peers));
    }

    /// What a login on `conn` read before its change, if anything.
    pub fn take_loaded(&mut self, conn: ConnId) -> Option<(u64, Vec<String>)> {
        self.loaded.remove(&conn)
    }

    /// Open connections, peers followed, and logins' reads waiting: for the tests.
    #[cfg(test)]
    fn len(&self) -> (usize, usize, usize) {
        (self.by_conn.len(), self.by_peer.len(), self.loaded.len())
    }
}

/// Takes `conn` off the followers of `peer` of `app` in `by_peer`.
fn stop_following(
    by_peer: &mut HashMap<(String, String), BTreeSet<ConnId>>,
    (app, peer): (&str, &str),
    conn: ConnId,
) {
    let key = (app.to_string(), peer.to_string());
    if let Some(conns) = by_peer.get_mut(&key) {
        conns.remove(&conn);
        if conns.is_empty() {
            by_peer.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: u64) -> ConnId {
        ConnId { node: 1, conn: n }
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn followers_come_and_go_with_their_connections() {
        let mut watchers = Watchers::default();
        // A connection that is not open (it ended before a late read) follows nobody.
        watchers.follow(conn(9), &ids(&["bob"]));
        assert_eq!(watchers.len(), (0, 0, 0));
        for (n, app, user) in [
            (1, "app", "alice"),
            (2, "app", "dave"),
            (3, "other", "erin"),
        ] {
            watchers.open(conn(n), (app, user));
        }
        assert_eq!(watchers.changes(conn(1)), Some(0));
        watchers.follow(conn(1), &ids(&["bob", "carol"]));
        // A late read that began before this follow sees the count moved on.
        assert_eq!(watchers.changes(conn(1)), Some(1));
        watchers.follow(conn(2), &ids(&["bob"]));
        watchers.follow(conn(3), &ids(&["bob"]));
        let bob: Vec<_> = watchers.followers_of("app", "bob").collect();
        assert_eq!(bob, vec![(conn(1), "alice"), (conn(2), "dave")]);
        watchers.unfollow(conn(1), &ids(&["bob", "zed"]));
        assert_eq!(watchers.peers_of(conn(1)), ids(&["carol"]));
        assert_eq!(watchers.followers_of("app", "bob").count(), 1);
        watchers.keep_loaded(conn(4), 9, ids(&["bob"]));
        for n in 1..=4 {
            watchers.end(conn(n));
        }
        assert_eq!(watchers.len(), (0, 0, 0));
        assert_eq!(watchers.changes(conn(1)), None);
    }
}

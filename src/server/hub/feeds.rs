//! One app's bans and the REST API's event feeds as the shared state holds them
//! ([`AppAdmin`], in `Tenant::admin`); `admin.rs` changes them.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::server::engine::{Feed, FeedEvent};

/// Events a feed keeps per app; past it the oldest goes (Agora's 2,000).
pub const FEED_CAP: usize = 2000;
/// One app's bans and feeds (in the shared state, so in Redis snapshots too).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AppAdmin {
    /// Banned user → end of the ban (unix seconds; [`BANNED_FOREVER`]).
    pub(super) bans: HashMap<String, u64>,
    /// Users whose `Login` the user feed holds without a `Logout` since.
    pub(super) online: BTreeSet<String>,
    pub(super) user_events: VecDeque<FeedEvent>,
    pub(super) channel_events: VecDeque<FeedEvent>,
}

impl AppAdmin {
    pub(super) fn push(&mut self, feed: Feed, event: FeedEvent) {
        let queue = match feed {
            Feed::Users => &mut self.user_events,
            Feed::Channels => &mut self.channel_events,
        };
        queue.push_back(event);
        while queue.len() > FEED_CAP {
            queue.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_keeps_the_newest_events() {
        let mut admin = AppAdmin::default();
        for n in 0..FEED_CAP + 5 {
            admin.push(
                Feed::Users,
                FeedEvent {
                    group_id: None,
                    user_id: n.to_string(),
                    kind: "Login".into(),
                    ms: 0,
                },
            );
        }
        assert_eq!(admin.user_events.len(), FEED_CAP);
        assert_eq!(admin.user_events[0].user_id, "5");
    }
}

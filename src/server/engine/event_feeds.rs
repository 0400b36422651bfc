//! The REST API's event feeds (Agora's `user_events` and `channel_events`: logins and
//! logouts, joins and leaves of each app), kept outside the shared state, so that no
//! node holds the feeds of the apps it serves for an operator who may pull them from any
//! node.
//!
//! - **Recording**: the hub notes an event where it applies the change that makes it,
//!   and the change's origin alone records it (each event once), with its place: the
//!   change's number in its app's order and the event's rank within the change. A feed
//!   hands its events out in that order whichever node recorded them. Recording is fire
//!   and forget: an event reaches its feed a moment after its change was answered, so a
//!   pull right after the change may miss it and the next one gets it (the REST API's
//!   feeds are for polling).
//! - **Pulling** takes (returns and removes) the oldest events, at most a page.
//! - **Bounds**: a feed keeps the newest [`FEED_CAP`] events, as Agora's does.
//!
//! Two stores: [`InMemoryEventFeeds`] (one node; its place is the order of recording)
//! and the Redis engine's (`redis/event_feeds.rs`: a sorted set per app and feed on the
//! app's Redis).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{BoxFuture, Feed, FeedEvent, Unavailable};

/// Events a feed keeps per app; past it the oldest go (Agora's 2,000).
pub const FEED_CAP: usize = 2000;

/// Events one pull returns at most (Agora's 1,000).
pub const FEED_PULL_MAX: usize = 1000;

/// Drops the oldest of `events` (front first) past [`FEED_CAP`], as a feed does.
pub fn keep_the_newest<T>(events: &mut VecDeque<T>) {
    while events.len() > FEED_CAP {
        events.pop_front();
    }
}

/// Ranks of events one change can order (a change that makes more, such as a node gone
/// with thousands of users, orders the rest by their content).
pub const RANKS_PER_CHANGE: u64 = 1024;

/// Where an event goes in its feed: from the change's number in its app's order and the
/// event's rank within the change (below 2^53 for 8 * 10^12 changes: exact in Lua).
pub fn feed_place(change_number: u64, rank: usize) -> u64 {
    change_number * RANKS_PER_CHANGE + (rank as u64).min(RANKS_PER_CHANGE - 1)
}

/// The REST API's event feeds; see the module header.
pub trait EventFeedStore: Send + Sync {
    /// Adds `event` to `app`'s `feed` at `place` ([`feed_place`]); fire and forget.
    fn record(&self, app: &str, feed: Feed, place: u64, event: FeedEvent);

    /// Takes (returns and removes) at most `max` of the oldest events of `app`'s `feed`.
    fn take(
        &self,
        app: &str,
        feed: Feed,
        max: usize,
    ) -> BoxFuture<Result<Vec<FeedEvent>, Unavailable>>;
}

/// The feeds of one node, in memory (lost at a restart, as the shared state is).
#[derive(Debug, Default)]
pub struct InMemoryEventFeeds {
    feeds: Mutex<HashMap<(String, Feed), VecDeque<FeedEvent>>>,
}

impl InMemoryEventFeeds {
    fn feeds(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Feed), VecDeque<FeedEvent>>> {
        self.feeds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl EventFeedStore for InMemoryEventFeeds {
    fn record(&self, app: &str, feed: Feed, _place: u64, event: FeedEvent) {
        let mut feeds = self.feeds();
        let queue = feeds.entry((app.to_string(), feed)).or_default();
        queue.push_back(event);
        keep_the_newest(queue);
    }

    fn take(
        &self,
        app: &str,
        feed: Feed,
        max: usize,
    ) -> BoxFuture<Result<Vec<FeedEvent>, Unavailable>> {
        let mut feeds = self.feeds();
        let key = (app.to_string(), feed);
        let taken = match feeds.get_mut(&key) {
            Some(queue) => {
                let taken: Vec<FeedEvent> = queue.drain(..max.min(queue.len())).collect();
                if queue.is_empty() {
                    feeds.remove(&key);
                }
                taken
            }
            None => Vec::new(),
        };
        Box::pin(std::future::ready(Ok(taken)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: usize) -> FeedEvent {
        FeedEvent {
            group_id: None,
            user_id: user.to_string(),
            kind: "Login".into(),
            ms: 0,
        }
    }

    #[tokio::test]
    async fn a_feed_keeps_the_newest_events_and_a_pull_takes_the_oldest() {
        let feeds = InMemoryEventFeeds::default();
        for n in 0..FEED_CAP + 5 {
            feeds.record("a", Feed::Users, feed_place(n as u64, 0), login(n));
        }
        feeds.record("b", Feed::Users, 0, login(9));
        let first = feeds.take("a", Feed::Users, 3).await.unwrap();
        let ids: Vec<_> = first.iter().map(|e| e.user_id.as_str()).collect();
        assert_eq!(ids, ["5", "6", "7"], "the cap dropped the 5 oldest");
        let rest = feeds.take("a", Feed::Users, FEED_CAP).await.unwrap();
        assert_eq!(rest.len(), FEED_CAP - 3);
        assert!(feeds.take("a", Feed::Users, 10).await.unwrap().is_empty());
        assert!(feeds
            .take("a", Feed::Channels, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(feeds.take("b", Feed::Users, 10).await.unwrap().len(), 1);
        assert!(feeds.feeds().is_empty(), "empty feeds are not kept");
    }

    #[test]
    fn places_order_changes_then_ranks() {
        assert!(feed_place(1, 1023) < feed_place(2, 0));
        assert_eq!(feed_place(1, 5000), feed_place(1, 1023));
    }
}

//! Sliding-window rate limiters, one set per connection (docs/protocol.md's "per connection").

use super::clock::Instant;
use std::collections::{HashMap, VecDeque};

use super::config::{RateLimit, RateLimits};

/// Remembers the instants of recent events within one window.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    recent: VecDeque<Instant>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            recent: VecDeque::new(),
        }
    }

    /// Counts one event at `now`; false (and not counted) when the window is full.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.is_full(now) {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// True when an event at `now` would be refused; counts nothing (for limits that
    /// count only requests that succeed).
    pub fn is_full(&mut self, now: Instant) -> bool {
        while let Some(first) = self.recent.front() {
            if now.duration_since(*first) >= self.limit.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.len() >= self.limit.max as usize
    }
}

/// The limiters of one connection.
#[derive(Debug)]
pub struct SessionLimits {
    config: RateLimits,
    pub send: RateLimiter,
    pub login: RateLimiter,
    pub join: RateLimiter,
    join_per_channel: HashMap<String, RateLimiter>,
    pub attribute_writes: RateLimiter,
    pub presence: RateLimiter,
    pub invitations: RateLimiter,
    pub renew_token: RateLimiter,
    pub history: RateLimiter,
    pub members: RateLimiter,
    pub member_counts: RateLimiter,
}

impl SessionLimits {
    pub fn new(config: &RateLimits) -> Self {
        SessionLimits {
            config: config.clone(),
            send: RateLimiter::new(config.send),
            login: RateLimiter::new(config.login),
            join: RateLimiter::new(config.join),
            join_per_channel: HashMap::new(),
            attribute_writes: RateLimiter::new(config.attribute_writes),
            presence: RateLimiter::new(config.presence),
            invitations: RateLimiter::new(config.invitations),
            renew_token: RateLimiter::new(config.renew_token),
            history: RateLimiter::new(config.history),
            members: RateLimiter::new(config.members),
            member_counts: RateLimiter::new(config.member_counts),
        }
    }

    /// The per-channel join limiter (created on first use; stale ones are pruned).
    pub fn join_channel(&mut self, channel: &str, now: Instant) -> bool {
        let window = self.config.join_same_channel.window;
        if self.join_per_channel.len() > 256 {
            self.join_per_channel.retain(|_, limiter| {
                limiter
                    .recent
                    .back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
        }
        let limit = self.config.join_same_channel;
        self.join_per_channel
            .entry(channel.to_string())
            .or_insert_with(|| RateLimiter::new(limit))
            .allow(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn window_slides() {
        let mut limiter = RateLimiter::new(RateLimit::new(2, Duration::from_secs(1)));
        let t0 = Instant::now();
        assert!(limiter.allow(t0));
        assert!(limiter.allow(t0));
        assert!(!limiter.allow(t0 + Duration::from_millis(500)));
        assert!(limiter.allow(t0 + Duration::from_secs(1)));
    }
}

//! [`HttpState`]: what every HTTP call of a node shares, held by the hub so that both
//! listeners (the main one and `--admin-listen`) count into it: the metrics, and the REST
//! API's rate limits per app and [`ApiFamily`] of calls.

use std::time::Duration;

use super::metrics::Metrics;
use crate::server::clock::Instant;
use crate::server::config::RateLimit;
use crate::server::rate::RateLimiter;

/// What every HTTP call of a node shares: rate limits per app and family.
#[derive(Debug, Default)]
pub struct HttpState {
    pub metrics: Metrics,
    limits: std::sync::Mutex<std::collections::HashMap<(String, ApiFamily), RateLimiter>>,
}

/// The REST API's families of rate limits (per app, on each node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFamily {
    /// Peer and channel messages together: Agora's 500 per second.
    Messaging,
    /// User and channel event feeds: Agora's 10 per second.
    Events,
    /// History queries and operator calls: 100 per second (our choice).
    Other,
}

impl ApiFamily {
    fn limit(self) -> RateLimit {
        let max = match self {
            ApiFamily::Messaging => 500,
            ApiFamily::Events => 10,
            ApiFamily::Other => 100,
        };
        RateLimit::new(max, Duration::from_secs(1))
    }
}

impl HttpState {
    /// Counts a call of `family` for `app`; false when over the limit.
    pub(super) fn allow(&self, app: &str, family: ApiFamily) -> bool {
        let mut limits = self
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if limits.len() > 4096 {
            // Unknown apps are refused before this, so only configured (or, in open
            // mode, invented) app ids get here: forget them all rather than grow.
            limits.clear();
        }
        limits
            .entry((app.to_string(), family))
            .or_insert_with(|| RateLimiter::new(family.limit()))
            .allow(Instant::now())
    }
}

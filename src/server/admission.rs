//! Admission: what all connections of a server share before any of them is served, the
//! global connection cap (`max_connections`, checked right after `accept`) and the login
//! rate per IP address (`logins_per_address`). Per-connection limits (rate limits of
//! docs/protocol.md, outbox bound, error count) live in `rate`, `outbox` and `connection`; a
//! new limit that spans connections goes here.

use super::clock::Instant;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{Config, RateLimit};
use super::rate::RateLimiter;

/// Addresses remembered before idle ones are forgotten (bounds the map under a flood
/// from many addresses).
const ADDRESSES_BEFORE_PRUNE: usize = 4096;

/// What every connection of one server shares to stay within the limits.
#[derive(Debug)]
pub struct Admission {
    connections: Arc<Semaphore>,
    login_limit: RateLimit,
    loopback_exempt: bool,
    logins: Mutex<HashMap<IpAddr, (RateLimiter, Instant)>>,
}

/// Held by a connection for as long as it is served; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit); // held for its Drop

impl Admission {
    pub fn new(config: &Config) -> Self {
        Admission {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            login_limit: config.logins_per_address,
            loopback_exempt: config.loopback_exempt,
            logins: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a new connection, or `None` when `max_connections` are being served.
    pub fn admit(&self) -> Option<Slot> {
        Arc::clone(&self.connections)
            .try_acquire_owned()
            .ok()
            .map(Slot)
    }

    /// Counts one login attempt from `address`; false when it is over its rate.
    pub fn allow_login(&self, address: IpAddr, now: Instant) -> bool {
        if self.loopback_exempt && address.is_loopback() {
            return true;
        }
        let mut logins = self
            .logins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if logins.len() >= ADDRESSES_BEFORE_PRUNE && !logins.contains_key(&address) {
            let window = self.login_limit.window;
            logins.retain(|_, (_, last)| now.duration_since(*last) < window);
        }
        let (limiter, last) = logins
            .entry(address)
            .or_insert_with(|| (RateLimiter::new(self.login_limit), now));
        *last = now;
        limiter.allow(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn connection_slots_are_capped_and_freed() {
        let config = Config {
            max_connections: 2,
            ..Config::ephemeral()
        };
        let admission = Admission::new(&config);
        let first = admission.admit().expect("first");
        let _second = admission.admit().expect("second");
        assert!(admission.admit().is_none());
        drop(first);
        assert!(admission.admit().is_some());
    }

    #[test]
    fn logins_are_limited_per_address() {
        let config = Config {
            logins_per_address: RateLimit::new(2, Duration::from_secs(1)),
            loopback_exempt: false,
            ..Config::ephemeral()
        };
        let admission = Admission::new(&config);
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(admission.allow_login(a, now));
        assert!(admission.allow_login(a, now));
        assert!(!admission.allow_login(a, now));
        assert!(admission.allow_login(b, now));
        assert!(admission.allow_login(a, now + Duration::from_secs(1)));
    }

    #[test]
    fn loopback_may_be_exempt() {
        let config = Config {
            logins_per_address: RateLimit::new(1, Duration::from_secs(1)),
            ..Config::ephemeral()
        };
        let admission = Admission::new(&config);
        let now = Instant::now();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(admission.allow_login(local, now));
        assert!(admission.allow_login(local, now));
    }
}

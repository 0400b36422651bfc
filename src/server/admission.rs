//! Admission: what all connections of a server share before any of them is served, the
//! global connection cap (`max_connections`, checked right after `accept`), the cap per IP
//! address (`max_connections_per_address`), the answer to a refused connection (an HTTP
//! 503) and the login rate per IP address (`logins_per_address`). Per-connection limits (rate limits of
//! docs/protocol.md, outbox bound, error count) live in `rate`, `outbox` and `connection`; a
//! new limit that spans connections goes here.

use super::clock::Instant;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{Config, RateLimit};
use super::rate::RateLimiter;

/// Addresses remembered before idle ones are forgotten (bounds the map under a flood
/// from many addresses).
const ADDRESSES_BEFORE_PRUNE: usize = 4096;

/// Refused connections answered with a 503 at once; past it, a refused connection is
/// just closed (a flood of them must not cost a task each).
const REFUSALS_ANSWERED: usize = 64;
/// How long a refused connection may take to send its request before the 503 goes
/// anyway: the request is read so that closing does not reset the connection under
/// the answer.
const REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// The answer to a connection refused at the door (plain `ws://` only).
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: text/plain\r\nContent-Length: 26\r\nConnection: close\r\n\r\n\
server busy; try again. \r\n";

/// Connections being served per address.
type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// What every connection of one server shares to stay within the limits.
#[derive(Debug)]
pub struct Admission {
    connections: Arc<Semaphore>,
    per_address: PerAddress,
    max_per_address: usize,
    refusals: Arc<Semaphore>,
    max_connections: usize,
    login_limit: RateLimit,
    loopback_exempt: bool,
    logins: Mutex<HashMap<IpAddr, (RateLimiter, Instant)>>,
}

/// Held by a connection for as long as it is served; dropping it frees the slot (and
/// its address's).
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    address: Option<(IpAddr, PerAddress)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((address, per_address)) = self.address.take() {
            let mut counts = lock(&per_address);
            if let Some(count) = counts.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&address);
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Admission {
    pub fn new(config: &Config) -> Self {
        Admission {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            per_address: PerAddress::default(),
            max_per_address: config.max_connections_per_address,
            refusals: Arc::new(Semaphore::new(REFUSALS_ANSWERED)),
            max_connections: config.max_connections,
            login_limit: config.logins_per_address,
            loopback_exempt: config.loopback_exempt,
            logins: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a new connection from `address`, or `None` when `max_connections` are
    /// being served, or `max_connections_per_address` from that address (loopback exempt
    /// with `loopback_exempt`).
    pub fn admit(&self, address: IpAddr) -> Option<Slot> {
        let permit = Arc::clone(&self.connections).try_acquire_owned().ok()?;
        if self.loopback_exempt && address.is_loopback() {
            return Some(Slot {
                _permit: permit,
                address: None,
            });
        }
        let mut counts = lock(&self.per_address);
        let count = counts.entry(address).or_insert(0);
        if *count >= self.max_per_address {
            return None;
        }
        *count += 1;
        Some(Slot {
            _permit: permit,
            address: Some((address, Arc::clone(&self.per_address))),
        })
    }

    /// Answers a refused connection with an HTTP 503 (when `plain`, i.e. no TLS), on a
    /// task of its own, at most [`REFUSALS_ANSWERED`] at once; else it is just closed.
    pub fn refuse(&self, mut tcp: tokio::net::TcpStream, plain: bool) {
        let Ok(permit) = Arc::clone(&self.refusals).try_acquire_owned() else {
            return;
        };
        if !plain {
            return;
        }
        tokio::spawn(async move {
            let mut request = [0u8; 4096];
            let mut read = 0;
            let _ = tokio::time::timeout(REFUSAL_WAIT, async {
                while read < request.len() {
                    match tcp.read(&mut request[read..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                    if request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            let _ = tokio::time::timeout(REFUSAL_WAIT, async {
                tcp.write_all(BUSY_RESPONSE).await?;
                tcp.shutdown().await
            })
            .await;
            drop(permit);
        });
    }

    /// Connections being served now.
    pub fn served(&self) -> usize {
        self.max_connections - self.connections.available_permits()
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
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let first = admission.admit(local).expect("first");
        let _second = admission.admit(local).expect("second");
        assert!(admission.admit(local).is_none());
        drop(first);
        assert!(admission.admit(local).is_some());
    }

    #[test]
    fn one_address_cannot_take_every_slot() {
        let config = Config {
            max_connections: 10,
            max_connections_per_address: 2,
            loopback_exempt: false,
            ..Config::ephemeral()
        };
        let admission = Admission::new(&config);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admission.admit(a).expect("first");
        let _second = admission.admit(a).expect("second");
        assert!(admission.admit(a).is_none());
        assert!(admission.admit(b).is_some());
        drop(first);
        assert!(admission.admit(a).is_some());
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

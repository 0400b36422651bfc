//! How a [`Client`](super::Client) connects: server URLs, app id, timeouts, reconnect policy.
//!
//! Every duration the connection state machine uses lives here, so that tests can make
//! them short. New knobs go in [`ClientConfig`] with their docs/protocol.md default in `new`.

use std::time::Duration;

/// Default time from `login` to its reply before LOGIN_TIMEOUT (docs/protocol.md: 6 s).
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(6);
/// Default time a request waits for its reply before it fails with a timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Default interval of the client's WebSocket pings (the server pings at least every 15 s).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// Default silence after which the server is taken for dead (docs/protocol.md: 30 s).
pub const DEFAULT_DEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Default capacity of the event channel; past it, events wait in the client task.
pub const DEFAULT_EVENT_BUFFER: usize = 1024;

/// Everything a client needs to know before it logs in.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `ws://host:port/rtm/v1`, or `wss://` (TLS, verified against the Mozilla roots and
    /// `extra_root_certificates`): the server tried first.
    pub server_url: String,
    /// Other servers of the same service (nodes that share their users and channels), in
    /// the order to try them after `server_url`; see [`servers`](Self::servers).
    pub fallback_servers: Vec<String>,
    /// The app id every login is made for.
    pub app_id: String,
    /// From `login` to its reply; past it the state becomes DISCONNECTED(LOGIN_TIMEOUT).
    /// Also bounds each reconnect attempt.
    pub login_timeout: Duration,
    /// From a request to its reply; past it the request fails with [`ClientError::Timeout`](super::ClientError::Timeout).
    /// Requests made while RECONNECTING wait for the reconnect within this bound.
    pub request_timeout: Duration,
    /// Delays between reconnect attempts.
    pub reconnect: ReconnectPolicy,
    /// Interval of the client's WebSocket pings.
    pub ping_interval: Duration,
    /// Silence (no data, Ping or Pong) after which the connection is taken for lost.
    pub dead_timeout: Duration,
    /// Capacity of the [`Events`](super::Events) channel.
    pub event_buffer: usize,
    /// DER certificates trusted as roots for `wss://` besides the Mozilla set (a
    /// self-signed server, a private CA).
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl ClientConfig {
    /// A config with docs/protocol.md's defaults for `server_url` and `app_id`.
    ///
    /// ```
    /// use rtm::client::ClientConfig;
    /// let config = ClientConfig::new("ws://127.0.0.1:7420/rtm/v1", "demo");
    /// assert_eq!(config.login_timeout.as_secs(), 6);
    /// ```
    pub fn new(server_url: impl Into<String>, app_id: impl Into<String>) -> Self {
        ClientConfig {
            server_url: server_url.into(),
            fallback_servers: Vec::new(),
            app_id: app_id.into(),
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            reconnect: ReconnectPolicy::default(),
            ping_interval: DEFAULT_PING_INTERVAL,
            dead_timeout: DEFAULT_DEAD_TIMEOUT,
            event_buffer: DEFAULT_EVENT_BUFFER,
            extra_root_certificates: Vec::new(),
        }
    }

    /// The same config with `servers` tried after `server_url` (replacing any given
    /// before). A login connects to the first server that answers, trying each in turn;
    /// when the connection drops, the reconnect attempts go round the list starting with
    /// the server after the one that was lost, so a client whose node died logs in again
    /// on another node (and restores its channels, subscriptions and attributes there).
    ///
    /// ```
    /// use rtm::client::ClientConfig;
    /// let config = ClientConfig::new("ws://10.0.0.1:7420/rtm/v1", "demo")
    ///     .with_fallback_servers(["ws://10.0.0.2:7420/rtm/v1", "ws://10.0.0.3:7420/rtm/v1"]);
    /// assert_eq!(config.servers().count(), 3);
    /// assert_eq!(config.servers().nth(1), Some("ws://10.0.0.2:7420/rtm/v1"));
    /// ```
    #[must_use]
    pub fn with_fallback_servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fallback_servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// Every server, in the order tried: `server_url`, then `fallback_servers`.
    ///
    /// ```
    /// use rtm::client::ClientConfig;
    /// let config = ClientConfig::new("ws://127.0.0.1:7420/rtm/v1", "demo");
    /// assert_eq!(config.servers().collect::<Vec<_>>(), ["ws://127.0.0.1:7420/rtm/v1"]);
    /// ```
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.server_url.as_str())
            .chain(self.fallback_servers.iter().map(String::as_str))
    }
}

/// Exponential backoff with jitter between reconnect attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first attempt.
    pub initial_delay: Duration,
    /// The delay doubles after each failed attempt up to this.
    pub max_delay: Duration,
    /// Fraction of the delay added or removed at random (0.0 = none, 0.2 = ±20 %), so that
    /// many clients cut off at once do not come back in lockstep.
    pub jitter: f64,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl ReconnectPolicy {
    /// The delay before attempt number `attempt` (0 for the first), jitter included.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rtm::client::ReconnectPolicy;
    /// let policy = ReconnectPolicy { jitter: 0.0, ..ReconnectPolicy::default() };
    /// assert_eq!(policy.delay(0), Duration::from_millis(500));
    /// assert_eq!(policy.delay(2), Duration::from_secs(2));
    /// assert_eq!(policy.delay(30), Duration::from_secs(30));
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return base;
        }
        let factor = 1.0 + rand::random_range(-jitter..=jitter);
        base.mul_f64(factor).min(self.max_delay)
    }
}

/// A server address as people type it, made the WebSocket URL a client connects to:
/// `ws://` when no scheme is given (`http`/`https` become `ws`/`wss`), and the protocol's
/// path [`WS_PATH`](crate::protocol::WS_PATH) when none is given.
///
/// ```
/// use rtm::client::server_url;
/// assert_eq!(server_url("127.0.0.1:7420"), "ws://127.0.0.1:7420/rtm/v1");
/// assert_eq!(server_url("ws://localhost:7420"), "ws://localhost:7420/rtm/v1");
/// assert_eq!(server_url("wss://rtm.example/custom"), "wss://rtm.example/custom");
/// ```
pub fn server_url(typed: &str) -> String {
    let typed = typed.trim();
    let (scheme, rest) = typed.split_once("://").unwrap_or(("ws", typed));
    let scheme = match scheme {
        "http" => "ws",
        "https" => "wss",
        other => other,
    };
    let (host, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let path = if path.is_empty() || path == "/" {
        crate::protocol::WS_PATH
    } else {
        path
    };
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_jitter_stays_in_bounds() {
        let policy = ReconnectPolicy::default();
        for attempt in 0..40 {
            let base = Duration::from_millis(500)
                .saturating_mul(2u32.saturating_pow(attempt.min(31)))
                .min(policy.max_delay);
            let delay = policy.delay(attempt);
            assert!(delay >= base.mul_f64(0.8) && delay <= base.mul_f64(1.2));
            assert!(delay <= policy.max_delay);
        }
    }
}

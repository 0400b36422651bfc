//! Server configuration: every duration, limit and rate limit the server applies.
//!
//! `Config::default()` gives docs/protocol.md's values; tests shorten the timeouts. A new knob
//! goes here as a documented `pub` field with its docs/protocol.md default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where the shared state and durable data live: SQLite for one node (the memory
/// engine), or a Redis that several nodes share (the Redis engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A directory holding `rtm.sqlite3` (created if missing).
    Path(PathBuf),
    /// A fresh temporary directory, removed when the server stops.
    Ephemeral,
    /// A Redis shared with other nodes (the Redis engine).
    Redis(RedisSettings),
}

/// How a node joins the others on Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://HOST:PORT[/DB]` of each Redis server, in the same order on every node: the
    /// first also carries the heartbeats; apps (their change streams), channels and
    /// conversations are spread over all of them by a stable hash (`engine::redis::shards`).
    pub urls: Vec<String>,
    /// This node's name in logs and in its heartbeat.
    pub node: String,
    /// Changes between two snapshots of the shared state (`engine::redis::SNAPSHOT_EVERY`
    /// by default; tests make it small to exercise snapshots).
    pub snapshot_every: u64,
}

/// The apps the server knows, with their optional certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRegistry {
    /// App id → certificate (`None`: no certificate, any or no token is accepted).
    pub apps: HashMap<String, Option<String>>,
    /// Open mode: an app id not listed is accepted as an app without certificate.
    pub open: bool,
}

impl Default for AppRegistry {
    fn default() -> Self {
        AppRegistry {
            apps: HashMap::new(),
            open: true,
        }
    }
}

/// What the registry says about an app id at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppLookup<'a> {
    /// Known (or open mode) and without certificate: tokens are not checked.
    NoCertificate,
    /// Known with this certificate: the token must verify.
    Certificate(&'a str),
    /// Not listed and the registry is closed.
    Unknown,
}

impl AppRegistry {
    /// Parses `ID` or `ID:CERTIFICATE` as `serve --app` takes it.
    pub fn add_spec(&mut self, spec: &str) {
        match spec.split_once(':') {
            Some((id, cert)) => self.apps.insert(id.to_string(), Some(cert.to_string())),
            None => self.apps.insert(spec.to_string(), None),
        };
    }

    /// How logins to `app_id` are checked.
    pub fn lookup(&self, app_id: &str) -> AppLookup<'_> {
        match self.apps.get(app_id) {
            Some(Some(cert)) => AppLookup::Certificate(cert),
            Some(None) => AppLookup::NoCertificate,
            None if self.open => AppLookup::NoCertificate,
            None => AppLookup::Unknown,
        }
    }
}

/// At most `max` events per sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
}

impl RateLimit {
    pub const fn new(max: u32, window: Duration) -> Self {
        RateLimit { max, window }
    }
}

/// Per-connection rate limits; defaults are Agora's (docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// `send_peer` and `send_channel` together: 180 per 3 s.
    pub send: RateLimit,
    /// `login`: 2 per s.
    pub login: RateLimit,
    /// `join`: 50 per 3 s.
    pub join: RateLimit,
    /// `join` of one channel: 2 per 5 s.
    pub join_same_channel: RateLimit,
    /// User and channel attribute writes: 10 per 5 s.
    pub attribute_writes: RateLimit,
    /// Presence queries and (un)subscriptions: 10 per 5 s.
    pub presence: RateLimit,
    /// `invite`: 10 per 5 s (docs/protocol.md has none; INVITE answers 4 when over).
    pub invitations: RateLimit,
    /// `renew_token`: 2 per 5 s (RENEW's "too often", 4).
    pub renew_token: RateLimit,
    /// `history`: 40 per 5 s (docs/protocol.md has none; HISTORY answers 1 when over),
    /// room for a client that pages back through its 20 channels after a reconnect.
    pub history: RateLimit,
    /// `get_members`: 5 per 2 s (MEMBERS' "too often", 4), as Agora's.
    pub members: RateLimit,
    /// `get_channel_member_count`: 1 per s (COUNT's "too often", 3), as Agora's.
    pub member_counts: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            send: RateLimit::new(180, Duration::from_secs(3)),
            login: RateLimit::new(2, Duration::from_secs(1)),
            join: RateLimit::new(50, Duration::from_secs(3)),
            join_same_channel: RateLimit::new(2, Duration::from_secs(5)),
            attribute_writes: RateLimit::new(10, Duration::from_secs(5)),
            presence: RateLimit::new(10, Duration::from_secs(5)),
            invitations: RateLimit::new(10, Duration::from_secs(5)),
            renew_token: RateLimit::new(2, Duration::from_secs(5)),
            history: RateLimit::new(40, Duration::from_secs(5)),
            members: RateLimit::new(5, Duration::from_secs(2)),
            member_counts: RateLimit::new(1, Duration::from_secs(1)),
        }
    }
}

impl RateLimits {
    /// Limits so high that tests and benchmarks never meet them.
    pub fn unlimited() -> Self {
        let huge = RateLimit::new(u32::MAX, Duration::from_secs(1));
        RateLimits {
            send: huge,
            login: huge,
            join: huge,
            join_same_channel: huge,
            attribute_writes: huge,
            presence: huge,
            invitations: huge,
            renew_token: huge,
            history: huge,
            members: huge,
            member_counts: huge,
        }
    }
}

/// Default of [`Config::write_delay`]: a chat line waits at most this long behind another
/// one to the same connection, so that a busy channel costs a write per member every
/// few milliseconds instead of one per message.
pub(super) const DEFAULT_WRITE_DELAY: Duration = Duration::from_millis(20);

/// Everything `server::run` needs besides the listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// Reported as `server` in login replies, as `rtm-tui/VERSION`.
    pub name: String,
    pub store: StoreLocation,
    /// Messages kept per conversation (peer pair or channel) for `history`.
    pub history_limit: u32,
    pub apps: AppRegistry,
    /// How long `send_peer` waits for the receiver's `ack` before answering 2.
    pub ack_timeout: Duration,
    /// How long a dropped user's channel memberships (and presence) are kept.
    pub grace: Duration,
    /// Server WebSocket Ping interval.
    pub ping_interval: Duration,
    /// A connection silent this long is dead.
    pub idle_timeout: Duration,
    /// Cached (offline) peer messages kept per receiver.
    pub offline_cap: usize,
    /// Cached (offline) peer messages older than this are dropped.
    pub offline_ttl: Duration,
    /// Bytes of cached messages the whole server holds (every app, every receiver); a
    /// cached send past it is answered 3. They are in memory and in the store, and loaded
    /// again at start, so this bounds what ids never seen can cost.
    pub offline_max_bytes: usize,
    /// Bytes of cached messages one sender may have waiting (all its receivers together);
    /// past it its cached sends are answered 3.
    pub offline_per_sender_bytes: usize,
    /// Unparsable objects tolerated per connection before closing with 1008.
    pub max_errors: u32,
    /// How far behind a connection may fall before it is cut off (`outbox`'s header).
    pub outbox: super::outbox::OutboxLimits,
    /// Largest WebSocket frame accepted (a frame may batch several 64 KiB objects).
    pub max_frame_bytes: usize,
    /// Invitations not answered within this time fail with reason 3.
    pub invitation_timeout: Duration,
    /// Invitations one caller may have pending at once; more are answered 4.
    pub max_pending_invitations: usize,
    /// Channel attributes of a channel without members for this long are dropped.
    pub channel_attributes_ttl: Duration,
    /// How long before a token expires the server sends `token_privilege_will_expire`.
    pub token_warning: Duration,
    /// Least time between two `member_count_updated` of one channel.
    pub member_count_interval: Duration,
    pub rate_limits: RateLimits,
    /// A connection that has not logged in this long after connecting (or after a
    /// `logout`) is closed with 1008; also bounds the WebSocket handshake.
    pub login_timeout: Duration,
    /// Connections served at once; further ones are refused right after `accept`.
    pub max_connections: usize,
    /// Connections served at once from one IP address (loopback exempt with
    /// `loopback_exempt`); further ones from it are refused like those past
    /// `max_connections`, so one address cannot take every slot.
    pub max_connections_per_address: usize,
    /// `login` attempts from one IP address, all its connections together.
    pub logins_per_address: RateLimit,
    /// Whether loopback peers (local tools: bench, demo, tests) skip `logins_per_address`
    /// and `max_connections_per_address`.
    pub loopback_exempt: bool,
    /// Serve `wss://` with this TLS set-up (`None`: plain `ws://`).
    pub tls: Option<super::tls::ServerTls>,
    /// Longest time a connection's outgoing objects wait so that several share one frame
    /// and one write: the first after a quiet spell goes at once, later ones at most
    /// this often (0: every object at once). See `connection::write_loop`.
    pub write_delay: Duration,
    /// The clock of every timer, rate window and expiry (tests: `Clock::following_tokio`
    /// with paused tokio time).
    pub clock: super::clock::Clock,
    /// Customer keys of the REST API (`serve --api-key KEY:SECRET`); none: the API is off.
    pub api_keys: Vec<ApiKey>,
    /// Serve `/healthz`, `/readyz` and `/metrics` on this address alone instead of on the
    /// main listener (`serve --admin-listen`).
    pub admin_listen: Option<std::net::SocketAddr>,
    /// How long an HTTP connection is kept (keep-alive included): then it is closed after
    /// the call in progress (a file transfer: within 30 minutes more), so that idle
    /// connections do not hold places under `max_connections`. 60 s.
    pub http_connection_life: Duration,
    /// Whether the server keeps files and images (`media_ticket`, `/rtm/media`); without
    /// it `media_ticket` answers 1, as a v1 server does (`serve --no-media`).
    pub media: bool,
    /// How long an uploaded file or image is kept (docs/protocol.md: 7 days).
    pub media_expiry: Duration,
    /// Uploads under way at once on this node; more are answered 503 `busy`.
    pub media_max_uploads: usize,
    /// Uploads one user may have under way at once on this node (429 past it).
    pub media_user_uploads: usize,
    /// Bytes one user may begin uploading on this node within an hour (429 past it).
    pub media_user_bytes_per_hour: u64,
    /// Fault injection for tests only: a `ping` from this user panics inside its
    /// connection's task (to prove that the hub's bookkeeping survives a panic).
    #[doc(hidden)]
    pub panic_on_ping_from: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: format!("rtm-tui/{}", env!("CARGO_PKG_VERSION")),
            store: StoreLocation::Path(crate::paths::data_dir()),
            history_limit: 1000,
            apps: AppRegistry::default(),
            ack_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            offline_cap: 200,
            offline_ttl: Duration::from_secs(7 * 24 * 3600),
            offline_max_bytes: 32 << 20,
            offline_per_sender_bytes: 8 << 20,
            max_errors: 100,
            outbox: super::outbox::OutboxLimits::default(),
            max_frame_bytes: 1024 * 1024,
            invitation_timeout: Duration::from_secs(60),
            max_pending_invitations: 32,
            channel_attributes_ttl: Duration::from_secs(5 * 60),
            token_warning: Duration::from_secs(30),
            member_count_interval: Duration::from_secs(1),
            rate_limits: RateLimits::default(),
            login_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_address: 64,
            logins_per_address: RateLimit::new(50, Duration::from_secs(1)),
            loopback_exempt: true,
            tls: None,
            write_delay: DEFAULT_WRITE_DELAY,
            panic_on_ping_from: None,
            http_connection_life: Duration::from_secs(60),
            media: true,
            media_expiry: crate::protocol::limits::MEDIA_EXPIRY,
            media_max_uploads: 16,
            media_user_uploads: 2,
            media_user_bytes_per_hour: 512 << 20,
            api_keys: Vec::new(),
            admin_listen: None,
            clock: super::clock::Clock::System,
        }
    }
}

/// A setting that would give a server that refuses everyone or panics at its first use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} = {value}: {rule}")]
pub struct ConfigError {
    /// The setting as `serve` and its file name it.
    pub setting: &'static str,
    pub value: String,
    /// What it must be.
    pub rule: String,
}

/// Longest a server timer setting may be (grace, invitations, token warning, channel
/// attributes): far below what the timer wheel takes (`timers::MAX_DELAY`).
pub(super) const MAX_TIMER_SETTING: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest `login_timeout` and `ack_timeout`: a client waits on each.
pub(super) const MAX_WAIT_SETTING: Duration = Duration::from_secs(3600);

impl Config {
    /// Checks every setting a server cannot work with: zero caps and timeouts that refuse
    /// everyone, timers too long for the timer wheel. `server::run` calls it first, so a
    /// bad setting stops the start with this message instead of failing later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let secs = |d: Duration| format!("{} s", d.as_secs_f64());
        let bad = |setting, value: String, rule: String| {
            Err(ConfigError {
                setting,
                value,
                rule,
            })
        };
        let waits = [
            ("login_timeout_secs", self.login_timeout, true),
            ("ack_timeout_secs (--ack-timeout)", self.ack_timeout, true),
            ("grace_secs (--grace)", self.grace, false),
            (
                "invitation_timeout_secs (--invite-expiry)",
                self.invitation_timeout,
                true,
            ),
            (
                "token_warning_secs (--token-warning)",
                self.token_warning,
                false,
            ),
            ("ping interval", self.ping_interval, true),
            ("idle timeout", self.idle_timeout, true),
            ("channel attributes ttl", self.channel_attributes_ttl, false),
            ("member count interval", self.member_count_interval, false),
            ("media expiry (--media-expiry)", self.media_expiry, true),
            ("http connection life", self.http_connection_life, true),
        ];
        for (setting, value, nonzero) in waits {
            let max = if setting.starts_with("login") || setting.starts_with("ack") {
                MAX_WAIT_SETTING
            } else {
                MAX_TIMER_SETTING
            };
            if nonzero && value.is_zero() {
                return bad(setting, secs(value), "must be more than 0".into());
            }
            if value > max {
                return bad(
                    setting,
                    secs(value),
                    format!("must be at most {}", secs(max)),
                );
            }
        }
        let counts = [
            ("max_connections", self.max_connections),
            ("outbox_max_mib", self.outbox.max_bytes >> 20),
            ("queued_max_mib", self.outbox.total_max_bytes >> 20),
            ("max_errors", self.max_errors as usize),
            ("offline_max_mib", self.offline_max_bytes >> 20),
            (
                "offline_per_sender_kib",
                self.offline_per_sender_bytes >> 10,
            ),
            (
                "max_connections_per_address",
                self.max_connections_per_address,
            ),
            ("media_max_uploads", self.media_max_uploads),
            ("media_user_uploads", self.media_user_uploads),
        ];
        for (setting, value) in counts {
            if value == 0 {
                return bad(setting, "0".into(), "must be at least 1".into());
            }
        }
        if self.outbox.total_max_bytes < self.outbox.max_bytes {
            return bad(
                "queued_max_mib",
                (self.outbox.total_max_bytes >> 20).to_string(),
                "must be at least outbox_max_mib".into(),
            );
        }
        if self.max_frame_bytes < crate::protocol::limits::MAX_OBJECT_BYTES {
            return bad(
                "max_frame_bytes",
                self.max_frame_bytes.to_string(),
                "must hold one 64 KiB object".into(),
            );
        }
        Ok(())
    }

    /// Default values with a temporary store: what tests and demos start from.
    pub fn ephemeral() -> Self {
        Config {
            store: StoreLocation::Ephemeral,
            ..Config::default()
        }
    }
}

/// A customer key and secret (`--api-key KEY:SECRET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key: String,
    pub secret: String,
}

impl std::str::FromStr for ApiKey {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        match spec.split_once(':') {
            Some((key, secret)) if !key.is_empty() && !secret.is_empty() => Ok(ApiKey {
                key: key.to_string(),
                secret: secret.to_string(),
            }),
            _ => Err(format!("expected KEY:SECRET, got {spec:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_refuse_everyone_or_panic_are_refused() {
        assert_eq!(Config::default().validate(), Ok(()));
        let huge = Duration::from_secs(100_000_000);
        let bad = [
            Config {
                grace: huge,
                ..Config::default()
            },
            Config {
                ack_timeout: huge,
                ..Config::default()
            },
            Config {
                login_timeout: Duration::ZERO,
                ..Config::default()
            },
            Config {
                max_connections: 0,
                ..Config::default()
            },
            Config {
                outbox: crate::server::outbox::OutboxLimits {
                    max_bytes: 0,
                    ..Default::default()
                },
                ..Config::default()
            },
        ];
        for config in bad {
            let error = config.validate().expect_err("refused");
            assert!(!error.rule.is_empty(), "{error}");
        }
    }

    #[test]
    fn registry_modes() {
        let mut apps = AppRegistry::default();
        assert_eq!(apps.lookup("any"), AppLookup::NoCertificate);
        apps.add_spec("secure:0123");
        apps.add_spec("plain");
        apps.open = false;
        assert_eq!(apps.lookup("secure"), AppLookup::Certificate("0123"));
        assert_eq!(apps.lookup("plain"), AppLookup::NoCertificate);
        assert_eq!(apps.lookup("other"), AppLookup::Unknown);
    }
}

//! The server's config file (`rtm-tui serve --config FILE`), TOML. Every key is optional;
//! command-line flags win over the file, and the file over the defaults.
//!
//! ```toml
//! listen = "0.0.0.0:7420"
//! data_dir = "/var/lib/rtm-tui"
//! # Accept app ids not listed below (as apps without certificate). The default is open
//! # only when listening on a loopback address and no app is listed (here or by --app).
//! open = false
//! # Longest a connection's events wait to share one write (0: write each at once).
//! write_delay_ms = 20
//! # Customer keys of the HTTP REST API ("KEY:SECRET"; none: the API is off).
//! api_keys = ["ops:change-me"]
//! # Health and metrics on this address alone instead of on the main listener.
//! admin_listen = "127.0.0.1:9100"
//!
//! [[app]]
//! id = "970CA35de60c44645bbae8a215061b33"
//! certificate = "5CFd2fd1755d40ecb72977518be15d3b"   # logins need a valid token
//!
//! [[app]]
//! id = "demo"                                        # no certificate: no token needed
//!
//! [limits]
//! max_connections = 10000
//! max_connections_per_address = 64   # loopback exempt unless loopback_exempt = false
//! logins_per_address_per_second = 50
//! loopback_exempt = true
//! login_timeout_secs = 10
//! token_warning_secs = 30
//! # Server timers (docs/protocol.md's values; flags of the same names win).
//! ack_timeout_secs = 10           # send_peer answers 2 without the receiver's ack
//! grace_secs = 30                 # a dropped user's channels and presence are kept
//! invitation_timeout_secs = 60    # an unanswered invitation fails with reason 3
//! # A connection that falls behind: past its soft bound (1 MiB or 8192 objects) it is
//! # cut off once it has taken nothing for outbox_stall_ms; never more than
//! # outbox_max_mib queued for one; all connections together at most queued_max_mib.
//! outbox_stall_ms = 10000
//! outbox_max_mib = 64
//! queued_max_mib = 512
//! # The offline cache: all cached messages together, and one sender's share (past
//! # either, a cached send_peer is answered 3).
//! offline_max_mib = 32
//! offline_per_sender_kib = 8192
//! # Files and images (docs/protocol.md, "Files and images"): how long they are kept,
//! # uploads at once on this node, and per user on this node: uploads at once, MiB begun
//! # per hour (past these: 503 busy, 429 quota_exceeded). `media = false` keeps none.
//! media = true
//! media_expiry_secs = 604800
//! media_max_uploads = 16
//! media_user_uploads = 2
//! media_user_mib_per_hour = 512
//! # Per-connection rate limits, as "COUNT/SECONDSs" or "off" (defaults: Agora's).
//! send = "180/3s"            # send_peer and send_channel together
//! login = "2/1s"
//! join = "50/3s"
//! join_same_channel = "2/5s"
//! attribute_writes = "10/5s"
//! presence = "10/5s"
//! invitations = "10/5s"
//! renew_token = "2/5s"
//! history = "40/5s"
//! members = "5/2s"           # get_members
//! member_counts = "1/1s"     # get_channel_member_count
//!
//! [tls]
//! cert = "/etc/rtm-tui/cert.pem"   # PEM chain
//! key = "/etc/rtm-tui/key.pem"     # PEM private key
//! ```
//!
//! A new file key goes in one of these structs and in `apply`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::config::{ApiKey, Config, RateLimit, RateLimits};
use super::tls::TlsFiles;

/// The parsed file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub open: Option<bool>,
    pub write_delay_ms: Option<u64>,
    /// REST API customer keys, `"KEY:SECRET"` each (as `--api-key`).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Health and metrics on this address alone (as `--admin-listen`).
    pub admin_listen: Option<SocketAddr>,
    #[serde(default, rename = "app")]
    pub apps: Vec<AppEntry>,
    #[serde(default)]
    pub limits: LimitsSection,
    pub tls: Option<TlsFiles>,
}

/// One `[[app]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppEntry {
    pub id: String,
    pub certificate: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub logins_per_address_per_second: Option<u32>,
    pub loopback_exempt: Option<bool>,
    pub login_timeout_secs: Option<u64>,
    pub token_warning_secs: Option<u64>,
    pub ack_timeout_secs: Option<u64>,
    pub grace_secs: Option<u64>,
    pub invitation_timeout_secs: Option<u64>,
    pub outbox_stall_ms: Option<u64>,
    pub outbox_max_mib: Option<usize>,
    pub queued_max_mib: Option<usize>,
    pub offline_max_mib: Option<usize>,
    pub offline_per_sender_kib: Option<usize>,
    pub media: Option<bool>,
    pub media_expiry_secs: Option<u64>,
    pub media_max_uploads: Option<usize>,
    pub media_user_uploads: Option<usize>,
    pub media_user_mib_per_hour: Option<u64>,
    pub send: Option<RateSpec>,
    pub login: Option<RateSpec>,
    pub join: Option<RateSpec>,
    pub join_same_channel: Option<RateSpec>,
    pub attribute_writes: Option<RateSpec>,
    pub presence: Option<RateSpec>,
    pub invitations: Option<RateSpec>,
    pub renew_token: Option<RateSpec>,
    pub history: Option<RateSpec>,
    pub members: Option<RateSpec>,
    pub member_counts: Option<RateSpec>,
}

/// A rate limit as the file writes it: `"180/3s"` (180 per 3 seconds) or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RateSpec(pub RateLimit);

impl TryFrom<String> for RateSpec {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text.trim() == "off" {
            return Ok(RateSpec(RateLimits::unlimited().send));
        }
        let bad = || format!("{text:?}: expected COUNT/SECONDSs (such as \"180/3s\") or \"off\"");
        let (count, window) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let seconds: u64 = window
            .trim()
            .strip_suffix('s')
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        if count == 0 || seconds == 0 {
            return Err(bad());
        }
        Ok(RateSpec(RateLimit::new(
            count,
            Duration::from_secs(seconds),
        )))
    }
}

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: api_keys: {why}")]
    ApiKey { path: PathBuf, why: String },
}

/// Whether the server runs in open mode: `--open`, else the file's `open`, else only
/// when listening on a loopback address with no app configured (by flag or file): once
/// the operator lists apps, an app id not listed is refused unless open mode is asked for.
pub fn open_mode(listen: IpAddr, flag: bool, file: Option<bool>, apps_configured: bool) -> bool {
    flag || file.unwrap_or(listen.is_loopback() && !apps_configured)
}

/// The loud warning `serve` prints when open mode is reachable from other machines.
pub fn open_mode_warning(listen: SocketAddr, open: bool) -> Option<String> {
    (open && !listen.ip().is_loopback()).then(|| {
        format!(
            "\n*** WARNING: open mode on {listen}, a non-loopback address: anyone who can \
             reach it may log in to any app id the server does not know, without a token. \
             Drop --open (and `open = true`) unless that is what you want. ***\n"
        )
    })
}

impl ServerFile {
    pub fn load(path: &Path) -> Result<ServerFile, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = ServerFile::parse(&text).map_err(|source| ConfigFileError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        if let Some(why) = file
            .api_keys
            .iter()
            .find_map(|spec| spec.parse::<ApiKey>().err())
        {
            return Err(ConfigFileError::ApiKey {
                path: path.to_owned(),
                why,
            });
        }
        Ok(file)
    }

    pub fn parse(text: &str) -> Result<ServerFile, toml::de::Error> {
        toml::from_str(text)
    }

    /// Puts the file's apps and limits into `config` (listen, data_dir, open and tls are
    /// read by `serve`, which weighs them against its flags).
    pub fn apply(&self, config: &mut Config) {
        for app in &self.apps {
            config
                .apps
                .apps
                .insert(app.id.clone(), app.certificate.clone());
        }
        let limits = &self.limits;
        if let Some(max) = limits.max_connections {
            config.max_connections = max;
        }
        if let Some(max) = limits.max_connections_per_address {
            config.max_connections_per_address = max;
        }
        if let Some(exempt) = limits.loopback_exempt {
            config.loopback_exempt = exempt;
        }
        if let Some(per_second) = limits.logins_per_address_per_second {
            config.logins_per_address = RateLimit::new(per_second, Duration::from_secs(1));
        }
        if let Some(secs) = limits.login_timeout_secs {
            config.login_timeout = Duration::from_secs(secs);
        }
        for (secs, slot) in [
            (limits.token_warning_secs, &mut config.token_warning),
            (limits.ack_timeout_secs, &mut config.ack_timeout),
            (limits.grace_secs, &mut config.grace),
            (
                limits.invitation_timeout_secs,
                &mut config.invitation_timeout,
            ),
        ] {
            if let Some(secs) = secs {
                *slot = Duration::from_secs(secs);
            }
        }
        if let Some(ms) = limits.outbox_stall_ms {
            config.outbox.stall = Duration::from_millis(ms);
        }
        if let Some(mib) = limits.outbox_max_mib {
            config.outbox.max_bytes = mib << 20;
        }
        if let Some(mib) = limits.queued_max_mib {
            config.outbox.total_max_bytes = mib << 20;
        }
        if let Some(mib) = limits.offline_max_mib {
            config.offline_max_bytes = mib << 20;
        }
        if let Some(kib) = limits.offline_per_sender_kib {
            config.offline_per_sender_bytes = kib << 10;
        }
        if let Some(media) = limits.media {
            config.media = media;
        }
        if let Some(secs) = limits.media_expiry_secs {
            config.media_expiry = Duration::from_secs(secs);
        }
        if let Some(max) = limits.media_max_uploads {
            config.media_max_uploads = max;
        }
        if let Some(max) = limits.media_user_uploads {
            config.media_user_uploads = max;
        }
        if let Some(mib) = limits.media_user_mib_per_hour {
            config.media_user_bytes_per_hour = mib << 20;
        }
        if let Some(ms) = self.write_delay_ms {
            config.write_delay = Duration::from_millis(ms);
        }
        // Checked by `load` already: a bad spec never gets here.
        config
            .api_keys
            .extend(self.api_keys.iter().filter_map(|spec| spec.parse().ok()));
        if self.admin_listen.is_some() {
            config.admin_listen = self.admin_listen;
        }
        let rates = &mut config.rate_limits;
        for (spec, slot) in [
            (limits.send, &mut rates.send),
            (limits.login, &mut rates.login),
            (limits.join, &mut rates.join),
            (limits.join_same_channel, &mut rates.join_same_channel),
            (limits.attribute_writes, &mut rates.attribute_writes),
            (limits.presence, &mut rates.presence),
            (limits.invitations, &mut rates.invitations),
            (limits.renew_token, &mut rates.renew_token),
            (limits.history, &mut rates.history),
            (limits.members, &mut rates.members),
            (limits.member_counts, &mut rates.member_counts),
        ] {
            if let Some(RateSpec(limit)) = spec {
                *slot = limit;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::AppLookup;

    /// The example of the module header parses and applies.
    #[test]
    fn the_documented_example_works() {
        let doc = include_str!("config_file.rs");
        let example = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let file = ServerFile::parse(&example).expect("example parses");
        assert_eq!(file.open, Some(false));
        assert_eq!(file.apps.len(), 2);
        assert_eq!(
            file.tls.as_ref().unwrap().key,
            PathBuf::from("/etc/rtm-tui/key.pem")
        );
        let mut config = Config::ephemeral();
        config.apps.open = false;
        file.apply(&mut config);
        assert_eq!(
            config.apps.lookup("970CA35de60c44645bbae8a215061b33"),
            AppLookup::Certificate("5CFd2fd1755d40ecb72977518be15d3b")
        );
        assert_eq!(config.apps.lookup("demo"), AppLookup::NoCertificate);
        assert_eq!(config.api_keys, vec!["ops:change-me".parse().unwrap()]);
        assert_eq!(config.admin_listen, Some(([127, 0, 0, 1], 9100).into()));
        assert_eq!(config.login_timeout, Duration::from_secs(10));
        assert_eq!(config.rate_limits, crate::server::RateLimits::default());
        let defaults = Config::default();
        assert_eq!(
            (
                config.media,
                config.media_expiry,
                config.media_max_uploads,
                config.media_user_uploads,
                config.media_user_bytes_per_hour
            ),
            (
                defaults.media,
                defaults.media_expiry,
                defaults.media_max_uploads,
                defaults.media_user_uploads,
                defaults.media_user_bytes_per_hour
            ),
            "the example shows the defaults"
        );
    }

    #[test]
    fn server_timers_are_settable() {
        let file = ServerFile::parse(
            "[limits]\nack_timeout_secs = 1\ngrace_secs = 2\ninvitation_timeout_secs = 3\n",
        )
        .unwrap();
        let mut config = Config::ephemeral();
        file.apply(&mut config);
        assert_eq!(config.ack_timeout, Duration::from_secs(1));
        assert_eq!(config.grace, Duration::from_secs(2));
        assert_eq!(config.invitation_timeout, Duration::from_secs(3));
        assert_eq!(config.token_warning, Config::default().token_warning);
    }

    #[test]
    fn rate_limits_are_settable_and_can_be_turned_off() {
        let file = ServerFile::parse("[limits]\nsend = \"1000/1s\"\njoin = \"off\"\n").unwrap();
        let mut config = Config::ephemeral();
        file.apply(&mut config);
        assert_eq!(
            config.rate_limits.send,
            RateLimit::new(1000, Duration::from_secs(1))
        );
        assert_eq!(config.rate_limits.join, RateLimits::unlimited().join);
        assert_eq!(config.rate_limits.login, RateLimits::default().login);
        for bad in ["\"180\"", "\"0/3s\"", "\"5/3\"", "\"x/3s\""] {
            assert!(
                ServerFile::parse(&format!("[limits]\nsend = {bad}\n")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn open_mode_is_the_default_only_on_loopback() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert!(open_mode(local, false, None, false));
        assert!(!open_mode(local, false, Some(false), false));
        assert!(!open_mode(any, false, None, false));
        assert!(open_mode(any, true, None, false));
        assert!(open_mode(any, false, Some(true), false));
        // Listed apps close the registry unless open mode is asked for.
        assert!(!open_mode(local, false, None, true));
        assert!(open_mode(local, true, None, true));
        assert!(open_mode(local, false, Some(true), true));
        let public: SocketAddr = "0.0.0.0:7420".parse().unwrap();
        assert!(open_mode_warning(public, true).is_some_and(|w| w.contains("WARNING")));
        assert!(open_mode_warning(public, false).is_none());
        assert!(open_mode_warning("127.0.0.1:7420".parse().unwrap(), true).is_none());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(ServerFile::parse("[[app]]\nid = \"a\"\ncert = \"x\"\n").is_err());
    }

    #[test]
    fn a_bad_api_key_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "api_keys = [\"no-secret\"]\n").unwrap();
        let error = ServerFile::load(&path).unwrap_err();
        assert!(error.to_string().contains("KEY:SECRET"), "{error}");
    }
}

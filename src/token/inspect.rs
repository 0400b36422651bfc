//! What a token says about itself, without a certificate: for `rtm-tui token --inspect`
//! and for the TUI's "this looks like an RTC token" hint. Nothing here is trusted until
//! `verify_rtm_token` has checked the signature.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{login_006, login_007, read_version, v006, v007, TokenError, TokenVersion};

/// The contents of a token, as far as its format shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub version: TokenVersion,
    pub app_id: String,
    pub salt: u32,
    /// 007 only: when it was issued (unix seconds).
    pub issued_at: Option<u64>,
    /// 006: the `ts` field (Agora's builders: mint time + 24 h). 007: issue ts + expire.
    /// `None` = no limit.
    pub token_expires_at: Option<u64>,
    /// Whether the token grants RTM login (006 privilege 1000, 007 service 2 privilege 1).
    pub rtm_login: bool,
    /// When RTM login ends, as `verify_rtm_token` computes it; `None` = never or no login.
    pub rtm_login_expires_at: Option<u64>,
    /// 007: the user of the (first) RTM service. A 006 token holds only a CRC of it.
    pub user: Option<String>,
    /// 006: CRC32 of the channel-name slot, which holds the user id in RTM tokens.
    pub user_crc32: Option<u32>,
    /// 006: CRC32 of the uid slot (0 = empty, as in RTM tokens).
    pub uid_crc32: Option<u32>,
    /// 007: the services; 006: one pseudo-service (type 0) with its privilege map.
    pub services: Vec<ServiceInfo>,
    /// 007: a service type this build cannot read; services after it are not listed.
    pub unknown_service: Option<u16>,
}

/// One service of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceInfo {
    pub kind: u16,
    pub name: &'static str,
    pub fields: BTreeMap<&'static str, String>,
    pub privileges: Vec<PrivilegeInfo>,
}

/// One privilege of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrivilegeInfo {
    pub id: u16,
    pub name: &'static str,
    /// As stored: 006 an absolute timestamp, 007 seconds after the issue ts.
    pub value: u32,
    /// The absolute end (unix seconds); `None` = no limit.
    pub expires_at: Option<u64>,
}

/// Name of the 006 pseudo-service that holds the privilege map.
const PRIVILEGES_006: &str = "privileges";

fn nonzero(value: u64) -> Option<u64> {
    (value != 0).then_some(value)
}

/// Reads a 006 or 007 token without checking its signature.
pub fn inspect(token: &str) -> Result<TokenInfo, TokenError> {
    match read_version(token)? {
        (token, TokenVersion::V006) => Ok(inspect_006(&v006::parse(token)?)),
        (token, TokenVersion::V007) => Ok(inspect_007(&v007::parse(token)?)),
    }
}

fn inspect_006(token: &v006::Token006) -> TokenInfo {
    let login = login_006(token);
    let privileges = token
        .privileges
        .iter()
        .map(|(&id, &value)| PrivilegeInfo {
            id,
            name: v006::privilege_name(id),
            value,
            expires_at: nonzero(u64::from(value)),
        })
        .collect();
    TokenInfo {
        version: TokenVersion::V006,
        app_id: token.app_id.clone(),
        salt: token.salt,
        issued_at: None,
        token_expires_at: nonzero(u64::from(token.ts)),
        rtm_login: login.is_some(),
        rtm_login_expires_at: login.and_then(|login| login.expires_at),
        user: None,
        user_crc32: Some(token.crc_channel),
        uid_crc32: Some(token.crc_uid),
        services: vec![ServiceInfo {
            kind: 0,
            name: PRIVILEGES_006,
            fields: BTreeMap::new(),
            privileges,
        }],
        unknown_service: None,
    }
}

fn inspect_007(token: &v007::Token007) -> TokenInfo {
    let issued = u64::from(token.issue_ts);
    let after_issue = |secs: u32| nonzero(u64::from(secs)).map(|secs| issued + secs);
    let login = login_007(token, None);
    let services = token
        .services
        .iter()
        .map(|service| ServiceInfo {
            kind: service.kind,
            name: v007::service_name(service.kind),
            fields: service.body.fields().into_iter().collect(),
            privileges: service
                .privileges
                .iter()
                .map(|(&id, &value)| PrivilegeInfo {
                    id,
                    name: v007::privilege_name(service.kind, id),
                    value,
                    expires_at: after_issue(value),
                })
                .collect(),
        })
        .collect();
    let user = token
        .services
        .iter()
        .find_map(|service| match &service.body {
            v007::ServiceBody::Rtm { user } => Some(user.clone()),
            _ => None,
        });
    TokenInfo {
        version: TokenVersion::V007,
        app_id: token.app_id.clone(),
        salt: token.salt,
        issued_at: Some(issued),
        token_expires_at: after_issue(token.expire),
        rtm_login: login.is_some(),
        rtm_login_expires_at: login.and_then(|login| login.expires_at),
        user,
        user_crc32: None,
        uid_crc32: None,
        services,
        unknown_service: token.unknown_service,
    }
}

impl TokenInfo {
    /// A human-readable, multi-line description; times relative to `now` (unix seconds).
    pub fn describe(&self, now: u64) -> String {
        let mut lines = vec![
            format!("version     {}", self.version),
            format!("app id      {}", self.app_id),
            format!("salt        {}", self.salt),
        ];
        if let Some(issued_at) = self.issued_at {
            lines.push(format!("issued at   {}", moment(issued_at, now)));
        }
        let token_end = self
            .token_expires_at
            .map_or_else(|| "never".to_owned(), |at| moment(at, now));
        lines.push(match self.version {
            TokenVersion::V006 => format!("ts          {token_end}"),
            TokenVersion::V007 => format!("expires at  {token_end}"),
        });
        match (&self.user, self.user_crc32) {
            (Some(user), _) => lines.push(format!("user        {user}")),
            (None, Some(crc)) => lines.push(format!(
                "user        not stored in 006 tokens (CRC32 {crc:#010x} of it is)"
            )),
            (None, None) => lines.push("user        none (no RTM service)".to_owned()),
        }
        if let Some(crc) = self.uid_crc32.filter(|&crc| crc != 0) {
            lines.push(format!(
                "uid         set (CRC32 {crc:#010x}); RTM tokens leave it empty"
            ));
        }
        lines.push(match (self.rtm_login, self.rtm_login_expires_at) {
            (false, _) => "RTM login   not granted".to_owned(),
            (true, None) => "RTM login   granted, never expires".to_owned(),
            (true, Some(at)) => format!("RTM login   granted until {}", moment(at, now)),
        });
        for service in &self.services {
            let fields = service
                .fields
                .iter()
                .map(|(name, value)| format!("  {name}={value:?}"));
            let header =
                format!("{} ({})", service.name, service.kind) + &fields.collect::<String>();
            lines.push(format!("service     {header}"));
            for privilege in &service.privileges {
                let end = privilege
                    .expires_at
                    .map_or_else(|| "no limit".to_owned(), |at| moment(at, now));
                lines.push(format!(
                    "  privilege {} ({}) = {}: {end}",
                    privilege.name, privilege.id, privilege.value
                ));
            }
        }
        if let Some(kind) = self.unknown_service {
            lines.push(format!(
                "service     type {kind}, unknown to this build: it and later services not shown"
            ));
        }
        lines.join("\n")
    }
}

/// `ts` as unix seconds with how far it is from `now`: "1700000060 (in 1m 0s)".
fn moment(ts: u64, now: u64) -> String {
    match ts.cmp(&now) {
        std::cmp::Ordering::Equal => format!("{ts} (now)"),
        std::cmp::Ordering::Greater => format!("{ts} (in {})", span(ts - now)),
        std::cmp::Ordering::Less => format!("{ts} ({} ago)", span(now - ts)),
    }
}

fn span(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes}m {seconds}s"),
        (0, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// Whether `token` is an Agora token for RTC rather than RTM: RTC privileges (006) or an
/// RTC service (007), and no RTM login. For a login form's error message; `false` for
/// anything that does not parse.
pub fn looks_like_rtc_token(token: &str) -> bool {
    match read_version(token) {
        Ok((token, TokenVersion::V006)) => v006::parse(token).is_ok_and(|parsed| {
            login_006(&parsed).is_none()
                && parsed
                    .privileges
                    .keys()
                    .any(|&id| v006::is_rtc_privilege(id))
        }),
        Ok((token, TokenVersion::V007)) => v007::parse(token).is_ok_and(|parsed| {
            let has = |kind| parsed.services.iter().any(|service| service.kind == kind);
            has(v007::SERVICE_RTC) && !has(v007::SERVICE_RTM)
        }),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{build_rtm_token_006, build_rtm_token_007};

    const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
    const CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3b";
    const AGORA_006_RTC: &str = "006970CA35de60c44645bbae8a215061b33IACV0fZUBw+72cVoL9eyGGh3Q6Poi8bgjwVLnyKSJyOXR7dIfRBXoFHlEAABAAAAR/QQAAEAAQCvKDdW";
    const AGORA_007_RTC: &str = "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj";

    #[test]
    fn inspects_a_006_rtm_token() {
        let info = inspect(&build_rtm_token_006(
            APP_ID,
            CERTIFICATE,
            "alice",
            9,
            500,
            400,
        ))
        .unwrap();
        assert_eq!(info.version, TokenVersion::V006);
        assert_eq!(info.app_id, APP_ID);
        assert_eq!(info.salt, 9);
        assert_eq!(info.token_expires_at, Some(500));
        assert!(info.rtm_login);
        assert_eq!(info.rtm_login_expires_at, Some(400));
        assert_eq!(info.user, None);
        assert_eq!(info.user_crc32, Some(crc32fast::hash(b"alice")));
        assert_eq!(info.uid_crc32, Some(0));
        assert_eq!(
            info.services[0].privileges,
            vec![PrivilegeInfo {
                id: 1000,
                name: "rtm_login",
                value: 400,
                expires_at: Some(400)
            }]
        );
    }

    #[test]
    fn inspects_a_007_rtm_token() {
        let info = inspect(&build_rtm_token_007(
            APP_ID,
            CERTIFICATE,
            "alice",
            9,
            1000,
            60,
        ))
        .unwrap();
        assert_eq!(info.version, TokenVersion::V007);
        assert_eq!(info.issued_at, Some(1000));
        assert_eq!(info.token_expires_at, Some(1060));
        assert_eq!(info.rtm_login_expires_at, Some(1060));
        assert_eq!(info.user.as_deref(), Some("alice"));
        let service = &info.services[0];
        assert_eq!((service.kind, service.name), (2, "rtm"));
        assert_eq!(
            service.fields.get("user").map(String::as_str),
            Some("alice")
        );
        assert_eq!(service.privileges[0].name, "login");
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["version"], "007");
        assert_eq!(json["services"][0]["fields"]["user"], "alice");
    }

    #[test]
    fn inspects_agoras_rtc_vector() {
        let info = inspect(AGORA_007_RTC).unwrap();
        assert!(!info.rtm_login);
        assert_eq!(info.user, None);
        let rtc = &info.services[0];
        assert_eq!(rtc.name, "rtc");
        assert_eq!(rtc.fields["channel"], "7d72365eb983485397e3e3f9d460bdda");
        assert_eq!(rtc.fields["uid"], "2882341273");
    }

    #[test]
    fn tells_rtc_tokens_from_rtm_tokens() {
        assert!(looks_like_rtc_token(AGORA_006_RTC));
        assert!(looks_like_rtc_token(AGORA_007_RTC));
        assert!(!looks_like_rtc_token(&build_rtm_token_006(
            APP_ID,
            CERTIFICATE,
            "a",
            1,
            1,
            1
        )));
        assert!(!looks_like_rtc_token(&build_rtm_token_007(
            APP_ID,
            CERTIFICATE,
            "a",
            1,
            1,
            1
        )));
        assert!(!looks_like_rtc_token("hello"));
        assert!(!looks_like_rtc_token("007garbage"));
    }

    #[test]
    fn describes_a_token_for_people() {
        let info = inspect(&build_rtm_token_007(
            APP_ID,
            CERTIFICATE,
            "alice",
            9,
            1000,
            3600,
        ))
        .unwrap();
        let text = info.describe(1000);
        assert!(text.contains("version     007"), "{text}");
        assert!(text.contains("issued at   1000 (now)"), "{text}");
        assert!(text.contains("user        alice"), "{text}");
        assert!(
            text.contains("RTM login   granted until 4600 (in 1h 0m)"),
            "{text}"
        );
        assert!(
            text.contains("service     rtm (2)  user=\"alice\""),
            "{text}"
        );
        let info = inspect(&build_rtm_token_006(APP_ID, CERTIFICATE, "alice", 9, 0, 0)).unwrap();
        let text = info.describe(200_000);
        assert!(
            text.contains("RTM login   granted, never expires"),
            "{text}"
        );
        assert!(text.contains("not stored in 006 tokens"), "{text}");
        assert_eq!(moment(100, 200_000), "100 (2d 7h ago)");
    }

    #[test]
    fn garbage_cannot_be_inspected() {
        assert!(matches!(inspect("nope"), Err(TokenError::Invalid(_))));
        assert!(matches!(inspect("006short"), Err(TokenError::Invalid(_))));
    }
}

//! Agora RTM tokens, AccessToken `006` and AccessToken2 `007`: build, verify, inspect.
//! Pure functions (the only ambient inputs are the clock and a random salt in
//! `mint_rtm_token`); the server calls `verify_rtm_token` at login and `renew_token`, the
//! `rtm-tui token` command calls the builders and `inspect`.
//!
//! Verification parses the token, recomputes its HMAC with the app certificate and
//! compares in constant time; it never compares token strings (Agora's own builders
//! compress 007 tokens differently). The formats live in `v006` and `v007`, their shared
//! byte packing in `wire`, HMAC and base64 in `sign`, the human view in `inspect`.

mod inspect;
mod sign;
pub mod v006;
pub mod v007;
mod wire;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub use inspect::{inspect, looks_like_rtc_token, PrivilegeInfo, ServiceInfo, TokenInfo};

/// Longest token string accepted; real RTM tokens are about 150 characters.
pub const MAX_TOKEN_CHARS: usize = 8 * 1024;

/// Why a token does not let the user log in. The server answers `Invalid` with login
/// code 5 (renew: 6) and `Expired` with login code 6 (renew: 5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, signed with another certificate, or for another app or user. The text
    /// says which, for logs and the `token` command; it never contains the certificate.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Valid, but its RTM login privilege ended at `expired_at` (unix seconds).
    #[error("token expired at {expired_at} (unix seconds)")]
    Expired { expired_at: u64 },
}

/// A token that lets its user log in now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    /// When the login privilege ends (unix seconds); `None` = never.
    pub expires_at: Option<u64>,
}

/// The two token formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TokenVersion {
    #[serde(rename = "006")]
    V006,
    #[serde(rename = "007")]
    V007,
}

impl TokenVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenVersion::V006 => v006::VERSION,
            TokenVersion::V007 => v007::VERSION,
        }
    }

    /// The format of `token`, from its prefix.
    pub fn of(token: &str) -> Option<TokenVersion> {
        if token.starts_with(v006::VERSION) {
            Some(TokenVersion::V006)
        } else if token.starts_with(v007::VERSION) {
            Some(TokenVersion::V007)
        } else {
            None
        }
    }
}

impl std::fmt::Display for TokenVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks that `token` (006 or 007) lets `user` log in to `app_id` at `now` (unix
/// seconds), signed with `certificate`.
///
/// Wrong signature, another app or user, no RTM login privilege, or a malformed token →
/// `Invalid`; past the login privilege's expiry → `Expired`. A 006 token carries its user
/// only as a CRC in the channel-name slot (uid empty); a 007 token must have an RTM
/// service (type 2) for `user` with privilege 1. Expiry: 006 uses the privilege's absolute
/// timestamp; 007 the earlier of issue ts + token expire and issue ts + privilege expire.
/// A zero timestamp or duration means no limit, as in Agora's builders.
///
/// ```
/// use rtm::token::{build_rtm_token_007, verify_rtm_token, TokenError};
///
/// let (app, cert) = ("970CA35de60c44645bbae8a215061b33", "5CFd2fd1755d40ecb72977518be15d3b");
/// // Issued at 1000, valid for 600 s.
/// let token = build_rtm_token_007(app, cert, "alice", 7, 1000, 600);
/// assert_eq!(verify_rtm_token(&token, app, cert, "alice", 1100).unwrap().expires_at, Some(1600));
/// assert!(matches!(verify_rtm_token(&token, app, cert, "bob", 1100), Err(TokenError::Invalid(_))));
/// assert_eq!(
///     verify_rtm_token(&token, app, cert, "alice", 1600),
///     Err(TokenError::Expired { expired_at: 1600 })
/// );
/// ```
pub fn verify_rtm_token(
    token: &str,
    app_id: &str,
    certificate: &str,
    user: &str,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    let (token, version) = read_version(token)?;
    let expires_at = match version {
        TokenVersion::V006 => verify_006(token, app_id, certificate, user)?,
        TokenVersion::V007 => verify_007(token, app_id, certificate, user)?,
    };
    match expires_at {
        Some(expired_at) if now >= expired_at => Err(TokenError::Expired { expired_at }),
        _ => Ok(VerifiedToken { expires_at }),
    }
}

/// The token without surrounding whitespace, and its format.
fn read_version(token: &str) -> Result<(&str, TokenVersion), TokenError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_CHARS {
        return Err(invalid(format!(
            "it is longer than {MAX_TOKEN_CHARS} characters"
        )));
    }
    let version =
        TokenVersion::of(token).ok_or_else(|| invalid("it is not an Agora 006 or 007 token"))?;
    Ok((token, version))
}

fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::Invalid(why.into())
}

fn check_app_id(token_app_id: &str, app_id: &str) -> Result<(), TokenError> {
    if token_app_id == app_id {
        Ok(())
    } else {
        Err(invalid(format!(
            "it was issued for app {token_app_id}, not {app_id}"
        )))
    }
}

const BAD_SIGNATURE: &str =
    "its signature does not match the app certificate (minted with another certificate?)";
const OTHER_USER: &str = "it was issued for another user";
const RTC_NOT_RTM: &str = "this looks like an RTC token, not an RTM token";

/// A timestamp or duration of 0 means "no limit".
fn limit(value: u64) -> Option<u64> {
    (value != 0).then_some(value)
}

/// The RTM login privilege a token grants.
#[derive(Debug, Clone, Copy)]
struct Login {
    /// Unix seconds; `None` = never.
    expires_at: Option<u64>,
}

/// The RTM login of a 006 token; `None` if it has no login privilege.
fn login_006(token: &v006::Token006) -> Option<Login> {
    let expire_ts = token.privileges.get(&v006::PRIVILEGE_RTM_LOGIN)?;
    Some(Login {
        expires_at: limit(u64::from(*expire_ts)),
    })
}

fn verify_006(
    token: &str,
    app_id: &str,
    certificate: &str,
    user: &str,
) -> Result<Option<u64>, TokenError> {
    let parsed = v006::parse(token)?;
    check_app_id(&parsed.app_id, app_id)?;
    let Some(login) = login_006(&parsed) else {
        return Err(
            if parsed
                .privileges
                .keys()
                .any(|&id| v006::is_rtc_privilege(id))
            {
                invalid(format!(
                    "it has no RTM login privilege (1000); {RTC_NOT_RTM}"
                ))
            } else {
                invalid("it has no RTM login privilege (1000)")
            },
        );
    };
    if !parsed.is_for_channel(user) {
        return Err(invalid(OTHER_USER));
    }
    // The uid's CRC is not signed; RTM leaves the uid empty, so anything else is forged
    // or an RTC token for a uid.
    if !parsed.has_empty_uid() {
        return Err(invalid(format!("its uid slot is not empty; {RTC_NOT_RTM}")));
    }
    if !parsed.signature_matches(certificate, user, "") {
        return Err(invalid(BAD_SIGNATURE));
    }
    Ok(login.expires_at)
}

/// The RTM login a 007 token gives `user` (any user if `None`); `None` if no RTM service
/// for that user has the login privilege.
fn login_007(token: &v007::Token007, user: Option<&str>) -> Option<Login> {
    let privilege_secs = token
        .services
        .iter()
        .find_map(|service| match &service.body {
            v007::ServiceBody::Rtm { user: owner } if user.is_none_or(|user| user == owner) => {
                service.privileges.get(&v007::PRIVILEGE_LOGIN).copied()
            }
            _ => None,
        })?;
    let issued = u64::from(token.issue_ts);
    let token_end = limit(u64::from(token.expire)).map(|secs| issued + secs);
    let login_end = limit(u64::from(privilege_secs)).map(|secs| issued + secs);
    let expires_at = match (token_end, login_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Some(Login { expires_at })
}

fn verify_007(
    token: &str,
    app_id: &str,
    certificate: &str,
    user: &str,
) -> Result<Option<u64>, TokenError> {
    let parsed = v007::parse(token)?;
    check_app_id(&parsed.app_id, app_id)?;
    if !parsed.signature_matches(certificate) {
        return Err(invalid(BAD_SIGNATURE));
    }
    let rtm_users: Vec<&str> = parsed
        .services
        .iter()
        .filter_map(|service| match &service.body {
            v007::ServiceBody::Rtm { user } => Some(user.as_str()),
            _ => None,
        })
        .collect();
    if rtm_users.is_empty() {
        let has_rtc = parsed
            .services
            .iter()
            .any(|service| service.kind == v007::SERVICE_RTC);
        return Err(if has_rtc {
            invalid(format!("it has no RTM service (type 2); {RTC_NOT_RTM}"))
        } else {
            invalid("it has no RTM service (type 2)")
        });
    }
    if !rtm_users.contains(&user) {
        return Err(invalid(OTHER_USER));
    }
    login_007(&parsed, Some(user))
        .map(|login| login.expires_at)
        .ok_or_else(|| invalid("its RTM service has no login privilege (1)"))
}

/// Builds a 006 RTM token with a fixed salt and `ts` (reproducible; Agora's builders use a
/// random salt and mint time + 24 h). `privilege_expire_ts` is the absolute end of the
/// login privilege (unix seconds; 0 = never). `app_id` should be Agora's 32-hex form (see
/// `check_agora_id`): the format has a fixed 32-character slot for it.
pub fn build_rtm_token_006(
    app_id: &str,
    certificate: &str,
    user: &str,
    salt: u32,
    ts: u32,
    privilege_expire_ts: u32,
) -> String {
    let privileges = BTreeMap::from([(v006::PRIVILEGE_RTM_LOGIN, privilege_expire_ts)]);
    v006::build(app_id, certificate, user, "", salt, ts, &privileges)
}

/// Builds a 007 RTM token with a fixed salt and issue ts (reproducible). The token and
/// its login privilege last `expire_secs` after `issue_ts` (0 = no limit).
pub fn build_rtm_token_007(
    app_id: &str,
    certificate: &str,
    user: &str,
    salt: u32,
    issue_ts: u32,
    expire_secs: u32,
) -> String {
    let rtm = v007::Service {
        kind: v007::SERVICE_RTM,
        privileges: BTreeMap::from([(v007::PRIVILEGE_LOGIN, expire_secs)]),
        body: v007::ServiceBody::Rtm { user: user.into() },
    };
    v007::build(app_id, certificate, issue_ts, expire_secs, salt, &[rtm])
}

/// Mints a token the way Agora's builders do: random salt, issued now, valid for
/// `valid_for_secs` (0 = no expiry).
pub fn mint_rtm_token(
    version: TokenVersion,
    app_id: &str,
    certificate: &str,
    user: &str,
    valid_for_secs: u32,
) -> String {
    let salt = rand::random_range(1..=99_999_999);
    let now = unix_now();
    let ts = |secs: u64| u32::try_from(now + secs).unwrap_or(u32::MAX);
    match version {
        TokenVersion::V006 => {
            let expire_ts = if valid_for_secs == 0 {
                0
            } else {
                ts(u64::from(valid_for_secs))
            };
            build_rtm_token_006(
                app_id,
                certificate,
                user,
                salt,
                ts(v006::TS_VALIDITY_SECS),
                expire_ts,
            )
        }
        TokenVersion::V007 => {
            build_rtm_token_007(app_id, certificate, user, salt, ts(0), valid_for_secs)
        }
    }
}

/// Seconds since the Unix epoch, the clock `verify_rtm_token` expects as `now`.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Checks that an app id or certificate has Agora's form, 32 hex characters; Agora's
/// builders refuse anything else, and 006 tokens have no room for other app ids.
pub fn check_agora_id(what: &str, value: &str) -> Result<(), String> {
    if value.len() == 32 && value.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "{what} must be 32 hexadecimal characters, as Agora issues them (got {} characters)",
            value.chars().count()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
    const CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3b";
    const OTHER_CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3c";
    const OTHER_APP_ID: &str = "970CA35de60c44645bbae8a215061b34";

    /// Agora's published 006 RTM vector: test_user, login privilege until 1446455471.
    const AGORA_006: &str = "006970CA35de60c44645bbae8a215061b33IAAsR0qgiCxv0vrpRcpkz5BrbfEWCBZ6kvR6t7qG/wJIQob86ogAAAAAEAABAAAAR/QQAAEA6AOvKDdW";
    /// Agora's published 007 vector with RTC and RTM (test_user) services, issued at
    /// 1111111, expire 600.
    const AGORA_007: &str = "007eJxTYOAQsrQ5s3TfH+1tvy8zZZ46EpCc0V43JXdGd2jS8porKo4KDJbmBs6OxqYpqWYGySYmZiamSUmJqRaJRoamBmaGScbG7l8EGCKYGBgYGRgYmBgYGVgYGMF8JjDJDCZZwKQCg3mKuZGxmWlqkqWFsYmFqbGleapxqnGaZYqJmUFSSkoiF4ORhYWRsYmhkbkxyCyISZwMJanFJfGlxalFACKnKng=";
    /// Agora's published 007 RTC-only vector.
    const AGORA_007_RTC: &str = "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj";
    /// Agora's published 006 RTC vector (join channel).
    const AGORA_006_RTC: &str = "006970CA35de60c44645bbae8a215061b33IACV0fZUBw+72cVoL9eyGGh3Q6Poi8bgjwVLnyKSJyOXR7dIfRBXoFHlEAABAAAAR/QQAAEAAQCvKDdW";

    fn verify(token: &str, user: &str, now: u64) -> Result<VerifiedToken, TokenError> {
        verify_rtm_token(token, APP_ID, CERTIFICATE, user, now)
    }

    fn assert_invalid(result: Result<VerifiedToken, TokenError>, needle: &str) {
        match result {
            Err(TokenError::Invalid(why)) => assert!(why.contains(needle), "{why}"),
            other => panic!("expected Invalid containing {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn builders_reproduce_agoras_rtm_vectors() {
        assert_eq!(
            build_rtm_token_006(
                APP_ID,
                CERTIFICATE,
                "test_user",
                1,
                1_111_111,
                1_446_455_471
            ),
            AGORA_006
        );
        // The 007 vector is reproduced (after decompression) in `v007`'s tests.
    }

    #[test]
    fn agoras_vectors_verify_until_they_expire() {
        assert_eq!(
            verify(AGORA_006, "test_user", 1_446_455_470),
            Ok(VerifiedToken {
                expires_at: Some(1_446_455_471)
            })
        );
        assert_eq!(
            verify(AGORA_006, "test_user", 1_446_455_471),
            Err(TokenError::Expired {
                expired_at: 1_446_455_471
            })
        );
        assert_eq!(
            verify(AGORA_007, "test_user", 1_111_111 + 599),
            Ok(VerifiedToken {
                expires_at: Some(1_111_711)
            })
        );
        assert_eq!(
            verify(AGORA_007, "test_user", 1_111_711),
            Err(TokenError::Expired {
                expired_at: 1_111_711
            })
        );
    }

    #[test]
    fn other_user_app_or_certificate_is_invalid() {
        for token in [AGORA_006, AGORA_007] {
            assert_invalid(verify(token, "test_user2", 1_111_111), OTHER_USER);
            assert_invalid(
                verify_rtm_token(token, OTHER_APP_ID, CERTIFICATE, "test_user", 1_111_111),
                "issued for app 970CA35de60c44645bbae8a215061b33",
            );
            assert_invalid(
                verify_rtm_token(token, APP_ID, OTHER_CERTIFICATE, "test_user", 1_111_111),
                "signature",
            );
        }
    }

    #[test]
    fn invalid_wins_over_expired() {
        assert_invalid(verify(AGORA_006, "someone", u64::MAX), OTHER_USER);
        assert_invalid(
            verify_rtm_token(AGORA_007, APP_ID, OTHER_CERTIFICATE, "test_user", u64::MAX),
            "signature",
        );
    }

    #[test]
    fn rtc_tokens_are_refused_with_a_hint() {
        assert_invalid(verify(AGORA_006_RTC, "test_user", 0), RTC_NOT_RTM);
        assert_invalid(verify(AGORA_007_RTC, "test_user", 0), RTC_NOT_RTM);
    }

    #[test]
    fn tokens_signed_with_another_certificate_are_invalid() {
        // A forger without the certificate can choose any fields but not the signature.
        let token = build_rtm_token_006(APP_ID, CERTIFICATE, "alice", 7, 100, 200);
        let forged = build_rtm_token_006(APP_ID, OTHER_CERTIFICATE, "alice", 7, 100, 4_000_000_000);
        assert!(verify(&token, "alice", 150).is_ok());
        assert_invalid(verify(&forged, "alice", 150), "signature");
        let forged = build_rtm_token_007(APP_ID, OTHER_CERTIFICATE, "alice", 7, 100, 0);
        assert_invalid(verify(&forged, "alice", 150), "signature");
    }

    /// Every single-bit change anywhere in a token's decoded content makes it invalid: the
    /// signature covers the fields, the user's CRC is checked, the uid must be empty.
    #[test]
    fn flipping_any_bit_of_the_content_makes_the_token_invalid() {
        let token_006 = build_rtm_token_006(APP_ID, CERTIFICATE, "alice", 7, 100, 200);
        let content = sign::base64_decode(&token_006[3 + v006::APP_ID_LEN..]).unwrap();
        for (index, bit) in (0..content.len()).flat_map(|index| (0..8).map(move |bit| (index, bit)))
        {
            let mut forged = content.clone();
            forged[index] ^= 1 << bit;
            let forged = format!("{}{APP_ID}{}", v006::VERSION, sign::base64_encode(&forged));
            assert_invalid(verify(&forged, "alice", 150), "");
        }
        let token_007 = build_rtm_token_007(APP_ID, CERTIFICATE, "alice", 7, 100, 200);
        let content = v007::decompress(&sign::base64_decode(&token_007[3..]).unwrap()).unwrap();
        for (index, bit) in (0..content.len()).flat_map(|index| (0..8).map(move |bit| (index, bit)))
        {
            let mut forged = content.clone();
            forged[index] ^= 1 << bit;
            let forged = format!(
                "{}{}",
                v007::VERSION,
                sign::base64_encode(&v007::compress(&forged))
            );
            assert_invalid(verify(&forged, "alice", 150), "");
        }
    }

    #[test]
    fn a_006_token_with_a_uid_is_not_an_rtm_token() {
        let privileges = BTreeMap::from([(v006::PRIVILEGE_RTM_LOGIN, 0)]);
        let token = v006::build(APP_ID, CERTIFICATE, "alice", "42", 1, 1, &privileges);
        assert_invalid(verify(&token, "alice", 0), "uid slot is not empty");
    }

    #[test]
    fn zero_means_no_expiry() {
        let token = build_rtm_token_006(APP_ID, CERTIFICATE, "alice", 1, 1, 0);
        assert_eq!(
            verify(&token, "alice", u64::from(u32::MAX)),
            Ok(VerifiedToken { expires_at: None })
        );
        let token = build_rtm_token_007(APP_ID, CERTIFICATE, "alice", 1, 1, 0);
        assert_eq!(
            verify(&token, "alice", u64::from(u32::MAX)),
            Ok(VerifiedToken { expires_at: None })
        );
    }

    #[test]
    fn expiry_of_007_is_the_earlier_of_token_and_privilege() {
        let rtm = |secs| v007::Service {
            kind: v007::SERVICE_RTM,
            privileges: BTreeMap::from([(v007::PRIVILEGE_LOGIN, secs)]),
            body: v007::ServiceBody::Rtm {
                user: "alice".into(),
            },
        };
        let short_privilege = v007::build(APP_ID, CERTIFICATE, 1000, 600, 1, &[rtm(60)]);
        assert_eq!(
            verify(&short_privilege, "alice", 1000).unwrap().expires_at,
            Some(1060)
        );
        let short_token = v007::build(APP_ID, CERTIFICATE, 1000, 30, 1, &[rtm(60)]);
        assert_eq!(
            verify(&short_token, "alice", 1000).unwrap().expires_at,
            Some(1030)
        );
        let only_privilege = v007::build(APP_ID, CERTIFICATE, 1000, 0, 1, &[rtm(60)]);
        assert_eq!(
            verify(&only_privilege, "alice", 1000).unwrap().expires_at,
            Some(1060)
        );
    }

    #[test]
    fn an_rtm_service_without_login_privilege_is_invalid() {
        let rtm = v007::Service {
            kind: v007::SERVICE_RTM,
            privileges: BTreeMap::new(),
            body: v007::ServiceBody::Rtm {
                user: "alice".into(),
            },
        };
        let token = v007::build(APP_ID, CERTIFICATE, 1000, 600, 1, &[rtm]);
        assert_invalid(verify(&token, "alice", 1000), "no login privilege");
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        let long = "0".repeat(MAX_TOKEN_CHARS + 1);
        for token in [
            "",
            "abc",
            "005abc",
            "006",
            "007",
            "007====",
            "006😀😀😀",
            &long,
        ] {
            assert!(
                matches!(verify(token, "alice", 0), Err(TokenError::Invalid(_))),
                "{token}"
            );
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert!(verify(&format!(" {AGORA_006}\n"), "test_user", 0).is_ok());
    }

    #[test]
    fn minted_tokens_verify_now() {
        for version in [TokenVersion::V006, TokenVersion::V007] {
            let token = mint_rtm_token(version, APP_ID, CERTIFICATE, "bob", 3600);
            assert_eq!(TokenVersion::of(&token), Some(version));
            let now = unix_now();
            let expires_at = verify(&token, "bob", now).unwrap().expires_at.unwrap();
            assert!(
                (now + 3599..=now + 3600).contains(&expires_at),
                "{expires_at} vs {now}"
            );
        }
    }

    #[test]
    fn agora_ids_are_32_hex_characters() {
        assert!(check_agora_id("app id", APP_ID).is_ok());
        assert!(check_agora_id("app id", "demo").is_err());
        assert!(check_agora_id("certificate", &"g".repeat(32)).is_err());
    }
}

//! Who is calling the REST API, as Agora authenticates it: HTTP Basic with a customer key
//! and secret configured on the server (`serve --api-key KEY:SECRET`), or `x-agora-token`
//! with `x-agora-uid` and an RTM token of the app (then the caller acts as that user
//! only). Secrets are compared in constant time.

use base64::Engine as _;
use hyper::header::{HeaderMap, AUTHORIZATION};
use subtle::ConstantTimeEq as _;

use crate::server::auth::verify_token;
use crate::server::config::{ApiKey, AppLookup, Config};

/// Who the call comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A customer key: any user of any app.
    Customer,
    /// An RTM token's user: that user of that app only.
    User(String),
}

/// Why a call is not authenticated (401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized(pub String);

/// Authenticates a call to `app`.
pub fn authenticate(
    headers: &HeaderMap,
    app: &str,
    config: &Config,
) -> Result<Caller, Unauthorized> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        return basic(value, &config.api_keys)
            .then_some(Caller::Customer)
            .ok_or_else(|| Unauthorized("invalid authentication credentials".into()));
    }
    let token = headers.get("x-agora-token").and_then(|v| v.to_str().ok());
    let uid = headers.get("x-agora-uid").and_then(|v| v.to_str().ok());
    let (Some(token), Some(uid)) = (token, uid) else {
        return Err(Unauthorized(
            "no credentials: Basic, or x-agora-token with x-agora-uid".into(),
        ));
    };
    let AppLookup::Certificate(cert) = config.apps.lookup(app) else {
        return Err(Unauthorized(
            "token authentication needs an app with a certificate".into(),
        ));
    };
    verify_token(Some(token), app, cert, uid, config.clock.unix_secs())
        .map(|_| Caller::User(uid.to_string()))
        .map_err(|e| Unauthorized(e.to_string()))
}

/// True if `Basic base64(key:secret)` names a configured key with its secret. Every key
/// is compared, each in constant time, so the time taken tells nothing of which failed.
fn basic(value: &str, keys: &[ApiKey]) -> bool {
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(split) = decoded.iter().position(|b| *b == b':') else {
        return false;
    };
    let (key, secret) = (&decoded[..split], &decoded[split + 1..]);
    let mut found = subtle::Choice::from(0);
    for configured in keys {
        let same =
            configured.key.as_bytes().ct_eq(key) & configured.secret.as_bytes().ct_eq(secret);
        found |= same;
    }
    found.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &str, secret: &str) -> String {
        let raw = format!("{key}:{secret}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn basic_needs_a_configured_key_and_its_secret() {
        let keys = vec!["ops:s3cret".parse::<ApiKey>().unwrap()];
        assert!(basic(&header("ops", "s3cret"), &keys));
        assert!(!basic(&header("ops", "s3cre"), &keys));
        assert!(!basic(&header("ops", "s3cret!"), &keys));
        assert!(!basic(&header("other", "s3cret"), &keys));
        assert!(!basic("Bearer x", &keys));
        assert!(!basic("Basic !!!", &keys));
        assert!(!basic(&header("ops", "s3cret"), &[]));
    }

    #[test]
    fn a_key_spec_needs_both_halves() {
        assert!("k:".parse::<ApiKey>().is_err());
        assert!("k".parse::<ApiKey>().is_err());
        assert_eq!(
            "k:s:t".parse::<ApiKey>().unwrap(),
            ApiKey {
                key: "k".into(),
                secret: "s:t".into()
            }
        );
    }
}

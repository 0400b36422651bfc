//! Login token checks: the one place that decides whether a token opens an app.
//!
//! Apps without a certificate accept any token or none. Apps with a certificate need an
//! Agora 006 or 007 RTM token that `crate::token::verify_rtm_token` accepts for the app,
//! the user and the current time.

use crate::token::{verify_rtm_token, TokenError};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum AuthError {
    /// LOGIN 5 / RENEW 6.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// LOGIN 6 / RENEW 5.
    #[error("token expired at {expired_at} (unix seconds)")]
    Expired { expired_at: u64 },
}

/// Checks `token` for (app, user) against `certificate` at `now` (unix seconds); on
/// success, when the token expires (`None`: never).
pub(super) fn verify_token(
    token: Option<&str>,
    app_id: &str,
    certificate: &str,
    user: &str,
    now: u64,
) -> Result<Option<u64>, AuthError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(AuthError::Invalid(format!(
            "app {app_id} has a certificate: a token is required"
        )));
    };
    verify_rtm_token(token, app_id, certificate, user, now)
        .map(|verified| verified.expires_at)
        .map_err(|error| match error {
            TokenError::Invalid(why) => AuthError::Invalid(why),
            TokenError::Expired { expired_at } => AuthError::Expired { expired_at },
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::build_rtm_token_007;

    const APP: &str = "970CA35de60c44645bbae8a215061b33";
    const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";

    #[test]
    fn maps_the_verifier_outcomes() {
        let token = build_rtm_token_007(APP, CERT, "alice", 1, 1000, 600);
        assert_eq!(
            verify_token(Some(&token), APP, CERT, "alice", 1100),
            Ok(Some(1600))
        );
        assert!(matches!(
            verify_token(Some(&token), APP, CERT, "bob", 1100),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(
            verify_token(Some(&token), APP, CERT, "alice", 1600),
            Err(AuthError::Expired { expired_at: 1600 })
        );
        assert!(matches!(
            verify_token(None, APP, CERT, "alice", 1100),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            verify_token(Some(""), APP, CERT, "alice", 1100),
            Err(AuthError::Invalid(_))
        ));
    }
}

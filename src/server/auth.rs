//! Login token checks: the one place that decides whether a token opens an app.
//!
//! Apps without a certificate accept any token or none. Apps with a certificate need an
//! Agora 006 or 007 RTM token that `crate::token::verify_rtm_token` accepts for the app,
//! the user and the current time.

use crate::token::{verify_rtm_token, TokenError};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// LOGIN 5 / RENEW 6.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// LOGIN 6 / RENEW 5.
    #[error("token expired at {expired_at} (unix seconds)")]
    Expired { expired_at: u64 },
}

/// Checks `token` for (app, user) against `certificate` at `now` (unix seconds); on
/// success, when the token expires (`None`: never).
pub fn verify_token(
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

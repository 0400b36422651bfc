//! `handle`'s LOGIN family: `login` (the one op a session without an identity may ask),
//! `logout`, `renew_token` (RENEW codes) and `ping`.
//!
//! The token check is `auth.rs`; the token's expiry watch, started by a `WatchToken`
//! change after a login or a renewal, is `hub/tokens.rs`.

use crate::protocol::request_rules::check_login;
use crate::protocol::{now_ms, Family, LoginError, PingResult, RenewError, RenewResult};

use super::{Ask, Identity, Session};
use crate::server::auth::{verify_token, AuthError};
use crate::server::config::AppLookup;
use crate::server::engine::Change;
use crate::server::engine::Outcome;
use crate::server::hub::Hub;

/// `login`: checks the rate, the ids and the token, then binds the user to this
/// connection (the hub answers when it applies the change, before the cached messages).
pub(super) async fn login(
    id: u32,
    (app_id, user, token): (&str, &str, Option<&str>),
    session: &mut Session,
    hub: &Hub,
) {
    if !session.limits.login.allow(hub.config().clock.now()) {
        return session.refuse(id, LoginError::TooOften);
    }
    if let Err(refusal) = check_login(app_id, user) {
        return session.refuse_invalid(id, &refusal);
    }
    let expires_at = match hub.config().apps.lookup(app_id) {
        AppLookup::Unknown => {
            return session.refuse_why(id, LoginError::InvalidAppId, "unknown app id")
        }
        AppLookup::NoCertificate => None,
        AppLookup::Certificate(cert) => {
            match verify_token(token, app_id, cert, user, hub.config().clock.unix_secs()) {
                Ok(expires_at) => expires_at,
                Err(e @ AuthError::Invalid(_)) => {
                    return session.refuse_why(id, LoginError::InvalidToken, e.to_string())
                }
                Err(e @ AuthError::Expired { .. }) => {
                    return session.refuse_why(id, LoginError::TokenExpired, e.to_string())
                }
            }
        }
    };
    let conn = hub.conn_id(&session.conn);
    // Last before the change, together: whether the user is banned, and what it
    // subscribed to if it is known (a login within the grace or elsewhere keeps it:
    // followed as the change is applied).
    hub.hold_app(app_id).await;
    let (ban, subscriptions) = tokio::join!(
        hub.ban_of(app_id, user),
        hub.load_subscriptions(app_id, user, conn)
    );
    let refusal = match (ban, subscriptions) {
        (Ok(None), Ok(())) => None,
        (Ok(Some(until)), _) => Some(crate::server::hub::admin::ban_reason(until)),
        (Err(_), _) | (_, Err(_)) => {
            hub.end_following(conn);
            return session.reply_unavailable(id, Family::Login);
        }
    };
    if let Some(why) = refusal {
        hub.end_following(conn);
        return session.refuse_why(id, LoginError::Rejected, why);
    }
    let change = Change::Login {
        app: app_id.to_string(),
        user: user.to_string(),
        conn,
        request_id: id,
        token_expires_at: expires_at,
    };
    // The login reply goes out when the change is applied, before the cached messages.
    if let Outcome::Unavailable = hub.submit(change, Some(&session.conn)).await {
        hub.end_following(conn);
        return session.reply_unavailable(id, Family::Login);
    }
    let watch = Change::WatchToken {
        app: app_id.to_string(),
        user: user.to_string(),
        conn,
        expires_at,
    };
    hub.submit(watch, Some(&session.conn)).await;
    session.identity = Some(Identity {
        app: app_id.to_string(),
        user: user.to_string(),
    });
    tracing::info!(app = app_id, user, conn = session.conn.id(), "login");
}

/// `logout`: the user leaves everything; the connection may log in again.
pub(super) async fn logout(ask: &mut Ask<'_>) {
    let change = Change::Logout {
        conn: ask.hub.conn_id(&ask.session.conn),
        app: ask.me.app.clone(),
        user: ask.me.user.clone(),
    };
    match ask.submit(change).await {
        Outcome::Done => {
            ask.session.identity = None;
            ask.hub.end_following(ask.hub.conn_id(&ask.session.conn));
            ask.ok_empty();
        }
        // Not confirmed: Redis may still apply it (it did not answer in time, which a
        // Redis that hangs does later), and the session must not stay logged in where
        // the others count it out. So the connection closes: the user is then out either
        // way, by this logout or, should it never land, as a dropped connection after the
        // grace period; the client logs in again on a new one.
        other => {
            ask.unavailable(&other);
            ask.session
                .conn
                .close(CLOSE_LOGOUT_UNCONFIRMED, "logout not confirmed");
        }
    }
}

/// The close code of a connection whose logout could not be confirmed (RFC 6455: the
/// server could not fulfil a request).
const CLOSE_LOGOUT_UNCONFIRMED: u16 = 1011;

/// `renew_token`: a new token for the logged-in user replaces the watch of the old one.
pub(super) async fn renew(ask: &mut Ask<'_>, token: &str) {
    let now = ask.now;
    // Only renewals that succeed count: a refused token changes nothing, the limit included.
    if ask.session.limits.renew_token.is_full(now) {
        return ask.refuse(RenewError::TooOften);
    }
    match ask.hub.config().apps.lookup(&ask.me.app) {
        AppLookup::NoCertificate | AppLookup::Unknown => {
            ask.session.limits.renew_token.allow(now);
            ask.ok(&RenewResult {
                token_expires_at: None,
            });
        }
        AppLookup::Certificate(cert) => {
            let now_secs = ask.hub.config().clock.unix_secs();
            let me = &ask.me;
            match verify_token(Some(token), &me.app, cert, &me.user, now_secs) {
                Ok(token_expires_at) => {
                    ask.session.limits.renew_token.allow(now);
                    ask.ok(&RenewResult { token_expires_at });
                    // After the reply: a warning for a short token follows it.
                    let watch = Change::WatchToken {
                        app: ask.me.app.clone(),
                        user: ask.me.user.clone(),
                        conn: ask.hub.conn_id(&ask.session.conn),
                        expires_at: token_expires_at,
                    };
                    if let Outcome::Unavailable = ask.submit(watch).await {
                        tracing::warn!(app = me.app, user = me.user, "token renewal not shared");
                    }
                }
                Err(e @ AuthError::Invalid(_)) => {
                    ask.refuse_why(RenewError::InvalidToken, e.to_string());
                }
                Err(e @ AuthError::Expired { .. }) => {
                    ask.refuse_why(RenewError::TokenExpired, e.to_string());
                }
            }
        }
    }
}

/// `ping`: the server's clock (or, for fault-injection tests, a panic).
pub(super) fn ping(ask: &Ask<'_>) {
    let fault = ask.hub.config().panic_on_ping_from.as_ref() == Some(&ask.me.user);
    assert!(!fault, "fault injection: a ping from {}", ask.me.user);
    ask.ok(&PingResult {
        server_ts: now_ms(),
    });
}

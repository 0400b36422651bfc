//! Tokens minted by Agora's official builders (npm `agora-token`, PyPI
//! `agora-token-builder`) must verify with `verify_rtm_token` for their app, user and
//! certificate, and be refused for anything else; expired ones are `Expired`. Also the
//! other way round: Agora's parser accepts the signature of our 007 tokens.

use crate::support;
use crate::support::token_builders::literal;
use rtm::token::{
    build_rtm_token_007, looks_like_rtc_token, unix_now, verify_rtm_token, TokenError,
    VerifiedToken,
};

const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
const CERTIFICATE: &str = "5CFd2fd1755d40ecb72977518be15d3b";
const OTHER_APP_ID: &str = "0123456789abcdef0123456789abcdef";
const OTHER_CERTIFICATE: &str = "fedcba9876543210fedcba9876543210";
const HOUR: u64 = 3600;

fn assert_invalid(result: Result<VerifiedToken, TokenError>, what: &str) {
    match result {
        Err(TokenError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

/// Accepted for its own app, user and certificate at `now`; refused for any other.
fn assert_accepted_only_for(token: &str, user: &str, now: u64) -> VerifiedToken {
    let verified = verify_rtm_token(token, APP_ID, CERTIFICATE, user, now)
        .unwrap_or_else(|error| panic!("{token} for {user:?}: {error}"));
    let other_user = format!("{user}x");
    assert_invalid(
        verify_rtm_token(token, APP_ID, CERTIFICATE, &other_user, now),
        "another user",
    );
    assert_invalid(
        verify_rtm_token(token, OTHER_APP_ID, CERTIFICATE, user, now),
        "another app",
    );
    assert_invalid(
        verify_rtm_token(token, APP_ID, OTHER_CERTIFICATE, user, now),
        "a wrong certificate",
    );
    verified
}

/// Mints with `mint`, checks acceptance, and that the login ends `valid_for` seconds after
/// minting (allowing for the clock ticking while the builder ran).
fn assert_official_token(mint: impl FnOnce() -> String, user: &str, valid_for: u64) -> String {
    let before = unix_now();
    let token = mint();
    let after = unix_now();
    let expires_at = assert_accepted_only_for(&token, user, after)
        .expires_at
        .expect("the builders set an expiry");
    assert!(
        (before + valid_for..=after + valid_for + 1).contains(&expires_at),
        "expires at {expires_at}, minted between {before} and {after}"
    );
    assert_eq!(
        verify_rtm_token(&token, APP_ID, CERTIFICATE, user, expires_at),
        Err(TokenError::Expired {
            expired_at: expires_at
        })
    );
    token
}

fn node_007(user: &str, expire: u64) -> String {
    format!(
        "const {{ RtmTokenBuilder }} = require('agora-token');\n\
         console.log(RtmTokenBuilder.buildToken({}, {}, {}, {expire}));\n",
        literal(APP_ID),
        literal(CERTIFICATE),
        literal(user)
    )
}

#[test]
fn npm_007_rtm_tokens_log_in_their_user_only() {
    let Some(node) = support::token_builders::node() else {
        return;
    };
    for user in ["alice", "Bob_42-x", "üser 1"] {
        assert_official_token(|| node.token(&node_007(user, HOUR)), user, HOUR);
    }
}

#[test]
fn npm_007_tokens_issued_in_the_past_are_expired() {
    let Some(node) = support::token_builders::node() else {
        return;
    };
    let now = unix_now();
    let issued = now - 2 * HOUR;
    let token = node.token(&format!(
        "const {{ AccessToken2, ServiceRtm }} = require('agora-token/src/AccessToken2');\n\
         const token = new AccessToken2({}, {}, {issued}, {HOUR});\n\
         const rtm = new ServiceRtm('alice');\n\
         rtm.add_privilege(ServiceRtm.kPrivilegeLogin, {HOUR});\n\
         token.add_service(rtm);\n\
         console.log(token.build());\n",
        literal(APP_ID),
        literal(CERTIFICATE)
    ));
    assert_eq!(
        verify_rtm_token(&token, APP_ID, CERTIFICATE, "alice", now),
        Err(TokenError::Expired {
            expired_at: issued + HOUR
        })
    );
    assert_invalid(
        verify_rtm_token(&token, APP_ID, OTHER_CERTIFICATE, "alice", now),
        "expired and forged",
    );
}

#[test]
fn npm_006_rtm_tokens_log_in_their_user_only() {
    let Some(node) = support::token_builders::node() else {
        return;
    };
    let mint = |user: &str, expire_ts: u64| {
        node.token(&format!(
            "const {{ RtmTokenBuilder, Role }} = require('agora-token/src/RtmTokenBuilder');\n\
             console.log(RtmTokenBuilder.buildToken({}, {}, {}, Role.Rtm_User, {expire_ts}));\n",
            literal(APP_ID),
            literal(CERTIFICATE),
            literal(user)
        ))
    };
    let now = unix_now();
    for user in ["alice", "üser 1"] {
        let token = mint(user, now + HOUR);
        let verified = assert_accepted_only_for(&token, user, now);
        assert_eq!(verified.expires_at, Some(now + HOUR));
    }
    assert_eq!(
        verify_rtm_token(&mint("alice", now - 10), APP_ID, CERTIFICATE, "alice", now),
        Err(TokenError::Expired {
            expired_at: now - 10
        })
    );
}

#[test]
fn npm_rtc_tokens_are_refused_and_recognised_as_rtc() {
    let Some(node) = support::token_builders::node() else {
        return;
    };
    let token = node.token(&format!(
        "const {{ RtcTokenBuilder, RtcRole }} = require('agora-token');\n\
         console.log(RtcTokenBuilder.buildTokenWithUserAccount({}, {}, 'room', 'alice', RtcRole.PUBLISHER, {HOUR}, {HOUR}));\n",
        literal(APP_ID),
        literal(CERTIFICATE)
    ));
    assert!(looks_like_rtc_token(&token));
    let refused = verify_rtm_token(&token, APP_ID, CERTIFICATE, "alice", unix_now());
    match refused {
        Err(TokenError::Invalid(why)) => assert!(why.contains("RTC token"), "{why}"),
        other => panic!("an RTC token must be refused, got {other:?}"),
    }
}

#[test]
fn npm_rtc_and_rtm_token_logs_in_its_account() {
    let Some(node) = support::token_builders::node() else {
        return;
    };
    let token = assert_official_token(
        || {
            node.token(&format!(
                "const {{ RtcTokenBuilder, RtcRole }} = require('agora-token');\n\
                 console.log(RtcTokenBuilder.buildTokenWithRtm({}, {}, 'room', 'alice', RtcRole.PUBLISHER, {HOUR}, {HOUR}));\n",
                literal(APP_ID),
                literal(CERTIFICATE)
            ))
        },
        "alice",
        HOUR,
    );
    assert!(!looks_like_rtc_token(&token));
}

#[test]
fn agoras_node_parser_accepts_our_007_signature() {
    let Some(node) = support::token_builders::node() else {
        return;
    };
    let ours = build_rtm_token_007(APP_ID, CERTIFICATE, "alice", 42, 1_700_000_000, 600);
    let check = |certificate: &str| {
        node.run(&format!(
            "const {{ AccessToken2, kRtmServiceType }} = require('agora-token/src/AccessToken2');\n\
             const token = new AccessToken2('', '', 0, 0);\n\
             if (!token.from_string({})) throw new Error('unparsable');\n\
             const rtm = token.getServices(kRtmServiceType)[0];\n\
             console.log(token.verifySignature({}), String(token.appId), token.issueTs, token.expire, String(rtm.__user_id));\n",
            literal(&ours),
            literal(certificate)
        ))
    };
    assert_eq!(
        check(CERTIFICATE),
        vec![format!("true {APP_ID} 1700000000 600 alice")]
    );
    assert_eq!(
        check(OTHER_CERTIFICATE),
        vec![format!("false {APP_ID} 1700000000 600 alice")]
    );
}

fn python_006(user: &str, expire_ts: u64) -> String {
    format!(
        "from agora_token_builder import RtmTokenBuilder\n\
         print(RtmTokenBuilder.buildToken({}, {}, {}, 1, {expire_ts}))\n",
        literal(APP_ID),
        literal(CERTIFICATE),
        literal(user)
    )
}

#[test]
fn pypi_006_rtm_tokens_log_in_their_user_only() {
    let Some(python) = support::token_builders::python() else {
        return;
    };
    let now = unix_now();
    for user in ["alice", "Bob_42-x", "üser 1"] {
        let token = python.token(&python_006(user, now + HOUR));
        let verified = assert_accepted_only_for(&token, user, now);
        assert_eq!(verified.expires_at, Some(now + HOUR));
    }
    let expired = python.token(&python_006("alice", now - 10));
    assert_eq!(
        verify_rtm_token(&expired, APP_ID, CERTIFICATE, "alice", now),
        Err(TokenError::Expired {
            expired_at: now - 10
        })
    );
    assert_invalid(
        verify_rtm_token(&expired, APP_ID, CERTIFICATE, "bob", now),
        "expired, for another user",
    );
}

#[test]
fn pypi_rtc_tokens_are_refused_and_recognised_as_rtc() {
    let Some(python) = support::token_builders::python() else {
        return;
    };
    let token = python.token(&format!(
        "from agora_token_builder import RtcTokenBuilder\n\
         print(RtcTokenBuilder.buildTokenWithAccount({}, {}, 'room', 'alice', 1, {}))\n",
        literal(APP_ID),
        literal(CERTIFICATE),
        unix_now() + HOUR
    ));
    assert!(looks_like_rtc_token(&token));
    assert_invalid(
        verify_rtm_token(&token, APP_ID, CERTIFICATE, "alice", unix_now()),
        "an RTC token",
    );
}

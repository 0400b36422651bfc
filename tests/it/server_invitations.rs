//! Call invitations over real WebSockets, raw JSON: the whole lifecycle on both sides,
//! expiry, and the INVITE codes (the cap on pending invitations, the rate limit).

use std::time::Duration;

use crate::support::raw::{self, Expect};
use crate::support::{start_server, test_config};
use rtm::server::{Config, RateLimits};
use serde_json::json;

const APP: &str = "demo";

#[tokio::test]
async fn invite_and_accept() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let reply = alice
        .request(
            json!({"op": "invite", "invitation_id": "call-1", "callee": "bob",
            "content": "join me", "channel": "room-7"}),
        )
        .await;
    assert_eq!(reply["code"], 0);
    let received = bob.expect_event("invitation_received").await;
    assert_eq!(
        received,
        json!({"event": "invitation_received", "invitation_id": "call-1", "caller": "alice",
            "content": "join me", "channel": "room-7"})
    );
    // The same pending invitation again: 4.
    assert_eq!(
        alice
            .code(json!({"op": "invite", "invitation_id": "call-1", "callee": "bob"}))
            .await,
        4
    );
    let accept = json!({"op": "accept_invitation", "invitation_id": "call-1",
        "caller": "alice", "response": "on my way"});
    assert_eq!(bob.code(accept.clone()).await, 0);
    let accepted = alice.expect_event("invitation_accepted").await;
    assert_eq!(
        accepted,
        json!({"event": "invitation_accepted", "invitation_id": "call-1", "callee": "bob",
            "response": "on my way"})
    );
    // Answered: gone.
    assert_eq!(bob.code(accept).await, 5);
    server.shutdown().await;
}

#[tokio::test]
async fn refuse_and_cancel() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    alice
        .request(json!({"op": "invite", "invitation_id": "a", "callee": "bob", "content": ""}))
        .await;
    bob.expect_event("invitation_received").await;
    assert_eq!(
        bob.code(json!({"op": "refuse_invitation", "invitation_id": "a",
            "caller": "alice", "response": "busy"}))
            .await,
        0
    );
    let refused = alice.expect_event("invitation_refused").await;
    assert_eq!(refused["response"], "busy");
    assert_eq!(refused["callee"], "bob");

    alice
        .request(json!({"op": "invite", "invitation_id": "b", "callee": "bob"}))
        .await;
    bob.expect_event("invitation_received").await;
    let cancel = json!({"op": "cancel_invitation", "invitation_id": "b", "callee": "bob"});
    assert_eq!(alice.code(cancel.clone()).await, 0);
    assert_eq!(
        bob.expect_event("invitation_canceled").await,
        json!({"event": "invitation_canceled", "invitation_id": "b", "caller": "alice"})
    );
    assert_eq!(alice.code(cancel).await, 5);
    // Only the callee can answer, only the caller can cancel.
    alice
        .request(json!({"op": "invite", "invitation_id": "c", "callee": "bob"}))
        .await;
    assert_eq!(
        alice
            .code(json!({"op": "accept_invitation", "invitation_id": "c", "caller": "alice"}))
            .await,
        5
    );
    assert_eq!(
        bob.code(json!({"op": "cancel_invitation", "invitation_id": "c", "callee": "bob"}))
            .await,
        5
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unanswered_invitations_expire() {
    let config = Config {
        invitation_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    alice
        .request(json!({"op": "invite", "invitation_id": "late", "callee": "bob"}))
        .await;
    for client in [&mut alice, &mut bob] {
        let failure = client.expect_event("invitation_failure").await;
        assert_eq!(
            failure,
            json!({"event": "invitation_failure", "invitation_id": "late", "reason": 3})
        );
    }
    assert_eq!(
        bob.code(json!({"op": "accept_invitation", "invitation_id": "late", "caller": "alice"}))
            .await,
        5
    );
    server.shutdown().await;
}

#[tokio::test]
async fn invitation_codes() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    assert_eq!(
        alice
            .code(json!({"op": "invite", "invitation_id": "x", "callee": "nobody"}))
            .await,
        1
    );
    let big = "c".repeat(8 * 1024 + 1);
    for op in [
        json!({"op": "invite", "invitation_id": "", "callee": "bob"}),
        json!({"op": "invite", "invitation_id": "i".repeat(65), "callee": "bob"}),
        json!({"op": "invite", "invitation_id": "x", "callee": " bob"}),
        json!({"op": "invite", "invitation_id": "x", "callee": "bob", "content": big}),
        json!({"op": "invite", "invitation_id": "x", "callee": "bob", "channel": "null"}),
        json!({"op": "accept_invitation", "invitation_id": "x", "caller": "bob", "response": big}),
    ] {
        assert_eq!(alice.code(op.clone()).await, 4, "{op}");
    }
    server.shutdown().await;
}

fn invite(n: usize) -> serde_json::Value {
    json!({"op": "invite", "invitation_id": format!("call-{n}"), "callee": "bob", "content": "hi"})
}

#[tokio::test]
async fn pending_invitations_per_caller_are_capped() {
    let mut config = test_config();
    config.rate_limits = RateLimits::unlimited();
    config.max_pending_invitations = 32;
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    for n in 0..32 {
        assert_eq!(alice.code(invite(n)).await, 0);
    }
    assert_eq!(alice.code(invite(32)).await, 4);
    // Another caller is not affected; an answered invitation frees a slot.
    let mut carol = raw::login(&server.url(), APP, "carol").await;
    assert_eq!(carol.code(invite(0)).await, 0);
    let refuse = json!({"op": "refuse_invitation", "invitation_id": "call-0",
        "caller": "alice", "response": "busy"});
    assert_eq!(bob.code(refuse).await, 0);
    assert_eq!(alice.code(invite(32)).await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn invitations_are_rate_limited_with_code_4() {
    let server = start_server(test_config()).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let _bob = raw::login(&server.url(), APP, "bob").await;
    // Default: 10 per 5 s; INVITE has no "too often", so the 11th is 4 (invalid argument).
    for n in 0..10 {
        assert_eq!(alice.code(invite(n)).await, 0);
    }
    let reply = alice.request(invite(10)).await;
    assert_eq!(reply["code"], 4);
    assert!(reply["reason"].as_str().unwrap().contains("too often"));
    server.shutdown().await;
}

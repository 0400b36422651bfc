//! Property tests against a real server (one for all the cases, `support::shared_server`):
//! arbitrary bytes and arbitrary request sequences from one connection never stop the
//! server from serving a well-behaved client, and every request with an id gets exactly
//! one reply.

use crate::support;
use crate::support::raw::{self, Expect};
use crate::support::shared_server::shared_server;
use proptest::prelude::*;
use serde_json::{json, Value};

fn unique_user(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}{n}")
}

/// A well-behaved client logs in, joins, sends, and reads its reply.
async fn well_behaved_client_is_served(url: &str) {
    let user = unique_user("good");
    let mut good = raw::login(url, "props", &user).await;
    let reply = good
        .request(json!({"op": "join", "channel": "props"}))
        .await;
    assert_eq!(reply["code"], 0, "{reply}");
    let reply = good
        .request(json!({"op": "send_channel", "channel": "props", "message": support::text("hi")}))
        .await;
    assert_eq!(reply["code"], 0, "{reply}");
    good.hang_up().await;
}

/// Ids: mostly valid, sometimes the edge cases of docs/protocol.md's rules.
fn id_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,8}",
        1 => Just(String::new()),
        1 => Just("null".to_string()),
        1 => Just(" lead".to_string()),
        1 => "[a-zA-Z0-9 !#$%&()+:;<=.>?@_~,-]{60,70}",
        1 => any::<String>(),
    ]
}

fn message_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,40}".prop_map(|t| json!({"type": "text", "text": t})),
        "[A-Za-z0-9+/=]{0,40}".prop_map(|d| json!({"type": "raw", "data": d, "description": "d"})),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!({"type": "video"})),
    ]
}

fn ids_strategy() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(id_strategy(), 0..5)
}

/// One op of docs/protocol.md with arbitrary parameters (or an unknown op, or missing ones).
fn op_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        id_strategy().prop_map(|c| json!({"op": "join", "channel": c})),
        id_strategy().prop_map(|c| json!({"op": "leave", "channel": c})),
        (id_strategy(), message_strategy())
            .prop_map(|(c, m)| json!({"op": "send_channel", "channel": c, "message": m})),
        (id_strategy(), message_strategy(), any::<bool>()).prop_map(
            |(to, m, offline)| json!({"op": "send_peer", "to": to, "message": m, "offline": offline})
        ),
        id_strategy().prop_map(|c| json!({"op": "get_members", "channel": c})),
        ids_strategy().prop_map(|c| json!({"op": "get_channel_member_count", "channels": c})),
        ids_strategy().prop_map(|p| json!({"op": "query_peers_online", "peers": p})),
        ids_strategy().prop_map(|p| json!({"op": "subscribe_peers_online", "peers": p})),
        (id_strategy(), id_strategy())
            .prop_map(|(k, v)| json!({"op": "set_user_attributes", "attributes": {k: v}})),
        (id_strategy(), ids_strategy())
            .prop_map(|(u, k)| json!({"op": "get_user_attributes", "user": u, "keys": k})),
        (id_strategy(), any::<Option<u64>>(), any::<u32>()).prop_map(|(c, before, limit)| json!(
            {"op": "history", "channel": c, "before": before, "limit": limit}
        )),
        (id_strategy(), id_strategy()).prop_map(
            |(i, callee)| json!({"op": "invite", "invitation_id": i, "callee": callee, "content": "x"})
        ),
        ".{0,20}".prop_map(|t| json!({"op": "renew_token", "token": t})),
        Just(json!({"op": "ping"})),
        Just(json!({"op": "logout"})),
        Just(json!({"op": "login", "app_id": "props", "user": "again"})),
        "[a-z_]{1,12}".prop_map(|op| json!({"op": op})),
        Just(json!({"op": "join"})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary bytes as text frames, before or after login: the server may answer with
    /// errors or close this connection, but keeps serving others.
    #[test]
    fn arbitrary_frames_leave_the_server_serving(
        login in any::<bool>(),
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
    ) {
        let shared = shared_server();
        let url = shared.server.url();
        shared.runtime.block_on(async {
            let client = if login {
                raw::login(&url, "props", &unique_user("bytes")).await
            } else {
                raw::connect(&url).await
            };
            for frame in &frames {
                // Refused once the server has closed this connection: that is allowed.
                let _ = client.send_text(String::from_utf8_lossy(frame));
            }
            well_behaved_client_is_served(&url).await;
        });
    }

    /// Arbitrary sequences of ops with arbitrary parameters: every request gets exactly
    /// one reply with an integer code, and the connection keeps working. At most 15 ops:
    /// after a generated `logout`, they and the final sync stay within what a connection
    /// may send before it logs in again (`prelogin::PRE_LOGIN_OBJECTS`, 16).
    #[test]
    fn every_request_gets_one_reply(ops in prop::collection::vec(op_strategy(), 1..16)) {
        let shared = shared_server();
        let url = shared.server.url();
        shared.runtime.block_on(async {
            let mut client = raw::login(&url, "props", &unique_user("ops")).await;
            let replies: Vec<_> = ops.into_iter().map(|op| client.start(op).unwrap()).collect();
            for reply in replies {
                let reply = raw::expect_reply(reply).await;
                assert!(reply["code"].is_u64(), "{reply}");
            }
            // No second reply for any id: after a sync, no reply came that nothing waited for.
            client.sync().await;
            assert_eq!(client.stray_replies(), 0, "second replies");
            well_behaved_client_is_served(&url).await;
        });
    }
}

//! Admission limits and hostile input over real sockets: the connection cap, logins per
//! address, the login deadline, the handshake deadline, deeply nested and huge JSON.

use std::time::Duration;

use crate::support::raw::{self, Expect, Transcript};
use crate::support::{start_server, test_config, WAIT};
use rtm::qa::raw::Closure;
use rtm::server::RateLimit;
use serde_json::json;
use tokio::io::AsyncReadExt as _;

const APP: &str = "demo";

#[tokio::test]
async fn connections_over_the_cap_are_refused_and_slots_come_back() {
    let mut config = test_config();
    config.max_connections = 2;
    let server = start_server(config).await;
    let alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let refused = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(server.url()))
        .await
        .expect("answered in time");
    assert!(refused.is_err(), "a third connection is refused");
    bob.sync().await;
    alice.hang_up().await;
    // Alice's slot is freed once the server has seen her go; retry until then.
    let carol = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok((ws, _)) = tokio_tungstenite::connect_async(server.url()).await {
                break ws;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a slot comes back");
    drop(carol);
    server.shutdown().await;
}

#[tokio::test]
async fn logins_per_address_are_limited_across_connections() {
    let mut config = test_config();
    config.loopback_exempt = false;
    config.logins_per_address = RateLimit::new(3, Duration::from_secs(60));
    let server = start_server(config).await;
    let mut codes = Vec::new();
    for n in 0..5 {
        let mut client = raw::connect(&server.url()).await;
        let reply = client
            .request(json!({"op": "login", "app_id": APP, "user": format!("u{n}")}))
            .await;
        codes.push(reply["code"].as_u64().unwrap());
    }
    assert_eq!(codes, [0, 0, 0, 10, 10]);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_that_never_log_in_are_closed() {
    let mut config = test_config();
    config.login_timeout = Duration::from_millis(300);
    let server = start_server(config).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut idle = raw::connect(&server.url()).await;
    // Requests before login do not keep it open.
    assert_eq!(idle.code(json!({"op": "ping"})).await, 102);
    assert_eq!(idle.expect_end().await, Closure::CloseFrame(Some(1008)));
    // Alice connected earlier, so her deadline has passed too: logged in, she stays.
    assert_eq!(alice.code(json!({"op": "ping"})).await, 0);
    // After a logout the deadline runs again.
    assert_eq!(alice.code(json!({"op": "logout"})).await, 0);
    assert_eq!(alice.expect_end().await, Closure::CloseFrame(Some(1008)));
    server.shutdown().await;
}

#[tokio::test]
async fn a_tcp_connection_without_handshake_is_dropped() {
    let mut config = test_config();
    config.login_timeout = Duration::from_millis(300);
    let server = start_server(config).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("the server hangs up in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn deeply_nested_json_is_an_error_not_a_crash() {
    let server = start_server(test_config()).await;
    let mut transcript = Transcript::default();
    let mut mallory = raw::connect_traced(&server.url(), transcript.tracer()).await;
    mallory.login(APP, "mallory").await;
    // 60 000 levels fit in one 64 KiB object; serde_json stops at 128.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    mallory.send_frame(&deep);
    let error = mallory.expect_event("error").await;
    assert_eq!(error["code"], 1);
    let deep_object = format!(
        r#"{{"id":9,"op":"send_peer","to":"x","message":{}1{}}}"#,
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    transcript.skip_received();
    mallory.send_frame(&deep_object);
    let next = transcript.next().await;
    assert!(next["code"].as_u64().is_some_and(|c| c > 0), "{next}");
    // Many small objects in one 1 MiB frame are each answered, in order.
    let pings = mallory
        .start_batch(vec![json!({"op": "ping"}); 5000])
        .unwrap();
    for ping in pings {
        assert_eq!(raw::expect_reply(ping).await["code"], 0);
    }
    // Still served, and so is everyone else.
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    alice.sync().await;
    mallory.sync().await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_frames_and_objects_close_with_1009() {
    let server = start_server(test_config()).await;
    let mut big_frame = raw::login(&server.url(), APP, "a").await;
    big_frame.send_frame(&" ".repeat(2 * 1024 * 1024));
    assert_eq!(
        big_frame.expect_end().await,
        Closure::CloseFrame(Some(1009))
    );
    let mut big_object = raw::login(&server.url(), APP, "b").await;
    let text = "x".repeat(70 * 1024);
    big_object.send_frame(
        &json!({"id": 1, "op": "send_peer", "to": "a", "message": {"type": "text", "text": text}})
            .to_string(),
    );
    assert_eq!(
        big_object.expect_end().await,
        Closure::CloseFrame(Some(1009))
    );
    // The server still serves others.
    let mut carol = raw::login(&server.url(), APP, "carol").await;
    carol.sync().await;
    server.shutdown().await;
}

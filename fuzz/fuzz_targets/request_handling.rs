//! Request handling through a real in-process server: the input is a sequence of text
//! frames (separated by 0xFF bytes) sent on one connection, logged in first when the
//! input's first byte is odd. After each input the server must still answer that
//! connection's ping (unless it closed it) and serve a fresh, well-behaved client.
#![no_main]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use libfuzzer_sys::fuzz_target;
use tokio_tungstenite::tungstenite::Message;

// The server every input is thrown at, shared with the property tests of the same kind.
#[path = "../../tests/it/support/shared_server.rs"]
mod shared_server;

/// A bound on every wait: a hang is a finding.
const WAIT: Duration = Duration::from_secs(5);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends a ping with `id` and reads until its reply, whatever its code (true), or the end
/// of the connection (false).
async fn answered(ws: &mut Ws, id: u32) -> bool {
    let ping = format!(r#"{{"id":{id},"op":"ping"}}"#);
    if ws.send(Message::text(ping)).await.is_err() {
        return false;
    }
    let wanted = format!(r#""id":{id},"code":"#);
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("server hangs")
        {
            Some(Ok(Message::Text(text))) if text.as_str().contains(&wanted) => return true,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return false,
        }
    }
}

async fn run(data: &[u8], url: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    if data.first().is_some_and(|b| b % 2 == 1) {
        let login = r#"{"id":4000000000,"op":"login","app_id":"fuzz","user":"fuzzer"}"#;
        ws.send(Message::text(login)).await.expect("send login");
    }
    for frame in data.get(1..).unwrap_or_default().split(|b| *b == 0xFF) {
        let text = String::from_utf8_lossy(frame).into_owned();
        if ws.send(Message::text(text)).await.is_err() {
            break; // closed by the server (too big, too many errors): allowed
        }
    }
    let _ = answered(&mut ws, 4_000_000_001).await;
    // Whatever that connection did, a well-behaved client is served.
    let (mut good, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let login = r#"{"id":1,"op":"login","app_id":"fuzz","user":"good"}"#;
    good.send(Message::text(login)).await.expect("send");
    assert!(
        answered(&mut good, 2).await,
        "a well-behaved client is not served"
    );
    let ping = r#"{"id":3,"op":"join","channel":"fuzz"}"#;
    good.send(Message::text(ping)).await.expect("send");
    loop {
        match tokio::time::timeout(WAIT, good.next())
            .await
            .expect("server hangs")
        {
            Some(Ok(Message::Text(text))) if text.as_str().contains(r#""id":3,"code":"#) => {
                assert!(
                    text.as_str().contains(r#""id":3,"code":0"#),
                    "join refused: {text}"
                );
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("the well-behaved client lost its connection: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let shared = shared_server::shared_server();
    let url = shared.server.url();
    shared.runtime.block_on(run(data, &url));
});

//! A soak: the `rtm-tui serve` process under abusive and faulty clients at once (garbage,
//! a channel flood, a stalled reader, login spam, clients killed mid-frame) while two
//! well-behaved library clients talk. They stay connected, every message answered 0
//! reaches its peer in order, and every message answered 4 is delivered at login.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::raw::{self, Expect};
use crate::support::server_process::ServerProcess;
use crate::support::{text, WAIT};
use futures_util::{SinkExt as _, StreamExt as _};
use rtm::client::{Client, ClientConfig, ClientEvent, SendOptions};
use rtm::protocol::{ChangeReason, ConnectionState, Event, Message};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const APP: &str = "demo";
const ROUNDS: usize = 60;

/// Runs `abuse` over and over on fresh connections until `stop` is set.
fn keep_abusing<F, Fut>(stop: &Arc<AtomicBool>, abuse: F) -> tokio::task::JoinHandle<usize>
where
    F: Fn(usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::clone(stop);
    tokio::spawn(async move {
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) {
            // A round may end in any way (closed, cut, refused): that is the point.
            let _ = tokio::time::timeout(Duration::from_secs(2), abuse(rounds)).await;
            rounds += 1;
            // Pacing, not waiting: a few hundred abusive connections a second already; a
            // tight loop would only measure how the 2-core test box shares its CPU.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rounds
    })
}

async fn garbage(url: String, round: usize) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        return;
    };
    let deep = "[".repeat(20_000);
    let noise: String = (0..2000)
        .map(|i| char::from(((i * 7 + round) % 94 + 32) as u8))
        .collect();
    for frame in [
        deep.as_str(),
        noise.as_str(),
        "{\"id\":1,\"op\":",
        "null\n\n{}",
    ] {
        for _ in 0..30 {
            if ws.send(WsMessage::text(frame)).await.is_err() {
                return;
            }
        }
    }
    let _ = ws.send(WsMessage::binary(vec![0u8; 1000])).await;
}

async fn flood(url: String, round: usize) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        return;
    };
    let login = json!({"id": 1, "op": "login", "app_id": APP, "user": format!("flooder{round}")});
    let join = json!({"id": 2, "op": "join", "channel": "noisy"});
    let _ = ws.send(WsMessage::text(format!("{login}\n{join}"))).await;
    let body = "y".repeat(4000);
    for id in 3..400 {
        let op =
            json!({"id": id, "op": "send_channel", "channel": "noisy", "message": text(&body)});
        if ws.send(WsMessage::text(op.to_string())).await.is_err() {
            return;
        }
    }
    // Hold the connection (and its spent rate budget) for the rest of the round: one
    // abusive connection, not a new user every few milliseconds.
    while let Some(Ok(_)) = ws.next().await {}
}

async fn login_spam(url: String, round: usize) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        return;
    };
    let logins: Vec<String> = (0..50)
        .map(|n| {
            json!({"id": n + 1, "op": "login", "app_id": APP, "user": format!("spam{round}")})
                .to_string()
        })
        .collect();
    let _ = ws.send(WsMessage::text(logins.join("\n"))).await;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(200), ws.next()).await {}
}

async fn killed_mid_frame(addr: std::net::SocketAddr, round: usize) {
    let Ok(tcp) = std::net::TcpStream::connect(addr) else {
        return;
    };
    let Ok(mut raw) = tcp.try_clone() else {
        return;
    };
    let _ = tcp.set_nonblocking(true);
    let Ok(tcp) = tokio::net::TcpStream::from_std(tcp) else {
        return;
    };
    let _ = tcp.set_zero_linger();
    let url = format!("ws://{addr}/rtm/v1");
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(url, tcp).await else {
        return;
    };
    let login = json!({"id": 1, "op": "login", "app_id": APP, "user": format!("victim{round}")});
    let _ = ws.send(WsMessage::text(login.to_string())).await;
    let _ = tokio::time::timeout(Duration::from_millis(500), ws.next()).await;
    let _ = raw.write_all(&[0x81, 0xFE, 0x10, 0x00, 9, 9, 9, 9, b'{', b'"']);
}

/// The two state changes of the first login; anything else means the connection broke.
fn first_login(state: ConnectionState, reason: ChangeReason) -> bool {
    matches!(
        (state, reason),
        (ConnectionState::Connecting, ChangeReason::Login)
            | (ConnectionState::Connected, ChangeReason::LoginSuccess)
    )
}

#[tokio::test]
async fn well_behaved_clients_are_served_through_abuse() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), 0).await;
    let url = server.url();
    let stop = Arc::new(AtomicBool::new(false));

    // A member of the noisy channel that never reads.
    let mut stalled = raw::login_with_small_receive_buffer(server.addr, APP, "stalled").await;
    assert_eq!(
        stalled
            .code(json!({"op": "join", "channel": "noisy"}))
            .await,
        0
    );
    stalled.set_reading(false);

    let abusers = vec![
        keep_abusing(&stop, {
            let url = url.clone();
            move |r| garbage(url.clone(), r)
        }),
        keep_abusing(&stop, {
            let url = url.clone();
            move |r| flood(url.clone(), r)
        }),
        keep_abusing(&stop, {
            let url = url.clone();
            move |r| login_spam(url.clone(), r)
        }),
        keep_abusing(&stop, {
            let addr = server.addr;
            move |r| killed_mid_frame(addr, r)
        }),
    ];

    let (alice, mut alice_events) = Client::new(ClientConfig::new(url.clone(), APP)).unwrap();
    let (bob, mut bob_events) = Client::new(ClientConfig::new(url.clone(), APP)).unwrap();
    alice.login(None, "alice").await.expect("alice logs in");
    bob.login(None, "bob").await.expect("bob logs in");
    let mut received = Vec::new();
    let mut cached = Vec::new();
    for n in 0..ROUNDS {
        let online = alice
            .send_message_to_peer(
                "bob",
                Message::text(format!("to bob {n}")),
                SendOptions::default(),
            )
            .await;
        assert!(online.is_ok(), "send {n} to bob: {online:?}");
        let offline = alice
            .send_message_to_peer(
                "carol",
                Message::text(format!("to carol {n}")),
                SendOptions { offline: true },
            )
            .await;
        match offline {
            Err(error) if error.code() == Some(4) => cached.push(format!("to carol {n}")),
            other => panic!("offline send {n}: {other:?}"),
        }
        // Bob got it before alice's send was answered 0 (he acked it).
        while received.len() <= n {
            match tokio::time::timeout(WAIT, bob_events.recv())
                .await
                .expect("bob's event")
            {
                Some(ClientEvent::Server(Event::MessageFromPeer { message, .. })) => {
                    received.push(message.summary());
                }
                Some(ClientEvent::StateChanged { state, reason, .. }) => {
                    assert!(
                        first_login(state, reason),
                        "bob's connection: {state:?} {reason:?}"
                    );
                }
                Some(_) => {}
                None => panic!("bob's client ended"),
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut rounds = Vec::new();
    for abuser in abusers {
        rounds.push(abuser.await.expect("abuser task"));
    }
    println!("abuse rounds (garbage, flood, login spam, killed): {rounds:?}");
    assert!(
        rounds.iter().all(|r| *r > 0),
        "every abuser ran: {rounds:?}"
    );

    let expected: Vec<String> = (0..ROUNDS).map(|n| format!("to bob {n}")).collect();
    assert_eq!(received, expected, "in order, none lost, none twice");
    // Alice never left CONNECTED either.
    while let Some(event) = alice_events.try_recv() {
        if let ClientEvent::StateChanged { state, reason, .. } = event {
            assert!(
                first_login(state, reason),
                "alice's connection: {state:?} {reason:?}"
            );
        }
    }
    // Carol gets every cached message at login, in order.
    let mut carol = raw::login(&url, APP, "carol").await;
    carol.sync().await;
    let delivered: Vec<String> = carol
        .take_events(raw::named("message_from_peer"))
        .iter()
        .map(|e| e["message"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered, cached);
    server.kill9().await;
}

//! Client library behaviour that needs no server logic: login timeouts and failures
//! against real sockets that never answer, validation before sending, and the connection
//! state machine driven by a scripted WebSocket peer on 127.0.0.1:0 (batched frames,
//! automatic acks, a server that falls silent, a kick).

use std::collections::VecDeque;
use std::time::Duration;

use crate::support;
use futures_util::{SinkExt, StreamExt};
use rtm::client::{
    Client, ClientConfig, ClientError, ClientEvent, ConnectError, Events, SendOptions,
};
use rtm::protocol::{ChangeReason, ConnectionState, Event, Message, Op};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use crate::support::client::{
    expect_login_ended, expect_login_succeeded, next_event, next_state, WAIT,
};

/// Scripted peers never stall, so the timeouts under test can be very short: 400 ms
/// login timeout, pings every 200 ms, a dead server after 600 ms of silence.
fn fast_config(addr: std::net::SocketAddr) -> ClientConfig {
    let mut config = support::client::fast_config(&format!("ws://{addr}/rtm/v1"));
    config.login_timeout = Duration::from_millis(400);
    config.request_timeout = Duration::from_secs(2);
    config.ping_interval = Duration::from_millis(200);
    config.dead_timeout = Duration::from_millis(600);
    config
}

#[tokio::test]
async fn login_times_out_when_the_handshake_is_never_answered() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts the TCP connection and keeps it open without a word.
    let holder = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(WAIT).await;
        drop(socket);
    });
    let (client, mut events) = Client::new(fast_config(addr)).unwrap();
    let error = client.login(None, "alice").await.unwrap_err();
    assert_eq!(
        error,
        ClientError::Timeout {
            family: rtm::protocol::Family::Login
        }
    );
    assert_eq!(error.code(), Some(rtm::client::LOGIN_TIMEOUT_CODE));
    expect_login_ended(&mut events, ChangeReason::LoginTimeout).await;
    assert_eq!(
        client.state(),
        (ConnectionState::Disconnected, ChangeReason::LoginTimeout)
    );
    assert_eq!(client.user(), None);
    holder.abort();
}

#[tokio::test]
async fn login_times_out_when_the_login_gets_no_reply() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener).await;
        let login = ws.next_json().await;
        // Keep the socket open (and read it) until the client gives up and closes.
        while let Some(Ok(_)) = ws.ws.next().await {}
        login
    });
    let (client, mut events) = Client::new(fast_config(addr)).unwrap();
    let started = std::time::Instant::now();
    let error = client.login(Some("tok"), "alice").await.unwrap_err();
    assert!(matches!(error, ClientError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let login = timeout(WAIT, server).await.unwrap().unwrap();
    assert_eq!(login["op"], "login");
    assert_eq!(login["app_id"], "demo");
    assert_eq!(login["user"], "alice");
    assert_eq!(login["token"], "tok");
    assert!(login["id"].as_u64().is_some_and(|id| id >= 1));
    expect_login_ended(&mut events, ChangeReason::LoginTimeout).await;
}

#[tokio::test]
async fn login_fails_when_nothing_listens() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let (client, mut events) = Client::new(fast_config(addr)).unwrap();
    let error = client.login(None, "alice").await.unwrap_err();
    assert!(matches!(error, ClientError::Connect(_)), "{error:?}");
    expect_login_ended(&mut events, ChangeReason::LoginFailure).await;
}

/// A web server at the address (404 for the WebSocket upgrade): the error names the path
/// an RTM server answers at; a bare `host:port` is completed to the protocol's URL.
#[tokio::test]
async fn a_404_says_which_path_the_server_expects() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let web = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = vec![0; 4096];
        let _ = tcp.read(&mut request).await.unwrap();
        tcp.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
    });
    let (client, _events) =
        Client::new(support::client::fast_config(&format!("ws://{addr}/"))).unwrap();
    let error = client.login(None, "alice").await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Connect(ConnectError::WrongPath { .. }))
            && error.to_string().contains("404")
            && error.to_string().contains("/rtm/v1"),
        "{error}"
    );
    web.await.unwrap();
    assert_eq!(
        rtm::client::server_url(&addr.to_string()),
        format!("ws://{addr}/rtm/v1")
    );
}

#[tokio::test]
async fn bad_arguments_are_refused_before_anything_is_sent() {
    // Nothing listens here: a request that got as far as the socket would fail otherwise.
    let (client, _events) =
        Client::new(ClientConfig::new("ws://127.0.0.1:9/rtm/v1", "demo")).unwrap();
    assert!(matches!(
        Client::new(ClientConfig::new("ws://127.0.0.1:9/rtm/v1", "bad app")),
        Err(ClientError::Invalid(_))
    ));
    // wss:// is accepted (TLS, `server_tls`); other schemes are not.
    for url in ["http://127.0.0.1:9/", "tcp://127.0.0.1:9/rtm/v1"] {
        assert!(matches!(
            Client::new(ClientConfig::new(url, "demo")),
            Err(ClientError::Connect(_))
        ));
    }
    assert!(matches!(
        client.login(None, " alice").await,
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client
            .send_message_to_peer("null", Message::text("hi"), SendOptions::default())
            .await,
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client
            .send_message_to_peer("bob", Message::text(""), SendOptions::default())
            .await,
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client
            .send_message_to_peer(
                "bob",
                Message::text("x".repeat(32 * 1024 + 1)),
                SendOptions::default()
            )
            .await,
        Err(ClientError::Invalid(_))
    ));
    let too_big = [("k".to_string(), "v".repeat(8 * 1024 + 1))].into();
    assert!(matches!(
        client.set_local_user_attributes(&too_big).await,
        Err(ClientError::Invalid(e)) if e.is_size()
    ));
    assert!(matches!(
        client.send_invitation("", "bob", "", None).await,
        Err(ClientError::Invalid(_))
    ));

    // Channels: invalid ids and duplicates are refused; a released one can be made again.
    assert!(matches!(
        client.create_channel("null"),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client.create_channel(&"c".repeat(65)),
        Err(ClientError::Invalid(_))
    ));
    let lobby = client.create_channel("lobby").unwrap();
    assert_eq!(lobby.id(), "lobby");
    assert_eq!(
        client.create_channel("lobby").unwrap_err(),
        ClientError::ChannelExists("lobby".into())
    );
    lobby.release();
    let lobby = client.create_channel("lobby").unwrap();
    assert!(matches!(
        lobby.send_message(Message::text("")).await,
        Err(ClientError::Invalid(_))
    ));

    // Valid requests before a login fail with 102, not on the socket.
    let error = lobby.join().await.unwrap_err();
    assert_eq!(error, ClientError::NotLoggedIn);
    assert_eq!(error.code(), Some(102));
    assert_eq!(client.ping().await.unwrap_err(), ClientError::NotLoggedIn);
    assert_eq!(client.logout().await.unwrap_err(), ClientError::NotLoggedIn);
    assert_eq!(
        client.state(),
        (ConnectionState::Disconnected, ChangeReason::Logout)
    );
}

#[tokio::test]
async fn several_clients_in_one_process_keep_their_own_state() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let (first, _e1) = Client::new(fast_config(addr)).unwrap();
    let (second, _e2) = Client::new(fast_config(addr)).unwrap();
    first.create_channel("lobby").unwrap();
    // Channel handles belong to one client.
    second.create_channel("lobby").unwrap();
    assert!(first.login(None, "alice").await.is_err());
    assert_eq!(first.state().1, ChangeReason::LoginFailure);
    assert_eq!(second.state().1, ChangeReason::Logout);
}

/// A scripted server: answers logins, sends one batched frame, goes silent, then kicks.
#[tokio::test]
async fn state_machine_against_a_scripted_server() {
    // First connection: login, then a batch of two events in one frame.
    let (listener, client, mut events, mut ws) = logged_in_with_script().await;
    assert_eq!(client.user().as_deref(), Some("alice"));
    expect_login_succeeded(&mut events).await;
    let batch = [
        json!({"event":"message_from_peer","from":"bob","message":{"type":"text","text":"one"},"message_id":41,"server_ts":1,"offline":false}),
        json!({"event":"member_joined","channel":"lobby","user":"carol"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    ws.send_text(batch).await;
    assert!(matches!(
        next_event(&mut events).await,
        ClientEvent::Server(Event::MessageFromPeer { message_id: 41, .. })
    ));
    assert!(matches!(
        next_event(&mut events).await,
        ClientEvent::Server(Event::MemberJoined { .. })
    ));
    // The peer message was acknowledged with a notice (no id).
    let ack = ws.next_json().await;
    assert_eq!(ack, json!({"op":"ack","message_id":41}));

    // A request in flight, then silence: the client pings, hears nothing, gives up.
    let ping = tokio::spawn({
        let client = client.clone();
        async move { client.ping().await }
    });
    let ping_request = ws.next_json().await;
    assert_eq!(ping_request["op"], "ping");
    let silent = tokio::spawn(async move {
        // Never read again (so no pongs) and never write; keep the socket open.
        tokio::time::sleep(WAIT).await;
        drop(ws);
    });
    assert_eq!(ping.await.unwrap().unwrap_err(), ClientError::Disconnected);
    let (state, reason, retry_in) = next_state(&mut events).await;
    assert_eq!(
        (state, reason),
        (ConnectionState::Reconnecting, ChangeReason::Interrupted)
    );
    let retry_in = retry_in.expect("RECONNECTING carries the delay");
    assert!(retry_in <= Duration::from_millis(200), "{retry_in:?}");
    assert_eq!(client.user().as_deref(), Some("alice"));

    // A request made while reconnecting waits for the reconnect.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.ping().await }
    });

    // Second connection: the client logs in again as the same user.
    let mut ws = accept(&listener).await;
    let request = ws.next_json().await;
    assert_eq!(request["op"], "login");
    assert_eq!(request["user"], "alice");
    ws.reply_login(&request).await;
    assert_eq!(
        next_state(&mut events).await,
        (ConnectionState::Connected, ChangeReason::LoginSuccess, None)
    );
    let queued = ws.next_json().await;
    assert_eq!(queued["op"], "ping");
    let reply = json!({"id": queued["id"], "code": 0, "server_ts": 77});
    ws.send_text(reply.to_string()).await;
    assert_eq!(waiting.await.unwrap().unwrap().server_ts, 77);

    // A kick: the event, then ABORTED, and no reconnect.
    ws.send_text(json!({"event":"kicked","reason":"remote_login"}).to_string())
        .await;
    assert!(matches!(
        next_event(&mut events).await,
        ClientEvent::Server(Event::Kicked { .. })
    ));
    assert_eq!(
        next_state(&mut events).await,
        (ConnectionState::Aborted, ChangeReason::RemoteLogin, None)
    );
    assert_eq!(client.user(), None);
    assert_eq!(client.ping().await.unwrap_err(), ClientError::NotLoggedIn);
    assert!(
        timeout(Duration::from_millis(500), listener.accept())
            .await
            .is_err(),
        "an aborted client must not reconnect"
    );
    silent.abort();
}

#[tokio::test]
async fn raw_requests_return_any_code_and_ids_stay_unique() {
    let (_listener, client, _events, mut ws) = logged_in_with_script().await;

    let calls: Vec<_> = (0..5)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .request(Op::Join {
                        channel: format!("c{i}"),
                    })
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    while ids.len() < 5 {
        let request = ws.next_json().await;
        ids.push(request["id"].as_u64().unwrap());
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 5, "{ids:?}");
    // Answer in reverse order: each caller still gets its own reply.
    let replies = ids
        .iter()
        .rev()
        .map(|id| json!({"id": id, "code": 5, "reason": "exceeds limit", "n": id}).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    ws.send_text(replies).await;
    for (call, id) in calls.into_iter().zip(&ids) {
        let reply = call.await.unwrap().unwrap();
        assert_eq!(reply.code, 5);
        assert_eq!(reply.fields["n"], json!(id));
    }
}

/// Every kick reason aborts with its own change reason and nothing is retried.
#[tokio::test]
async fn kicks_abort_with_their_reason() {
    for (wire, reason) in [
        ("token_expired", ChangeReason::TokenExpired),
        ("banned", ChangeReason::BannedByServer),
    ] {
        let (listener, client, mut events, mut ws) = logged_in_with_script().await;
        next_state(&mut events).await;
        next_state(&mut events).await;
        ws.send_text(json!({"event": "token_privilege_will_expire", "expires_at": 5}).to_string())
            .await;
        ws.send_text(json!({"event": "kicked", "reason": wire}).to_string())
            .await;
        assert!(matches!(
            next_event(&mut events).await,
            ClientEvent::Server(Event::TokenPrivilegeWillExpire { expires_at: 5 })
        ));
        assert!(matches!(
            next_event(&mut events).await,
            ClientEvent::Server(Event::Kicked { .. })
        ));
        assert_eq!(
            next_state(&mut events).await,
            (ConnectionState::Aborted, reason, None)
        );
        assert_eq!(client.state(), (ConnectionState::Aborted, reason));
        assert!(
            timeout(Duration::from_millis(300), listener.accept())
                .await
                .is_err(),
            "an aborted client must not reconnect"
        );
    }
}

/// A login refused during a reconnect: "too often" is retried, an expired token aborts.
#[tokio::test]
async fn a_refused_relogin_is_retried_or_ends_by_its_code() {
    let (listener, client, mut events, mut ws) = logged_in_with_script().await;
    next_state(&mut events).await;
    next_state(&mut events).await;
    ws.ws.close(None).await.unwrap();
    assert_eq!(
        next_state(&mut events).await.0,
        ConnectionState::Reconnecting
    );
    for (code, reason) in [(10, "too often"), (6, "token expired")] {
        let mut ws = accept(&listener).await;
        let login = ws.next_json().await;
        assert_eq!(login["op"], "login");
        ws.send_text(json!({"id": login["id"], "code": code, "reason": reason}).to_string())
            .await;
        if code == 10 {
            assert_eq!(
                next_state(&mut events).await.0,
                ConnectionState::Reconnecting
            );
        }
    }
    assert_eq!(
        next_state(&mut events).await,
        (ConnectionState::Aborted, ChangeReason::TokenExpired, None)
    );
    assert_eq!(client.user(), None);
}

/// After a reconnect the client rejoins, re-subscribes, re-sends its attributes, and
/// delivers the channel messages it missed (from `history`) before live ones, once each.
#[tokio::test]
async fn reconnect_restores_the_session_and_catches_up_in_order() {
    let (listener, client, mut events, mut ws) = logged_in_with_script().await;
    next_state(&mut events).await;
    next_state(&mut events).await;

    // Join, get one message, subscribe, set an attribute: all remembered.
    let lobby = client.create_channel("lobby").unwrap();
    let joined = tokio::spawn(async move { lobby.join().await });
    let join = ws.next_json().await;
    assert_eq!(join["op"], "join");
    ws.send_text(json!({"id": join["id"], "code": 0, "member_count": 2}).to_string())
        .await;
    // A fresh join asks where the channel stands, for a later catch-up, and answers the
    // caller after that.
    let baseline = ws.next_json().await;
    assert_eq!(baseline["op"], "history");
    assert_eq!(baseline["channel"], "lobby");
    assert_eq!(baseline["limit"], 1);
    assert!(!joined.is_finished());
    ws.send_text(json!({"id": baseline["id"], "code": 0, "messages": []}).to_string())
        .await;
    assert_eq!(joined.await.unwrap().unwrap().member_count, 2);
    ws.send_text(channel_message(10, "bob", "before").to_string())
        .await;
    assert_eq!(text_of(next_event(&mut events).await), "before");
    let restored_calls = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .subscribe_peers_online_status(&["bob".to_string()])
                .await?;
            let attrs = [("mood".to_string(), "busy".to_string())].into();
            client.set_local_user_attributes(&attrs).await
        }
    });
    for _ in 0..2 {
        let request = ws.next_json().await;
        ws.send_text(json!({"id": request["id"], "code": 0}).to_string())
            .await;
    }
    restored_calls.await.unwrap().unwrap();

    // The client pings on its own.
    let pinged = timeout(WAIT, async {
        loop {
            if let Some(Ok(WsMessage::Ping(_))) = ws.ws.next().await {
                break;
            }
        }
    })
    .await;
    assert!(pinged.is_ok(), "the client sends WebSocket pings");

    // The server drops the connection.
    ws.ws.close(None).await.unwrap();
    drop(ws);
    let (state, reason, _) = next_state(&mut events).await;
    assert_eq!(
        (state, reason),
        (ConnectionState::Reconnecting, ChangeReason::Interrupted)
    );

    let mut ws = accept(&listener).await;
    let login = ws.next_json().await;
    ws.reply_login(&login).await;
    let mut restore = Vec::new();
    for _ in 0..3 {
        restore.push(ws.next_json().await);
    }
    assert_eq!(restore[0]["op"], "join");
    assert_eq!(restore[0]["channel"], "lobby");
    assert_eq!(restore[1]["op"], "subscribe_peers_online");
    assert_eq!(restore[1]["peers"], json!(["bob"]));
    assert_eq!(restore[2]["op"], "set_user_attributes");
    assert_eq!(restore[2]["attributes"], json!({"mood": "busy"}));
    let answers = restore
        .iter()
        .map(|r| json!({"id": r["id"], "code": 0, "member_count": 2}).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    ws.send_text(answers).await;
    let history = ws.next_json().await;
    assert_eq!(history["op"], "history");
    assert_eq!(history["channel"], "lobby");
    assert_eq!(history["after"], 10);
    // A live message arrives before the history answer; it must come after the missed
    // ones, and only once.
    ws.send_text(channel_message(13, "bob", "three").to_string())
        .await;
    let stored = |id: u64, from: &str, text: &str| json!({"message_id": id, "from": from, "message": {"type": "text", "text": text}, "server_ts": id});
    ws.send_text(
        json!({"id": history["id"], "code": 0, "messages": [
            stored(11, "bob", "one"), stored(12, "alice", "mine"), stored(13, "bob", "three")
        ]})
        .to_string(),
    )
    .await;
    assert_eq!(
        next_state(&mut events).await,
        (ConnectionState::Connected, ChangeReason::LoginSuccess, None)
    );
    assert_eq!(text_of(next_event(&mut events).await), "one");
    assert_eq!(text_of(next_event(&mut events).await), "three");
    ws.send_text(channel_message(14, "bob", "four").to_string())
        .await;
    assert_eq!(text_of(next_event(&mut events).await), "four");
    assert!(events.try_recv().is_none());
}

fn channel_message(id: u64, from: &str, text: &str) -> Value {
    channel_message_at(id, id, from, text)
}

fn channel_message_at(id: u64, ts: u64, from: &str, text: &str) -> Value {
    json!({"event": "message_from_channel", "channel": "lobby", "from": from,
           "message": {"type": "text", "text": text}, "message_id": id, "server_ts": ts})
}

/// alice (logged in, `ws` her connection) joins the lobby and receives `seen`; the
/// server drops her; her re-login is answered (naming `store`), and so is her rejoin.
/// Returns the new connection, whose next object is the catch-up `history`.
async fn rejoin_after_a_drop(
    listener: &TcpListener,
    client: &Client,
    events: &mut Events,
    mut ws: Peer,
    seen: Value,
    store: Option<&str>,
) -> Peer {
    let lobby = client.create_channel("lobby").unwrap();
    let joined = tokio::spawn(async move { lobby.join().await });
    ws.answer_join().await;
    joined.await.unwrap().unwrap();
    let text = seen["message"]["text"].as_str().unwrap().to_string();
    ws.send_text(seen.to_string()).await;
    assert_eq!(text_of(next_event(events).await), text);
    ws.ws.close(None).await.unwrap();
    drop(ws);
    assert_eq!(next_state(events).await.0, ConnectionState::Reconnecting);
    let mut ws = accept(listener).await;
    let login = ws.next_json().await;
    ws.reply_login_on_store(&login, store).await;
    let rejoin = ws.next_json().await;
    assert_eq!(rejoin["op"], "join");
    ws.send_text(json!({"id": rejoin["id"], "code": 0, "member_count": 2}).to_string())
        .await;
    ws
}

/// A server whose store changed between two logins (it names another `store`) starts its
/// ids over: the client forgets what it saw, so a new message that reuses an id (even
/// with the same time) is delivered, and catch-up asks from the join time, not after an
/// id of the old store. Repeats on the new store are still skipped.
#[tokio::test]
async fn a_new_store_resets_what_the_client_has_seen() {
    let (listener, client, mut events, ws, login) = logged_in_with(|_| {}, Some("store-one")).await;
    assert_eq!(login.store, Some("store-one".into()));
    next_state(&mut events).await;
    next_state(&mut events).await;
    let seen = channel_message(7, "bob", "old seven");
    let mut ws =
        rejoin_after_a_drop(&listener, &client, &mut events, ws, seen, Some("store-two")).await;
    let history = ws.next_json().await;
    assert_eq!(history["op"], "history");
    assert_eq!(
        history.get("after"),
        None,
        "catch-up on a new store starts from the join time: {history}"
    );
    // Stored on the new store after alice joined (server time later than the join).
    let stored = json!({"message_id": 1, "from": "bob", "server_ts": 1_800_000_000_000_u64,
                        "message": {"type": "text", "text": "new one"}});
    ws.send_text(json!({"id": history["id"], "code": 0, "messages": [stored]}).to_string())
        .await;
    assert_eq!(
        next_state(&mut events).await,
        (ConnectionState::Connected, ChangeReason::LoginSuccess, None)
    );
    assert_eq!(text_of(next_event(&mut events).await), "new one");
    // The new store's id 7, even at the very time of the old one: not a repeat.
    ws.send_text(channel_message(7, "bob", "new seven").to_string())
        .await;
    assert_eq!(text_of(next_event(&mut events).await), "new seven");
    // A true repeat is still skipped; the next message comes through.
    ws.send_text(channel_message(7, "bob", "new seven").to_string())
        .await;
    ws.send_text(channel_message(8, "bob", "new eight").to_string())
        .await;
    assert_eq!(text_of(next_event(&mut events).await), "new eight");
}

/// Without a `store` in the login reply (a v1 server), a message whose id is at or below
/// the last one seen is still delivered unless it is an exact repeat (same id and time):
/// the server's ids may have started over.
#[tokio::test]
async fn lower_ids_after_a_relogin_are_delivered_unless_repeated() {
    let (listener, client, mut events, ws) = logged_in_with_script().await;
    next_state(&mut events).await;
    next_state(&mut events).await;
    let seen = channel_message_at(9, 1000, "bob", "nine");
    let mut ws = rejoin_after_a_drop(&listener, &client, &mut events, ws, seen, None).await;
    let history = ws.next_json().await;
    assert_eq!(history["after"], 9);
    ws.send_text(json!({"id": history["id"], "code": 0, "messages": []}).to_string())
        .await;
    assert_eq!(next_state(&mut events).await.0, ConnectionState::Connected);
    // The repeat of nine is skipped; id 2 at a later time is new.
    ws.send_text(channel_message_at(9, 1000, "bob", "nine").to_string())
        .await;
    ws.send_text(channel_message_at(2, 5000, "bob", "restarted two").to_string())
        .await;
    assert_eq!(text_of(next_event(&mut events).await), "restarted two");
    ws.send_text(channel_message_at(3, 5001, "bob", "restarted three").to_string())
        .await;
    assert_eq!(text_of(next_event(&mut events).await), "restarted three");
}

/// Sends leave in the order they were made, however their futures are polled: the
/// request is queued when the method is called. (Polled in reverse here; a send queued
/// on its first poll would reach the server reversed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_leave_in_the_order_they_were_made() {
    let (_listener, client, _events, mut ws) = logged_in_with_script().await;
    let lobby = client.create_channel("lobby").unwrap();
    type Sending =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ClientError>> + Send>>;
    let mut sends: Vec<Sending> = Vec::new();
    for i in 0..20 {
        if i % 2 == 0 {
            let send = client.send_message_to_peer(
                "bob",
                Message::text(format!("m{i}")),
                SendOptions::default(),
            );
            sends.push(Box::pin(async move { send.await.map(|_| ()) }));
        } else {
            let send = lobby.send_message(Message::text(format!("m{i}")));
            sends.push(Box::pin(async move { send.await.map(|_| ()) }));
        }
    }
    // First polled last to first.
    sends.reverse();
    let sends = tokio::spawn(futures_util::future::join_all(sends));
    let mut texts = Vec::new();
    while texts.len() < 20 {
        let request = ws.next_json().await;
        if request["op"] == "send_peer" || request["op"] == "send_channel" {
            texts.push(request["message"]["text"].as_str().unwrap().to_string());
            let reply = json!({"id": request["id"], "code": 0, "message_id": 1, "server_ts": 1});
            ws.send_text(reply.to_string()).await;
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
    for result in sends.await.unwrap() {
        result.unwrap();
    }
}

/// A request made while RECONNECTING waits for the re-login however long that takes (its
/// timeout starts when it is sent), and `reconnect_now` ends the backoff at once.
#[tokio::test]
async fn queued_requests_outlast_a_long_reconnect_and_reconnect_now_tries_at_once() {
    let (listener, client, mut events, mut ws, _) = logged_in_with(
        |config| {
            config.request_timeout = Duration::from_millis(300);
            // A backoff far longer than the test: only reconnect_now brings the client back.
            config.reconnect.initial_delay = Duration::from_secs(600);
            config.reconnect.max_delay = Duration::from_secs(600);
        },
        None,
    )
    .await;
    next_state(&mut events).await;
    next_state(&mut events).await;

    ws.ws.close(None).await.unwrap();
    drop(ws);
    let (state, _, retry_in) = next_state(&mut events).await;
    assert_eq!(state, ConnectionState::Reconnecting);
    assert!(retry_in.unwrap() > Duration::from_secs(60));
    let send = client.send_message_to_peer(
        "bob",
        Message::text("typed meanwhile"),
        SendOptions::default(),
    );
    let send = tokio::spawn(send);
    // Longer than the request timeout: the queued send must not time out for it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !send.is_finished(),
        "a queued send timed out while reconnecting"
    );
    client.reconnect_now();
    let mut ws = accept(&listener).await;
    let login = ws.next_json().await;
    ws.reply_login(&login).await;
    let request = ws.next_json().await;
    assert_eq!(request["op"], "send_peer");
    assert_eq!(request["message"]["text"], "typed meanwhile");
    ws.send_text(
        json!({"id": request["id"], "code": 0, "message_id": 3, "server_ts": 3}).to_string(),
    )
    .await;
    assert_eq!(
        timeout(WAIT, send)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .message_id,
        3
    );
}

fn text_of(event: ClientEvent) -> String {
    match event {
        ClientEvent::Server(Event::MessageFromChannel { message, .. }) => message.summary(),
        other => panic!("expected a channel message, got {other:?}"),
    }
}

/// The server side of one scripted connection.
struct Peer {
    ws: WebSocketStream<TcpStream>,
    /// Objects read from a batched frame and not yet looked at.
    unread: VecDeque<Value>,
}

impl Peer {
    /// The next JSON object the client sent (frames may batch several).
    async fn next_json(&mut self) -> Value {
        while self.unread.is_empty() {
            let message = timeout(WAIT, self.ws.next())
                .await
                .expect("the client writes")
                .expect("the client is connected")
                .unwrap();
            if let WsMessage::Text(text) = message {
                for line in text.as_str().lines() {
                    self.unread.push_back(serde_json::from_str(line).unwrap());
                }
            }
        }
        self.unread.pop_front().unwrap()
    }

    async fn send_text(&mut self, text: String) {
        self.ws.send(WsMessage::text(text)).await.unwrap();
    }

    async fn reply_login(&mut self, request: &Value) {
        self.reply_login_on_store(request, None).await;
    }

    /// The login reply, naming the server's store when `store` is given.
    async fn reply_login_on_store(&mut self, request: &Value, store: Option<&str>) {
        assert_eq!(request["op"], "login");
        let mut reply = json!({
            "id": request["id"], "code": 0, "user": request["user"],
            "server_ts": 1_700_000_000_000_u64, "protocol": 1, "server": "script/0"
        });
        if let Some(store) = store {
            reply["store"] = json!(store);
        }
        self.send_text(reply.to_string()).await;
    }

    /// Answers a join and the history of one message the client asks for after it.
    async fn answer_join(&mut self) {
        let join = self.next_json().await;
        assert_eq!(join["op"], "join");
        self.send_text(json!({"id": join["id"], "code": 0, "member_count": 2}).to_string())
            .await;
        let baseline = self.next_json().await;
        assert_eq!(baseline["op"], "history");
        self.send_text(json!({"id": baseline["id"], "code": 0, "messages": []}).to_string())
            .await;
    }
}

/// A client logged in as alice through a scripted server, and that server's side.
async fn logged_in_with_script() -> (TcpListener, Client, Events, Peer) {
    let (listener, client, events, ws, result) = logged_in_with(|_| {}, None).await;
    assert_eq!(result.user, "alice");
    assert_eq!(result.server, "script/0");
    (listener, client, events, ws)
}

/// [`logged_in_with_script`] with a config changed by `adjust`, the login reply naming
/// `store` if given; also returns what the login returned.
async fn logged_in_with(
    adjust: impl FnOnce(&mut ClientConfig),
    store: Option<&str>,
) -> (
    TcpListener,
    Client,
    Events,
    Peer,
    rtm::protocol::LoginResult,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = fast_config(listener.local_addr().unwrap());
    adjust(&mut config);
    let (client, events) = Client::new(config).unwrap();
    let login = tokio::spawn({
        let client = client.clone();
        async move { client.login(None, "alice").await }
    });
    let mut ws = accept(&listener).await;
    let request = ws.next_json().await;
    ws.reply_login_on_store(&request, store).await;
    let result = login.await.unwrap().unwrap();
    (listener, client, events, ws, result)
}

async fn accept(listener: &TcpListener) -> Peer {
    let (tcp, _) = timeout(WAIT, listener.accept())
        .await
        .expect("the client connects")
        .unwrap();
    Peer {
        ws: tokio_tungstenite::accept_async(tcp).await.unwrap(),
        unread: VecDeque::new(),
    }
}

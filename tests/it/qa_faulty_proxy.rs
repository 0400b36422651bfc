//! Proves the conformance suite bites: a deliberately faulty WebSocket proxy in front of our
//! real server breaks one rule at a time, and the matching case must fail (while it passes
//! through an honest proxy).

use std::sync::Arc;

use crate::support;
use futures_util::{SinkExt as _, StreamExt as _};
use rtm::qa::check::{self, CheckConfig};
use rtm::qa::report::CaseOutcome;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The rule a proxy breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forwards everything unchanged.
    None,
    /// Drops every `message_from_channel` on its way to the client.
    DropChannelMessages,
    /// Answers code 0 where the server answered a `send_peer` with 3 (unreachable).
    UnreachableAsReceived,
    /// Sends each channel message back to its sender as well.
    EchoChannelMessages,
    /// Drops cached (offline) peer messages delivered at login.
    ForgetCachedMessages,
    /// Acknowledges peer messages to the server itself, before the client has them.
    AckOnBehalf,
    /// Delivers channel messages in swapped pairs.
    SwapChannelMessages,
    /// Sends every reply twice.
    DuplicateReplies,
}

/// What one proxied connection remembers about its client's requests.
#[derive(Default)]
struct Conversation {
    user: String,
    send_peer_ids: Vec<u64>,
    /// Channel sends awaiting their reply: (id, channel, message).
    channel_sends: Vec<(u64, Value, Value)>,
    /// Notices the proxy itself sends to the server.
    to_server: Vec<Value>,
    /// A channel message held back to be delivered after the next one.
    held: Option<Value>,
}

impl Conversation {
    /// Looks at a client → server object before it is forwarded.
    fn seen_from_client(&mut self, object: &Value) {
        match object["op"].as_str() {
            Some("login") => self.user = object["user"].as_str().unwrap_or("").to_string(),
            Some("send_peer") => self.send_peer_ids.extend(object["id"].as_u64()),
            Some("send_channel") => {
                if let Some(id) = object["id"].as_u64() {
                    self.channel_sends.push((
                        id,
                        object["channel"].clone(),
                        object["message"].clone(),
                    ));
                }
            }
            _ => {}
        }
    }

    /// Rewrites a server → client object; returns what the client gets instead.
    fn rewrite_from_server(&mut self, fault: Fault, mut object: Value) -> Vec<Value> {
        let id = object["id"].as_u64();
        match fault {
            Fault::DropChannelMessages if object["event"] == "message_from_channel" => vec![],
            Fault::SwapChannelMessages if object["event"] == "message_from_channel" => {
                if let Some(held) = self.held.take() {
                    vec![object, held]
                } else {
                    self.held = Some(object);
                    vec![]
                }
            }
            Fault::DuplicateReplies if id.is_some() => vec![object.clone(), object],
            Fault::AckOnBehalf if object["event"] == "message_from_peer" => {
                self.to_server
                    .push(json!({"op": "ack", "message_id": object["message_id"]}));
                vec![object]
            }
            Fault::ForgetCachedMessages
                if object["event"] == "message_from_peer" && object["offline"] == true =>
            {
                vec![]
            }
            Fault::UnreachableAsReceived
                if id.is_some_and(|id| self.send_peer_ids.contains(&id)) && object["code"] == 3 =>
            {
                object["code"] = json!(0);
                object
                    .as_object_mut()
                    .expect("reply object")
                    .remove("reason");
                vec![object]
            }
            Fault::EchoChannelMessages if object["code"] == 0 => {
                let Some(pos) = self
                    .channel_sends
                    .iter()
                    .position(|(i, _, _)| Some(*i) == id)
                else {
                    return vec![object];
                };
                let (_, channel, message) = self.channel_sends.remove(pos);
                let echo = json!({"event": "message_from_channel", "channel": channel, "from": self.user,
                    "message": message, "message_id": object["message_id"], "server_ts": object["server_ts"]});
                vec![object, echo]
            }
            _ => vec![object],
        }
    }
}

/// Starts a proxy on 127.0.0.1:0 in front of `upstream`; returns its URL.
async fn start_proxy(upstream: String, fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let url = format!("ws://{}/rtm/v1", listener.local_addr().expect("proxy addr"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(client) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let Ok((server, _)) = tokio_tungstenite::connect_async(&upstream).await else {
                    return;
                };
                relay(client, server, fault).await;
            });
        }
    });
    url
}

async fn relay<C, S>(
    client: tokio_tungstenite::WebSocketStream<C>,
    server: tokio_tungstenite::WebSocketStream<S>,
    fault: Fault,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut to_client, mut from_client) = client.split();
    let (mut to_server, mut from_server) = server.split();
    let conversation = Arc::new(std::sync::Mutex::new(Conversation::default()));
    loop {
        tokio::select! {
            frame = from_client.next() => {
                let Some(Ok(frame)) = frame else { break };
                if let WsMessage::Text(text) = &frame {
                    for line in text.split('\n') {
                        if let Ok(object) = serde_json::from_str::<Value>(line) {
                            conversation.lock().unwrap().seen_from_client(&object);
                        }
                    }
                }
                let closing = matches!(frame, WsMessage::Close(_));
                if to_server.send(frame).await.is_err() || closing { break; }
            }
            frame = from_server.next() => {
                let Some(Ok(frame)) = frame else { break };
                let frame = match frame {
                    WsMessage::Text(text) => {
                        let mut out = Vec::new();
                        for line in text.split('\n') {
                            match serde_json::from_str::<Value>(line) {
                                Ok(object) => out.extend(conversation.lock().unwrap().rewrite_from_server(fault, object).iter().map(Value::to_string)),
                                Err(_) => out.push(line.to_string()),
                            }
                        }
                        if out.is_empty() { continue; }
                        WsMessage::text(out.join("\n"))
                    }
                    other => other,
                };
                let notices = std::mem::take(&mut conversation.lock().unwrap().to_server);
                for notice in notices {
                    if to_server.send(WsMessage::text(notice.to_string())).await.is_err() { break; }
                }
                let closing = matches!(frame, WsMessage::Close(_));
                if to_client.send(frame).await.is_err() || closing { break; }
            }
        }
    }
}

/// Runs the cases whose names contain `filter` through a proxy with `fault`; returns each
/// case's name and outcome.
async fn run_through(fault: Fault, filter: &str) -> Vec<(String, CaseOutcome, Option<String>)> {
    let server = support::start_server(support::test_config()).await;
    let proxy = start_proxy(server.url(), fault).await;
    let mut config = CheckConfig::new(proxy, "qa-proxy");
    config.filter = Some(filter.to_string());
    let report = check::run(config).await;
    server.shutdown().await;
    report
        .cases
        .into_iter()
        .map(|c| (c.name, c.outcome, c.reason))
        .collect()
}

/// Case `name` ran and failed.
fn assert_fails(results: &[(String, CaseOutcome, Option<String>)], name: &str) {
    match results.iter().find(|(n, _, _)| n == name) {
        Some((_, outcome, _)) => assert_eq!(*outcome, CaseOutcome::Fail, "{name}: {results:?}"),
        None => panic!("no case {name} in {results:?}"),
    }
}

/// The first selected case failed, and its reason names `why`.
fn assert_first_fails_because(results: &[(String, CaseOutcome, Option<String>)], why: &str) {
    let (_, outcome, reason) = &results[0];
    assert_eq!(*outcome, CaseOutcome::Fail, "{results:?}");
    assert!(reason.as_deref().unwrap_or("").contains(why), "{reason:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_proxy_passes() {
    for filter in [
        "channel.send",
        "peer.send.unreachable",
        "peer.offline.cached",
    ] {
        let results = run_through(Fault::None, filter).await;
        assert!(!results.is_empty());
        assert!(
            results.iter().all(|(_, o, _)| *o == CaseOutcome::Pass),
            "{results:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_channel_messages_fail_delivery_cases() {
    let results = run_through(Fault::DropChannelMessages, "channel.send").await;
    assert_fails(&results, "channel.send.received");
    assert_fails(&results, "channel.send.fanout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_0_instead_of_3_fails_unreachable_case() {
    let results = run_through(Fault::UnreachableAsReceived, "peer.send.unreachable").await;
    assert_first_fails_because(&results, "expected code 3, got 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_channel_messages_fail_no_echo_case() {
    let results = run_through(Fault::EchoChannelMessages, "channel.send.no_echo").await;
    assert_first_fails_because(&results, "unexpected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_cached_messages_fail_offline_case() {
    let results = run_through(Fault::ForgetCachedMessages, "peer.offline.cached").await;
    assert_fails(&results, "peer.offline.cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_sent_before_the_client_has_the_message_fail_the_ack_case() {
    let results = run_through(Fault::AckOnBehalf, "peer.send.waits_for_ack").await;
    assert_first_fails_because(&results, "before the receiver acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_channel_messages_fail_the_order_case() {
    let results = run_through(Fault::SwapChannelMessages, "channel.order").await;
    assert_first_fails_because(&results, "arrival order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_replies_fail_the_one_reply_case() {
    let results = run_through(Fault::DuplicateReplies, "frame.one_reply_per_request").await;
    assert_first_fails_because(&results, "no request was waiting for");
}

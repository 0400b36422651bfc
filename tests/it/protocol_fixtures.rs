//! Golden JSON round trips: every op, typed reply and event of docs/protocol.md, as written in
//! `tests/fixtures/`, decodes into `rtm::protocol` types and encodes back to the same JSON.
//! A new op or event needs a fixture here; the coverage checks below fail until it has one.

use std::collections::BTreeSet;

use rtm::protocol::{
    decode_request, decode_server_message, encode, request::OpName, ChannelAttributesResult,
    HistoryResult, JoinResult, LoginResult, MediaTicketResult, MemberCountResult, MembersResult,
    PeersOnlineResult, PingResult, RenewResult, Reply, SendResult, ServerMessage,
    SubscribedPeersResult, UserAttributesResult,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

fn fixture(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn reencode<T: Serialize>(item: &T) -> Value {
    serde_json::from_str(&encode(item)).expect("encode gives JSON")
}

#[test]
fn every_request_round_trips() {
    let mut seen = BTreeSet::new();
    for golden in fixture("requests.json") {
        let request =
            decode_request(&golden.to_string()).unwrap_or_else(|e| panic!("{golden}: {e}"));
        seen.insert(request.op.name());
        assert_eq!(reencode(&request), golden);
    }
    let all: BTreeSet<_> = OpName::all().map(OpName::as_str).collect();
    assert_eq!(seen, all, "every op has a fixture");
}

/// Reads the reply's fields as `T` and checks that `T` keeps every field.
fn typed<T: DeserializeOwned + Serialize>(reply: &Reply) {
    let result: T = reply.result().expect("typed result");
    let mut fields = serde_json::to_value(&result).unwrap();
    if fields.is_null() {
        fields = Value::Object(serde_json::Map::new());
    }
    assert_eq!(fields, Value::Object(reply.fields.clone()));
}

#[test]
fn every_typed_reply_round_trips() {
    for case in fixture("replies.json") {
        let golden = &case["reply"];
        let ServerMessage::Reply(reply) = decode_server_message(&golden.to_string()).unwrap()
        else {
            panic!("{golden} is a reply");
        };
        assert_eq!(&reencode(&reply), golden);
        if reply.code != 0 && reply.code != 4 {
            assert!(reply.reason.is_some());
            continue;
        }
        match case["op"].as_str().unwrap() {
            "login" => typed::<LoginResult>(&reply),
            "renew_token" => typed::<RenewResult>(&reply),
            "ping" => typed::<PingResult>(&reply),
            "send_peer" | "send_channel" => typed::<SendResult>(&reply),
            "query_peers_online" => typed::<PeersOnlineResult>(&reply),
            "query_subscribed_peers" => typed::<SubscribedPeersResult>(&reply),
            "get_user_attributes" => typed::<UserAttributesResult>(&reply),
            "join" => typed::<JoinResult>(&reply),
            "get_members" => typed::<MembersResult>(&reply),
            "get_channel_member_count" => typed::<MemberCountResult>(&reply),
            "get_channel_attributes" => typed::<ChannelAttributesResult>(&reply),
            "history" => typed::<HistoryResult>(&reply),
            "media_ticket" => typed::<MediaTicketResult>(&reply),
            "logout" => assert!(reply.fields.is_empty()),
            other => panic!("no typed result for {other}"),
        }
    }
}

#[test]
fn peer_order_is_kept() {
    let reply = &fixture("replies.json")[4]["reply"];
    let ServerMessage::Reply(reply) = decode_server_message(&reply.to_string()).unwrap() else {
        panic!("reply");
    };
    let peers: PeersOnlineResult = reply.result().unwrap();
    let order: Vec<_> = peers.peers.keys().map(String::as_str).collect();
    assert_eq!(order, ["bob", "carol"]);
}

#[test]
fn every_event_round_trips() {
    let mut seen = BTreeSet::new();
    for golden in fixture("events.json") {
        let ServerMessage::Event(event) =
            decode_server_message(&golden.to_string()).unwrap_or_else(|e| panic!("{golden}: {e}"))
        else {
            panic!("{golden} is an event");
        };
        seen.insert(event.name());
        assert_eq!(reencode(&event), golden);
    }
    assert_eq!(
        seen.len(),
        15,
        "every event of docs/protocol.md has a fixture: {seen:?}"
    );
}

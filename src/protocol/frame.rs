//! Framing: a WebSocket text frame holds one or more JSON objects separated by `\n`.
//!
//! Decoding is staged so that the server can answer each kind of bad input as docs/protocol.md
//! asks: unparsable or id-less input becomes an `error` event, an unknown op a reply with
//! code 1, bad parameters a reply with the family's invalid-argument code (or the code of
//! the field that failed, where the family has one per field).

use serde::Serialize;
use serde_json::Value;

use super::codes::{channel_msg, login, peer, Family};
use super::event::Event;
use super::limits::MAX_OBJECT_BYTES;
use super::reply::Reply;
use super::request::{family_of, Op, Request};

/// Why one object of a frame could not become a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, not an object, or no usable `id`: answered with the `error` event.
    #[error("{0}")]
    Malformed(String),
    /// Larger than [`MAX_OBJECT_BYTES`]: the connection is closed with 1009.
    #[error("object of {0} bytes exceeds the 64 KiB limit")]
    TooLarge(usize),
    /// A request with an id whose op is unknown: answered with code 1.
    #[error("unknown op {op:?}")]
    UnknownOp { id: u32, op: String },
    /// A request with an id and a known op whose parameters do not fit.
    #[error("invalid parameters for {op}: {detail}")]
    InvalidParams {
        id: u32,
        op: String,
        family: Family,
        /// The family's code for the field that failed (see `invalid_params_code`).
        code: u32,
        detail: String,
    },
}

impl DecodeError {
    /// The reply to send for this error, where it is answered with a reply.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            DecodeError::UnknownOp { id, .. } => {
                Some(Reply::code(*id, login::UNKNOWN, self.to_string()))
            }
            DecodeError::InvalidParams { id, code, .. } => {
                Some(Reply::code(*id, *code, self.to_string()))
            }
            DecodeError::Malformed(_) | DecodeError::TooLarge(_) => None,
        }
    }

    /// The `error` event to send for this error, where it is answered with one.
    pub fn event(&self) -> Option<Event> {
        match self {
            DecodeError::Malformed(reason) => Some(Event::Error {
                code: login::UNKNOWN,
                reason: reason.clone(),
            }),
            _ => None,
        }
    }
}

/// The code for a request whose parameters do not decode: the family's invalid-argument
/// code, or where the family has one per field, the code of the field that failed (a
/// `send_peer` with a bad `to` is PEER 6, with a bad `message` 7; a `send_channel` with a
/// good `channel` failed on its `message`: CHANNEL_MSG 4).
fn invalid_params_code(op: &str, family: Family, map: &serde_json::Map<String, Value>) -> u32 {
    let is_text = |field: &str| map.get(field).is_some_and(Value::is_string);
    match op {
        "send_peer" if !is_text("to") => peer::INVALID_USER_ID,
        "send_channel" if is_text("channel") => channel_msg::INVALID_MESSAGE,
        _ => family.invalid_argument(),
    }
}

/// The non-empty lines of a frame, each one JSON object.
pub fn split_frame(frame: &str) -> impl Iterator<Item = &str> {
    frame.split('\n').filter(|line| !line.trim().is_empty())
}

/// Decodes one object of a frame into a request.
pub fn decode_request(object: &str) -> Result<Request, DecodeError> {
    if object.len() > MAX_OBJECT_BYTES {
        return Err(DecodeError::TooLarge(object.len()));
    }
    decode_well_formed(object).map_or_else(|| decode_carefully(object), Ok)
}

/// The request's `id` alone (other members are skipped, not built).
#[derive(serde::Deserialize)]
struct IdOnly {
    id: Option<u64>,
}

/// The common case, straight from the text without a `serde_json::Value` in between (a
/// third of a request's decoding cost): a well-formed request or notice. Anything else
/// is `None`, and [`decode_carefully`] works out what exactly is wrong.
fn decode_well_formed(object: &str) -> Option<Request> {
    let IdOnly { id } = serde_json::from_str(object).ok()?;
    let op: Op = serde_json::from_str(object).ok()?;
    match (id, &op) {
        (Some(id), _) if (1..=u64::from(u32::MAX)).contains(&id) => Some(Request {
            id: Some(id as u32),
            op,
        }),
        (None, Op::Ack { .. }) => Some(Request { id: None, op }),
        _ => None,
    }
}

/// Decodes through a `Value`, so that a bad request gets the precise error and code.
fn decode_carefully(object: &str) -> Result<Request, DecodeError> {
    let value: Value = serde_json::from_str(object)
        .map_err(|e| DecodeError::Malformed(format!("cannot parse JSON: {e}")))?;
    let Value::Object(map) = &value else {
        return Err(DecodeError::Malformed(
            "a request must be a JSON object".into(),
        ));
    };
    let op_name = map.get("op").and_then(Value::as_str).map(str::to_owned);
    let id = match map.get("id") {
        None => None,
        Some(raw) => match raw.as_u64() {
            Some(id) if (1..=u64::from(u32::MAX)).contains(&id) => Some(id as u32),
            _ => {
                return Err(DecodeError::Malformed(
                    "request id must be an integer from 1 to 4294967295".into(),
                ))
            }
        },
    };
    let Some(op_name) = op_name else {
        return Err(DecodeError::Malformed(match id {
            Some(_) => "request has no \"op\"".into(),
            None => "request has neither \"id\" nor \"op\"".into(),
        }));
    };
    let op_name = op_name.as_str();
    let is_notice = op_name == "ack";
    let id = match (id, is_notice) {
        (Some(id), _) => Some(id),
        (None, true) => None,
        (None, false) => {
            return Err(DecodeError::Malformed(format!(
                "request {op_name:?} has no usable \"id\""
            )))
        }
    };
    let Some(family) = family_of(op_name) else {
        return match id {
            Some(id) => Err(DecodeError::UnknownOp {
                id,
                op: op_name.to_string(),
            }),
            None => Err(DecodeError::Malformed(format!("unknown op {op_name:?}"))),
        };
    };
    // Worked out before `value` is consumed; cheap (a few field lookups).
    let code = invalid_params_code(op_name, family, map);
    match serde_json::from_value::<Op>(value) {
        Ok(op) => Ok(Request { id, op }),
        Err(e) => match id {
            Some(id) => Err(DecodeError::InvalidParams {
                id,
                op: op_name.to_string(),
                family,
                code,
                detail: e.to_string(),
            }),
            None => Err(DecodeError::Malformed(format!("invalid {op_name}: {e}"))),
        },
    }
}

/// What a client reads from a server: a reply to one of its requests, or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Reply(Reply),
    Event(Event),
}

/// Decodes one object a server sent. Unknown events are an error the client may skip.
pub fn decode_server_message(object: &str) -> Result<ServerMessage, DecodeError> {
    let value: Value = serde_json::from_str(object)
        .map_err(|e| DecodeError::Malformed(format!("cannot parse JSON: {e}")))?;
    let is_event = value.get("event").is_some();
    if is_event {
        serde_json::from_value(value)
            .map(ServerMessage::Event)
            .map_err(|e| DecodeError::Malformed(format!("bad event: {e}")))
    } else {
        serde_json::from_value(value)
            .map(ServerMessage::Reply)
            .map_err(|e| DecodeError::Malformed(format!("bad reply: {e}")))
    }
}

/// Encodes one object as a line (no trailing newline).
pub fn encode<T: Serialize>(item: &T) -> String {
    // Our own types always serialize; a failure here is a bug worth a loud message.
    serde_json::to_string(item).expect("protocol types serialize to JSON")
}

/// Appends `item` to a batch frame under construction, separating objects with `\n`.
pub fn push_to_batch<T: Serialize>(batch: &mut String, item: &T) {
    if !batch.is_empty() {
        batch.push('\n');
    }
    // Writing into a String cannot fail.
    let mut buffer = std::mem::take(batch).into_bytes();
    serde_json::to_writer(&mut buffer, item).expect("protocol types serialize to JSON");
    *batch = String::from_utf8(buffer).expect("serde_json writes UTF-8");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;

    #[test]
    fn decodes_requests_and_errors() {
        let req = decode_request(r#"{"id":7,"op":"send_peer","to":"bob","message":{"type":"text","text":"hi"},"extra":1}"#).unwrap();
        assert_eq!(req.id, Some(7));
        assert_eq!(
            req.op,
            Op::SendPeer {
                to: "bob".into(),
                message: Message::text("hi"),
                offline: false
            }
        );
        assert!(matches!(
            decode_request("{nope"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_request("[1]"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_request(r#"{"op":"ping"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_request(r#"{"id":0,"op":"ping"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_request(r#"{"id":4294967296,"op":"ping"}"#),
            Err(DecodeError::Malformed(_))
        ));
        let unknown = decode_request(r#"{"id":3,"op":"fly"}"#).unwrap_err();
        assert_eq!(unknown.reply().unwrap().code, 1);
        let bad = decode_request(r#"{"id":4,"op":"join"}"#).unwrap_err();
        assert_eq!(bad.reply().unwrap().code, 3);
        let ack = decode_request(r#"{"op":"ack","message_id":5}"#).unwrap();
        assert_eq!(ack.id, None);
        assert!(matches!(
            decode_request(&format!(
                "{{\"id\":1,\"op\":\"ping\",\"pad\":\"{}\"}}",
                "x".repeat(MAX_OBJECT_BYTES)
            )),
            Err(DecodeError::TooLarge(_))
        ));
    }

    #[test]
    fn batches_split_and_join() {
        let mut batch = String::new();
        push_to_batch(&mut batch, &Reply::ok_empty(1));
        push_to_batch(&mut batch, &Reply::ok_empty(2));
        let lines: Vec<_> = split_frame(&batch).collect();
        assert_eq!(lines.len(), 2);
        for line in lines {
            assert!(matches!(
                decode_server_message(line).unwrap(),
                ServerMessage::Reply(_)
            ));
        }
        assert_eq!(split_frame("\n\n{}\n").count(), 1);
    }
}

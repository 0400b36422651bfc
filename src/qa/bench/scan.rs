//! Reading the few members a workload needs straight from a frame's bytes, without parsing
//! the JSON: a frame is split into objects on `\n` and each object is searched for
//! `"name":` ([`Member`], a precomputed SIMD substring search; `"name"`, spaces and a colon
//! when the server writes spaces). A string followed by a colon is always a member name in
//! valid JSON, so this finds the member wherever the server put it; nested objects'
//! members are found too (the message `text` inside `message`). Good for the replies and
//! events the bench reads, whose string values it chose itself (no escapes, no quotes
//! inside).

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// A member name to look for.
pub(super) struct Member {
    /// `"name":`, as compact JSON writes it: one search finds it.
    compact: Finder<'static>,
    /// `"name"`, for JSON with spaces before the colon.
    spaced: Finder<'static>,
}

impl Member {
    fn new(name: &str) -> Member {
        let finder = |needle: String| Finder::new(needle.as_bytes()).into_owned();
        Member {
            compact: finder(format!("\"{name}\":")),
            spaced: finder(format!("\"{name}\"")),
        }
    }
}

macro_rules! members {
    ($($(#[$doc:meta])* $constant:ident = $name:literal;)*) => {
        $($(#[$doc])* pub(super) static $constant: LazyLock<Member> = LazyLock::new(|| Member::new($name));)*
    };
}

members! {
    /// A reply's request id.
    ID = "id";
    /// A reply's result code.
    CODE = "code";
    /// An event's kind.
    EVENT = "event";
    /// A message event's id (what an ack names).
    MESSAGE_ID = "message_id";
    /// A text message's text.
    TEXT = "text";
}

/// The objects of a frame (protocol v1 joins several with `\n`).
pub(super) fn objects(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(frame);
    std::iter::from_fn(move || {
        let current = rest?;
        if let Some(at) = memchr::memchr(b'\n', current) {
            rest = Some(&current[at + 1..]);
            Some(&current[..at])
        } else {
            rest = None;
            Some(current)
        }
    })
}

/// The unsigned integer member `member` of an object.
pub(super) fn field_u64(object: &[u8], member: &Member) -> Option<u64> {
    let value = value(object, member)?;
    let digits = value
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    parse_u64(&value[..digits])
}

/// The string member `member` of an object (without unescaping: the bench's own strings
/// need none).
pub(super) fn field_str<'a>(object: &'a [u8], member: &Member) -> Option<&'a [u8]> {
    let rest = value(object, member)?.strip_prefix(b"\"")?;
    Some(&rest[..memchr::memchr(b'"', rest)?])
}

/// Whether `object` is an event of `kind`.
pub(super) fn is_event(object: &[u8], kind: &str) -> bool {
    field_str(object, &EVENT) == Some(kind.as_bytes())
}

/// The start of a `message_from_channel` as both the reference server and the Node
/// baseline write it (the event first, no spaces): checked before searching.
const CHANNEL_MESSAGE_START: &[u8] = br#"{"event":"message_from_channel""#;

/// The text of a `message_from_channel` event with a text message; `None` for anything
/// else.
pub(super) fn channel_message_text(object: &[u8]) -> Option<&[u8]> {
    if !object.starts_with(CHANNEL_MESSAGE_START) && !is_event(object, "message_from_channel") {
        return None;
    }
    field_str(object, &TEXT)
}

/// The `code` of a reply object (`u32::MAX` when missing).
pub(super) fn reply_code(object: &[u8]) -> u32 {
    field_u64(object, &CODE).map_or(u32::MAX, |c| c as u32)
}

/// A run of ASCII digits as a number (`None` if empty, not all digits, or too large).
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n = 0;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10 + u64::from(digit);
    }
    Some(n)
}

/// The bytes right after `"name":` (and any spaces).
fn value<'a>(object: &'a [u8], member: &Member) -> Option<&'a [u8]> {
    if let Some(at) = member.compact.find(object) {
        return Some(object[at + member.compact.needle().len()..].trim_ascii_start());
    }
    let width = member.spaced.needle().len();
    member.spaced.find_iter(object).find_map(|at| {
        let rest = object[at + width..].trim_ascii_start();
        rest.strip_prefix(b":").map(<[u8]>::trim_ascii_start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_members() {
        let reply = br#"{"id":7,"code":0,"message_id":1234,"server_ts":5}"#;
        assert_eq!(field_u64(reply, &ID), Some(7));
        assert_eq!(field_u64(reply, &MESSAGE_ID), Some(1234));
        assert_eq!(reply_code(reply), 0);
        let event = br#"{"event": "message_from_channel", "message": {"type":"text","text":"3 99"}, "message_id": 9}"#;
        assert!(is_event(event, "message_from_channel"));
        assert_eq!(channel_message_text(event), Some(&b"3 99"[..]));
        let compact = br#"{"event":"message_from_channel","channel":"c","from":"u","message":{"type":"text","text":"3 99"},"message_id":9}"#;
        assert_eq!(channel_message_text(compact), Some(&b"3 99"[..]));
        assert_eq!(
            channel_message_text(br#"{"event":"member_joined","text":"x"}"#),
            None
        );
        assert!(!is_event(event, "message_from_peer"));
        assert_eq!(field_str(event, &TEXT), Some(&b"3 99"[..]));
        assert_eq!(field_u64(event, &MESSAGE_ID), Some(9));
        assert_eq!(field_u64(event, &ID), None);
        assert_eq!(reply_code(br#"{"event":"error"}"#), u32::MAX);
    }

    #[test]
    fn splits_objects_and_parses_numbers() {
        let objects: Vec<&[u8]> = objects(b"{\"a\":1}\n{\"b\":2}\n").collect();
        assert_eq!(objects, [&b"{\"a\":1}"[..], b"{\"b\":2}", b""]);
        assert_eq!(parse_u64(b"12345"), Some(12345));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"12a"), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
    }
}

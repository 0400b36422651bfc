//! Identifier rules and size limits of protocol v1, as pure validation functions.
//!
//! Server and client both call these: the server to answer with the right code, the
//! client to refuse bad input before it goes on the wire. A new limit goes here as a
//! documented constant next to the function that checks it.

use std::collections::BTreeMap;

/// Largest JSON object in a frame; a larger one closes the connection with 1009.
pub const MAX_OBJECT_BYTES: usize = 64 * 1024;
/// Largest text, or decoded raw data plus description, of one message.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Largest message as JSON (`{"type":...}`, escapes included: a `"` takes two bytes, a
/// control character six): what is left of an object once the event or history entry
/// that carries it has its sender, ids and timestamps, so that every event and history
/// page the server sends fits in [`MAX_OBJECT_BYTES`].
pub const MAX_ENCODED_MESSAGE_BYTES: usize = MAX_OBJECT_BYTES - 1024;
/// Longest app id, user id and channel id, in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// Most channels one user may be in at once.
pub const MAX_JOINED_CHANNELS: usize = 20;
/// Most members listed by `get_members`; above it no join/leave events are sent.
pub const MAX_LISTED_MEMBERS: usize = 512;
/// Most ids in one `query_peers_online`.
pub const MAX_QUERY_PEERS: usize = 256;
/// Most presence subscriptions of one user.
pub const MAX_SUBSCRIBED_PEERS: usize = 512;
/// Most channels in one `get_channel_member_count`.
pub const MAX_COUNT_CHANNELS: usize = 32;
/// Longest attribute key, in bytes.
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 32;
/// Longest attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 8 * 1024;
/// Most attributes of one user or channel.
pub const MAX_ATTRIBUTE_COUNT: usize = 32;
/// Most bytes (keys plus values) of one user's attributes.
pub const MAX_USER_ATTRIBUTES_BYTES: usize = 16 * 1024;
/// Most bytes (keys plus values) of one channel's attributes.
pub const MAX_CHANNEL_ATTRIBUTES_BYTES: usize = 32 * 1024;
/// Longest invitation id, in bytes.
pub const MAX_INVITATION_ID_BYTES: usize = 64;
/// Longest invitation content or response, in bytes.
pub const MAX_INVITATION_PAYLOAD_BYTES: usize = 8 * 1024;
/// Largest `limit` of a `history` request, and its default.
pub const MAX_HISTORY_LIMIT: u32 = 100;
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;
/// Largest message id: ids stay exact in JavaScript numbers.
pub const MAX_MESSAGE_ID: u64 = (1 << 53) - 1;
/// Largest file or image one upload may carry (Agora's 30 MB, read as MiB).
pub const MAX_MEDIA_BYTES: u64 = 30 * 1024 * 1024;
/// Largest thumbnail of an image message, decoded (Agora's 32 KB).
pub const MAX_THUMBNAIL_BYTES: usize = 32 * 1024;
/// How long an uploaded file or image can be downloaded (Agora's 7 days).
pub const MEDIA_EXPIRY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Longest file name a file or image message carries, in bytes.
pub const MAX_MEDIA_NAME_BYTES: usize = 255;
/// Longest media id, in bytes (ours are 32; other servers may choose theirs).
pub const MAX_MEDIA_ID_BYTES: usize = 64;

/// Media id: 1..64 bytes of `A-Z a-z 0-9 _ -` (it goes into a URL path as it is).
pub fn validate_media_id(id: &str) -> Result<(), ValidationError> {
    check_word("media id", id, MAX_MEDIA_ID_BYTES)
}

/// File name of a file or image message: 1..255 bytes, no control characters and no
/// path separators (a receiver may save under it).
pub fn validate_media_name(name: &str) -> Result<(), ValidationError> {
    const WHAT: &str = "file name";
    check_length(WHAT, name, MAX_MEDIA_NAME_BYTES)?;
    if let Some(ch) = name
        .chars()
        .find(|c| c.is_control() || *c == '/' || *c == '\\')
    {
        return Err(ValidationError::BadCharacter { what: WHAT, ch });
    }
    if name == "." || name == ".." {
        return Err(ValidationError::BadCharacter {
            what: WHAT,
            ch: '.',
        });
    }
    Ok(())
}

/// Why an id, message or attribute set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} contains the character {ch:?}, which is not allowed")]
    BadCharacter { what: &'static str, ch: char },
    #[error("{what} must not start with a space")]
    LeadingSpace { what: &'static str },
    #[error("{what} must not be the word \"null\"")]
    Null { what: &'static str },
    #[error("raw message data is not valid base64")]
    BadBase64,
    #[error("too many attributes ({count}; {max} at most)")]
    TooManyAttributes { count: usize, max: usize },
    #[error("attributes take {bytes} bytes; {max} at most")]
    AttributesTooLarge { bytes: usize, max: usize },
    #[error("give {min} to {max} {what}")]
    Count {
        what: &'static str,
        min: usize,
        max: usize,
    },
    #[error("{what} must be {min} to {max}")]
    OutOfRange {
        what: &'static str,
        min: u64,
        max: u64,
    },
    #[error("give exactly one of {0}")]
    ExactlyOne(&'static str),
}

impl ValidationError {
    /// True where the problem is size rather than form (ATTR answers 4 rather than 3).
    pub fn is_size(&self) -> bool {
        matches!(
            self,
            ValidationError::TooLong { .. }
                | ValidationError::TooManyAttributes { .. }
                | ValidationError::AttributesTooLarge { .. }
        )
    }
}

fn check_length(what: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::Empty { what });
    }
    if value.len() > max {
        return Err(ValidationError::TooLong { what, max });
    }
    Ok(())
}

/// App id: 1..64 bytes of `A-Z a-z 0-9 _ -`.
pub fn validate_app_id(app_id: &str) -> Result<(), ValidationError> {
    check_word("app id", app_id, MAX_ID_BYTES)
}

/// 1..`max` bytes of `A-Z a-z 0-9 _ -`: app ids and media ids.
fn check_word(what: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    check_length(what, value, max)?;
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        Some(ch) => Err(ValidationError::BadCharacter { what, ch }),
        None => Ok(()),
    }
}

/// Punctuation allowed in user and channel ids besides letters, digits and space.
const ID_PUNCTUATION: &str = "!#$%&()+-:;<=.>?@[]^_{}|~,";

fn validate_name(what: &'static str, id: &str) -> Result<(), ValidationError> {
    check_length(what, id, MAX_ID_BYTES)?;
    if let Some(ch) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == ' ' || ID_PUNCTUATION.contains(*c)))
    {
        return Err(ValidationError::BadCharacter { what, ch });
    }
    if id.starts_with(' ') {
        return Err(ValidationError::LeadingSpace { what });
    }
    if id == "null" {
        return Err(ValidationError::Null { what });
    }
    Ok(())
}

/// User id: 1..64 bytes of the printable ASCII set of docs/protocol.md, no leading space, not `null`.
pub fn validate_user_id(id: &str) -> Result<(), ValidationError> {
    validate_name("user id", id)
}

/// Channel id: the same rule as user ids.
pub fn validate_channel_id(id: &str) -> Result<(), ValidationError> {
    validate_name("channel id", id)
}

/// Attribute key: 1..32 bytes of printable ASCII.
pub fn validate_attribute_key(key: &str) -> Result<(), ValidationError> {
    const WHAT: &str = "attribute key";
    check_length(WHAT, key, MAX_ATTRIBUTE_KEY_BYTES)?;
    match key.chars().find(|c| !(' '..='~').contains(c)) {
        Some(ch) => Err(ValidationError::BadCharacter { what: WHAT, ch }),
        None => Ok(()),
    }
}

/// A whole attribute set: each key and value, then the count and total size against
/// `max_total_bytes` ([`MAX_USER_ATTRIBUTES_BYTES`] or [`MAX_CHANNEL_ATTRIBUTES_BYTES`]).
pub fn validate_attributes(
    attributes: &BTreeMap<String, String>,
    max_total_bytes: usize,
) -> Result<(), ValidationError> {
    for (key, value) in attributes {
        validate_attribute_key(key)?;
        check_length("attribute value", value, MAX_ATTRIBUTE_VALUE_BYTES)?;
    }
    if attributes.len() > MAX_ATTRIBUTE_COUNT {
        return Err(ValidationError::TooManyAttributes {
            count: attributes.len(),
            max: MAX_ATTRIBUTE_COUNT,
        });
    }
    let bytes = attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > max_total_bytes {
        return Err(ValidationError::AttributesTooLarge {
            bytes,
            max: max_total_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids() {
        assert!(validate_app_id("demo").is_ok());
        assert!(validate_app_id("970CA35de60c44645bbae8a215061b33").is_ok());
        assert!(validate_app_id("a-b_c").is_ok());
        assert_eq!(
            validate_app_id(""),
            Err(ValidationError::Empty { what: "app id" })
        );
        assert!(validate_app_id("a b").is_err());
        assert!(validate_app_id(&"a".repeat(65)).is_err());
        assert!(validate_app_id(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn user_and_channel_ids() {
        assert!(validate_user_id("alice").is_ok());
        assert!(validate_user_id("a b!#$%&()+-:;<=.>?@[]^_{}|~,").is_ok());
        assert_eq!(
            validate_user_id(" alice"),
            Err(ValidationError::LeadingSpace { what: "user id" })
        );
        assert_eq!(
            validate_channel_id("null"),
            Err(ValidationError::Null { what: "channel id" })
        );
        assert!(validate_user_id("nullable").is_ok());
        assert!(validate_user_id("a/b").is_err());
        assert!(validate_user_id("a\"b").is_err());
        assert!(validate_user_id("é").is_err());
        assert!(validate_user_id(&"x".repeat(64)).is_ok());
        assert!(validate_user_id(&"x".repeat(65)).is_err());
    }

    #[test]
    fn attribute_sets() {
        let mut attrs = BTreeMap::new();
        attrs.insert("k".to_string(), "v".to_string());
        assert!(validate_attributes(&attrs, MAX_USER_ATTRIBUTES_BYTES).is_ok());
        attrs.insert("empty".to_string(), String::new());
        assert!(validate_attributes(&attrs, MAX_USER_ATTRIBUTES_BYTES).is_err());
        let big: BTreeMap<_, _> = (0..3)
            .map(|i| (format!("k{i}"), "x".repeat(8 * 1024)))
            .collect();
        let err = validate_attributes(&big, MAX_USER_ATTRIBUTES_BYTES).unwrap_err();
        assert!(err.is_size());
        assert!(validate_attributes(&big, MAX_CHANNEL_ATTRIBUTES_BYTES).is_ok());
        let many: BTreeMap<_, _> = (0..33).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(validate_attributes(&many, MAX_CHANNEL_ATTRIBUTES_BYTES)
            .unwrap_err()
            .is_size());
    }
}

//! The payload of peer and channel messages: text, or raw bytes with a description.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::limits::{ValidationError, MAX_ENCODED_MESSAGE_BYTES, MAX_MESSAGE_BYTES};

/// A message body as it travels in `send_peer`, `send_channel` and their events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// `{"type":"text","text":"..."}`
    Text { text: String },
    /// `{"type":"raw","data":"<base64>","description":"..."}`
    Raw {
        data: String,
        #[serde(default)]
        description: String,
    },
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Message::Text { text: text.into() }
    }

    /// A raw message from bytes; `data` is base64-encoded here.
    pub fn raw(data: &[u8], description: impl Into<String>) -> Self {
        Message::Raw {
            data: base64::engine::general_purpose::STANDARD.encode(data),
            description: description.into(),
        }
    }

    /// The decoded bytes of a raw message (`None` for text or bad base64).
    pub fn raw_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Message::Raw { data, .. } => {
                base64::engine::general_purpose::STANDARD.decode(data).ok()
            }
            Message::Text { .. } => None,
        }
    }

    /// Size as the limit counts it: the text, or decoded data plus description.
    pub fn payload_len(&self) -> Result<usize, ValidationError> {
        match self {
            Message::Text { text } => Ok(text.len()),
            Message::Raw { data, description } => {
                // Decoded length is known from the encoded length; decoding checks the form.
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|_| ValidationError::BadBase64)?;
                Ok(decoded.len() + description.len())
            }
        }
    }

    /// Bytes of the message as JSON, escapes included.
    pub fn encoded_len(&self) -> usize {
        /// Counts what is written, keeps nothing.
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        // Writing to a counter cannot fail, nor can serializing strings.
        let _ = serde_json::to_writer(&mut count, self);
        count.0
    }

    /// Checks the 32 KiB limit, the size as JSON ([`MAX_ENCODED_MESSAGE_BYTES`]) and, for
    /// raw messages, the base64 form.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let len = self.payload_len()?;
        if len > MAX_MESSAGE_BYTES {
            return Err(ValidationError::TooLong {
                what: "message",
                max: MAX_MESSAGE_BYTES,
            });
        }
        if self.encoded_len() > MAX_ENCODED_MESSAGE_BYTES {
            return Err(ValidationError::TooLong {
                what: "message as JSON (escapes included)",
                max: MAX_ENCODED_MESSAGE_BYTES,
            });
        }
        if let Message::Text { text } = self {
            if text.is_empty() {
                return Err(ValidationError::Empty { what: "message" });
            }
        }
        Ok(())
    }

    /// A one-line summary for lists and logs: the text, or `[raw: description, N bytes]`.
    pub fn summary(&self) -> String {
        match self {
            Message::Text { text } => text.clone(),
            Message::Raw { data, description } => {
                let size = data.len() / 4 * 3;
                if description.is_empty() {
                    format!("[raw, ~{size} bytes]")
                } else {
                    format!("[raw: {description}, ~{size} bytes]")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_fits_its_event_once_escaped() {
        // 32,700 quotes are within the 32 KiB but take 65,400 bytes as JSON.
        assert!(Message::text("\"".repeat(32_700)).validate().is_err());
        assert!(Message::text("\"".repeat(16_000)).validate().is_ok());
        assert!(Message::text("\u{1}".repeat(11_000)).validate().is_err());
        assert_eq!(
            Message::text("a\"").encoded_len(),
            r#"{"type":"text","text":"a\""}"#.len()
        );
    }

    #[test]
    fn limits() {
        assert!(Message::text("hi").validate().is_ok());
        assert!(Message::text("").validate().is_err());
        assert!(Message::text("x".repeat(MAX_MESSAGE_BYTES))
            .validate()
            .is_ok());
        assert!(Message::text("x".repeat(MAX_MESSAGE_BYTES + 1))
            .validate()
            .is_err());
        let raw = Message::raw(&[0u8; 100], "file.bin");
        assert_eq!(raw.payload_len().unwrap(), 108);
        assert_eq!(raw.raw_bytes().unwrap(), vec![0u8; 100]);
        let bad = Message::Raw {
            data: "!!".into(),
            description: String::new(),
        };
        assert_eq!(bad.validate(), Err(ValidationError::BadBase64));
        assert!(Message::raw(&vec![1u8; MAX_MESSAGE_BYTES - 3], "abcd")
            .validate()
            .is_err());
    }
}

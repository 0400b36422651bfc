//! The payload of peer and channel messages: text, raw bytes with a description, or a
//! file or image uploaded beforehand (`media_id`, see docs/protocol.md "Files and images").

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::limits::{
    validate_media_id, validate_media_name, ValidationError, MAX_ENCODED_MESSAGE_BYTES,
    MAX_MEDIA_BYTES, MAX_MESSAGE_BYTES, MAX_THUMBNAIL_BYTES,
};

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
    /// `{"type":"file","media_id":"...","name":"app.log","size":20971520}`: a file
    /// uploaded over HTTP beforehand, downloadable by its `media_id` for 7 days.
    File {
        media_id: String,
        name: String,
        size: u64,
    },
    /// `{"type":"image","media_id":"...","name":"shot.png","size":123456,"width":1920,
    /// "height":1080,"thumbnail":"<base64>","thumbnail_width":96,"thumbnail_height":54}`:
    /// an uploaded image with its dimensions and a small preview made by the sender (at
    /// most [`MAX_THUMBNAIL_BYTES`] decoded; empty when there is none).
    Image {
        media_id: String,
        name: String,
        size: u64,
        width: u32,
        height: u32,
        #[serde(default)]
        thumbnail: String,
        #[serde(default)]
        thumbnail_width: u32,
        #[serde(default)]
        thumbnail_height: u32,
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
            _ => None,
        }
    }

    /// The decoded thumbnail of an image message (`None` for other messages, an image
    /// without a thumbnail, or bad base64).
    pub fn thumbnail_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Message::Image { thumbnail, .. } if !thumbnail.is_empty() => {
                base64::engine::general_purpose::STANDARD
                    .decode(thumbnail)
                    .ok()
            }
            _ => None,
        }
    }

    /// The media id of a file or image message.
    pub fn media_id(&self) -> Option<&str> {
        match self {
            Message::File { media_id, .. } | Message::Image { media_id, .. } => Some(media_id),
            Message::Text { .. } | Message::Raw { .. } => None,
        }
    }

    /// Size as the limit counts it: the text, or decoded data plus description; for a
    /// file or image what travels in the message (name and id, thumbnail decoded), not
    /// the file, which has its own limit ([`MAX_MEDIA_BYTES`]).
    pub fn payload_len(&self) -> Result<usize, ValidationError> {
        match self {
            Message::Text { text } => Ok(text.len()),
            Message::File { media_id, name, .. } => Ok(media_id.len() + name.len()),
            Message::Image {
                media_id,
                name,
                thumbnail,
                ..
            } => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(thumbnail)
                    .map_err(|_| ValidationError::BadBase64)?;
                Ok(media_id.len() + name.len() + decoded.len())
            }
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
        self.validate_media()?;
        let len = self.payload_len()?;
        // A 32 KiB thumbnail with its name is a little over 32 KiB: an image's own
        // limits (checked above) replace the message limit; its JSON must still fit.
        if len > MAX_MESSAGE_BYTES && !matches!(self, Message::Image { .. }) {
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

    /// The rules of a file or image message: its id and name, the size within
    /// [`MAX_MEDIA_BYTES`], the thumbnail base64 within [`MAX_THUMBNAIL_BYTES`].
    fn validate_media(&self) -> Result<(), ValidationError> {
        let (Message::File {
            media_id,
            name,
            size,
        }
        | Message::Image {
            media_id,
            name,
            size,
            ..
        }) = self
        else {
            return Ok(());
        };
        validate_media_id(media_id)?;
        validate_media_name(name)?;
        if *size > MAX_MEDIA_BYTES {
            return Err(ValidationError::OutOfRange {
                what: "file size",
                min: 0,
                max: MAX_MEDIA_BYTES,
            });
        }
        if let Message::Image { thumbnail, .. } = self {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(thumbnail)
                .map_err(|_| ValidationError::BadBase64)?;
            if decoded.len() > MAX_THUMBNAIL_BYTES {
                return Err(ValidationError::TooLong {
                    what: "thumbnail",
                    max: MAX_THUMBNAIL_BYTES,
                });
            }
        }
        Ok(())
    }

    /// A one-line summary for lists and logs: the text, `[raw: description, N bytes]`,
    /// `[file NAME (SIZE)]` or `[image NAME WxH (SIZE)]`.
    pub fn summary(&self) -> String {
        match self {
            Message::Text { text } => text.clone(),
            Message::File { name, size, .. } => format!("[file {name} ({})]", human_size(*size)),
            Message::Image {
                name,
                size,
                width,
                height,
                ..
            } => format!("[image {name} {width}x{height} ({})]", human_size(*size)),
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

/// A size for people: `512 B`, `3.4 KiB`, `20.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / KIB / KIB)
    } else {
        format!("{:.1} GiB", b / KIB / KIB / KIB)
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

    #[test]
    fn media_messages() {
        let file = Message::File {
            media_id: "0123456789abcdef0123456789abcdef".into(),
            name: "app.log".into(),
            size: 20 * 1024 * 1024,
        };
        assert!(file.validate().is_ok());
        assert_eq!(file.summary(), "[file app.log (20.0 MiB)]");
        let wire = serde_json::to_string(&file).unwrap();
        assert_eq!(
            wire,
            r#"{"type":"file","media_id":"0123456789abcdef0123456789abcdef","name":"app.log","size":20971520}"#
        );
        let too_big = Message::File {
            media_id: "m1".into(),
            name: "x".into(),
            size: MAX_MEDIA_BYTES + 1,
        };
        assert!(too_big.validate().is_err());
        for bad_name in ["", "../etc/passwd", "a\\b", "..", "a\nb"] {
            let bad = Message::File {
                media_id: "m1".into(),
                name: bad_name.into(),
                size: 1,
            };
            assert!(bad.validate().is_err(), "{bad_name:?}");
        }
        let image = |thumbnail: &[u8]| Message::Image {
            media_id: "m1".into(),
            name: "shot.png".into(),
            size: 5,
            width: 1920,
            height: 1080,
            thumbnail: base64::engine::general_purpose::STANDARD.encode(thumbnail),
            thumbnail_width: 96,
            thumbnail_height: 54,
        };
        let full = image(&vec![7u8; MAX_THUMBNAIL_BYTES]);
        assert!(full.validate().is_ok());
        assert_eq!(full.thumbnail_bytes().unwrap().len(), MAX_THUMBNAIL_BYTES);
        assert!(image(&vec![7u8; MAX_THUMBNAIL_BYTES + 1])
            .validate()
            .is_err());
        let bare: Message = serde_json::from_str(
            r#"{"type":"image","media_id":"m","name":"a.png","size":3,"width":1,"height":2}"#,
        )
        .unwrap();
        assert_eq!(bare.thumbnail_bytes(), None);
        assert_eq!(bare.summary(), "[image a.png 1x2 (3 B)]");
        assert_eq!(bare.media_id(), Some("m"));
    }
}

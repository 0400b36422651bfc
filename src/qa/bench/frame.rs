//! The WebSocket framing a bench connection needs (RFC 6455 §5), with no WebSocket library
//! on the hot path: server frames are parsed where they were read (no per-message buffer,
//! no zeroing, no UTF-8 pass: the workloads only look for ASCII members), and client frames
//! are masked into an output buffer. Pure functions and state, no I/O: `conn.rs` owns the
//! socket.
//!
//! Server frames arrive unmasked (a masked one is an error, §5.1). Text messages, whole or
//! reassembled from fragments, go to the caller; binary ones are dropped (the protocol has
//! none); a Ping is answered with a Pong, a Close with a Close, and ends the reading.

/// Largest message accepted from a server (protocol frames are far smaller): a bigger
/// length ends the connection rather than buffering without bound.
pub(crate) const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The first header byte's final-fragment bit; its low four bits are the opcode. (The
/// check kit's hand-made frames, `check::hardening`, use them too.)
pub(crate) const FIN: u8 = 0x80;
const CONTINUATION: u8 = 0x0;
pub(crate) const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
const PONG: u8 = 0xA;
/// The second header byte's mask bit, and its length values that announce a 16-bit or a
/// 64-bit length after it.
pub(crate) const MASKED: u8 = 0x80;
pub(crate) const LENGTH_16: u8 = 0x7e;
pub(crate) const LENGTH_64: u8 = 0x7f;

/// Why the frames from a server cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("the server sent a Close frame (code {0:?})")]
    Closed(Option<u16>),
    #[error("the server broke the framing: {0}")]
    Protocol(&'static str),
}

/// What is left over between reads: a fragmented message being put together.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    /// The opcode of the fragmented message's first frame, and its bytes so far.
    fragments: Option<(u8, Vec<u8>)>,
}

impl FrameReader {
    /// Takes the complete frames at the start of `data`: each text message goes to
    /// `on_text`, control replies (Pong, Close) are appended to `out`. Returns how many
    /// bytes were used; the rest is the beginning of a frame still arriving.
    pub(crate) fn read(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        on_text: &mut impl FnMut(&[u8]),
    ) -> Result<usize, FrameError> {
        let mut used = 0;
        while let Some((header, length)) = header(&data[used..])? {
            let end = used + header + length;
            if data.len() < end {
                break;
            }
            let first = data[used];
            let payload = &data[used + header..end];
            used = end;
            self.frame(first, payload, out, on_text)?;
        }
        Ok(used)
    }

    fn frame(
        &mut self,
        first: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
        on_text: &mut impl FnMut(&[u8]),
    ) -> Result<(), FrameError> {
        let fin = first & FIN != 0;
        let opcode = first & 0x0f;
        if opcode >= CLOSE && (!fin || payload.len() > 125) {
            return Err(FrameError::Protocol("a fragmented or long control frame"));
        }
        match opcode {
            TEXT | BINARY if self.fragments.is_some() => {
                return Err(FrameError::Protocol(
                    "a new message inside a fragmented one",
                ));
            }
            TEXT if fin => on_text(payload),
            BINARY if fin => {}
            TEXT | BINARY => self.fragments = Some((opcode, payload.to_vec())),
            CONTINUATION => {
                let Some((opcode, mut message)) = self.fragments.take() else {
                    return Err(FrameError::Protocol("a continuation of nothing"));
                };
                message.extend_from_slice(payload);
                if message.len() > MAX_MESSAGE_BYTES {
                    return Err(FrameError::Protocol("a message over the size limit"));
                }
                if !fin {
                    self.fragments = Some((opcode, message));
                } else if opcode == TEXT {
                    on_text(&message);
                }
            }
            PING => encode(PONG, payload, out),
            PONG => {}
            CLOSE => {
                // Echo the status code (§5.5.1), then stop reading.
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                encode(CLOSE, payload.get(..2).unwrap_or_default(), out);
                return Err(FrameError::Closed(code));
            }
            _ => return Err(FrameError::Protocol("an unknown opcode")),
        }
        Ok(())
    }
}

/// The header length and payload length of the frame starting `data`, once its header
/// has arrived.
fn header(data: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    let [first, second, ..] = *data else {
        return Ok(None);
    };
    if second & MASKED != 0 {
        return Err(FrameError::Protocol("a masked frame from the server"));
    }
    if first & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits without an extension"));
    }
    let (header, length) = match second & LENGTH_64 {
        LENGTH_16 => match data.get(2..4) {
            Some(&[a, b]) => (4, u64::from(u16::from_be_bytes([a, b]))),
            _ => return Ok(None),
        },
        LENGTH_64 => match data.get(2..10) {
            Some(bytes) => (10, u64::from_be_bytes(bytes.try_into().expect("8 bytes"))),
            None => return Ok(None),
        },
        short => (2, u64::from(short)),
    };
    if length > MAX_MESSAGE_BYTES as u64 {
        return Err(FrameError::Protocol("a frame over the size limit"));
    }
    Ok(Some((header, length as usize)))
}

/// Appends one final client text frame carrying `payload` to `out`.
pub(crate) fn encode_text(payload: &[u8], out: &mut Vec<u8>) {
    encode(TEXT, payload, out);
}

/// Appends a Close frame with status 1000 (normal closure) to `out`.
pub(crate) fn encode_close(out: &mut Vec<u8>) {
    encode(CLOSE, &1000u16.to_be_bytes(), out);
}

/// Appends one final client frame to `out`, masked with a fresh random key (§5.3: a
/// client masks every frame, with a key the server cannot predict).
fn encode(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    encode_masked(opcode, payload, rand::random(), out);
}

fn encode_masked(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(FIN | opcode);
    match payload.len() {
        short @ 0..=125 => out.push(MASKED | short as u8),
        medium @ 126..=0xffff => {
            out.push(MASKED | LENGTH_16);
            out.extend_from_slice(&(medium as u16).to_be_bytes());
        }
        long => {
            out.push(MASKED | LENGTH_64);
            out.extend_from_slice(&(long as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, byte) in out[start..].iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked server frame.
    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![first];
        match payload.len() {
            n @ 0..=125 => frame.push(n as u8),
            n @ 126..=0xffff => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        frame
    }

    fn read_all(reader: &mut FrameReader, data: &[u8]) -> (Result<usize, FrameError>, Vec<String>) {
        let mut texts = Vec::new();
        let mut out = Vec::new();
        let result = reader.read(data, &mut out, &mut |t| {
            texts.push(String::from_utf8(t.to_vec()).unwrap());
        });
        (result, texts)
    }

    #[test]
    fn reads_whole_frames_and_leaves_a_partial_one() {
        let long = "x".repeat(300);
        let huge = "y".repeat(70_000);
        let mut data = server_frame(0x81, b"{\"a\":1}\n{\"b\":2}");
        data.extend(server_frame(0x81, long.as_bytes()));
        data.extend(server_frame(0x81, huge.as_bytes()));
        let whole = data.len();
        data.extend(&server_frame(0x81, b"later")[..4]);
        let (used, texts) = read_all(&mut FrameReader::default(), &data);
        assert_eq!(used, Ok(whole));
        assert_eq!(
            texts,
            ["{\"a\":1}\n{\"b\":2}", long.as_str(), huge.as_str()]
        );
        // Byte by byte, every split point still yields the same messages.
        let mut reader = FrameReader::default();
        let (mut pending, mut texts) = (Vec::new(), Vec::new());
        for byte in &data[..whole] {
            pending.push(*byte);
            let (used, more) = read_all(&mut reader, &pending);
            pending.drain(..used.unwrap());
            texts.extend(more);
        }
        assert_eq!(texts.len(), 3);
        assert_eq!(texts[2], huge);
    }

    #[test]
    fn reassembles_fragments_answers_pings_and_closes() {
        let mut data = server_frame(0x01, b"hel");
        data.extend(server_frame(0x89, b"p!"));
        data.extend(server_frame(0x80, b"lo"));
        data.extend(server_frame(0x02, b"\x00"));
        data.extend(server_frame(0x80, b"\x01"));
        let mut out = Vec::new();
        let mut texts = Vec::new();
        let mut reader = FrameReader::default();
        let used = reader.read(&data, &mut out, &mut |t| texts.push(t.to_vec()));
        assert_eq!(used, Ok(data.len()));
        assert_eq!(texts, [b"hello".to_vec()]);
        // A masked Pong carrying the Ping's payload.
        assert_eq!(out[0], 0x8A);
        assert_eq!(out[1], MASKED | 2);
        let mask = &out[2..6];
        assert_eq!([out[6] ^ mask[0], out[7] ^ mask[1]], *b"p!");
        let close = server_frame(0x88, &1001u16.to_be_bytes());
        let mut out = Vec::new();
        let result = reader.read(&close, &mut out, &mut |_| {});
        assert_eq!(result, Err(FrameError::Closed(Some(1001))));
        assert_eq!(out[0], 0x88);
    }

    #[test]
    fn refuses_broken_framing() {
        for bad in [
            vec![0x81, 0x81, 0, 0, 0, 0, b'x'],      // masked
            vec![0xC1, 0x01, b'x'],                  // RSV1 without an extension
            vec![0x80, 0x01, b'x'],                  // continuation of nothing
            vec![0x83, 0x01, b'x'],                  // unknown opcode
            vec![0x09, 0x00],                        // fragmented Ping
            vec![0x81, 127, 0, 0, 0, 0, 2, 0, 0, 0], // 8 GiB
        ] {
            let (result, _) = read_all(&mut FrameReader::default(), &bad);
            assert!(
                matches!(result, Err(FrameError::Protocol(_))),
                "{bad:?}: {result:?}"
            );
        }
    }

    #[test]
    fn masks_client_frames() {
        for length in [0, 5, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encode_masked(TEXT, &payload, [1, 2, 3, 4], &mut out);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0x80, "masked");
            let header = match length {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(&out[header..header + 4], &[1, 2, 3, 4]);
            let unmasked: Vec<u8> = out[header + 4..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4])
                .collect();
            assert_eq!(unmasked, payload);
        }
    }
}

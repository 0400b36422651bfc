//! Cases for a server under a hostile client: RFC 6455's close codes for frames that break
//! the WebSocket protocol, a flood of requests before login from clients that do not read,
//! and a history page that stays within the 64 KiB object limit however large its messages.
//!
//! These speak WebSocket frames by hand over TCP ([`RawSocket`]), since a WebSocket library
//! will not send what they send; they need a `ws://` server (over `wss://` they skip).

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{case, Case, CaseError, CaseResult, Ctx, Expect};
use crate::protocol::limits::MAX_OBJECT_BYTES;
use crate::qa::bench::frame::{CLOSE, FIN, LENGTH_16, LENGTH_64, MASKED, PING, TEXT};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "hardening.close_codes",
            "frames that break RFC 6455 close with 1002 (unmasked, RSV bits, reserved \
             opcode, a Ping over 125 bytes) and a text frame that is not UTF-8 with 1007",
            close_codes,
        ),
        case(
            "hardening.pre_login_flood",
            "clients that flood pings before login and never read are closed or no longer \
             read (under 16 MiB taken each), and 95% of a logged-in user's round trips \
             stay under 0.5 s",
            pre_login_flood,
        )
        .alone(),
        case(
            "hardening.history_page_size",
            "a history page of large messages fits in one 64 KiB object, and paging back \
             with before reaches every message",
            history_page_size,
        ),
    ]
}

/// The mask every client frame carries (RFC 6455 §5.3); any value will do.
const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// A WebSocket spoken by hand over TCP: frames as built, nothing checked on the way out.
pub struct RawSocket {
    tcp: TcpStream,
    /// What was read past the handshake's response.
    read: Vec<u8>,
}

impl RawSocket {
    /// Opens TCP to a `ws://` URL and does the opening handshake; skips the case for `wss://`.
    pub async fn open(url: &str) -> Result<RawSocket, CaseError> {
        let Some(rest) = url.strip_prefix("ws://") else {
            return Err(CaseError::Skip(
                "needs a ws:// server (frames are written by hand)".into(),
            ));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut tcp = TcpStream::connect(authority)
            .await
            .map_err(|e| CaseError::Fail(format!("cannot connect to {authority}: {e}")))?;
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| CaseError::Fail(format!("handshake: {e}")))?;
        let mut socket = RawSocket {
            tcp,
            read: Vec::new(),
        };
        let end = loop {
            if let Some(end) = socket.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if !socket.read_more(Duration::from_secs(5)).await {
                fail!("the server did not answer the WebSocket handshake");
            }
        };
        ensure!(
            socket.read.starts_with(b"HTTP/1.1 101"),
            "the handshake was refused: {}",
            String::from_utf8_lossy(&socket.read[..end])
        );
        socket.read.drain(..end);
        Ok(socket)
    }

    /// Reads what the server sent within `within`; false at the end of the stream or
    /// when nothing came.
    async fn read_more(&mut self, within: Duration) -> bool {
        let mut buf = vec![0u8; 16 * 1024];
        match tokio::time::timeout(within, self.tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                self.read.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    /// A client frame: `first` is the FIN, RSV and opcode byte; masked unless told not.
    pub fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut out = vec![first];
        let mask_bit = if masked { MASKED } else { 0 };
        let n = payload.len();
        if n < 126 {
            out.push(mask_bit | n as u8);
        } else if let Ok(n) = u16::try_from(n) {
            out.push(mask_bit | LENGTH_16);
            out.extend_from_slice(&n.to_be_bytes());
        } else {
            out.push(mask_bit | LENGTH_64);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        if masked {
            out.extend_from_slice(&MASK);
            out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    /// Writes bytes as they are; false once the server no longer takes them (closed).
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    /// Waits up to `within` for the server's Close frame and returns its code (`None`:
    /// the connection ended without one, or none came in time). Other frames are skipped.
    pub async fn close_code(&mut self, within: Duration) -> Option<u16> {
        let deadline = Instant::now() + within;
        loop {
            while let Some((opcode, payload, used)) = parse_frame(&self.read) {
                if opcode == CLOSE {
                    return (payload.len() >= 2)
                        .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                }
                self.read.drain(..used);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.read_more(left).await {
                return None;
            }
        }
    }
}

/// The opcode and payload of the server frame at the start of `data`, and its length;
/// `None` until it is all there.
fn parse_frame(data: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&first, &second) = (data.first()?, data.get(1)?);
    let (length, header) = match second & 0x7f {
        LENGTH_16 => (
            usize::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?])),
            4,
        ),
        LENGTH_64 => (
            usize::try_from(u64::from_be_bytes(data.get(2..10)?.try_into().ok()?)).ok()?,
            10,
        ),
        n => (usize::from(n), 2),
    };
    let payload = data.get(header..header + length)?;
    Some((first & 0x0f, payload.to_vec(), header + length))
}

/// The server the hand-made connections go to (the first one given).
fn server_url(cx: &Ctx) -> String {
    cx.config.servers[0].clone()
}

async fn close_codes(cx: Ctx) -> CaseResult {
    let url = server_url(&cx);
    let ping = json!({"id": 1, "op": "ping"}).to_string();
    let violations: [(&str, Vec<u8>, u16); 5] = [
        (
            "an unmasked text frame",
            RawSocket::frame(FIN | TEXT, ping.as_bytes(), false),
            1002,
        ),
        (
            "a text frame with RSV1 set (no extension agreed)",
            RawSocket::frame(FIN | 0x40 | TEXT, ping.as_bytes(), true),
            1002,
        ),
        (
            "a frame of the reserved opcode 3",
            RawSocket::frame(FIN | 0x3, b"x", true),
            1002,
        ),
        (
            "a Ping of 126 bytes (control frames hold at most 125)",
            RawSocket::frame(FIN | PING, &[0u8; 126], true),
            1002,
        ),
        (
            "a text frame that is not UTF-8",
            RawSocket::frame(FIN | TEXT, &[b'{', 0xff, 0xfe, b'}'], true),
            1007,
        ),
    ];
    for (what, frame, expected) in violations {
        let mut socket = RawSocket::open(&url).await?;
        ensure!(socket.send(&frame).await, "{what}: the server took nothing");
        match socket.close_code(Duration::from_secs(5)).await {
            Some(code) if code == expected => {}
            Some(code) => fail!("{what}: closed with {code}, not {expected}"),
            None => fail!("{what}: no close frame ({expected} expected)"),
        }
    }
    Ok(())
}

/// Flooders at once, how long they flood, and how much each may have taken.
const FLOODERS: usize = 4;
const FLOOD_FOR: Duration = Duration::from_secs(4);
const FLOOD_TAKEN_MAX: usize = 16 << 20;
/// The longest round trip a logged-in user may see meanwhile.
const ROUND_TRIP_MAX: Duration = Duration::from_millis(500);

async fn pre_login_flood(cx: Ctx) -> CaseResult {
    let url = server_url(&cx);
    // Fail early (and skip over wss://) before starting anything.
    drop(RawSocket::open(&url).await?);
    let (mut user, _) = cx.fresh("watcher").await?;
    let pings: Vec<String> = (0..10_000)
        .map(|id| format!("{{\"id\":{id},\"op\":\"ping\"}}"))
        .collect();
    let frame = RawSocket::frame(FIN | TEXT, pings.join("\n").as_bytes(), true);
    let mut flooders = Vec::new();
    for _ in 0..FLOODERS {
        let (url, frame) = (url.clone(), frame.clone());
        flooders.push(tokio::spawn(async move {
            let Ok(mut socket) = RawSocket::open(&url).await else {
                return 0;
            };
            let mut taken = 0;
            // Never reads: the server's answers pile up on its side, or it stops taking.
            let flood = async {
                while socket.send(&frame).await {
                    taken += frame.len();
                }
            };
            let _ = tokio::time::timeout(FLOOD_FOR, flood).await;
            taken
        }));
    }
    let started = Instant::now();
    let mut round_trips = Vec::new();
    while started.elapsed() < FLOOD_FOR {
        let sent = Instant::now();
        user.ok(json!({"op": "ping"})).await?;
        round_trips.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for flooder in flooders {
        let taken = flooder.await.map_err(|e| CaseError::Fail(e.to_string()))?;
        ensure!(
            taken < FLOOD_TAKEN_MAX,
            "a client that never logged in nor read got {} MiB of pings taken in {}s",
            taken >> 20,
            FLOOD_FOR.as_secs()
        );
    }
    // The 95th percentile: one late wake-up of a busy test box is not the server's doing.
    round_trips.sort();
    let p95 = round_trips[round_trips.len() * 95 / 100];
    ensure!(
        p95 < ROUND_TRIP_MAX,
        "5% of a logged-in user's pings took {} ms or more during the flood",
        p95.as_millis()
    );
    Ok(())
}

/// Messages of the conversation, and the quotes each carries (a quote takes two bytes as
/// JSON: each message is about 16 KB on the wire, so a page of 100 cannot fit 64 KiB).
const LARGE_MESSAGES: usize = 30;
const QUOTES: usize = 8000;

async fn history_page_size(cx: Ctx) -> CaseResult {
    let (mut alice, _) = cx.fresh("alice").await?;
    let channel = cx.channel("large");
    alice.ok(json!({"op": "join", "channel": channel})).await?;
    let body = "\"".repeat(QUOTES);
    let sends = (0..LARGE_MESSAGES)
        .map(|_| json!({"op": "send_channel", "channel": channel, "message": super::text(&body)}))
        .collect();
    for reply in alice.call_all(sends).await? {
        ensure!(reply["code"] == json!(0), "send_channel answered {reply}");
    }
    let mut seen = 0;
    let mut before: Option<u64> = None;
    for _ in 0..LARGE_MESSAGES {
        let mut op = json!({"op": "history", "channel": channel, "limit": 100});
        if let Some(before) = before {
            op["before"] = json!(before);
        }
        let reply = alice.call(op).await?;
        let size = reply.to_string().len();
        ensure!(
            size <= MAX_OBJECT_BYTES,
            "a history reply of {size} bytes; an object is at most {MAX_OBJECT_BYTES}"
        );
        ensure!(reply["code"] == json!(0), "history answered {reply}");
        let messages = reply["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        seen += messages.len();
        before = messages[0]["message_id"].as_u64();
        ensure!(
            before.is_some(),
            "a message without message_id: {}",
            messages[0]
        );
    }
    ensure!(
        seen == LARGE_MESSAGES,
        "paging back listed {seen} messages; {LARGE_MESSAGES} were sent"
    );
    Ok(())
}

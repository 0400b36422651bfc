//! A lean load-generator connection: one WebSocket on a `TCP_NODELAY` socket, owned by one
//! task, that reads only what a workload measures.
//!
//! The conformance kit's [`RawConn`](crate::qa::raw::RawConn) builds a `serde_json::Value`
//! per object and runs two tasks per connection: right for checking a server, but it
//! cost the generator more CPU per delivery than the server spent, so a bench on the same
//! box measured itself. Here a frame is split on `\n` and each object is scanned for the
//! few members a workload needs ([`field_u64`], [`field_str`]); nothing else is parsed.
//! Many connections are spread over the source addresses 127.0.0.1–127.0.0.[`SOURCE_ADDRESSES`]
//! so that ten thousand of them do not run out of ephemeral ports towards one server port.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::qa::raw::RawError;

/// Loopback source addresses the connections are spread over (127.0.0.1 up to this).
pub const SOURCE_ADDRESSES: u32 = 32;
/// Longest wait for a connection and its handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Read buffer of a bench connection: small, since thousands are open at once.
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// One bench connection.
pub struct BenchConn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
}

/// Where a URL points, resolved once for many connections.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    addr: SocketAddr,
}

impl Target {
    /// Resolves `url`'s host and port (`ws://` only: the bench measures servers on this
    /// box or a trusted network, not TLS).
    pub async fn resolve(url: &str) -> Result<Target, RawError> {
        let error = |detail: &str| RawError::Connect {
            url: url.to_string(),
            detail: detail.to_string(),
        };
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| error("the bench speaks ws:// only"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&authority)
            .await
            .map_err(|e| error(&e.to_string()))?
            .next()
            .ok_or_else(|| error("the host has no address"))?;
        Ok(Target {
            url: url.to_string(),
            addr,
        })
    }

    /// The source address of connection `n`: spread over 127.0.0.x towards IPv4 loopback.
    fn source(&self, n: u32) -> Option<SocketAddr> {
        match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {
                let host = 1 + (n % SOURCE_ADDRESSES) as u8;
                Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)),
                    0,
                ))
            }
            _ => None,
        }
    }
}

impl BenchConn {
    /// Opens connection number `n` to `target` (TCP_NODELAY, a small read buffer).
    pub async fn connect(target: &Target, n: u32) -> Result<BenchConn, RawError> {
        let error = |detail: String| RawError::Connect {
            url: target.url.clone(),
            detail,
        };
        let open = async {
            let socket = if target.addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(|e| error(e.to_string()))?;
            if let Some(source) = target.source(n) {
                socket.bind(source).map_err(|e| error(e.to_string()))?;
            }
            let tcp = socket
                .connect(target.addr)
                .await
                .map_err(|e| error(e.to_string()))?;
            tcp.set_nodelay(true).map_err(|e| error(e.to_string()))?;
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER_BYTES)
                .write_buffer_size(0);
            let (ws, _) = tokio_tungstenite::client_async_with_config(
                target.url.as_str(),
                MaybeTlsStream::Plain(tcp),
                Some(config),
            )
            .await
            .map_err(|e| error(e.to_string()))?;
            Ok(BenchConn { ws, next_id: 1 })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .map_err(|_| error("timed out".into()))?
    }

    /// A fresh request id.
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Sends one text frame (one or more objects joined by `\n`).
    pub async fn send(&mut self, text: String) -> Result<(), RawError> {
        self.ws
            .send(WsMessage::text(text))
            .await
            .map_err(|_| RawError::Closed { code: None })
    }

    /// The next text frame; `None` once the connection ended.
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        loop {
            match self.ws.next().await? {
                Ok(WsMessage::Text(text)) => return Some(text),
                Ok(WsMessage::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends `op` (a JSON object without `id`, as text: `{"op":"..."...}`) with a fresh id
    /// and returns the id.
    pub async fn request(&mut self, op_without_id: &str) -> Result<u32, RawError> {
        let ids = self
            .request_batch(std::iter::once(op_without_id.to_string()))
            .await?;
        Ok(ids[0])
    }

    /// Sends several requests in one frame (protocol v1 allows batches), each with a fresh
    /// id; returns their ids in order.
    pub async fn request_batch(
        &mut self,
        ops_without_id: impl Iterator<Item = String>,
    ) -> Result<Vec<u32>, RawError> {
        let mut ids = Vec::new();
        let mut frame = String::new();
        for op in ops_without_id {
            let id = self.next_id();
            ids.push(id);
            let body = op.strip_prefix('{').unwrap_or(&op);
            if !frame.is_empty() {
                frame.push('\n');
            }
            let _ = write!(frame, "{{\"id\":{id},{body}");
        }
        self.send(frame).await?;
        Ok(ids)
    }

    /// Sends `op` and waits up to `timeout` for its reply's code; events are skipped.
    pub async fn call(&mut self, op_without_id: &str, timeout: Duration) -> Result<u32, RawError> {
        let id = self.request(op_without_id).await?;
        let wait = async {
            while let Some(frame) = self.recv().await {
                for object in frame.split('\n') {
                    if field_u64(object, "id") == Some(u64::from(id)) {
                        return Ok(reply_code(object));
                    }
                }
            }
            Err(RawError::Closed { code: None })
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| RawError::Timeout {
                op: op_without_id.chars().take(40).collect(),
                timeout,
            })?
    }

    /// Closes politely (best effort).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

/// The `code` of a reply object (`u32::MAX` when missing).
pub fn reply_code(object: &str) -> u32 {
    field_u64(object, "code").map_or(u32::MAX, |c| c as u32)
}

/// The unsigned integer member `name` of a flat JSON object, found by scanning for
/// `"name":`. Good for the replies and events the bench reads, whose string members it
/// chose itself (no quotes or member names inside them).
pub fn field_u64(object: &str, name: &str) -> Option<u64> {
    let rest = after_member(object, name)?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

/// The string member `name` (without unescaping: the bench's own strings need none).
pub fn field_str<'a>(object: &'a str, name: &str) -> Option<&'a str> {
    let rest = after_member(object, name)?.strip_prefix('"')?;
    Some(&rest[..memchr::memchr(b'"', rest.as_bytes())?])
}

/// The text right after `"name":` (and any spaces). Walks the object's quotes (memchr)
/// rather than searching for the name: cheaper for objects this small.
fn after_member<'a>(object: &'a str, name: &str) -> Option<&'a str> {
    let bytes = object.as_bytes();
    let name = name.as_bytes();
    for quote in memchr::memchr_iter(b'"', bytes) {
        let start = quote + 1;
        let end = start + name.len();
        if bytes.get(start..end) != Some(name) || bytes.get(end) != Some(&b'"') {
            continue;
        }
        let rest = object[end + 1..].trim_start();
        if let Some(rest) = rest.strip_prefix(':') {
            return Some(rest.trim_start());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_members() {
        let reply = r#"{"id":7,"code":0,"message_id":1234,"server_ts":5}"#;
        assert_eq!(field_u64(reply, "id"), Some(7));
        assert_eq!(field_u64(reply, "message_id"), Some(1234));
        assert_eq!(reply_code(reply), 0);
        let event = r#"{"event": "message_from_channel", "message": {"type":"text","text":"3 99"}, "message_id": 9}"#;
        assert_eq!(field_str(event, "event"), Some("message_from_channel"));
        assert_eq!(field_str(event, "text"), Some("3 99"));
        assert_eq!(field_u64(event, "message_id"), Some(9));
        assert_eq!(field_u64(event, "id"), None);
        assert_eq!(reply_code(r#"{"event":"error"}"#), u32::MAX);
    }
}

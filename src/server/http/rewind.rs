//! The accept path's look at a connection's first line: [`peek_route`] reads the HTTP
//! request line and says whether it asks for the WebSocket path; [`Rewind`] then gives
//! the bytes read back to whoever serves the connection (tungstenite or hyper), so both
//! see the stream from its first byte.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// The longest request line looked at; a longer one goes to the HTTP side, which
/// answers it (414 or 400) like any malformed request.
const MAX_REQUEST_LINE: usize = 8 * 1024;

/// Where a connection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /rtm/v1…`: the WebSocket protocol, as before.
    WebSocket,
    /// Anything else: the HTTP API (`server::http`).
    Http,
}

/// A stream that first yields `prefix`, then the rest of `inner`.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Vec<u8>,
    read: usize,
    inner: S,
}

/// Reads `stream` up to the end of its request line and tells where it goes; `None` if
/// the peer closed (or failed) before sending a whole line.
pub async fn peek_route<S: AsyncRead + Unpin>(mut stream: S) -> Option<(Rewind<S>, Route)> {
    let mut prefix: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let line_end = loop {
        if let Some(end) = prefix.windows(2).position(|w| w == b"\r\n") {
            break end;
        }
        // Not text (a TLS ClientHello to a plain server, say): no request line will come,
        // so it goes to the HTTP side now, which refuses it at once.
        if prefix
            .iter()
            .any(|b| !(b.is_ascii_graphic() || b" \r\n".contains(b)))
        {
            break prefix.len();
        }
        if prefix.len() >= MAX_REQUEST_LINE {
            break prefix.len();
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        prefix.extend_from_slice(&chunk[..read]);
    };
    let route = route_of(&prefix[..line_end]);
    Some((
        Rewind {
            prefix,
            read: 0,
            inner: stream,
        },
        route,
    ))
}

/// `GET <path>[?query] HTTP/1.1` with the WebSocket path goes to the WebSocket side.
fn route_of(line: &[u8]) -> Route {
    let mut parts = line.split(|b| *b == b' ');
    let (Some(b"GET"), Some(target)) = (parts.next(), parts.next()) else {
        return Route::Http;
    };
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();
    if path == crate::protocol::WS_PATH.as_bytes() {
        Route::WebSocket
    } else {
        Route::Http
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read < self.prefix.len() {
            let rest = &self.prefix[self.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.read += n;
            if self.read == self.prefix.len() {
                self.prefix = Vec::new(); // an idle connection keeps no copy
                self.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_websocket_path_goes_to_the_websocket_side() {
        assert_eq!(route_of(b"GET /rtm/v1 HTTP/1.1"), Route::WebSocket);
        assert_eq!(route_of(b"GET /rtm/v1?x=1 HTTP/1.1"), Route::WebSocket);
        assert_eq!(route_of(b"GET /rtm/v12 HTTP/1.1"), Route::Http);
        assert_eq!(route_of(b"POST /rtm/v1 HTTP/1.1"), Route::Http);
        assert_eq!(route_of(b"GET /metrics HTTP/1.1"), Route::Http);
        assert_eq!(route_of(b"garbage"), Route::Http);
    }

    #[tokio::test]
    async fn bytes_that_are_not_text_go_to_the_http_side_at_once() {
        let (mut client, server) = tokio::io::duplex(64);
        // The start of a TLS ClientHello; the peer then waits for an answer.
        tokio::io::AsyncWriteExt::write_all(&mut client, &[0x16, 0x03, 0x01, 0x02])
            .await
            .unwrap();
        let (_, route) = peek_route(server).await.unwrap();
        assert_eq!(route, Route::Http);
    }

    #[tokio::test]
    async fn the_peeked_bytes_are_read_again() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(
            &mut client,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
        drop(client);
        let (mut rewind, route) = peek_route(server).await.unwrap();
        assert_eq!(route, Route::Http);
        let mut all = String::new();
        rewind.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    }
}

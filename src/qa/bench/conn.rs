//! A lean load-generator connection: one WebSocket on a `TCP_NODELAY` socket that reads only
//! what a workload measures.
//!
//! The conformance kit's [`RawConn`](crate::qa::raw::RawConn) builds a `serde_json::Value`
//! per object and runs two tasks per connection: right for checking a server, but a bench
//! on the same box would measure itself. Here the handshake is written by hand, server
//! frames are parsed where they were read (`frame.rs`: no WebSocket library, no buffer per
//! message, no UTF-8 pass), and the workloads scan each object for the few members they
//! need (`scan.rs`). Every connection on a worker thread reads into that thread's one large
//! buffer ([`READ_BUFFER_BYTES`]), so a read takes all that has arrived, and only a frame
//! cut off at the end of a read is copied aside. Many connections are spread over the
//! source addresses 127.0.0.1–127.0.0.[`SOURCE_ADDRESSES`] so that ten thousand of them do
//! not run out of ephemeral ports towards one server port.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};

use super::frame::{self, FrameError};
use super::scan::{self, field_u64, ID};
use crate::qa::raw::RawError;

/// Loopback source addresses the connections are spread over (127.0.0.1 up to this).
pub(super) const SOURCE_ADDRESSES: u32 = 32;
/// Longest wait for a connection and its handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The read buffer each worker thread's connections share: large, so that one read takes a
/// burst of frames whole (the server writes up to a few KiB to a connection at once).
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Longest handshake response accepted.
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;

thread_local! {
    /// See [`READ_BUFFER_BYTES`]. Borrowed only between a readiness and the end of the
    /// frames it brought, never across an `.await`.
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUFFER_BYTES]);
}

/// One bench connection.
pub(super) struct BenchConn {
    stream: TcpStream,
    reader: frame::FrameReader,
    /// The beginning of a frame that has not fully arrived.
    partial: Vec<u8>,
    /// Bytes to write before anything else (control replies, an interrupted send).
    out: Vec<u8>,
    /// `partial` holds bytes that came with the handshake response, not yet parsed.
    early_frames: bool,
    /// The server closed, broke the framing, or the socket failed.
    closed: bool,
    next_id: u32,
}

/// Where a URL points, resolved once for many connections.
#[derive(Debug, Clone)]
pub(super) struct ServerAddr {
    pub url: String,
    addr: SocketAddr,
    /// `host[:port]` as the URL says it (the Host header).
    authority: String,
    /// The request target of the handshake (`/rtm/v1`).
    path: String,
}

impl ServerAddr {
    /// Resolves `url`'s host and port (`ws://` only: the bench measures servers on this
    /// box or a trusted network, not TLS).
    pub(super) async fn resolve(url: &str) -> Result<ServerAddr, RawError> {
        let error = |detail: &str| RawError::Connect {
            url: url.to_string(),
            detail: detail.to_string(),
        };
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| error("the bench speaks plain ws:// only (no TLS)"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        let with_port = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| error(&e.to_string()))?
            .next()
            .ok_or_else(|| error("the host has no address"))?;
        Ok(ServerAddr {
            url: url.to_string(),
            addr,
            authority: authority.to_string(),
            path: path.to_string(),
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
    /// Opens connection number `n` to `target` (TCP_NODELAY) and does the WebSocket
    /// handshake.
    pub(super) async fn connect(target: &ServerAddr, n: u32) -> Result<BenchConn, RawError> {
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
            let stream = socket.connect(target.addr).await.map_err(|e| {
                error(crate::qa::raw::connect_cause(
                    &target.url,
                    &tokio_tungstenite::tungstenite::Error::Io(e),
                ))
            })?;
            stream.set_nodelay(true).map_err(|e| error(e.to_string()))?;
            let mut conn = BenchConn {
                stream,
                reader: frame::FrameReader::default(),
                partial: Vec::new(),
                out: Vec::new(),
                early_frames: false,
                closed: false,
                next_id: 1,
            };
            conn.handshake(target).await.map_err(error)?;
            Ok(conn)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .map_err(|_| error("timed out".into()))?
    }

    /// The client's opening handshake (RFC 6455 §4.1); bytes after the response are the
    /// first frames.
    async fn handshake(&mut self, target: &ServerAddr) -> Result<(), String> {
        let key = generate_key();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.path, target.authority
        );
        self.stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::with_capacity(1024);
        let end = loop {
            if let Some(at) = memchr::memmem::find(&response, b"\r\n\r\n") {
                break at + 4;
            }
            if response.len() > MAX_HANDSHAKE_BYTES {
                return Err("the handshake response is too long".into());
            }
            if self
                .stream
                .read_buf(&mut response)
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err("the server closed during the handshake".into());
            }
        };
        let head = String::from_utf8_lossy(&response[..end]);
        let status = head.lines().next().unwrap_or_default();
        if status.split(' ').nth(1) != Some("101") {
            return Err(if status.contains(" 404") {
                format!(
                    "the server answered {status:?} for the path {}: RTM servers listen on {}",
                    target.path,
                    crate::protocol::WS_PATH
                )
            } else {
                format!("the server answered {status:?}")
            });
        }
        let accept = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-accept")
                .then(|| value.trim())
        });
        if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
            return Err("the server's Sec-WebSocket-Accept does not match the key".into());
        }
        self.partial = response.split_off(end);
        self.early_frames = !self.partial.is_empty();
        Ok(())
    }

    /// A fresh request id.
    pub(super) fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Sends one text frame (one or more objects joined by `\n`).
    pub(super) async fn send(&mut self, text: &str) -> Result<(), RawError> {
        frame::encode_text(text.as_bytes(), &mut self.out);
        self.flush()
            .await
            .map_err(|_| RawError::Closed { code: None })
    }

    /// Writes out everything queued. Cancel-safe: each write's progress is kept.
    async fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            let written = self.stream.write(&self.out).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.out.drain(..written);
        }
        Ok(())
    }

    /// Writes what the socket takes now, without waiting (control replies).
    fn try_flush(&mut self) {
        while !self.out.is_empty() {
            match self.stream.try_write(&self.out) {
                Ok(written) if written > 0 => {
                    self.out.drain(..written);
                }
                _ => return,
            }
        }
    }

    /// Waits until data arrives, reads all that has, and hands each complete text message
    /// to `on_text` (possibly none, if only part of a frame came). Returns `false` once the
    /// connection has ended. Cancel-safe: nothing is read until the socket is readable, and
    /// then everything read is handed over before returning.
    pub(super) async fn read_frames(&mut self, mut on_text: impl FnMut(&[u8])) -> bool {
        if std::mem::take(&mut self.early_frames) {
            match self.reader.read(&self.partial, &mut self.out, &mut on_text) {
                Ok(used) => {
                    self.partial.drain(..used);
                }
                Err(_) => self.closed = true,
            }
            self.try_flush();
            return !self.closed;
        }
        self.try_flush();
        while !self.closed {
            if self.stream.readable().await.is_err() {
                self.closed = true;
                break;
            }
            let read = READ_BUFFER.with_borrow_mut(|buffer| self.read_ready(buffer, &mut on_text));
            self.try_flush();
            match read {
                Ok(0) => {}
                Ok(_) => return true,
                Err(_) => self.closed = true,
            }
        }
        false
    }

    /// Reads until the socket is drained, passing complete messages to `on_text`; returns
    /// the bytes read.
    fn read_ready(
        &mut self,
        buffer: &mut [u8],
        on_text: &mut impl FnMut(&[u8]),
    ) -> io::Result<usize> {
        let mut total = 0;
        let stream = &self.stream;
        let (reader, partial, out) = (&mut self.reader, &mut self.partial, &mut self.out);
        let drained = stream.try_io(Interest::READABLE, || -> io::Result<()> {
            loop {
                let read = stream.try_read(buffer)?;
                if read == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                total += read;
                let data = &buffer[..read];
                let framing = if partial.is_empty() {
                    reader
                        .read(data, out, on_text)
                        .map(|used| partial.extend_from_slice(&data[used..]))
                } else {
                    partial.extend_from_slice(data);
                    reader.read(partial, out, on_text).map(|used| {
                        partial.drain(..used);
                    })
                };
                framing.map_err(|e: FrameError| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if read < buffer.len() {
                    // A short read emptied the socket. Saying so (WouldBlock) clears its
                    // readiness, so the next read waits for new data rather than finding
                    // none: one system call less per wake-up. Data that arrives meanwhile
                    // raises readiness again.
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
        });
        match drained {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(total),
            Err(e) => Err(e),
            Ok(()) => Ok(total),
        }
    }

    /// Sends `op` (a JSON object without `id`, as text: `{"op":"..."...}`) with a fresh id
    /// and returns the id.
    pub(super) async fn request(&mut self, op_without_id: &str) -> Result<u32, RawError> {
        let ids = self
            .request_batch(std::iter::once(op_without_id.to_string()))
            .await?;
        Ok(ids[0])
    }

    /// Sends several requests in one frame (protocol v1 allows batches), each with a fresh
    /// id; returns their ids in order.
    pub(super) async fn request_batch(
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
        self.send(&frame).await?;
        Ok(ids)
    }

    /// Sends `op` and waits up to `timeout` for its reply's code; events are skipped.
    pub(super) async fn call(
        &mut self,
        op_without_id: &str,
        timeout: Duration,
    ) -> Result<u32, RawError> {
        let id = self.request(op_without_id).await?;
        let wait = async {
            let mut code = None;
            while code.is_none() {
                let open = self
                    .read_frames(|frame| {
                        for object in scan::objects(frame) {
                            if field_u64(object, &ID) == Some(u64::from(id)) {
                                code = Some(scan::reply_code(object));
                            }
                        }
                    })
                    .await;
                if !open && code.is_none() {
                    return Err(RawError::Closed { code: None });
                }
            }
            Ok(code.unwrap_or(u32::MAX))
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| RawError::Timeout {
                op: op_without_id.chars().take(40).collect(),
                timeout,
            })?
    }

    /// Closes politely (best effort): a Close frame, then the socket.
    pub(super) async fn close(mut self) {
        frame::encode_close(&mut self.out);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
    }
}

/// Reads many connections on the calling task until every one has ended, handing each
/// complete text message of `conns[i]` to `on_text(i, text)`.
///
/// One task per connection cost a task wake-up, a poll of its `select!` and its timers for
/// every frame. Here each socket gets a waker of its own that only notes the socket as ready
/// ([`ReadySet`]) and wakes this one task, which then reads just the sockets noted, all into
/// the thread's read buffer. Cancel-safe like [`BenchConn::read_frames`].
pub(super) async fn read_many(conns: &mut [BenchConn], mut on_text: impl FnMut(usize, &[u8])) {
    let ready_set = Arc::new(ReadySet {
        // All at first: the handshake may have brought frames, and polling registers the
        // wakers.
        ready: Mutex::new((0..conns.len()).collect()),
        task: AtomicWaker::new(),
    });
    let wakers: Vec<Waker> = (0..conns.len())
        .map(|index| {
            Waker::from(Arc::new(SocketWaker {
                index,
                ready_set: Arc::clone(&ready_set),
            }))
        })
        .collect();
    let mut ready = Vec::new();
    let mut open = conns.iter().filter(|conn| !conn.closed).count();
    std::future::poll_fn(|cx| {
        ready_set.task.register(cx.waker());
        std::mem::swap(&mut ready, &mut *ready_set.lock());
        for index in ready.drain(..) {
            let conn = &mut conns[index];
            if conn.closed {
                continue;
            }
            let mut on_text = |text: &[u8]| on_text(index, text);
            if std::mem::take(&mut conn.early_frames) {
                // Frames that came with the handshake response.
                match conn.reader.read(&conn.partial, &mut conn.out, &mut on_text) {
                    Ok(used) => {
                        conn.partial.drain(..used);
                    }
                    Err(_) => conn.closed = true,
                }
            }
            let mut socket_cx = Context::from_waker(&wakers[index]);
            while !conn.closed {
                match conn.stream.poll_read_ready(&mut socket_cx) {
                    Poll::Pending => break,
                    Poll::Ready(Err(_)) => conn.closed = true,
                    Poll::Ready(Ok(())) => {
                        let read = READ_BUFFER
                            .with_borrow_mut(|buffer| conn.read_ready(buffer, &mut on_text));
                        conn.closed = read.is_err();
                    }
                }
            }
            conn.try_flush();
            open -= usize::from(conn.closed);
        }
        // Sockets that were ready again meanwhile have woken this task already.
        if open == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// The sockets of a [`read_many`] that became ready, and its task.
struct ReadySet {
    ready: Mutex<Vec<usize>>,
    task: AtomicWaker,
}

impl ReadySet {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The waker of one socket in a [`read_many`].
struct SocketWaker {
    index: usize,
    ready_set: Arc<ReadySet>,
}

impl Wake for SocketWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready_set.lock().push(self.index);
        self.ready_set.task.wake();
    }
}

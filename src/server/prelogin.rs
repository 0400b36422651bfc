//! What a connection may do before it logs in (after connecting, or after a `logout`):
//! read at most [`PRE_LOGIN_BYTES`] (the WebSocket handshake included) and have at most
//! [`PRE_LOGIN_OBJECTS`] objects answered. A client that never logs in costs the server
//! a few KiB and a few replies, not the 1 MiB frames and the unbounded replies to them
//! an attacker would send (it is closed with 1008 past either), and a frame bigger than
//! the allowance can never complete before login: the small pre-login frame cap.
//!
//! [`Metered`] wraps the connection's transport and counts what is read; the reader loop
//! (`connection.rs`) opens the budget at login and sets it anew at logout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes a connection may send while not logged in: the handshake (a few hundred bytes
/// to a few KiB of headers) and a login of at most one 64 KiB object, with room to spare.
pub(super) const PRE_LOGIN_BYTES: u64 = 96 * 1024;
/// Objects answered while not logged in (logins, pings, anything else): a client needs
/// one or two; past it the connection is closed with 1008.
pub(super) const PRE_LOGIN_OBJECTS: u32 = 16;

/// How much a connection has read and may read: shared by [`Metered`] and the reader.
#[derive(Debug)]
pub(super) struct ReadBudget {
    read: AtomicU64,
    limit: AtomicU64,
}

impl ReadBudget {
    /// A budget of [`PRE_LOGIN_BYTES`] from now.
    pub(super) fn new() -> Arc<ReadBudget> {
        Arc::new(ReadBudget {
            read: AtomicU64::new(0),
            limit: AtomicU64::new(PRE_LOGIN_BYTES),
        })
    }

    /// Logged in: no byte budget (rate limits and the outbox bound apply).
    pub(super) fn open(&self) {
        self.limit.store(u64::MAX, Ordering::Relaxed);
    }

    /// Logged out: [`PRE_LOGIN_BYTES`] more until the next login.
    pub(super) fn renew(&self) {
        let read = self.read.load(Ordering::Relaxed);
        self.limit
            .store(read.saturating_add(PRE_LOGIN_BYTES), Ordering::Relaxed);
    }

    /// True once a read was refused for lack of budget.
    pub(super) fn spent(&self) -> bool {
        self.read.load(Ordering::Relaxed) >= self.limit.load(Ordering::Relaxed)
    }
}

/// A transport that reads no more than its [`ReadBudget`] allows: past it, a read fails
/// (the reader then closes with 1008). Writes pass through.
#[derive(Debug)]
pub(super) struct Metered<S> {
    inner: S,
    budget: Arc<ReadBudget>,
}

impl<S> Metered<S> {
    pub(super) fn new(inner: S, budget: Arc<ReadBudget>) -> Self {
        Metered { inner, budget }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = this.budget.read.load(Ordering::Relaxed);
        let left = this
            .budget
            .limit
            .load(Ordering::Relaxed)
            .saturating_sub(read);
        if left == 0 {
            return Poll::Ready(Err(io::Error::other("too much read before login")));
        }
        let room = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(buf.remaining());
        // A window of `buf` no larger than the budget (initialized, so no unsafe needed;
        // the callers' buffers are initialized already, so this costs nothing).
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(room));
        let polled = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
        let filled = limited.filled().len();
        if let Poll::Ready(Ok(())) = polled {
            buf.advance(filled);
            this.budget.read.fetch_add(filled as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn reads_stop_at_the_budget_until_it_is_opened() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let budget = ReadBudget::new();
        let mut metered = Metered::new(server, Arc::clone(&budget));
        let sent = vec![7u8; PRE_LOGIN_BYTES as usize + 10];
        client.write_all(&sent).await.unwrap();
        let mut got = vec![0u8; sent.len()];
        let mut total = 0;
        let error = loop {
            match metered.read(&mut got[total..]).await {
                Ok(n) => total += n,
                Err(error) => break error,
            }
        };
        assert_eq!(total as u64, PRE_LOGIN_BYTES, "{error}");
        assert!(budget.spent());
        budget.open();
        metered.read_exact(&mut got[total..]).await.unwrap();
        budget.renew();
        assert!(!budget.spent());
    }
}

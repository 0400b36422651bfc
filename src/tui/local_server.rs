//! Starting a reference server inside this process, which the chat client does twice: the
//! embedded default (`embedded.rs`) and the demo's (`demo.rs`). The `tui` room does not
//! build the server: whoever runs the client hands it a [`ServerLauncher`] (the binary's is
//! `src/commands/chat.rs`), and a client given none starts nothing and only connects.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;

use futures_util::future::BoxFuture;
use tokio::net::TcpListener;

/// Where a server started here keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerData {
    /// A directory (created if missing), kept between runs.
    Dir(PathBuf),
    /// A fresh temporary directory, removed when the server stops (the demo).
    Ephemeral,
}

/// Starts a reference server on a listener the client bound.
pub trait ServerLauncher: Send + Sync {
    /// Starts serving on `listener`; the server runs until [`LocalServer::stop`].
    fn launch(
        &self,
        listener: TcpListener,
        data: ServerData,
    ) -> BoxFuture<'static, Result<LocalServer, StartError>>;
}

/// A server started in this process: where it listens, and how to stop it.
pub struct LocalServer {
    addr: SocketAddr,
    url: String,
    stop: Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>,
}

impl LocalServer {
    /// A server listening on `addr`, reached at `url`; `stop` shuts it down gracefully.
    pub fn new(
        addr: SocketAddr,
        url: String,
        stop: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    ) -> LocalServer {
        LocalServer {
            addr,
            url,
            stop: Box::new(stop),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL the client logs in to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server (connections closed, store flushed).
    pub async fn stop(self) {
        (self.stop)().await;
    }
}

impl std::fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServer")
            .field("addr", &self.addr)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why no server could be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address is taken by something that does not answer as a server, or not ours
    /// to bind; the message says which address.
    #[error("nothing listens on {addr} and it cannot be bound")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The server did not start (its store, its settings): the source says why.
    #[error("the reference server did not start")]
    Server(#[source] Box<dyn Error + Send + Sync>),
}

/// An error and its sources on one line, as a tab or the status line shows it.
pub fn words(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

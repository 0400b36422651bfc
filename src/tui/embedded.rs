//! The embedded default server. With no `--server`, the client connects to
//! ws://127.0.0.1:7420/rtm/v1; if nothing listens there, the reference server is started
//! inside this process on that address (store in `paths::data_dir()`), and the status line
//! says so. This file (with `demo.rs`) is the TUI's one allowed import of `crate::server`:
//! starting a server is not talking to one, and keeping it here keeps the arrow visible.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::Mutex;

use crate::server::{self, RunningServer, StoreLocation};

use super::event_loop::ServerStarter;

/// How long to wait for something already listening on the default port.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Servers started by this process, shut down gracefully at exit.
pub type Servers = Arc<Mutex<Vec<RunningServer>>>;

/// A starter for the event loop when `allowed` (no `--server` given), else `None`.
pub fn starter(allowed: bool, servers: &Servers) -> Option<ServerStarter> {
    if !allowed {
        return None;
    }
    let servers = servers.clone();
    Some(Box::new(move |url: &str| {
        let servers = servers.clone();
        let url = url.to_string();
        async move { ensure_server(&url, &servers).await }.boxed()
    }))
}

/// Starts the reference server on the default address unless something listens there.
async fn ensure_server(url: &str, servers: &Servers) -> Result<Option<String>, String> {
    if url != crate::protocol::DEFAULT_URL || !servers.lock().await.is_empty() {
        return Ok(None);
    }
    let addr = ("127.0.0.1", crate::protocol::DEFAULT_PORT);
    if let Ok(Ok(_)) =
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
    {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("nothing listens on 127.0.0.1:7420 and it cannot be bound: {e}"))?;
    let data = crate::paths::data_dir();
    let config = server::Config {
        store: StoreLocation::Path(data.clone()),
        ..server::Config::default()
    };
    let running = server::spawn(listener, config)
        .await
        .map_err(|e| format!("cannot start the embedded server: {e}"))?;
    let note = format!(
        "embedded server on {} (data in {})",
        running.addr(),
        data.display()
    );
    tracing::info!("{note}");
    servers.lock().await.push(running);
    Ok(Some(note))
}

/// Stops every server this process started (close frames, store flushed).
pub async fn shutdown(servers: &Servers) {
    for server in servers.lock().await.drain(..) {
        server.shutdown().await;
    }
}

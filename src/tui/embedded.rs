//! The embedded default server. With no `--server`, the client connects to
//! ws://127.0.0.1:7420/rtm/v1; if nothing listens there, a reference server is started
//! inside this process on that address (store in `paths::data_dir()`), and the status line
//! says so. The server is started through the [`ServerLauncher`] the client was given
//! (`local_server.rs`); with none, the client only connects.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::Mutex;

use super::event_loop::ServerStarter;
use super::local_server::{LocalServer, ServerData, ServerLauncher, StartError};

/// How long to wait for something already listening on the default port.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The servers started by this process, shut down gracefully at exit.
pub type StartedServers = Arc<Mutex<Vec<LocalServer>>>;

/// A starter for the event loop when `allowed` (no `--server` given) and there is a
/// launcher, else `None`.
pub fn starter(
    allowed: bool,
    launcher: Option<Arc<dyn ServerLauncher>>,
    servers: &StartedServers,
) -> Option<ServerStarter> {
    let launcher = launcher.filter(|_| allowed)?;
    let servers = servers.clone();
    Some(Box::new(move |url: &str| {
        let servers = servers.clone();
        let launcher = launcher.clone();
        let url = url.to_string();
        async move { ensure_server(&url, &servers, launcher.as_ref()).await }.boxed()
    }))
}

/// Starts the reference server on the default address unless something listens there.
async fn ensure_server(
    url: &str,
    servers: &StartedServers,
    launcher: &dyn ServerLauncher,
) -> Result<Option<String>, StartError> {
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
        .map_err(|source| StartError::Bind {
            addr: format!("{}:{}", addr.0, addr.1),
            source,
        })?;
    let data = crate::paths::data_dir();
    let running = launcher
        .launch(listener, ServerData::Dir(data.clone()))
        .await?;
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
pub async fn shutdown(servers: &StartedServers) {
    for server in servers.lock().await.drain(..) {
        server.stop().await;
    }
}

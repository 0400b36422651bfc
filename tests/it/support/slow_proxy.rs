//! A TCP proxy on 127.0.0.1:0 in front of a server that passes bytes on at a set rate each
//! way: an upload or a download through it takes seconds, long enough to watch its
//! progress and cancel it. Everything it runs stops when it drops.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Bytes passed on at once; the rate is kept by sleeping after each.
const CHUNK: usize = 16 * 1024;

pub struct SlowProxy {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl SlowProxy {
    /// A proxy to the server of `url` (`ws://host:port/path`), passing at most
    /// `bytes_per_second` each way.
    pub async fn start(url: &str, bytes_per_second: u64) -> SlowProxy {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let upstream = rest.split('/').next().unwrap().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let path = &rest[upstream.len()..];
        let pause = Duration::from_secs_f64(CHUNK as f64 / bytes_per_second as f64);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let up = throttled_copy(client_read, server_write, pause);
                    let down = throttled_copy(server_read, client_write, pause);
                    let _ = tokio::join!(down, up);
                });
            }
        });
        SlowProxy {
            url: format!("{scheme}://{address}{path}"),
            task,
        }
    }

    /// The server's URL through the proxy.
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        // The accept loop owns the connections' JoinSet: aborting it ends them all.
        self.task.abort();
    }
}

/// Copies `from` to `to` a chunk at a time, resting `pause` per [`CHUNK`] bytes.
async fn throttled_copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    pause: Duration,
) -> std::io::Result<()> {
    let mut buffer = vec![0; CHUNK];
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buffer[..n]).await?;
        tokio::time::sleep(pause.mul_f64(n as f64 / CHUNK as f64)).await;
    }
}

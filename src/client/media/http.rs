//! The HTTP side of [`Transfer`](super::Transfer)s: a ticket from `media_ticket`, then
//! one HTTP/1.1 connection per upload or download to the node the client is logged in
//! to (plain or TLS as its WebSocket URL says), driven by hyper on a task that ends with
//! the transfer: cancelling drops it, which closes the connection.

use std::path::{Path, PathBuf};

use futures_util::stream;
use http_body_util::{BodyExt as _, Empty, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;

use super::{too_large, DownloadTarget, Downloaded, MediaSource, Progress};
use crate::client::error::{ClientError, ConnectError, UnexpectedReply};
use crate::client::handle::{CachedTicket, Client};
use crate::protocol::limits::MAX_MEDIA_BYTES;
use crate::protocol::media::{MEDIA_PATH, NAME_PARAM, TICKET_HEADER};
use crate::protocol::{MediaFailure, MediaTicketResult, MediaUploaded, Op};

/// Bytes read from a file (or taken from memory) per body frame of an upload.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// Where the HTTP side of the client's current server is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    tls: bool,
    /// Without brackets (an IPv6 address as it is).
    host: String,
    port: u16,
    /// `host:port` as the `Host` header gives it.
    authority: String,
}

/// The HTTP endpoint of a `ws://` or `wss://` URL.
fn endpoint(url: &str) -> Result<Endpoint, ClientError> {
    let bad = || {
        ClientError::Connect(ConnectError::NotWebSocket {
            url: url.to_string(),
        })
    };
    let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().map_err(|_| bad())?;
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(bad()),
    };
    let authority = uri.authority().ok_or_else(bad)?;
    let host = authority.host().trim_matches(['[', ']']).to_string();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Endpoint {
        tls,
        host,
        port,
        authority: authority.as_str().to_string(),
    })
}

/// A ticket of the node the client is logged in to, with that node's endpoint: the
/// cached one while it is young and from that node, else a fresh one (`media_ticket`
/// is rate limited, so a burst of transfers shares one).
async fn ticket(client: &Client) -> Result<(String, Endpoint), ClientError> {
    let server = client.current_server().ok_or(ClientError::NotLoggedIn)?;
    let endpoint = endpoint(&server)?;
    let cached = client.media_ticket().clone();
    if let Some(cached) = cached {
        if cached.server == server && std::time::Instant::now() < cached.fresh_until {
            return Ok((cached.ticket, endpoint));
        }
    }
    let asked = std::time::Instant::now();
    match client.call::<MediaTicketResult>(Op::MediaTicket).await {
        Ok(result) => {
            let life = std::time::Duration::from_millis(result.expires_in_ms / 2);
            *client.media_ticket() = Some(CachedTicket {
                ticket: result.ticket.clone(),
                server,
                fresh_until: asked + life,
            });
            Ok((result.ticket, endpoint))
        }
        // 1 is also a v1 server's answer to an op it does not know.
        Err(ClientError::Code { code: 1, .. }) => Err(ClientError::media(
            MediaFailure::NotSupported,
            "this server keeps no files or images",
        )),
        Err(ClientError::Code { reason, .. }) => {
            Err(ClientError::media(MediaFailure::QuotaExceeded, reason))
        }
        Err(error) => Err(error),
    }
}

/// Forgets the cached ticket (the server did not know it: restarted, or another node).
fn forget_ticket(client: &Client) {
    *client.media_ticket() = None;
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Aborts the task driving a connection when the transfer ends (or is dropped).
struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens the connection (TLS where the URL says so) and starts driving it.
async fn connect<B>(
    client: &Client,
    endpoint: &Endpoint,
) -> Result<(SendRequest<B>, Driver), ClientError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let failed = |e: &dyn std::fmt::Display| {
        ClientError::Connect(ConnectError::Failed {
            url: format!("{}:{}", endpoint.authority, MEDIA_PATH),
            reason: e.to_string(),
        })
    };
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| failed(&e))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if endpoint.tls {
        let config = crate::client::tls::rustls_config(&client.config().extra_root_certificates)
            .map_err(|e| failed(&e))?;
        let name = rustls_pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|e| failed(&e))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| failed(&e))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failed(&e))?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "media connection ended");
        }
    });
    Ok((sender, Driver(driver)))
}

/// The failure an answer other than the one hoped for stands for; a ticket the server
/// did not take is forgotten, so the next transfer asks for another.
async fn refusal(client: &Client, response: Response<Incoming>) -> ClientError {
    if response.status() == StatusCode::UNAUTHORIZED {
        forget_ticket(client);
    }
    let status = response.status().as_u16();
    // Failure bodies are small JSON; a larger one is not ours and is not read.
    let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let code = json["code"].as_str();
    let message = json["message"]
        .as_str()
        .map_or_else(|| format!("HTTP {status}"), str::to_string);
    ClientError::media(MediaFailure::from_answer(status, code), message)
}

/// The upload and the download, as [`UnexpectedReply::op`] names them.
const UPLOAD: &str = "POST /rtm/media";
const DOWNLOAD: &str = "GET /rtm/media";

/// An answer of the HTTP side to `op` that is not what docs/protocol.md promises.
fn unexpected(op: &'static str, problem: &dyn std::fmt::Display) -> ClientError {
    ClientError::Protocol(UnexpectedReply {
        op,
        problem: problem.to_string(),
    })
}

fn broken(error: &impl std::fmt::Display) -> ClientError {
    ClientError::media(
        MediaFailure::Incomplete,
        format!("the connection broke: {error}"),
    )
}

fn file_error(what: &str, path: &Path, error: &std::io::Error) -> ClientError {
    ClientError::File(format!("{what} {}: {error}", path.display()))
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Where an upload's bytes come from, read a frame at a time.
enum UploadSource {
    File {
        file: tokio::fs::File,
        path: PathBuf,
    },
    Memory(Bytes),
}

impl UploadSource {
    /// The next at most [`UPLOAD_CHUNK`] of `left` bytes.
    async fn next(&mut self, left: u64) -> Result<Bytes, std::io::Error> {
        let want = left.min(UPLOAD_CHUNK as u64) as usize;
        match self {
            UploadSource::Memory(bytes) => Ok(bytes.split_to(want)),
            UploadSource::File { file, .. } => {
                let mut buf = vec![0u8; want];
                let read = file.read(&mut buf).await?;
                if read == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was sent",
                    ));
                }
                buf.truncate(read);
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// Opens the source and finds its size, refusing more than the limit before anything
/// is sent.
async fn open(source: MediaSource) -> Result<(UploadSource, u64), ClientError> {
    let (source, size) = match source {
        MediaSource::Bytes { data, .. } => {
            let size = data.len() as u64;
            (UploadSource::Memory(Bytes::from(data)), size)
        }
        MediaSource::Path(path) => {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| file_error("cannot open", &path, &e))?;
            let meta = file
                .metadata()
                .await
                .map_err(|e| file_error("cannot read", &path, &e))?;
            if !meta.is_file() {
                return Err(ClientError::File(format!(
                    "{} is not a file",
                    path.display()
                )));
            }
            (UploadSource::File { file, path }, meta.len())
        }
    };
    if size > MAX_MEDIA_BYTES {
        return Err(too_large(size));
    }
    Ok((source, size))
}

/// Uploads `source`; the server's answer once the file is stored.
pub(crate) async fn upload(
    client: &Client,
    source: MediaSource,
    progress: watch::Sender<Progress>,
) -> Result<MediaUploaded, ClientError> {
    let name = source.name();
    let (source, size) = open(source).await?;
    progress.send_replace(Progress {
        done: 0,
        total: size,
    });
    let (ticket, endpoint) = ticket(client).await?;
    let watch = progress.clone();
    let frames = stream::unfold((source, 0u64), move |(mut source, sent)| {
        let watch = watch.clone();
        async move {
            if sent >= size {
                return None;
            }
            match source.next(size - sent).await {
                Ok(bytes) => {
                    let sent = sent + bytes.len() as u64;
                    watch.send_replace(Progress {
                        done: sent,
                        total: size,
                    });
                    Some((Ok(Frame::data(bytes)), (source, sent)))
                }
                Err(error) => {
                    let error = match &source {
                        UploadSource::File { path, .. } => {
                            std::io::Error::other(format!("{}: {error}", path.display()))
                        }
                        UploadSource::Memory(_) => error,
                    };
                    // Ends the body short: the server keeps nothing.
                    Some((Err(error), (source, size)))
                }
            }
        }
    });
    let body = StreamBody::new(frames);
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{MEDIA_PATH}?{NAME_PARAM}={}", encode_query(&name)))
        .header(HOST, &endpoint.authority)
        .header(TICKET_HEADER, &ticket)
        .header(CONTENT_LENGTH, size)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .map_err(|e| unexpected(UPLOAD, &e))?;
    let (mut sender, _driver) = connect(client, &endpoint).await?;
    let response = sender.send_request(request).await.map_err(|e| broken(&e))?;
    if response.status() != StatusCode::CREATED {
        return Err(refusal(client, response).await);
    }
    let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| broken(&e))?
        .to_bytes();
    let uploaded: MediaUploaded =
        serde_json::from_slice(&body).map_err(|e| unexpected(UPLOAD, &e))?;
    progress.send_replace(Progress {
        done: size,
        total: size,
    });
    Ok(uploaded)
}

/// A download's temporary file beside its target, removed unless renamed into place.
struct Partial {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl Partial {
    async fn create(target: &Path) -> Result<Partial, ClientError> {
        let name = target
            .file_name()
            .ok_or_else(|| ClientError::File(format!("{} names no file", target.display())))?;
        let path = target.with_file_name(format!(
            ".{}.part-{:08x}",
            name.to_string_lossy(),
            rand::random::<u32>()
        ));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| file_error("cannot create", &path, &e))?;
        Ok(Partial {
            path,
            file: Some(file),
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let file = self.file.as_mut().expect("written before it is placed");
        file.write_all(bytes)
            .await
            .map_err(|e| file_error("cannot write", &self.path, &e))
    }

    /// Syncs the file and renames it to `target`.
    async fn place(mut self, target: &Path) -> Result<(), ClientError> {
        let file = self.file.take().expect("placed once");
        file.sync_all()
            .await
            .map_err(|e| file_error("cannot write", &self.path, &e))?;
        drop(file);
        tokio::fs::rename(&self.path, target)
            .await
            .map_err(|e| file_error("cannot rename to", target, &e))?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Downloads `media_id` to `target`.
pub(crate) async fn download(
    client: &Client,
    media_id: &str,
    target: DownloadTarget,
    progress: watch::Sender<Progress>,
) -> Result<Downloaded, ClientError> {
    // A cached ticket the server does not know (it restarted) is tried once more, fresh.
    let mut second_try = false;
    let (response, _driver) = loop {
        let (ticket, endpoint) = ticket(client).await?;
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("{MEDIA_PATH}/{media_id}"))
            .header(HOST, &endpoint.authority)
            .header(TICKET_HEADER, &ticket)
            .body(Empty::<Bytes>::new())
            .map_err(|e| unexpected(DOWNLOAD, &e))?;
        let (mut sender, driver) = connect(client, &endpoint).await?;
        let response = sender.send_request(request).await.map_err(|e| broken(&e))?;
        match response.status() {
            StatusCode::OK => break (response, driver),
            StatusCode::UNAUTHORIZED if !second_try => {
                forget_ticket(client);
                second_try = true;
            }
            _ => return Err(refusal(client, response).await),
        }
    };
    let total = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| unexpected(DOWNLOAD, &"has no Content-Length"))?;
    if total > MAX_MEDIA_BYTES {
        return Err(too_large(total));
    }
    progress.send_replace(Progress { done: 0, total });
    let mut sink = match target {
        DownloadTarget::Memory => Sink::Memory(Vec::with_capacity(total as usize)),
        DownloadTarget::Path(path) => Sink::File(Partial::create(&path).await?, path),
    };
    let mut body = response.into_body();
    let mut done = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| broken(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        done += data.len() as u64;
        if done > total {
            return Err(unexpected(
                DOWNLOAD,
                &"has more bytes than its Content-Length",
            ));
        }
        match &mut sink {
            Sink::File(partial, _) => partial.write(&data).await?,
            Sink::Memory(memory) => memory.extend_from_slice(&data),
        }
        progress.send_replace(Progress { done, total });
    }
    if done != total {
        return Err(broken(&format!("{done} bytes of {total}")));
    }
    match sink {
        Sink::File(partial, path) => {
            partial.place(&path).await?;
            Ok(Downloaded::Path(path))
        }
        Sink::Memory(memory) => Ok(Downloaded::Memory(memory)),
    }
}

/// Where a download's bytes go as they come.
enum Sink {
    Memory(Vec<u8>),
    /// The temporary file, and the path it becomes.
    File(Partial, PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_websocket_urls() {
        let plain = endpoint("ws://127.0.0.1:7420/rtm/v1").unwrap();
        assert_eq!(
            (plain.tls, plain.host.as_str(), plain.port),
            (false, "127.0.0.1", 7420)
        );
        let tls = endpoint("wss://chat.example.com/rtm/v1").unwrap();
        assert_eq!((tls.tls, tls.port), (true, 443));
        let v6 = endpoint("ws://[::1]:9000/rtm/v1").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.authority.as_str()),
            ("::1", "[::1]:9000")
        );
        assert!(endpoint("http://x/rtm/v1").is_err());
    }

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(encode_query("a b&c.png"), "a%20b%26c.png");
        assert_eq!(encode_query("é"), "%C3%A9");
    }
}

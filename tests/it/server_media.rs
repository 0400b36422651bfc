//! The server's side of files and images, spoken in raw HTTP over real sockets: the
//! ticket is required; the 30 MiB cap is refused from `Content-Length` alone; an upload
//! whose connection breaks mid-way leaves nothing; expired media is swept from the data
//! directory and unknown from then on; the per-user quota; a full disk (a real tmpfs,
//! when the tests run as root) is a clean 507 that keeps nothing and recovers.

use std::net::SocketAddr;
use std::time::Duration;

use rtm::protocol::limits::MAX_MEDIA_BYTES;
use rtm::server::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::client_media::{config_in, media_files, pattern, wait_media_empty, wait_media_written};
use crate::support::raw::{self, Expect as _};
use crate::support::{start_server, WAIT};

/// A ticket of `user` (of app `demo`), from a raw WebSocket login kept open.
pub(crate) async fn ticket(url: &str, user: &str) -> (rtm::qa::raw::RawConn, String) {
    let mut conn = raw::login(url, "demo", user).await;
    let reply = conn.ok(json!({"op": "media_ticket"})).await;
    assert_eq!(reply["max_bytes"], MAX_MEDIA_BYTES, "{reply}");
    let ticket = reply["ticket"].as_str().expect("ticket").to_string();
    (conn, ticket)
}

/// An HTTP answer: status and body.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The media id of an upload that must have been taken (201).
    pub fn media_id(&self) -> String {
        assert_eq!(self.status, 201, "{}", String::from_utf8_lossy(&self.body));
        self.json()["media_id"]
            .as_str()
            .expect("media_id")
            .to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body`, then
/// reads the answer to the connection's close.
pub(crate) async fn http(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}\r\nHost: test\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The server may answer (and close) before the body is all sent: that is the point
    // of some tests, so a failed write is not a failure here.
    let _ = tcp.write_all(body).await;
    let mut answer = Vec::new();
    let _ = timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the server answers in time");
    let text_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&answer)));
    let head = String::from_utf8_lossy(&answer[..text_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    Answer {
        status,
        body: answer[text_end + 4..].to_vec(),
    }
}

pub(crate) async fn upload(addr: SocketAddr, ticket: &str, data: &[u8]) -> Answer {
    let head = format!(
        "POST /rtm/media?name=a.bin HTTP/1.1\r\nx-rtm-ticket: {ticket}\r\nContent-Length: {}",
        data.len()
    );
    http(addr, &head, data).await
}

pub(crate) async fn download(addr: SocketAddr, ticket: &str, id: &str) -> Answer {
    let head = format!("GET /rtm/media/{id} HTTP/1.1\r\nx-rtm-ticket: {ticket}");
    http(addr, &head, b"").await
}

#[tokio::test]
async fn tickets_sizes_and_ids_are_checked_before_anything_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(config_in(dir.path())).await;
    let addr = server.addr();
    // media_ticket needs a login, like every op.
    let mut anonymous = raw::connect(&server.url()).await;
    assert_eq!(anonymous.code(json!({"op": "media_ticket"})).await, 102);
    let (_conn, ticket) = ticket(&server.url(), "alice").await;

    let no_ticket = upload(addr, "", b"hello").await;
    assert_eq!(no_ticket.status, 401);
    assert_eq!(no_ticket.json()["code"], "unauthorized");
    let forged = upload(addr, "0123456789abcdef0123456789abcdef", b"hello").await;
    assert_eq!(forged.status, 401);

    let chunked = http(
        addr,
        &format!(
            "POST /rtm/media HTTP/1.1\r\nx-rtm-ticket: {ticket}\r\nTransfer-Encoding: chunked"
        ),
        b"5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(chunked.status, 411);
    assert_eq!(chunked.json()["code"], "length_required");

    // 30 MiB and one byte, declared: refused at once, with no byte of the body sent.
    let head = format!(
        "POST /rtm/media HTTP/1.1\r\nx-rtm-ticket: {ticket}\r\nContent-Length: {}",
        MAX_MEDIA_BYTES + 1
    );
    let too_large = http(addr, &head, b"").await;
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json()["code"], "too_large");
    assert!(media_files(dir.path()).is_empty());

    // Exactly 30 MiB is taken.
    let most = pattern(MAX_MEDIA_BYTES as usize);
    let stored = upload(addr, &ticket, &most).await;
    let id = stored.media_id();
    assert_eq!(stored.json()["size"], MAX_MEDIA_BYTES);
    let got = download(addr, &ticket, &id).await;
    assert_eq!(got.status, 200);
    assert!(got.body == most, "the bytes served differ");

    for unknown in [
        "0123456789abcdef0123456789abcdef",
        "..%2F..%2Frtm.sqlite3",
        "x",
    ] {
        let answer = download(addr, &ticket, unknown).await;
        assert_eq!(answer.status, 404, "{unknown}");
        assert_eq!(answer.json()["code"], "unknown_media");
    }
    let without_ticket = download(addr, "", &id).await;
    assert_eq!(without_ticket.status, 401);
}

#[tokio::test]
async fn a_connection_broken_mid_upload_leaves_nothing_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(config_in(dir.path())).await;
    let (_conn, ticket) = ticket(&server.url(), "alice").await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /rtm/media HTTP/1.1\r\nHost: t\r\nx-rtm-ticket: {ticket}\r\nContent-Length: {}\r\n\r\n",
        4 * 1024 * 1024
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&pattern(1024 * 1024)).await.unwrap();
    wait_media_written(dir.path()).await;
    drop(tcp);
    wait_media_empty(dir.path()).await;
    // The quota's slot came back: the user's next upload is taken.
    let answer = upload(server.addr(), &ticket, b"after").await;
    assert_eq!(answer.status, 201);
}

#[tokio::test]
async fn expired_media_is_swept_and_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        media_expiry: Duration::from_secs(1),
        ..config_in(dir.path())
    };
    let server = start_server(config).await;
    let (_conn, ticket) = ticket(&server.url(), "alice").await;
    let id = upload(server.addr(), &ticket, b"short-lived")
        .await
        .media_id();
    assert_eq!(download(server.addr(), &ticket, &id).await.status, 200);
    // The sweeper removes the file from the data directory...
    wait_media_empty(dir.path()).await;
    // ...and the id is unknown from then on (a fresh ticket: the first one may be old).
    let (_conn, ticket) = self::ticket(&server.url(), "alice").await;
    let gone = download(server.addr(), &ticket, &id).await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn a_user_has_a_quota_of_bytes_per_hour() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        media_user_bytes_per_hour: 1000,
        ..config_in(dir.path())
    };
    let server = start_server(config).await;
    let (_conn, ticket) = ticket(&server.url(), "alice").await;
    assert_eq!(upload(server.addr(), &ticket, &[1; 600]).await.status, 201);
    let over = upload(server.addr(), &ticket, &[1; 600]).await;
    assert_eq!(over.status, 429);
    assert_eq!(over.json()["code"], "quota_exceeded");
    // Another user has a quota of its own.
    let (_bob, bobs) = self::ticket(&server.url(), "bob").await;
    assert_eq!(upload(server.addr(), &bobs, &[1; 600]).await.status, 201);
}

#[tokio::test]
async fn a_full_disk_is_a_clean_507_and_recovers() {
    let tmpfs = match crate::server_disk_full::Tmpfs::mount("6m") {
        Ok(mounted) => mounted,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_is_a_clean_507_and_recovers: needs a tmpfs: {why}");
            return;
        }
    };
    let data = tmpfs.path().join("data");
    let server = start_server(config_in(&data)).await;
    let (_conn, ticket) = ticket(&server.url(), "alice").await;
    // More than the disk has room for.
    let full = upload(server.addr(), &ticket, &pattern(8 * 1024 * 1024)).await;
    assert_eq!(full.status, 507, "{}", String::from_utf8_lossy(&full.body));
    assert_eq!(full.json()["code"], "storage_full");
    wait_media_empty(&data).await;
    // The server goes on, and with room again an upload is taken and served.
    let fits = pattern(1024 * 1024);
    let id = upload(server.addr(), &ticket, &fits).await.media_id();
    assert!(download(server.addr(), &ticket, &id).await.body == fits);
}

/// Uploads and downloads stream: a real `rtm-tui serve` process taking two 30 MiB
/// uploads at once, then serving both back, grows by far less than one file (its
/// resident memory sampled all the while).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_stream_in_bounded_memory() {
    use crate::support::server_process::ServerProcess;
    let dir = tempfile::tempdir().unwrap();
    let server = std::sync::Arc::new(ServerProcess::start(dir.path(), 0).await);
    let (_conn, ticket) = ticket(&server.url(), "alice").await;
    // Warm up: the first transfer's one-time allocations (tasks, buffers, the runtime).
    let warm = upload(server.addr, &ticket, &pattern(1024 * 1024))
        .await
        .media_id();
    assert_eq!(download(server.addr, &ticket, &warm).await.status, 200);
    let base = server.rss_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(base));
    let sampler = {
        let (server, peak) = (std::sync::Arc::clone(&server), std::sync::Arc::clone(&peak));
        tokio::spawn(async move {
            loop {
                peak.fetch_max(server.rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let big = pattern(MAX_MEDIA_BYTES as usize);
    let (a, b) = tokio::join!(
        upload(server.addr, &ticket, &big),
        upload(server.addr, &ticket, &big)
    );
    let (a, b) = (a.media_id(), b.media_id());
    let (got_a, got_b) = tokio::join!(
        download(server.addr, &ticket, &a),
        download(server.addr, &ticket, &b)
    );
    sampler.abort();
    assert!(
        got_a.body == big && got_b.body == big,
        "the bytes served differ"
    );
    let grown_kib = peak.load(std::sync::atomic::Ordering::Relaxed) - base;
    // 60 MiB went in and 60 MiB came out; holding one file would be 30 MiB.
    assert!(
        grown_kib < 12 * 1024,
        "the server grew by {grown_kib} KiB while moving two 30 MiB files"
    );
    eprintln!("two 30 MiB uploads and downloads at once: the server grew by {grown_kib} KiB");
}

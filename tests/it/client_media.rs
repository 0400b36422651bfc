//! Files and images through the client library against a real server on one node: a
//! 20 MiB file uploaded from a path, sent as a `file` message, downloaded by the
//! receiver to a path and to memory with the same bytes; an image with its thumbnail;
//! over 30 MiB refused before anything is sent; a cancelled upload leaves nothing on the
//! server, a cancelled download nothing beside its target; a server without media says so.

use std::path::Path;
use std::time::Duration;

use rtm::client::{
    ClientError, DownloadTarget, Downloaded, ImageInfo, MediaSource, Progress, SendOptions,
};
use rtm::protocol::limits::MAX_MEDIA_BYTES;
use rtm::protocol::{Event, MediaFailure, Message};
use rtm::server::{Config, StoreLocation};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use crate::support::client::{expect_server_event, fast_config, logged_in};
use crate::support::{start_server, WAIT};

/// Bytes that differ at every offset, so a misplaced chunk cannot pass.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}

/// A server keeping its data (and media) in `dir`.
pub fn config_in(dir: &Path) -> Config {
    Config {
        store: StoreLocation::Path(dir.to_path_buf()),
        ..Config::default()
    }
}

/// Every file under `dir/media` (temporary ones too).
pub fn media_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(apps) = std::fs::read_dir(dir.join("media")) else {
        return found;
    };
    for app in apps.flatten() {
        if let Ok(files) = std::fs::read_dir(app.path()) {
            found.extend(files.flatten().map(|f| f.path()));
        }
    }
    found
}

/// Waits (bounded) until `dir/media` holds no file at all.
pub async fn wait_media_empty(dir: &Path) {
    wait_media(dir, true, "still on the server").await;
}

/// Waits (bounded) until the server is writing a file under `dir/media` (a temporary
/// one, while an upload is under way).
pub async fn wait_media_written(dir: &Path) {
    wait_media(dir, false, "no upload on the server").await;
}

async fn wait_media(dir: &Path, empty: bool, failure: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let files = media_files(dir);
        if files.is_empty() == empty {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{failure} after {WAIT:?}: {files:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_file_goes_from_alice_to_bob_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(config_in(&dir.path().join("server"))).await;
    let (alice, _alice_events) = logged_in(fast_config(&server.url()), "alice").await;
    let (bob, mut bob_events) = logged_in(fast_config(&server.url()), "bob").await;
    let sent = pattern(20 * 1024 * 1024);
    let source = dir.path().join("app.log");
    std::fs::write(&source, &sent).unwrap();

    let upload = alice.upload_file(MediaSource::Path(source));
    let mut progress = upload.progress();
    let message = timeout(WAIT, upload.finish()).await.unwrap().unwrap();
    assert_eq!(
        *progress.borrow_and_update(),
        Progress {
            done: sent.len() as u64,
            total: sent.len() as u64
        }
    );
    let Message::File {
        media_id,
        name,
        size,
    } = &message
    else {
        panic!("a file message: {message:?}");
    };
    assert_eq!((name.as_str(), *size), ("app.log", sent.len() as u64));
    alice
        .send_message_to_peer("bob", message.clone(), SendOptions::default())
        .await
        .unwrap();
    let event = expect_server_event(&mut bob_events, "the file message", |e| {
        matches!(e, Event::MessageFromPeer { .. })
    })
    .await;
    let Event::MessageFromPeer { message: got, .. } = event else {
        unreachable!()
    };
    assert_eq!(got, message);

    let saved = dir.path().join("saved.log");
    let download = bob.download_media(media_id, DownloadTarget::Path(saved.clone()));
    let mut watch = download.progress();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while watch.changed().await.is_ok() {
            seen.push(*watch.borrow_and_update());
        }
        seen
    });
    let done = timeout(WAIT, download.finish()).await.unwrap().unwrap();
    assert_eq!(done, Downloaded::Path(saved.clone()));
    assert!(
        std::fs::read(&saved).unwrap() == sent,
        "the saved bytes differ"
    );
    let seen = watcher.await.unwrap();
    assert_eq!(seen.last().map(|p| p.done), Some(sent.len() as u64));
    // Nothing but the file itself beside it: the temporary file was renamed.
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".part-"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");

    let in_memory = bob.download_media(media_id, DownloadTarget::Memory);
    let Downloaded::Memory(bytes) = timeout(WAIT, in_memory.finish()).await.unwrap().unwrap()
    else {
        panic!("a download to memory");
    };
    assert!(bytes == sent, "the downloaded bytes differ");
    // The server counted them: 20 MiB in, twice that out.
    let metrics = http_get(server.addr(), "/metrics").await;
    let total = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert_eq!(total("rtm_media_bytes_in_total "), sent.len() as u64);
    assert_eq!(total("rtm_media_bytes_out_total "), 2 * sent.len() as u64);
}

#[tokio::test]
async fn an_image_carries_its_thumbnail_and_an_unknown_id_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(config_in(dir.path())).await;
    let (alice, _events) = logged_in(fast_config(&server.url()), "alice").await;
    let png = pattern(5000);
    let info = ImageInfo {
        width: 640,
        height: 480,
        thumbnail: vec![9; 1000],
        thumbnail_width: 96,
        thumbnail_height: 72,
    };
    let source = MediaSource::Bytes {
        name: "shot.png".into(),
        data: png.clone(),
    };
    let message = alice.upload_image(source, info).finish().await.unwrap();
    assert!(message.validate().is_ok());
    assert_eq!(message.thumbnail_bytes(), Some(vec![9; 1000]));
    let Message::Image {
        media_id,
        width,
        height,
        size,
        ..
    } = &message
    else {
        panic!("an image message: {message:?}");
    };
    assert_eq!((*width, *height, *size), (640, 480, 5000));
    let got = alice.download_media(media_id, DownloadTarget::Memory);
    assert_eq!(got.finish().await.unwrap(), Downloaded::Memory(png));

    for unknown in ["0123456789abcdef0123456789abcdef", "not-one-of-ours"] {
        let error = alice
            .download_media(unknown, DownloadTarget::Memory)
            .finish()
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Media {
                    failure: MediaFailure::UnknownMedia,
                    ..
                }
            ),
            "{error}"
        );
    }
    // An id of another app is unknown too.
    let mut other = fast_config(&server.url());
    other.app_id = "other".into();
    let (stranger, _events) = logged_in(other, "alice").await;
    let error = stranger
        .download_media(media_id, DownloadTarget::Memory)
        .finish()
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        ClientError::Media {
            failure: MediaFailure::UnknownMedia,
            ..
        }
    ));
}

#[tokio::test]
async fn over_30_mib_is_refused_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(config_in(dir.path())).await;
    let (alice, _events) = logged_in(fast_config(&server.url()), "alice").await;
    let data = vec![0u8; MAX_MEDIA_BYTES as usize + 1];
    let source = MediaSource::Bytes {
        name: "big.bin".into(),
        data,
    };
    let error = alice.upload_file(source).finish().await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Media {
                failure: MediaFailure::TooLarge,
                ..
            }
        ),
        "{error}"
    );
    // Not even a ticket was asked for: the server counted no media call.
    let metrics = http_get(server.addr(), "/metrics").await;
    assert!(!metrics.contains("media_upload"), "{metrics}");
}

/// The body of `GET path` (a plain HTTP/1.1 request, read to the close).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    timeout(WAIT, tcp.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

/// A TCP proxy in front of `upstream` that carries at most about 2 MB a second each way,
/// so a transfer is still under way when the test acts on it.
async fn slow_proxy(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::select! {
                    () = trickle(in_read, out_write) => {},
                    () = trickle(out_read, in_write) => {},
                }
            });
        }
    });
    addr
}

/// Copies 16 KiB every 8 ms until either side closes.
async fn trickle(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
}

/// Cancel mid-upload through a slow link: the chat socket stays quick meanwhile, and the
/// server keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_upload_leaves_nothing_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(config_in(dir.path())).await;
    let proxy = slow_proxy(server.addr()).await;
    let url = format!("ws://{proxy}/rtm/v1");
    let (alice, _events) = logged_in(fast_config(&url), "alice").await;
    let source = MediaSource::Bytes {
        name: "app.log".into(),
        data: pattern(20 * 1024 * 1024),
    };
    let upload = alice.upload_file(source);
    let mut progress = upload.progress();
    timeout(WAIT, progress.wait_for(|p| p.done >= 2 * 1024 * 1024))
        .await
        .expect("the upload gets under way")
        .unwrap();
    wait_media_written(dir.path()).await;
    // The chat connection is not held up by the upload on its own connection: pings
    // (each a round trip through the same slow link) come back at once.
    for _ in 0..5 {
        let began = std::time::Instant::now();
        alice.ping().await.unwrap();
        let took = began.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "a ping took {took:?} during the upload"
        );
    }
    assert!(
        upload.progress().borrow().done < 20 * 1024 * 1024,
        "still under way"
    );
    upload.cancel();
    let result = timeout(WAIT, upload.finish()).await.unwrap();
    assert_eq!(result, Err(ClientError::Cancelled));
    wait_media_empty(dir.path()).await;
    // And the user may upload again at once (its slot was given back).
    let small = MediaSource::Bytes {
        name: "a.txt".into(),
        data: b"hello".to_vec(),
    };
    assert!(alice.upload_file(small).finish().await.is_ok());
}

#[tokio::test]
async fn a_server_without_media_says_so() {
    let config = Config {
        media: false,
        ..crate::support::test_config()
    };
    let server = start_server(config).await;
    let (alice, _events) = logged_in(fast_config(&server.url()), "alice").await;
    let source = MediaSource::Bytes {
        name: "a.txt".into(),
        data: b"hi".to_vec(),
    };
    let error = alice.upload_file(source).finish().await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Media {
                failure: MediaFailure::NotSupported,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_download_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(config_in(&dir.path().join("server"))).await;
    let (alice, _events) = logged_in(fast_config(&server.url()), "alice").await;
    let source = MediaSource::Bytes {
        name: "app.log".into(),
        data: pattern(20 * 1024 * 1024),
    };
    let message = alice.upload_file(source).finish().await.unwrap();
    // Bob reaches the server through a slow link.
    let proxy = slow_proxy(server.addr()).await;
    let (bob, _events) = logged_in(fast_config(&format!("ws://{proxy}/rtm/v1")), "bob").await;
    let target = dir.path().join("app.log");
    let download = bob.download_media(
        message.media_id().unwrap(),
        DownloadTarget::Path(target.clone()),
    );
    let mut progress = download.progress();
    timeout(WAIT, progress.wait_for(|p| p.done >= 1024 * 1024))
        .await
        .expect("the download gets under way")
        .unwrap();
    let partial: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".app.log.part-"))
        .collect();
    assert_eq!(partial.len(), 1, "a temporary file beside the target");
    download.cancel();
    assert_eq!(
        timeout(WAIT, download.finish()).await.unwrap(),
        Err(ClientError::Cancelled)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "server")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// An upload that takes longer than an HTTP connection's life (shortened here to 1 s, with
/// 2 s for the call in progress) is not cut while its bytes keep moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_outlives_the_connection_life() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        http_connection_life: Duration::from_secs(1),
        login_timeout: Duration::from_secs(1),
        ack_timeout: Duration::from_secs(1),
        ..config_in(dir.path())
    };
    let server = start_server(config).await;
    let proxy = slow_proxy(server.addr()).await;
    let (alice, _events) = logged_in(fast_config(&format!("ws://{proxy}/rtm/v1")), "alice").await;
    // About 4 s through the slow link.
    let data = pattern(8 * 1024 * 1024);
    let source = MediaSource::Bytes {
        name: "slow.bin".into(),
        data: data.clone(),
    };
    let began = std::time::Instant::now();
    let message = timeout(WAIT, alice.upload_file(source).finish())
        .await
        .unwrap()
        .expect("the upload completes");
    assert!(
        began.elapsed() > Duration::from_secs(3),
        "the link was not slow: {:?}",
        began.elapsed()
    );
    let got = alice.download_media(message.media_id().unwrap(), DownloadTarget::Memory);
    assert_eq!(got.finish().await.unwrap(), Downloaded::Memory(data));
}

/// More transfers in a minute than tickets a user may ask for (60): the client reuses
/// its ticket while it is young, so none is refused.
#[tokio::test]
async fn a_burst_of_transfers_shares_a_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(config_in(dir.path())).await;
    let (alice, _events) = logged_in(fast_config(&server.url()), "alice").await;
    for i in 0..70u8 {
        let source = MediaSource::Bytes {
            name: format!("{i}.txt"),
            data: vec![i; 10],
        };
        let message = alice.upload_file(source).finish().await.unwrap();
        let got = alice.download_media(message.media_id().unwrap(), DownloadTarget::Memory);
        assert_eq!(got.finish().await.unwrap(), Downloaded::Memory(vec![i; 10]));
    }
}

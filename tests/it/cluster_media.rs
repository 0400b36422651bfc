//! Files and images on several nodes (real `rtm-tui serve` processes on two real Redis
//! servers): a media id uploaded on one node downloads on the other, byte for byte; the
//! files live in Redis with their 7-day expiry, each on one Redis of the two; an upload
//! whose connection breaks leaves no key behind; Redis out of memory is a clean 507.

use std::net::SocketAddr;
use std::time::Duration;

use rtm::client::{DownloadTarget, Downloaded, MediaSource, SendOptions};
use rtm::protocol::{Event, Message};
use tokio::io::AsyncWriteExt as _;
use tokio::time::timeout;

use crate::client_media::pattern;
use crate::server_media::{ticket, upload};
use crate::support::client::{expect_server_event, fast_config, logged_in};
use crate::support::cluster::{Cluster, Redis};
use crate::support::WAIT;

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("ws://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("an address in {url}"))
}

/// The keys of `pattern` on `redis`.
async fn keys(redis: &Redis, pattern: &str) -> Vec<String> {
    let reply = redis.command(&["KEYS", pattern]).await;
    reply
        .lines()
        .map(str::to_string)
        .filter(|k| !k.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_on_one_node_downloads_on_another() {
    let cluster = Cluster::start_sharded(2, 2, &[]).await;
    let (alice, _alice_events) = logged_in(fast_config(&cluster.url(0)), "alice").await;
    let (bob, mut bob_events) = logged_in(fast_config(&cluster.url(1)), "bob").await;
    let sent = pattern(20 * 1024 * 1024);
    let source = MediaSource::Bytes {
        name: "app.log".into(),
        data: sent.clone(),
    };
    let message = timeout(WAIT, alice.upload_file(source).finish())
        .await
        .unwrap()
        .unwrap();
    alice
        .send_message_to_peer("bob", message.clone(), SendOptions::default())
        .await
        .unwrap();
    let Event::MessageFromPeer { message: got, .. } =
        expect_server_event(&mut bob_events, "the file message", |e| {
            matches!(e, Event::MessageFromPeer { .. })
        })
        .await
    else {
        unreachable!()
    };
    let Message::File { media_id, .. } = got else {
        panic!("a file message: {got:?}");
    };
    let download = bob.download_media(&media_id, DownloadTarget::Memory);
    let Downloaded::Memory(bytes) = timeout(WAIT, download.finish()).await.unwrap().unwrap() else {
        panic!("a download to memory");
    };
    assert!(
        bytes == sent,
        "the bytes downloaded on the other node differ"
    );

    // A few more, to see where they live: each file on one Redis, with its expiry.
    for i in 0..4 {
        let source = MediaSource::Bytes {
            name: format!("{i}.txt"),
            data: vec![b'x'; 1000 + i],
        };
        alice.upload_file(source).finish().await.unwrap();
    }
    let mut stored = Vec::new();
    for redis in std::iter::once(&cluster.redis).chain(&cluster.shards) {
        for key in keys(redis, "rtm:media:demo:*").await {
            let ttl: u64 = redis
                .command(&["PTTL", &key])
                .await
                .trim_start_matches(':')
                .parse()
                .unwrap();
            let week = 7 * 24 * 3600 * 1000;
            assert!(ttl > week - 60_000 && ttl <= week, "{key}: PTTL {ttl}");
            stored.push(key);
        }
        assert!(keys(redis, "rtm:media:tmp:*").await.is_empty());
    }
    assert_eq!(stored.len(), 5, "{stored:?}");
    assert!(stored.contains(&format!("rtm:media:demo:{media_id}")));
}

#[tokio::test]
async fn an_upload_broken_on_a_node_leaves_no_key() {
    let cluster = Cluster::start(1).await;
    let url = cluster.url(0);
    let (_conn, ticket) = ticket(&url, "alice").await;
    let mut tcp = tokio::net::TcpStream::connect(addr_of(&url)).await.unwrap();
    let head = format!(
        "POST /rtm/media HTTP/1.1\r\nHost: t\r\nx-rtm-ticket: {ticket}\r\nContent-Length: {}\r\n\r\n",
        4 * 1024 * 1024
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&pattern(1024 * 1024)).await.unwrap();
    let redis = &cluster.redis;
    let deadline = tokio::time::Instant::now() + WAIT;
    while keys(redis, "rtm:media:tmp:*").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no upload under way"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(tcp);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !keys(redis, "rtm:media:*").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "keys left: {:?}",
            keys(redis, "rtm:media:*").await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The node goes on taking uploads.
    assert_eq!(upload(addr_of(&url), &ticket, b"after").await.status, 201);
    // Redis out of memory (maxmemory reached, no eviction): a clean 507, nothing kept.
    assert_eq!(
        redis.command(&["CONFIG", "SET", "maxmemory", "1"]).await,
        "+OK"
    );
    let full = upload(addr_of(&url), &ticket, &pattern(1024 * 1024)).await;
    assert_eq!(
        redis.command(&["CONFIG", "SET", "maxmemory", "0"]).await,
        "+OK"
    );
    assert_eq!(full.status, 507, "{}", String::from_utf8_lossy(&full.body));
    assert_eq!(full.json()["code"], "storage_full");
    assert!(keys(redis, "rtm:media:tmp:*").await.is_empty());
}

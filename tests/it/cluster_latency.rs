//! A node whose Redis is far away (a proxy on loopback that holds every chunk for a
//! while, each way): a request that waits on Redis takes round trips, and what a client
//! sends meanwhile must still be counted when it arrived. Real `redis-server`, a real
//! `rtm-tui serve` node, raw protocol connections; every wait has a bound.

use std::time::Duration;

use crate::support::cluster::{Node, Redis};
use crate::support::raw::{self, expect_reply};
use rtm::qa::raw::code_of;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the proxy holds each chunk, each way.
const ONE_WAY: Duration = Duration::from_millis(30);

/// A TCP proxy on 127.0.0.1 in front of `upstream` that delivers every chunk `delay`
/// after it came, in order, each way (latency, not a slower link); its port.
async fn latency_proxy(upstream: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(delayed(client_read, server_write, delay));
            tokio::spawn(delayed(server_read, client_write, delay));
        }
    });
    port
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
async fn delayed(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (chunks, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buffer = vec![0; 64 * 1024];
    while let Ok(read) = from.read(&mut buffer).await {
        if read == 0
            || chunks
                .send((Instant::now() + delay, buffer[..read].to_vec()))
                .is_err()
        {
            break;
        }
    }
    drop(chunks);
    let _ = writer.await;
}

#[tokio::test]
async fn a_burst_of_joins_meets_the_join_limit_however_far_redis_is() {
    let redis = Redis::start().await;
    let port = latency_proxy(redis.port(), ONE_WAY).await;
    let node = Node::start(&format!("redis://127.0.0.1:{port}"), "far", &[]).await;
    let mut alice = raw::login(&node.url(), "latency", "alice").await;
    // 55 pipelined join/leave pairs: each join and leave waits for Redis (two round trips
    // of 60 ms at least), so handled one after the other they take over 6 s, twice the
    // join limit's 3 s window; sent at once, they all arrive within it.
    let started = Instant::now();
    let mut joins = Vec::new();
    let mut leaves = Vec::new();
    for n in 0..55 {
        let channel = format!("far-{n}");
        joins.push(
            alice
                .start(json!({"op": "join", "channel": channel}))
                .unwrap(),
        );
        leaves.push(
            alice
                .start(json!({"op": "leave", "channel": channel}))
                .unwrap(),
        );
    }
    let mut codes = Vec::new();
    for join in joins {
        codes.push(code_of(&expect_reply(join).await));
    }
    for leave in leaves {
        expect_reply(leave).await;
    }
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "the burst must take longer than the window for this test to mean anything"
    );
    assert_eq!(
        codes,
        [vec![0; 50], vec![7; 5]].concat(),
        "the first 50 joins are answered 0, the 5 past the limit 7 (too often)"
    );
}

//! The attacks of the second hardening pass, each against a real `rtm-tui serve` process:
//! clients that flood before login and never read (memory from /proc, others' round
//! trips), tokens valid for years, timer and cap settings out of range, history bounds
//! past 2^53, messages whose event would pass the object cap, one address taking every
//! slot, and (through `check`'s `hardening.` cases) RFC 6455's close codes and history
//! pages within 64 KiB. The figures they print are the README's.

use std::time::{Duration, Instant};

use crate::support::raw::{self, Expect};
use crate::support::server_process::ServerProcess;
use crate::support::{check_passes, rtm_tui, text, WAIT};
use rtm::qa::check::RawSocket;
use rtm::token::{build_rtm_token_007, unix_now};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const APP: &str = "demo";

/// Taken by the tests that measure memory and latency under an attack, so that two
/// attacks never share the test box's two cores (and each other's figures).
static ATTACK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const SECURE_APP: &str = "970CA35de60c44645bbae8a215061b33";
const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";

/// A server on any port with a temporary store and `args` besides.
async fn serve(args: &[&str]) -> ServerProcess {
    let mut all = vec!["--listen", "127.0.0.1:0", "--ephemeral"];
    all.extend_from_slice(args);
    ServerProcess::start_with(&all).await
}

/// A config file with `text` in a directory that lives as long as the returned guard.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serve.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

#[tokio::test]
async fn the_check_cases_of_a_hostile_client_pass() {
    let server = serve(&[]).await;
    let url = server.url();
    check_passes(
        &["check", "--server", &url, "--filter", "hardening."],
        Duration::from_secs(60),
    )
    .await;
}

/// The masked text frame of `count` pings (ids from `first`), about 24 bytes each.
fn pings_frame(first: usize, count: usize) -> Vec<u8> {
    let pings: Vec<String> = (first..first + count)
        .map(|id| format!("{{\"id\":{id},\"op\":\"ping\"}}"))
        .collect();
    RawSocket::frame(0x81, pings.join("\n").as_bytes(), true)
}

/// What an attack did to the server: RSS (MiB) at its peak and once the attackers were
/// gone, and a logged-in user's round trips meanwhile.
struct Figures {
    peak: u64,
    after: u64,
    /// The 95th percentile (one late wake-up of a busy test box is not the server's doing).
    p95: Duration,
    slowest: Duration,
}

impl Figures {
    fn check(&self, what: &str) {
        eprintln!(
            "{what}: RSS peak {} MiB, {} MiB after; another user's round trips: 95% under \
             {} ms, slowest {} ms",
            self.peak,
            self.after,
            self.p95.as_millis(),
            self.slowest.as_millis()
        );
        assert!(self.peak < 300, "RSS peaked at {} MiB", self.peak);
        assert!(self.after < 100, "RSS stayed at {} MiB after", self.after);
        assert!(
            self.p95 < Duration::from_millis(500),
            "round trips: {:?}",
            self.p95
        );
    }
}

/// Runs `attack` for `attack_for` while a logged-in user pings every 50 ms, then waits
/// up to 10 s for the RSS to go under `settled_mib` once the attackers are gone.
async fn measure<F>(
    server: &ServerProcess,
    watcher: &mut rtm::qa::raw::RawConn,
    attack_for: Duration,
    settled_mib: u64,
    attack: F,
) -> Figures
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let attackers = tokio::spawn(attack);
    let started = Instant::now();
    let mut peak = 0;
    let mut round_trips = Vec::new();
    while started.elapsed() < attack_for {
        let sent = Instant::now();
        watcher.ok(json!({"op": "ping"})).await;
        round_trips.push(sent.elapsed());
        peak = peak.max(server.rss_kib() >> 10);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    attackers.abort();
    let _ = attackers.await;
    let settling = Instant::now();
    let mut after = server.rss_kib() >> 10;
    while after >= settled_mib && settling.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = server.rss_kib() >> 10;
    }
    round_trips.sort();
    Figures {
        peak,
        after,
        p95: round_trips[round_trips.len() * 95 / 100],
        slowest: round_trips[round_trips.len() - 1],
    }
}

/// Issue 19's first attack: 12 connections that never log in (half of them try an app
/// with a certificate without a token) and never read, each sending 1 MiB frames of
/// 40,000 pings and reconnecting when closed, for 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_flooders_leave_memory_bounded() {
    let _alone = ATTACK.lock().await;
    let secure = format!("{SECURE_APP}:{CERT}");
    let server = serve(&["--app", APP, "--app", &secure]).await;
    let before = server.rss_kib() >> 10;
    let mut watcher = raw::login(&server.url(), APP, "watcher").await;
    let url = server.url();
    let flood = async move {
        let frame = pings_frame(1, 40_000);
        let login = serde_json::to_vec(
            &json!({"id": 1, "op": "login", "app_id": SECURE_APP, "user": "intruder"}),
        )
        .unwrap();
        let login = RawSocket::frame(0x81, &login, true);
        let mut flooders = tokio::task::JoinSet::new();
        for n in 0..12 {
            let (url, frame, login) = (url.clone(), frame.clone(), login.clone());
            flooders.spawn(async move {
                loop {
                    let Ok(mut socket) = RawSocket::open(&url).await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    if n % 2 == 1 && !socket.send(&login).await {
                        continue;
                    }
                    while socket.send(&frame).await {}
                }
            });
        }
        while flooders.join_next().await.is_some() {}
    };
    eprintln!("RSS before the attack: {before} MiB");
    measure(&server, &mut watcher, Duration::from_secs(10), 100, flood)
        .await
        .check("12 unauthenticated flooders, 10 s");
}

/// Logged-in clients that send pings without reading: reading them pauses while their
/// outbox is over its bound, so their answers cannot take the server's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_flooders_that_do_not_read_are_bounded() {
    let _alone = ATTACK.lock().await;
    let server = serve(&["--app", APP]).await;
    let mut watcher = raw::login(&server.url(), APP, "watcher").await;
    let url = server.url();
    let flood = async move {
        let frame = pings_frame(2, 40_000);
        let mut flooders = tokio::task::JoinSet::new();
        for n in 0..4 {
            let (url, frame) = (url.clone(), frame.clone());
            flooders.spawn(async move {
                let Ok(mut socket) = RawSocket::open(&url).await else {
                    return;
                };
                let login =
                    json!({"id": 1, "op": "login", "app_id": APP, "user": format!("flooder{n}")});
                if !socket
                    .send(&RawSocket::frame(0x81, login.to_string().as_bytes(), true))
                    .await
                {
                    return;
                }
                while socket.send(&frame).await {}
            });
        }
        while flooders.join_next().await.is_some() {}
    };
    measure(&server, &mut watcher, Duration::from_secs(6), 100, flood)
        .await
        .check("4 logged-in ping flooders that never read, 6 s");
}

/// Issue 19's third attack: a token valid for about 3 years logged in with a panic (the
/// timer wheel's limit is about 2.2 years), and `renew_token` with one dropped the
/// connection. Now both answer 0 and the session works on.
#[tokio::test]
async fn a_token_valid_for_years_logs_in_and_renews() {
    let secure = format!("{SECURE_APP}:{CERT}");
    let server = serve(&["--app", &secure]).await;
    let three_years = 3 * 365 * 24 * 3600;
    let token =
        |user: &str| build_rtm_token_007(SECURE_APP, CERT, user, 7, unix_now() as u32, three_years);
    let mut alice = raw::connect(&server.url()).await;
    let reply = alice
        .ok(json!({"op": "login", "app_id": SECURE_APP, "user": "alice", "token": token("alice")}))
        .await;
    assert!(
        reply["token_expires_at"]
            .as_u64()
            .is_some_and(|at| at > unix_now() + 2 * 365 * 24 * 3600),
        "{reply}"
    );
    alice
        .ok(json!({"op": "renew_token", "token": token("alice")}))
        .await;
    let mut bob = raw::connect(&server.url()).await;
    bob.ok(json!({"op": "login", "app_id": SECURE_APP, "user": "bob", "token": token("bob")}))
        .await;
    let pending = bob
        .start(json!({"op": "send_peer", "to": "alice", "message": text("still here")}))
        .unwrap();
    let event = alice.expect_event("message_from_peer").await;
    alice.ack(event["message_id"].as_u64().unwrap());
    assert_eq!(raw::expect_reply(pending).await["code"], 0);
}

/// Issue 19's fourth attack: settings that made a server panic at its first use, or
/// refuse everyone, now stop `serve` at start with a message naming them.
#[tokio::test]
async fn settings_out_of_range_stop_the_start_with_a_clear_message() {
    let bound = Duration::from_secs(20);
    for (flag, value, named) in [
        ("--grace", "100000000", "grace"),
        ("--ack-timeout", "100000000", "ack_timeout"),
    ] {
        let run = rtm_tui(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ephemeral",
                flag,
                value,
            ],
            bound,
        )
        .await;
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{flag}: {stderr}");
        assert!(
            stderr.contains(named) && stderr.contains("at most"),
            "{flag}: {stderr}"
        );
    }
    for setting in ["login_timeout_secs", "max_connections", "outbox_max_mib"] {
        let (_dir, path) = config_file(&format!("[limits]\n{setting} = 0\n"));
        let run = rtm_tui(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ephemeral",
                "--config",
                &path,
            ],
            bound,
        )
        .await;
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{setting}: {stderr}");
        assert!(stderr.contains(setting), "{setting}: {stderr}");
    }
}

/// Issue 19's fifth and seventh attacks, the parts `check` does not cover: history bounds
/// past 2^53 were read modulo 2^64, and a message whose event would pass the 64 KiB
/// object cap was delivered.
#[tokio::test]
async fn ids_and_message_sizes_are_checked() {
    let server = serve(&[]).await;
    let mut alice = raw::login(&server.url(), APP, "alice").await;
    let mut bob = raw::login(&server.url(), APP, "bob").await;
    let cached =
        json!({"op": "send_peer", "to": "carol", "message": text("hello"), "offline": true});
    assert_eq!(bob.code(cached).await, 4);
    for bounds in [json!({"before": 1u64 << 63}), json!({"after": u64::MAX})] {
        let mut op = json!({"op": "history", "peer": "carol"});
        op.as_object_mut()
            .unwrap()
            .extend(bounds.as_object().unwrap().clone());
        assert_eq!(bob.code(op.clone()).await, 2, "{op}");
    }
    // 32,700 quotes: within the 32 KiB of text, but 65,400 bytes as JSON, so its event
    // (sender, id, timestamp) would pass the 64 KiB object cap.
    let quotes = "\"".repeat(32_700);
    assert_eq!(
        bob.code(json!({"op": "send_peer", "to": "alice", "message": text(&quotes)}))
            .await,
        7
    );
    alice.ok(json!({"op": "join", "channel": "c"})).await;
    assert_eq!(
        alice
            .code(json!({"op": "send_channel", "channel": "c", "message": text(&quotes)}))
            .await,
        4
    );
    alice.assert_no_event("message_from_peer").await;
}

/// Issue 19's sixth attack: silent sockets from one address kept every other user out,
/// and a refused connection got a bare TCP close. Now one address has at most
/// `max_connections_per_address`, and a refused connection gets an HTTP 503.
#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let (_dir, path) = config_file(
        "[limits]\nmax_connections = 40\nmax_connections_per_address = 10\nloopback_exempt = false\n",
    );
    let server = serve(&["--config", &path]).await;
    let addr = server.addr;
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // One more from the same address: answered 503 (after its request, as a client sends).
    let mut refused = tokio::net::TcpStream::connect(addr).await.unwrap();
    refused
        .write_all(b"GET /rtm/v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, refused.read_to_end(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // Real users from another address get in.
    for n in 0..5 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(
            server.url(),
            tokio_tungstenite::MaybeTlsStream::Plain(tcp),
        )
        .await
        .expect("admitted");
        let mut user = raw::from_socket(ws);
        user.login(APP, &format!("user{n}")).await;
    }
    drop(silent);
}

/// Issue 19's second attack: ten connections within the rate limits, each sending 32 KiB
/// offline messages to ids never seen (a new sender every 180 messages), for 15 s. The
/// offline cache's quotas (server-wide, per sender) answer 3 once spent, so the server's
/// memory grows by less than 100 MiB, and so does a restart that loads the cache again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_spammers_meet_the_cache_quotas() {
    let _alone = ATTACK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), 0).await;
    let before = server.rss_kib() >> 10;
    let url = server.url();
    let body = "x".repeat(32_000);
    let mut spammers = tokio::task::JoinSet::new();
    for n in 0..10 {
        let (url, body) = (url.clone(), body.clone());
        spammers.spawn(async move {
            let started = Instant::now();
            let (mut cached, mut refused) = (0, 0);
            let mut round = 0;
            while started.elapsed() < Duration::from_secs(15) {
                let window = Instant::now();
                let mut spammer = raw::login(&url, APP, &format!("spam{n}-{round}")).await;
                let mut replies = Vec::new();
                for m in 0..180 {
                    let to = format!("never-seen-{n}-{round}-{m}");
                    let op = json!({"op": "send_peer", "to": to, "message": text(&body), "offline": true});
                    replies.push(spammer.start(op).unwrap());
                }
                for reply in replies {
                    match raw::expect_reply(reply).await["code"].as_u64() {
                        Some(4) => cached += 1,
                        Some(3) => refused += 1,
                        other => panic!("a cached send answered {other:?}"),
                    }
                }
                // Within the rate limit: 180 per 3 s.
                tokio::time::sleep_until((window + Duration::from_secs(3)).into()).await;
                round += 1;
            }
            (cached, refused)
        });
    }
    let mut peak = before;
    let (mut cached, mut refused) = (0, 0);
    loop {
        tokio::select! {
            done = spammers.join_next() => match done {
                Some(counts) => {
                    let (c, r) = counts.expect("spammer");
                    cached += c;
                    refused += r;
                }
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                peak = peak.max(server.rss_kib() >> 10);
            }
        }
    }
    let after = server.rss_kib() >> 10;
    server.kill9().await;
    let restarted = ServerProcess::start(dir.path(), 0).await;
    // Serving once the store is open and the cache loaded (the listening line comes first).
    let reopening = Instant::now();
    while rtm::qa::raw::RawConn::connect(&restarted.url(), "probe", None)
        .await
        .is_err()
    {
        assert!(
            reopening.elapsed() < Duration::from_secs(60),
            "the restarted server serves"
        );
    }
    raw::login(&restarted.url(), APP, "someone").await;
    let loaded = restarted.rss_kib() >> 10;
    // What the load itself used and freed goes back within about a second (jemalloc).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reloaded = restarted.rss_kib() >> 10;
    eprintln!("RSS right after the restart's load: {loaded} MiB");
    eprintln!(
        "10 offline spammers, 15 s: {cached} answered 4, {refused} answered 3; RSS {before} \
         MiB before, peak {peak} MiB, {after} MiB after; {reloaded} MiB after a restart"
    );
    assert!(
        cached > 0 && refused > 0,
        "{cached} cached, {refused} refused"
    );
    assert!(peak - before < 100, "RSS grew from {before} to {peak} MiB");
    assert!(reloaded < 100, "RSS after a restart: {reloaded} MiB");
}

/// Issue 19's first attack, its other half: 600 connections that never log in, each
/// parking a nearly complete 1 MiB frame, held 642 MB for 10 s. Before login a
/// connection may send 96 KiB, so each holds at most that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_parking_a_large_frame_before_login_hold_little() {
    let _alone = ATTACK.lock().await;
    let server = serve(&[]).await;
    let before = server.rss_kib() >> 10;
    // The header of a masked 1 MiB text frame, then 1 MiB less a little of its payload.
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    let payload = vec![b' '; (1 << 20) - 100];
    let url = server.url();
    let mut parking = tokio::task::JoinSet::new();
    for _ in 0..600 {
        let (url, header, payload) = (url.clone(), header.clone(), payload.clone());
        parking.spawn(async move {
            let mut socket = RawSocket::open(&url).await.expect("handshake");
            // The server stops reading (and closes) at its pre-login allowance: the write
            // then blocks or fails, so it is bounded in time.
            let write = async { socket.send(&header).await && socket.send(&payload).await };
            let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
            socket
        });
    }
    let mut parked = Vec::new();
    let mut peak = before;
    loop {
        tokio::select! {
            done = parking.join_next() => match done {
                Some(socket) => parked.push(socket.expect("parking task")),
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                peak = peak.max(server.rss_kib() >> 10);
            }
        }
    }
    peak = peak.max(server.rss_kib() >> 10);
    eprintln!(
        "600 connections parking a 1 MiB frame before login: RSS {before} MiB before, \
         peak {peak} MiB"
    );
    assert!(peak < 150, "RSS {peak} MiB with 600 parked frames");
    let mut watcher = raw::login(&server.url(), APP, "watcher").await;
    watcher.ok(json!({"op": "ping"})).await;
    drop(parked);
}

/// The offline cache's quotas on the Redis engine: they are judged on the shared state, so
/// a sender on one node finds the server-wide quota spent by senders on another, and
/// the messages answered 4 are delivered at login on either node.
#[tokio::test]
async fn the_offline_quotas_hold_across_nodes() {
    let (_dir, path) = config_file("[limits]\noffline_max_mib = 1\noffline_per_sender_kib = 256\n");
    let cluster = crate::support::cluster::Cluster::start_with(2, &["--config", &path]).await;
    let body = "x".repeat(30_000);
    let mut answers: Vec<(String, u64, String)> = Vec::new();
    // Senders take turns over the two nodes, 10 messages each, to one receiver each.
    for sender in 0..6 {
        let mut conn = raw::login(&cluster.url(sender % 2), APP, &format!("sender{sender}")).await;
        for _ in 0..10 {
            let to = format!("receiver{sender}");
            let op = json!({"op": "send_peer", "to": to, "message": text(&body), "offline": true});
            let reply = conn.request(op).await;
            let code = reply["code"].as_u64().unwrap();
            answers.push((to, code, reply["reason"].as_str().unwrap_or("").to_string()));
        }
    }
    let cached = answers.iter().filter(|(_, code, _)| *code == 4).count();
    let per_sender = answers
        .iter()
        .filter(|(_, _, why)| why.contains("your share"))
        .count();
    let server_full = answers
        .iter()
        .filter(|(_, _, why)| why.contains("server's"))
        .count();
    assert_eq!(
        cached + per_sender + server_full,
        answers.len(),
        "{answers:?}"
    );
    // 256 KiB hold 8 messages of 30 KB; 1 MiB about 34, so the last senders hit it.
    assert!(per_sender > 0 && server_full > 0, "{answers:?}");
    assert!((30..=36).contains(&cached), "{cached} cached: {answers:?}");
    // The first receiver collects its 8 on the other node.
    let mut receiver = raw::connect(&cluster.url(1)).await;
    receiver
        .ok(json!({"op": "login", "app_id": APP, "user": "receiver0"}))
        .await;
    for _ in 0..8 {
        let event = receiver.expect_event("message_from_peer").await;
        assert_eq!(event["offline"], true);
    }
}

/// The whole server's offline quota counts every app its judge holds, and every node
/// honours one verdict: node 1 holds a full cache in another app, node 2 holds only the
/// receiver's app. A message node 1 refuses (3, the server's cache is full) is not cached
/// behind its sender's back by node 2, whose own sum would have had room: the receiver
/// logging in there gets nothing.
#[tokio::test]
async fn a_refused_offline_message_is_cached_by_no_node() {
    let (_dir, path) = config_file("[limits]\noffline_max_mib = 1\n");
    let cluster = crate::support::cluster::Cluster::start_with(2, &["--config", &path]).await;
    let body = "x".repeat(30_000);
    let send =
        |to: &str| json!({"op": "send_peer", "to": to, "message": text(&body), "offline": true});
    // Node 2 serves the receiver's app (one idle user), not the filler's.
    let mut idle = raw::login(&cluster.url(1), APP, "idle").await;
    // Node 1 fills the whole cache from another app (1 MiB holds about 34 messages).
    let mut filler = raw::login(&cluster.url(0), "filler-app", "filler").await;
    let mut cached = 0;
    loop {
        let reply = filler.request(send("away")).await;
        match reply["code"].as_u64() {
            Some(4) => cached += 1,
            Some(3) => {
                assert!(
                    reply["reason"].as_str().unwrap_or("").contains("server's"),
                    "{reply}"
                );
                break;
            }
            _ => panic!("unexpected answer after {cached} cached: {reply}"),
        }
        assert!(cached < 40, "1 MiB never filled");
    }
    // The receiver's app, from node 1: refused for the whole cache...
    let mut sender = raw::login(&cluster.url(0), APP, "sender").await;
    let reply = sender.request(send("sleeper")).await;
    assert_eq!(reply["code"], 3, "{reply}");
    assert!(
        reply["reason"].as_str().unwrap_or("").contains("server's"),
        "{reply}"
    );
    // ...and so on node 2 too: the receiver logs in there and, by the time a request
    // after its login is answered (a backlog comes right behind the login reply), has
    // been given nothing.
    let mut sleeper = raw::login(&cluster.url(1), APP, "sleeper").await;
    sleeper.ok(json!({"op": "ping"})).await;
    let given: Vec<_> = sleeper
        .take_events(|event| event["event"] == "message_from_peer")
        .iter()
        .map(|event| (event["from"].clone(), event["message_id"].clone()))
        .collect();
    assert!(
        given.is_empty(),
        "refused messages were delivered (from, id): {given:?}"
    );
    idle.ok(json!({"op": "ping"})).await;
}

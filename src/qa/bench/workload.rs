//! The workloads: set up connections, then drive load for the configured duration while
//! each connection's task tallies its own latencies ([`Tally`], merged into the shared
//! [`Recorder`] when the task ends). A new workload is a variant of
//! [`Workload`](super::Workload) and an `async fn` here (the media workload, over HTTP
//! rather than bench connections, is `media.rs`).
//!
//! Saturated runs (`--rate 0`) keep load bounded so that latency stays meaningful: a peer
//! sender has at most [`PEER_WINDOW`] messages in flight (each reply comes only after the
//! receiver's ack), and
//! a channel sender has at most [`FANOUT_WINDOW`] messages that some member has not
//! received yet (both settable with `--window`) (a [`Flow`] per channel counts arrivals). Paced runs send at the rate
//! asked, spread over the senders, whatever the replies do.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt as _};
use tokio::sync::watch;

use super::conn::{read_many, BenchConn, ServerAddr};
use super::pace::{merge_all, next_turn, Flow, Pace};
use super::placement::{server_of, user_id};
use super::scan::{self, field_u64, is_event, MESSAGE_ID};
use super::{BenchConfig, BenchError, Recorder, Tally, Workload};
use crate::protocol::codes::Family;
use crate::qa::raw::RawError;

/// How long outstanding replies and deliveries may take after the duration ends.
pub(super) const DRAIN: Duration = Duration::from_secs(3);
/// Longest wait for one reply during set-up.
const REPLY_WAIT: Duration = Duration::from_secs(15);
/// Connections opened (and logged in) at once during set-up.
const SETUP_CONCURRENCY: usize = 200;
/// Channel messages a saturated sender may have that not every member has received,
/// unless `--window` says otherwise.
pub(super) const FANOUT_WINDOW: u32 = 32;
/// Peer messages a saturated sender may have awaiting their replies (each reply comes
/// only after the receiver's ack), unless `--window` says otherwise.
pub(super) const PEER_WINDOW: u32 = 64;
/// Fan-out receivers read by one task ([`read_many`]) into one [`Tally`]. A task per
/// receiver cost a wake-up and a poll of its timers per frame, and a histogram per
/// receiver (a thousand) cost more to create, fill out of cache and merge than the
/// deliveries it recorded.
const RECEIVERS_PER_TASK: usize = 64;

pub(super) async fn run(config: &BenchConfig, recorder: &Recorder) -> Result<(), BenchError> {
    let mut targets = Vec::new();
    for server in &config.servers {
        let target = ServerAddr::resolve(&server.url)
            .await
            .map_err(|e| BenchError::Connect(e.to_string()))?;
        targets.push(target);
    }
    let servers = Servers {
        targets,
        workload: config.workload,
        users: config.users,
    };
    match config.workload {
        Workload::Peer => peer(config, &servers, recorder).await,
        Workload::Fanout => fanout(config, &servers, recorder).await,
        Workload::Login => login(config, &servers, recorder).await,
        Workload::Soak => soak(config, &servers, recorder).await,
        Workload::Media => super::media::run(config, recorder).await,
    }
}

/// The servers of a run, resolved.
struct Servers {
    targets: Vec<ServerAddr>,
    workload: Workload,
    users: u32,
}

impl Servers {
    /// The server user `n` connects to ([`server_of`]).
    fn of(&self, n: u32) -> &ServerAddr {
        &self.targets[server_of(self.workload, self.users, n, self.targets.len())]
    }
}

/// A JSON string literal of `text`.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

async fn connect_login(target: &ServerAddr, app_id: &str, n: u32) -> Result<BenchConn, RawError> {
    let mut conn = BenchConn::connect(target, n).await?;
    let user = user_id(n);
    let op = format!(
        r#"{{"op":"login","app_id":{},"user":{}}}"#,
        quoted(app_id),
        quoted(&user)
    );
    match conn.call(&op, REPLY_WAIT).await? {
        0 => Ok(conn),
        code => Err(RawError::Connect {
            url: target.url.clone(),
            detail: format!("login of {user} answered code {code}"),
        }),
    }
}

/// Logs in users `0..count`, [`SETUP_CONCURRENCY`] at a time, in order.
async fn login_all(
    config: &BenchConfig,
    servers: &Servers,
    count: u32,
) -> Result<Vec<BenchConn>, BenchError> {
    stream::iter(0..count)
        .map(|n| connect_login(servers.of(n), &config.app_id, n))
        .buffered(SETUP_CONCURRENCY)
        .map(|result| result.map_err(|e| BenchError::Connect(e.to_string())))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Waits, at most [`DRAIN`], until completions stop arriving for a moment.
async fn settle(recorder: &Recorder) {
    const QUIET: Duration = Duration::from_millis(300);
    let until = Instant::now() + DRAIN;
    let mut last = recorder.completed();
    while Instant::now() < until {
        tokio::time::sleep(QUIET).await;
        let now = recorder.completed();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Replies a sender is waiting for, by request id, with when each was sent.
#[derive(Default)]
struct Outstanding(HashMap<u32, Instant>);

impl Outstanding {
    /// Records every reply in `frame` against its request, reading error codes as
    /// `family`'s.
    fn settle_replies(&mut self, frame: &[u8], tally: &mut Tally, family: Family) {
        for object in scan::objects(frame) {
            let Some(id) = field_u64(object, &scan::ID) else {
                continue;
            };
            let Some(sent) = self.0.remove(&(id as u32)) else {
                continue;
            };
            match scan::reply_code(object) {
                0 => {
                    tally.answered();
                    tally.done(sent.elapsed());
                }
                code => tally.refused(family, code),
            }
        }
    }
}

/// Sends `op(n)` (a request of `family`) from `conn` as `pace` allows until `deadline`
/// or the run's stop, recording each reply in `tally`; then waits up to [`DRAIN`] for the
/// last replies.
async fn drive(
    mut conn: BenchConn,
    mut tally: Tally,
    deadline: Instant,
    (mut pace, family): (Pace, Family),
    op: impl Fn(u64) -> String,
) -> (BenchConn, Tally) {
    enum DriveStep {
        Stop,
        Send,
        Read { open: bool },
    }
    let mut outstanding = Outstanding::default();
    let mut n = 0;
    let stop = tokio::time::sleep_until(deadline.into());
    tokio::pin!(stop);
    let mut halt = tally.stop.clone();
    loop {
        let step = tokio::select! {
            () = &mut stop => DriveStep::Stop,
            _ = halt.wait_for(|stopped| *stopped) => DriveStep::Stop,
            () = pace.ready(n, outstanding.0.len()) => DriveStep::Send,
            open = conn.read_frames(|frame| outstanding.settle_replies(frame, &mut tally, family)) => {
                DriveStep::Read { open }
            }
        };
        match step {
            DriveStep::Stop => break,
            DriveStep::Read { open: true } => {}
            DriveStep::Read { open: false } => {
                tally.error("closed");
                return (conn, tally);
            }
            DriveStep::Send => {
                // A window that opened by several sends them in one frame, as a client
                // that had several messages ready would.
                let count = match pace {
                    Pace::InFlight(window) => window.saturating_sub(outstanding.0.len()).max(1),
                    _ => 1,
                };
                let first = n;
                n += count as u64;
                tally.sent += count as u64;
                let sent = Instant::now();
                let Ok(ids) = conn.request_batch((first..n).map(&op)).await else {
                    tally.error("closed");
                    return (conn, tally);
                };
                outstanding.0.extend(ids.into_iter().map(|id| (id, sent)));
            }
        }
    }
    let drain = tokio::time::Instant::now() + DRAIN;
    while !outstanding.0.is_empty() {
        let read = conn.read_frames(|frame| outstanding.settle_replies(frame, &mut tally, family));
        match tokio::time::timeout_at(drain, read).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => {
                tally.errors("timeout", outstanding.0.len() as u64);
                break;
            }
        }
    }
    (conn, tally)
}

async fn peer(
    config: &BenchConfig,
    servers: &Servers,
    recorder: &Recorder,
) -> Result<(), BenchError> {
    let pairs = config.users / 2;
    let mut conns = login_all(config, servers, pairs * 2).await?;
    let receivers = conns.split_off(pairs as usize);
    recorder.restart();
    let deadline = Instant::now() + config.duration;
    let until = deadline + DRAIN;
    let ackers: Vec<_> = receivers
        .into_iter()
        .map(|conn| tokio::spawn(ack_peer_messages(conn, until)))
        .collect();
    let per_sender = f64::from(config.rate) / f64::from(pairs);
    let senders: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let to = quoted(&user_id(pairs + i as u32));
            let phase = i as f64 / f64::from(pairs);
            let op = move |n| {
                format!(
                    r#"{{"op":"send_peer","to":{to},"message":{{"type":"text","text":"bench {n}"}}}}"#
                )
            };
            let window = config.window.unwrap_or(PEER_WINDOW) as usize;
            let pace = Pace::new(per_sender, phase, Pace::InFlight(window));
            tokio::spawn(drive(conn, recorder.tally(), deadline, (pace, Family::Peer), op))
        })
        .collect();
    for sender in senders {
        if let Ok((_, tally)) = sender.await {
            recorder.merge(tally);
        }
    }
    for acker in ackers {
        acker.abort();
    }
    Ok(())
}

/// A receiver's loop: acknowledges every peer message (one frame of acks per read).
async fn ack_peer_messages(mut conn: BenchConn, until: Instant) {
    let stop = tokio::time::sleep_until(until.into());
    tokio::pin!(stop);
    let mut acks = String::new();
    loop {
        acks.clear();
        let read = conn.read_frames(|frame| {
            for object in scan::objects(frame) {
                if !is_event(object, "message_from_peer") {
                    continue;
                }
                if let Some(id) = field_u64(object, &MESSAGE_ID) {
                    if !acks.is_empty() {
                        acks.push('\n');
                    }
                    let _ = write!(acks, r#"{{"op":"ack","message_id":{id}}}"#);
                }
            }
        });
        let open = tokio::select! {
            open = read => open,
            () = &mut stop => return,
        };
        if !acks.is_empty() && conn.send(&acks).await.is_err() || !open {
            return;
        }
    }
}

async fn fanout(
    config: &BenchConfig,
    servers: &Servers,
    recorder: &Recorder,
) -> Result<(), BenchError> {
    let channels = config.channels;
    let mut conns = login_all(config, servers, config.users).await?;
    let channel_of = |n: u32| quoted(&format!("bench-{}-ch{}", std::process::id(), n % channels));
    let joins = conns.iter_mut().enumerate().map(|(n, conn)| {
        let op = format!(r#"{{"op":"join","channel":{}}}"#, channel_of(n as u32));
        async move { conn.call(&op, REPLY_WAIT).await }
    });
    for code in stream::iter(joins)
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
    {
        match code {
            Ok(0) => {}
            Ok(code) => return Err(BenchError::Connect(format!("join answered {code}"))),
            Err(e) => return Err(BenchError::Connect(e.to_string())),
        }
    }
    // Members 0..channels are the senders (one per channel); the rest receive.
    let receivers = conns.split_off(channels as usize);
    let flows: Vec<Arc<Flow>> = (0..channels)
        .map(|c| {
            let members = (config.users - c).div_ceil(channels);
            Arc::new(Flow::new(
                members - 1,
                config.window.unwrap_or(FANOUT_WINDOW),
            ))
        })
        .collect();
    recorder.restart();
    let started = recorder.started();
    let deadline = Instant::now() + config.duration;
    let until = deadline + DRAIN;
    let (stop, stopped) = watch::channel(false);
    let mut sinks = Vec::new();
    let (mut first, mut rest) = (0, receivers);
    while !rest.is_empty() {
        let others = rest.split_off(rest.len().min(RECEIVERS_PER_TASK));
        // Receiver i is user channels + i, a member of channel i % channels.
        let group_flows = (first..first + rest.len())
            .map(|i| Arc::clone(&flows[i % channels as usize]))
            .collect();
        first += rest.len();
        sinks.push(tokio::spawn(receive_channel_messages(
            rest,
            group_flows,
            recorder.tally(),
            (started, until),
            stopped.clone(),
        )));
        rest = others;
    }
    let per_sender = f64::from(config.rate) / f64::from(channels);
    let senders: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(n, conn)| {
            let channel = channel_of(n as u32);
            let phase = f64::from(n as u32) / f64::from(channels);
            let pace = Pace::new(per_sender, phase, Pace::Flow(Arc::clone(&flows[n])));
            // The text carries the sequence number and the send time since `started`.
            let op = move |seq| {
                let micros = started.elapsed().as_micros();
                format!(
                    r#"{{"op":"send_channel","channel":{channel},"message":{{"type":"text","text":"{seq} {micros}"}}}}"#
                )
            };
            let pace = (pace, Family::ChannelMsg);
            tokio::spawn(drive(conn, recorder.quiet_tally(), deadline, pace, op))
        })
        .collect();
    let mut answered = 0;
    for sender in senders {
        if let Ok((_, tally)) = sender.await {
            // Senders' latencies are send → reply; only deliveries are measured.
            answered += tally.completed;
            recorder.merge_sends(tally);
        }
    }
    settle(recorder).await;
    stop.send_replace(true);
    for sink in sinks {
        if let Ok(tally) = sink.await {
            recorder.merge(tally);
        }
    }
    let expected: u64 = flows
        .iter()
        .map(|f| u64::from(f.receivers))
        .sum::<u64>()
        .saturating_mul(answered)
        / u64::from(channels);
    let delivered = recorder.completed();
    if delivered < expected {
        recorder.errors("undelivered", expected - delivered);
    }
    Ok(())
}

/// The loop of a group of channel members, one [`Flow`] each: each `message_from_channel`
/// carries "seq micros" (its send time since `started`), so latency needs no clock shared
/// with the sender. Every delivery is counted and its latency recorded (no sampling); the
/// clock is read once per frame.
async fn receive_channel_messages(
    mut conns: Vec<BenchConn>,
    flows: Vec<Arc<Flow>>,
    mut tally: Tally,
    (started, until): (Instant, Instant),
    mut stopped: watch::Receiver<bool>,
) -> Tally {
    let read = read_many(&mut conns, |member, frame| {
        let elapsed = started.elapsed();
        let (now, second) = (elapsed.as_micros() as u64, elapsed.as_secs() as usize);
        let mut delivered = 0;
        for object in scan::objects(frame) {
            let Some((seq, micros)) = scan::channel_message_text(object).and_then(seq_and_micros)
            else {
                continue;
            };
            tally.latency(Duration::from_micros(now.saturating_sub(micros)));
            flows[member].arrived(seq);
            delivered += 1;
        }
        tally.count(delivered, second);
    });
    tokio::select! {
        () = read => {}
        () = tokio::time::sleep_until(until.into()) => {}
        _ = stopped.wait_for(|stopped| *stopped) => {}
    }
    tally
}

/// The "seq micros" text of a bench channel message, read in one pass (it is read for
/// every delivery).
fn seq_and_micros(text: &[u8]) -> Option<(u64, u64)> {
    let mut numbers = [0u64; 2];
    let (mut which, mut digits) = (0, 0);
    for &byte in text {
        match byte {
            b'0'..=b'9' if digits < 19 => {
                numbers[which] = numbers[which] * 10 + u64::from(byte - b'0');
                digits += 1;
            }
            b' ' if which == 0 && digits > 0 => (which, digits) = (1, 0),
            _ => return None,
        }
    }
    (which == 1 && digits > 0).then_some((numbers[0], numbers[1]))
}

async fn login(
    config: &BenchConfig,
    servers: &Servers,
    recorder: &Recorder,
) -> Result<(), BenchError> {
    // One probe login per server tells a usage problem (bad URL, refused app) from load
    // failures.
    for target in &servers.targets {
        connect_login(target, &config.app_id, 0)
            .await
            .map_err(|e| BenchError::Connect(e.to_string()))?
            .close()
            .await;
    }
    recorder.restart();
    let deadline = Instant::now() + config.duration;
    let per_worker = f64::from(config.rate) / f64::from(config.users);
    let workers: Vec<_> = (0..config.users)
        .map(|n| {
            let mut tally = recorder.tally();
            let (target, app_id) = (servers.of(n).clone(), config.app_id.clone());
            tokio::spawn(async move {
                // One login at a time (saturated), or on a ticker.
                let mut pace = Pace::new(per_worker, 0.0, Pace::InFlight(1));
                while next_turn(&mut pace, deadline, &tally).await {
                    let began = Instant::now();
                    tally.sent += 1;
                    match connect_login(&target, &app_id, n).await {
                        Ok(conn) => {
                            tally.answered();
                            tally.done(began.elapsed());
                            conn.close().await;
                        }
                        Err(RawError::Connect { detail, .. }) if detail.contains("code") => {
                            match detail.rsplit(' ').next().and_then(|c| c.parse().ok()) {
                                Some(code) => tally.refused(Family::Login, code),
                                None => tally.error("login refused"),
                            }
                        }
                        Err(RawError::Timeout { .. }) => tally.error("timeout"),
                        Err(_) => tally.error("connect"),
                    }
                }
                tally
            })
        })
        .collect();
    merge_all(recorder, workers).await;
    Ok(())
}

async fn soak(
    config: &BenchConfig,
    servers: &Servers,
    recorder: &Recorder,
) -> Result<(), BenchError> {
    let conns = login_all(config, servers, config.users).await?;
    recorder.restart();
    let deadline = Instant::now() + config.duration;
    // One ping per connection per second unless --rate says otherwise.
    let per_conn = if config.rate == 0 {
        1.0
    } else {
        f64::from(config.rate) / f64::from(config.users)
    };
    let users = f64::from(config.users);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let pace = Pace::new(per_conn, i as f64 / users, Pace::InFlight(1));
            let pace = (pace, Family::Ping);
            tokio::spawn(drive(conn, recorder.tally(), deadline, pace, |_| {
                r#"{"op":"ping"}"#.to_string()
            }))
        })
        .collect();
    for task in tasks {
        if let Ok((_, tally)) = task.await {
            recorder.merge(tally);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_channel_message_texts() {
        assert_eq!(seq_and_micros(b"12 345"), Some((12, 345)));
        assert_eq!(seq_and_micros(b"0 0"), Some((0, 0)));
        for bad in [
            &b""[..],
            b"12",
            b"12 ",
            b" 12",
            b"1 2 3",
            b"1x 2",
            b"99999999999999999999 1",
        ] {
            assert_eq!(
                seq_and_micros(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

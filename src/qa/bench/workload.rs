//! The workloads: set up connections, then drive load for the configured duration while
//! recording latencies into the shared [`Recorder`]. A new workload is a variant of
//! [`Workload`](super::Workload) and an `async fn` here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::{BenchConfig, BenchError, Recorder, Workload};
use crate::qa::raw::{code_of, RawConn, RawError};

/// How long outstanding replies and deliveries may take after the duration ends.
pub const DRAIN: Duration = Duration::from_secs(3);
/// Longest wait for one reply.
const REPLY_WAIT: Duration = Duration::from_secs(15);
/// Connections opened at once during set-up.
const SETUP_CONCURRENCY: usize = 50;

pub async fn run(config: &BenchConfig, recorder: &Recorder) -> Result<(), BenchError> {
    match config.workload {
        Workload::Peer => peer(config, recorder).await,
        Workload::Fanout => fanout(config, recorder).await,
        Workload::Login => login(config, recorder).await,
        Workload::Soak => soak(config, recorder).await,
    }
}

fn user_id(n: u32) -> String {
    format!("bench-{}-{n}", std::process::id())
}

async fn connect_login(url: &str, app_id: &str, user: &str) -> Result<RawConn, RawError> {
    let mut conn = RawConn::connect(url, user, None).await?;
    let reply = conn
        .call(json!({"op": "login", "app_id": app_id, "user": user}))
        .await?;
    match code_of(&reply) {
        0 => Ok(conn),
        code => Err(RawError::Connect {
            url: url.to_string(),
            detail: format!("login of {user} answered code {code}: {}", reply["reason"]),
        }),
    }
}

/// Logs in users `0..count`, a batch at a time.
async fn login_all(config: &BenchConfig, count: u32) -> Result<Vec<RawConn>, BenchError> {
    let mut conns = Vec::with_capacity(count as usize);
    let ids: Vec<u32> = (0..count).collect();
    for batch in ids.chunks(SETUP_CONCURRENCY) {
        let logins = batch.iter().map(|n| {
            let user = user_id(*n);
            async move { connect_login(&config.url, &config.app_id, &user).await }
        });
        for result in join_all(logins).await {
            conns.push(result.map_err(|e| BenchError::Connect(e.to_string()))?);
        }
    }
    Ok(conns)
}

/// Records a reply (or its absence) for an operation started at `began`.
fn record(recorder: &Recorder, began: Instant, reply: Result<Value, RawError>) {
    match reply {
        Ok(reply) if code_of(&reply) == 0 => recorder.done(began.elapsed()),
        Ok(reply) => recorder.error(format!("code {}", code_of(&reply))),
        Err(RawError::Timeout { .. }) => recorder.error("timeout"),
        Err(_) => recorder.error("closed"),
    }
}

/// Drives one connection: sends `make_op(n)` at `per_second` (0 = one at a time, as fast as
/// replies come) until `deadline`, recording each reply. Paced connections start at
/// `phase` (0..1) of their period, so that many connections do not send in lockstep.
async fn drive(
    mut conn: RawConn,
    recorder: Recorder,
    deadline: Instant,
    (per_second, phase): (f64, f64),
    make_op: impl Fn(u64) -> Value,
) -> RawConn {
    if per_second > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(phase.clamp(0.0, 1.0) / per_second)).await;
    }
    let mut waiting = JoinSet::new();
    let mut ticker = (per_second > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut n = 0;
    while Instant::now() < deadline {
        if let Some(ticker) = &mut ticker {
            if tokio::time::timeout_at(deadline.into(), ticker.tick())
                .await
                .is_err()
            {
                break;
            }
        }
        let began = Instant::now();
        let pending = conn.start(make_op(n));
        n += 1;
        recorder.sent(1);
        let Ok(mut pending) = pending else {
            recorder.error("closed");
            break;
        };
        if ticker.is_some() {
            let recorder = recorder.clone();
            waiting.spawn(async move { record(&recorder, began, pending.wait(REPLY_WAIT).await) });
        } else {
            record(&recorder, began, pending.wait(REPLY_WAIT).await);
        }
    }
    let _ = tokio::time::timeout(DRAIN, async {
        while waiting.join_next().await.is_some() {}
    })
    .await;
    conn
}

/// Consumes a connection's events until `until`, handing each to `on_event`.
fn sink_events(
    mut conn: RawConn,
    until: Instant,
    on_event: impl Fn(&Value) + Send + 'static,
) -> tokio::task::JoinHandle<RawConn> {
    tokio::spawn(async move {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(event) = conn.next_event(left, |_| true).await {
                on_event(&event);
            }
        }
        conn
    })
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

fn abort_all<T>(tasks: Vec<tokio::task::JoinHandle<T>>) {
    for task in tasks {
        task.abort();
    }
}

async fn peer(config: &BenchConfig, recorder: &Recorder) -> Result<(), BenchError> {
    let pairs = config.users / 2;
    let mut conns = login_all(config, pairs * 2).await?;
    let receivers: Vec<RawConn> = conns.split_off(pairs as usize);
    recorder.restart();
    let deadline = Instant::now() + config.duration;
    let sinks: Vec<_> = receivers
        .into_iter()
        .map(|c| sink_events(c, deadline + DRAIN, |_| {}))
        .collect();
    let per_sender = f64::from(config.rate) / f64::from(pairs);
    let senders = conns.into_iter().enumerate().map(|(i, conn)| {
        let to = user_id(pairs + i as u32);
        let recorder = recorder.clone();
        let phase = i as f64 / f64::from(pairs);
        tokio::spawn(drive(conn, recorder, deadline, (per_sender, phase), move |n| {
            json!({"op": "send_peer", "to": to, "message": {"type": "text", "text": format!("bench {n}")}})
        }))
    });
    let _ = join_all(senders).await;
    settle(recorder).await;
    abort_all(sinks);
    Ok(())
}

async fn fanout(config: &BenchConfig, recorder: &Recorder) -> Result<(), BenchError> {
    let mut conns = login_all(config, config.users).await?;
    let channel_of = |n: usize| {
        format!(
            "bench-{}-ch{}",
            std::process::id(),
            n % config.channels as usize
        )
    };
    for (n, conn) in conns.iter_mut().enumerate() {
        let reply = conn
            .call(json!({"op": "join", "channel": channel_of(n)}))
            .await
            .map_err(|e| BenchError::Connect(e.to_string()))?;
        if code_of(&reply) != 0 {
            return Err(BenchError::Connect(format!("join answered {reply}")));
        }
    }
    // Members 0..channels are the senders (one per channel); the rest receive.
    let receivers = conns.split_off(config.channels as usize);
    recorder.restart();
    let started = recorder.started();
    let deadline = Instant::now() + config.duration;
    let sinks: Vec<_> = receivers
        .into_iter()
        .map(|conn| {
            let recorder = recorder.clone();
            sink_events(conn, deadline + DRAIN, move |event| {
                let sent_at = event["message"]["text"]
                    .as_str()
                    .and_then(|t| t.parse::<u64>().ok());
                if let (Some("message_from_channel"), Some(micros)) =
                    (event["event"].as_str(), sent_at)
                {
                    let now = started.elapsed().as_micros() as u64;
                    recorder.done(Duration::from_micros(now.saturating_sub(micros)));
                }
            })
        })
        .collect();
    let per_sender = f64::from(config.rate) / f64::from(config.channels);
    // Sender latencies are send → reply; only deliveries go into the histogram.
    let quiet = Recorder::new();
    let senders = conns.into_iter().enumerate().map(|(n, conn)| {
        let channel = channel_of(n);
        let quiet = quiet.clone();
        let phase = n as f64 / f64::from(config.channels);
        tokio::spawn(drive(conn, quiet, deadline, (per_sender, phase), move |_| {
            let micros = started.elapsed().as_micros() as u64;
            json!({"op": "send_channel", "channel": channel, "message": {"type": "text", "text": micros.to_string()}})
        }))
    });
    let _ = join_all(senders).await;
    settle(recorder).await;
    abort_all(sinks);
    let quiet = quiet.inner.lock().expect("recorder");
    recorder.sent(quiet.sent);
    for (what, count) in &quiet.errors {
        for _ in 0..*count {
            recorder.error(format!("send {what}"));
        }
    }
    let members = u64::from(config.users / config.channels);
    let expected = quiet.completed * members.saturating_sub(1);
    let delivered = recorder.completed();
    if delivered < expected {
        for _ in 0..(expected - delivered).min(1_000_000) {
            recorder.error("undelivered");
        }
    }
    Ok(())
}

async fn login(config: &BenchConfig, recorder: &Recorder) -> Result<(), BenchError> {
    // One probe login tells a usage problem (bad URL, refused app) from load failures.
    connect_login(&config.url, &config.app_id, &user_id(0))
        .await
        .map_err(|e| BenchError::Connect(e.to_string()))?
        .close();
    recorder.restart();
    let deadline = Instant::now() + config.duration;
    let per_worker = f64::from(config.rate) / f64::from(config.users);
    let config = Arc::new(config.clone());
    let workers = (0..config.users).map(|n| {
        let recorder = recorder.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let user = user_id(n);
            let mut ticker = (per_worker > 0.0)
                .then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / per_worker)));
            while Instant::now() < deadline {
                if let Some(t) = &mut ticker {
                    if tokio::time::timeout_at(deadline.into(), t.tick())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                let began = Instant::now();
                recorder.sent(1);
                match connect_login(&config.url, &config.app_id, &user).await {
                    Ok(conn) => {
                        recorder.done(began.elapsed());
                        conn.close();
                    }
                    Err(RawError::Connect { detail, .. }) if detail.contains("code") => {
                        recorder.error(detail.split(':').next().unwrap_or("login").to_string());
                    }
                    Err(RawError::Timeout { .. }) => recorder.error("timeout"),
                    Err(_) => recorder.error("connect"),
                }
            }
        })
    });
    let _ = join_all(workers).await;
    Ok(())
}

async fn soak(config: &BenchConfig, recorder: &Recorder) -> Result<(), BenchError> {
    let conns = login_all(config, config.users).await?;
    recorder.restart();
    let deadline = Instant::now() + config.duration;
    // One ping per connection per second unless --rate says otherwise.
    let per_conn = if config.rate == 0 {
        1.0
    } else {
        f64::from(config.rate) / f64::from(config.users)
    };
    let users = f64::from(config.users);
    let tasks = conns.into_iter().enumerate().map(|(i, conn)| {
        let recorder = recorder.clone();
        tokio::spawn(drive(
            conn,
            recorder,
            deadline,
            (per_conn, i as f64 / users),
            |_| json!({"op": "ping"}),
        ))
    });
    let _ = join_all(tasks).await;
    Ok(())
}

//! The media workload (`bench --workload media`): each user uploads a file of
//! `--media-size` bytes and downloads it again, over and over, on the HTTP side of its
//! server with tickets of `media_ticket` (rtm-tui's addition; a server without media
//! refuses the run). Each upload and each download is one operation whose latency is the
//! whole transfer; the report adds the MiB moved per second.

use std::time::{Duration, Instant};

use super::pace::{merge_all, next_turn, Pace};
use super::placement::{server_of, user_id};
use super::{BenchConfig, BenchError, Recorder, Workload};
use crate::qa::media;

/// How long a ticket is used before a worker asks for another (the reference server's
/// last 60 s).
const TICKET_REUSE: Duration = Duration::from_secs(30);

/// One media worker: its connection (for tickets), its server's HTTP side.
struct MediaUser {
    conn: crate::qa::raw::RawConn,
    url: String,
    api: crate::qa::check::rest::Api,
    ticket_at: Instant,
}

impl MediaUser {
    async fn start(config: &BenchConfig, n: u32) -> Result<MediaUser, String> {
        let url = config.servers[server_of(Workload::Media, config.users, n, config.servers.len())]
            .url
            .clone();
        let user = user_id(n);
        let mut conn = crate::qa::raw::RawConn::connect(&url, user.clone(), None)
            .await
            .map_err(|e| e.to_string())?;
        let login = serde_json::json!({"op": "login", "app_id": config.app_id, "user": user});
        let reply = conn.call(login).await.map_err(|e| e.to_string())?;
        if reply["code"] != 0 {
            return Err(format!("login of {user} answered {reply}"));
        }
        let ticket = media::ticket(&mut conn).await.map_err(|e| e.to_string())?;
        let api = media::api(&url, ticket).map_err(|e| e.to_string())?;
        Ok(MediaUser {
            conn,
            url,
            api,
            ticket_at: Instant::now(),
        })
    }

    /// A fresh ticket when the one in use is getting old.
    async fn refresh(&mut self) -> Result<(), String> {
        if self.ticket_at.elapsed() < TICKET_REUSE {
            return Ok(());
        }
        let ticket = media::ticket(&mut self.conn)
            .await
            .map_err(|e| e.to_string())?;
        self.api = media::api(&self.url, ticket).map_err(|e| e.to_string())?;
        self.ticket_at = Instant::now();
        Ok(())
    }
}

/// Files: each user uploads a file of `--media-size` bytes and downloads it again, over
/// and over (paced by `--rate` transfers a second in all, or one at a time per user);
/// each upload and each download is one operation, its latency the whole transfer.
pub(super) async fn run(config: &BenchConfig, recorder: &Recorder) -> Result<(), BenchError> {
    let mut users = Vec::with_capacity(config.users as usize);
    for n in 0..config.users {
        let user = MediaUser::start(config, n)
            .await
            .map_err(BenchError::Connect)?;
        users.push(user);
    }
    let data = media::pattern(config.media_bytes as usize);
    recorder.restart();
    let deadline = Instant::now() + config.duration;
    let per_worker = f64::from(config.rate) / f64::from(config.users);
    let users_f = f64::from(config.users);
    let workers: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, mut user)| {
            let mut tally = recorder.tally();
            let data = data.clone();
            tokio::spawn(async move {
                let mut pace = Pace::new(per_worker, i as f64 / users_f, Pace::InFlight(1));
                while next_turn(&mut pace, deadline, &tally).await {
                    if let Err(why) = user.refresh().await {
                        tally.error(format!("media_ticket: {why}"));
                        continue;
                    }
                    let began = Instant::now();
                    tally.sent += 1;
                    let uploaded = media::upload(&user.api, "bench.bin", data.clone()).await;
                    tally.answered();
                    let id = match uploaded {
                        Ok(uploaded) => {
                            tally.done(began.elapsed());
                            uploaded.media_id
                        }
                        Err(error) => {
                            tally.error(short_media_error(&error.to_string()));
                            continue;
                        }
                    };
                    let began = Instant::now();
                    tally.sent += 1;
                    let downloaded = media::download(&user.api, &id).await;
                    tally.answered();
                    match downloaded {
                        Ok((200, body)) if body.len() == data.len() => tally.done(began.elapsed()),
                        Ok((200, _)) => tally.error("download: wrong size"),
                        Ok((status, _)) => tally.error(format!("download: HTTP {status}")),
                        Err(error) => tally.error(short_media_error(&error.to_string())),
                    }
                }
                tally
            })
        })
        .collect();
    merge_all(recorder, workers).await;
    Ok(())
}

/// An upload's failure as the report counts it: its status and code, not the whole body
/// (which differs per request).
fn short_media_error(error: &str) -> String {
    match error.split_once(" answered ") {
        Some((_, rest)) => {
            let status = rest.split_whitespace().next().unwrap_or("?");
            let code = serde_json::from_str::<serde_json::Value>(
                rest.split_once(' ').map_or("", |(_, body)| body),
            )
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string))
            .unwrap_or_default();
            format!("upload: HTTP {status} {code}")
                .trim_end()
                .to_string()
        }
        None => error.to_string(),
    }
}

//! `rtm-tui headless`: a real client (the `client/` library) without a screen. Commands
//! come as lines on stdin; every reply, event and state change goes out as one JSON object
//! per line on stdout, so testers can drive a client from any language.
//!
//! # Commands
//!
//! Words are separated by spaces; `"double quotes"` keep spaces; `#` starts a comment.
//!
//! ```text
//! login USER [TOKEN]          logout              renew TOKEN          ping
//! send PEER TEXT              send-offline PEER TEXT
//! join CH     leave CH        say CH TEXT         members CH
//! query PEER...               subscribe PEER...   unsubscribe PEER...
//! history peer|channel ID [LIMIT]
//! raw {"op": "get_channel_member_count", "channels": ["lobby"]}   any op, as JSON
//! wait EVENT [SECS]           block until an event (or state) named EVENT is printed
//! quit
//! ```
//!
//! # Output
//!
//! - a reply: `{"reply":"send","line":3,"ok":true,"result":{"message_id":7,"server_ts":...}}`
//!   or `{"reply":"send","line":3,"ok":false,"code":3,"error":"peer unreachable (code 3)"}`
//! - a server event, exactly as the protocol carries it: `{"event":"message_from_peer",...}`
//! - a state change: `{"state":"CONNECTED","reason":"LOGIN_SUCCESS","retry_in_ms":null}`
//!
//! Commands run one after the other (each waits for its reply); events are printed as
//! they come, between replies. End of input or `quit` logs out and exits.
//!
//! [`run_recorded`] also writes the session as a scenario for `rtm-tui script`
//! (`headless --record FILE`; the translation is `script::record`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, Notify};

use crate::client::{
    Channel, Client, ClientConfig, ClientError, ClientEvent, HistoryTarget, SendOptions,
};
use crate::protocol::{Message, Op};

use super::script::record::Recording;
use super::script::words;

/// How long `wait` blocks unless told.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Why the headless client stopped before its input ended.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read input or write output: {0}")]
    Io(#[from] std::io::Error),
}

/// Counts of event names printed, for `wait`.
#[derive(Default)]
struct Seen {
    counts: Mutex<HashMap<String, u64>>,
    consumed: Mutex<HashMap<String, u64>>,
    changed: Notify,
}

impl Seen {
    fn saw(&self, name: &str) {
        *self
            .counts
            .lock()
            .expect("seen")
            .entry(name.to_string())
            .or_default() += 1;
        self.changed.notify_waiters();
    }

    /// Waits until more `name` events were printed than earlier `wait`s consumed.
    async fn wait(&self, name: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            {
                let counts = self.counts.lock().expect("seen");
                let mut consumed = self.consumed.lock().expect("seen");
                let have = counts.get(name).copied().unwrap_or(0);
                let used = consumed.entry(name.to_string()).or_default();
                if have > *used {
                    *used += 1;
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// Runs the headless client: reads commands from `input` until it ends or `quit`, writes
/// JSON lines to `output`.
pub async fn run<R, W>(config: ClientConfig, input: R, output: W) -> Result<(), HeadlessError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    run_recorded(config, input, output, None).await
}

/// A [`Recording`] shared by the command loop and the event printer.
pub type SharedRecording = Arc<Mutex<Recording>>;

/// [`run`], also writing every command, its code and the events into `recording` (a
/// scenario for `rtm-tui script`).
pub async fn run_recorded<R, W>(
    config: ClientConfig,
    input: R,
    output: W,
    recording: Option<SharedRecording>,
) -> Result<(), HeadlessError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (client, mut events) = Client::new(config)?;
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    // One writer keeps every JSON object on its own line, whoever produced it.
    let writer = tokio::spawn(async move {
        let mut output = output;
        while let Some(line) = out_rx.recv().await {
            if output.write_all(line.as_bytes()).await.is_err()
                || output.write_all(b"\n").await.is_err()
            {
                break;
            }
            let _ = output.flush().await;
        }
    });
    let seen = Arc::new(Seen::default());
    let printer = {
        let out = out_tx.clone();
        let seen = seen.clone();
        let recording = recording.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let (name, value) = event_json(&event);
                if let (Some(recording), ClientEvent::Server(_)) = (&recording, &event) {
                    lock(recording).event(&value.to_string());
                }
                let _ = out.send(value.to_string());
                seen.saw(&name);
            }
        })
    };
    let mut headless = Headless {
        client: client.clone(),
        channels: HashMap::new(),
        seen,
    };
    let mut lines = input.lines();
    let mut number = 0;
    while let Some(line) = lines.next_line().await? {
        number += 1;
        let Some(reply) = headless.command(&line).await else {
            continue;
        };
        if let Some(recording) = &recording {
            let code = match &reply.outcome {
                Ok(_) => Some(0),
                Err((code, _)) => *code,
            };
            lock(recording).command(&words(&line).unwrap_or_default(), &line, code);
        }
        let quit = reply.verb == "quit";
        let _ = out_tx.send(reply.to_json(number).to_string());
        if quit {
            break;
        }
    }
    if client.user().is_some() {
        let _ = client.logout().await;
    }
    drop(headless);
    drop(client);
    // Events already received are printed before the output closes.
    let _ = tokio::time::timeout(Duration::from_millis(500), printer).await;
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

fn lock(recording: &SharedRecording) -> std::sync::MutexGuard<'_, Recording> {
    recording
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The JSON line of a client event, and the name `wait` knows it by.
fn event_json(event: &ClientEvent) -> (String, Value) {
    match event {
        ClientEvent::Server(event) => (
            event.name().to_string(),
            serde_json::to_value(event).unwrap_or_default(),
        ),
        ClientEvent::StateChanged {
            state,
            reason,
            retry_in,
        } => (
            state.label().to_string(),
            json!({"state": state.label(), "reason": reason.label(), "retry_in_ms": retry_in.map(|d| d.as_millis() as u64)}),
        ),
    }
}

/// A client driven by the lines of stdin, and the channel handles it made.
struct Headless {
    client: Client,
    channels: HashMap<String, Channel>,
    seen: Arc<Seen>,
}

/// The outcome of one command.
struct CommandReply {
    verb: String,
    outcome: Result<Value, (Option<u32>, String)>,
}

impl CommandReply {
    fn to_json(&self, line: usize) -> Value {
        match &self.outcome {
            Ok(result) => json!({"reply": self.verb, "line": line, "ok": true, "result": result}),
            Err((code, error)) => {
                json!({"reply": self.verb, "line": line, "ok": false, "code": code, "error": error})
            }
        }
    }
}

fn result<T: Serialize>(value: Result<T, ClientError>) -> Result<Value, (Option<u32>, String)> {
    value
        .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        .map_err(|e| (e.code(), e.to_string()))
}

fn usage(text: &str) -> Result<Value, (Option<u32>, String)> {
    Err((None, format!("usage: {text}")))
}

impl Headless {
    /// Runs one input line; `None` for blank and comment lines.
    async fn command(&mut self, line: &str) -> Option<CommandReply> {
        let words = match words(line) {
            Ok(words) => words,
            Err(error) => {
                return Some(CommandReply {
                    verb: String::new(),
                    outcome: Err((None, error)),
                })
            }
        };
        let (verb, args) = words.split_first()?;
        let outcome = self.dispatch(verb, args, line).await;
        Some(CommandReply {
            verb: verb.clone(),
            outcome,
        })
    }

    fn channel(&mut self, id: &str) -> Result<Channel, ClientError> {
        if let Some(channel) = self.channels.get(id) {
            return Ok(channel.clone());
        }
        let channel = self.client.create_channel(id)?;
        self.channels.insert(id.to_string(), channel.clone());
        Ok(channel)
    }

    async fn dispatch(
        &mut self,
        verb: &str,
        args: &[String],
        line: &str,
    ) -> Result<Value, (Option<u32>, String)> {
        let client = self.client.clone();
        match (verb, args) {
            ("login", [user]) => result(client.login(None, user).await),
            ("login", [user, token]) => result(client.login(Some(token), user).await),
            ("login", _) => usage("login USER [TOKEN]"),
            ("logout", []) => {
                self.channels.clear();
                result(client.logout().await)
            }
            ("renew", [token]) => result(client.renew_token(token).await),
            ("ping", []) => result(client.ping().await),
            ("send" | "send-offline", [peer, text @ ..]) if !text.is_empty() => {
                let options = SendOptions { offline: verb == "send-offline" };
                result(client.send_message_to_peer(peer, Message::text(text.join(" ")), options).await)
            }
            ("send" | "send-offline", _) => usage("send PEER TEXT"),
            ("join", [id]) => match self.channel(id) {
                Ok(channel) => result(channel.join().await),
                Err(e) => result::<()>(Err(e)),
            },
            ("leave", [id]) => match self.channels.remove(id) {
                Some(channel) => {
                    let left = channel.leave().await;
                    channel.release();
                    result(left)
                }
                None => Err((Some(crate::protocol::codes::leave::NOT_IN_CHANNEL), format!("not in channel {id:?}"))),
            },
            ("say", [id, text @ ..]) if !text.is_empty() => match self.channel(id) {
                Ok(channel) => result(channel.send_message(Message::text(text.join(" "))).await),
                Err(e) => result::<()>(Err(e)),
            },
            ("say", _) => usage("say CHANNEL TEXT"),
            ("members", [id]) => match self.channel(id) {
                Ok(channel) => result(channel.get_members().await),
                Err(e) => result::<()>(Err(e)),
            },
            ("query", peers) if !peers.is_empty() => result(client.query_peers_online_status(peers).await),
            ("subscribe", peers) if !peers.is_empty() => result(client.subscribe_peers_online_status(peers).await),
            ("unsubscribe", peers) if !peers.is_empty() => result(client.unsubscribe_peers_online_status(peers).await),
            ("history", [kind, id, rest @ ..]) if rest.len() <= 1 => {
                let target = match kind.as_str() {
                    "peer" => HistoryTarget::Peer(id.clone()),
                    "channel" => HistoryTarget::Channel(id.clone()),
                    _ => return usage("history peer|channel ID [LIMIT]"),
                };
                let Ok(limit) = rest.first().map_or(Ok(50), |l| l.parse::<u32>()) else {
                    return usage("history peer|channel ID [LIMIT]");
                };
                result(client.history(target, None, None, limit).await)
            }
            ("raw", _) => {
                let json = line.trim_start().strip_prefix("raw").unwrap_or("").trim();
                let op: Op = match serde_json::from_str(json) {
                    Ok(op) => op,
                    Err(e) => return Err((None, format!("raw: not a request: {e}"))),
                };
                match client.request(op).await {
                    Ok(reply) if reply.code == 0 => Ok(Value::Object(reply.fields)),
                    Ok(reply) => Err((Some(reply.code), reply.reason.unwrap_or_default())),
                    Err(e) => result::<()>(Err(e)),
                }
            }
            ("wait", [name, rest @ ..]) if rest.len() <= 1 => {
                let timeout = match rest.first().map(|s| s.parse::<f64>()) {
                    None => DEFAULT_WAIT,
                    Some(Ok(secs)) if (0.0..=3600.0).contains(&secs) => Duration::from_secs_f64(secs),
                    Some(_) => return usage("wait EVENT [SECS]"),
                };
                if self.seen.wait(name, timeout).await {
                    Ok(Value::Null)
                } else {
                    Err((None, format!("no {name} within {}s", timeout.as_secs_f64())))
                }
            }
            ("quit", []) => Ok(Value::Null),
            _ => Err((None, format!("unknown command {line:?} (login, logout, renew, ping, send, send-offline, join, leave, say, members, query, subscribe, unsubscribe, history, raw, wait, quit)"))),
        }
    }
}

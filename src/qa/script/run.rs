//! The scenario runner: plays a [`Script`] with one raw connection per virtual user, over
//! one server or, with several, placed by [`Placement`]'s rule.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::parse::substitute_with;
use super::{EventPattern, ExpectCode, Script, Step, StepKind, UserAction};
use crate::qa::media;
use crate::qa::placement::Placement;
use crate::qa::raw::{code_of, op_name, RawConn, RawError, Tracer};

/// Where and how to run a script.
#[derive(Clone)]
pub struct ScriptOptions {
    /// The server URLs: one, or the nodes of one cluster (at least one).
    pub servers: Vec<String>,
    pub app_id: String,
    /// Receives every frame when `--trace` is on.
    pub tracer: Option<Tracer>,
    /// Where the relative paths of `send_file` start: the scenario's directory (`None`:
    /// the current directory).
    pub base_dir: Option<std::path::PathBuf>,
}

/// What a passing run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Steps executed, repeats counted each time.
    pub steps: usize,
    pub duration: Duration,
}

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// An expectation did not hold: the server misbehaved or the scenario is wrong.
    #[error("line {line}: {message}")]
    Failed { line: usize, message: String },
    /// The server could not be reached at all.
    #[error("line {line}: {message}")]
    Connect { line: usize, message: String },
}

impl RunError {
    /// Exit code by the QA commands' convention: 1 failed, 2 could not connect.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Failed { .. } => 1,
            RunError::Connect { .. } => 2,
        }
    }
}

/// Plays `script` to the end or to the first failed step.
pub async fn run(script: &Script, options: ScriptOptions) -> Result<RunSummary, RunError> {
    let mut runner = Runner {
        placement: Placement::new(options.servers.clone()),
        options,
        users: HashMap::new(),
        variables: HashMap::from([("run".to_string(), run_id())]),
        steps: 0,
    };
    let started = Instant::now();
    let result = runner.block(&script.steps).await;
    for user in runner.users.values_mut() {
        if let Some(conn) = user.conn.take() {
            conn.close();
        }
    }
    result.map(|()| RunSummary {
        steps: runner.steps,
        duration: started.elapsed(),
    })
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{:x}", nanos % 0xff_ffff_ffff)
}

#[derive(Default)]
struct VirtualUser {
    /// The user id it logs in as (its name unless `login as=ID`).
    id: String,
    /// The server its connection went to (files go to the same one).
    url: String,
    conn: Option<RawConn>,
    token: Option<String>,
    auto_ack: bool,
}

struct Runner {
    options: ScriptOptions,
    placement: Placement,
    users: HashMap<String, VirtualUser>,
    variables: HashMap<String, String>,
    steps: usize,
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), RunError>> + Send + 'a>>;

impl Runner {
    fn block<'a>(&'a mut self, steps: &'a [Step]) -> StepFuture<'a> {
        Box::pin(async move {
            for step in steps {
                self.steps += 1;
                let fail = |message: String| RunError::Failed {
                    line: step.line,
                    message,
                };
                match &step.kind {
                    StepKind::Set { name, value } => {
                        let value = self.expand(value).map_err(fail)?;
                        self.variables.insert(name.clone(), value);
                    }
                    StepKind::Sleep(duration) => tokio::time::sleep(*duration).await,
                    StepKind::Repeat { count, body } => {
                        let outer = self.variables.get("i").cloned();
                        for i in 1..=*count {
                            self.variables.insert("i".into(), i.to_string());
                            self.block(body).await?;
                        }
                        match outer {
                            Some(i) => self.variables.insert("i".into(), i),
                            None => self.variables.remove("i"),
                        };
                    }
                    StepKind::Act {
                        user,
                        action,
                        expect,
                    } => {
                        self.act(step.line, user, action, *expect).await?;
                    }
                }
            }
            Ok(())
        })
    }

    fn expand(&self, template: &str) -> Result<String, String> {
        substitute_with(template, |name| self.variables.get(name).cloned())
    }

    async fn act(
        &mut self,
        line: usize,
        user: &str,
        action: &UserAction,
        expect: ExpectCode,
    ) -> Result<(), RunError> {
        let fail = |message: String| RunError::Failed {
            line,
            message: format!("{user}: {message}"),
        };
        let op = match action {
            UserAction::Login { token, as_user } => {
                let token = token
                    .as_deref()
                    .map(|t| self.expand(t))
                    .transpose()
                    .map_err(fail)?;
                let id = as_user
                    .as_deref()
                    .map(|t| self.expand(t))
                    .transpose()
                    .map_err(fail)?;
                self.connect(line, user).await?;
                let vu = self.users.get_mut(user).expect("connected above");
                vu.token = token;
                vu.id = id.unwrap_or_else(|| user.to_string());
                login_op(&self.options.app_id, &vu.id, vu.token.as_deref())
            }
            UserAction::Reconnect => {
                if let Some(old) = self.users.get_mut(user).and_then(|u| u.conn.take()) {
                    old.drop_abruptly();
                }
                self.connect(line, user).await?;
                let vu = &self.users[user];
                login_op(&self.options.app_id, &vu.id, vu.token.as_deref())
            }
            UserAction::Logout => json!({"op": "logout"}),
            UserAction::Join(channel) => {
                json!({"op": "join", "channel": self.expand(channel).map_err(fail)?})
            }
            UserAction::Leave(channel) => {
                json!({"op": "leave", "channel": self.expand(channel).map_err(fail)?})
            }
            UserAction::Send { to, text, offline } => json!({
                "op": "send_peer", "to": self.expand(to).map_err(fail)?,
                "message": {"type": "text", "text": self.expand(text).map_err(fail)?}, "offline": offline,
            }),
            UserAction::SendFile { to, path } => {
                let to = self.expand(to).map_err(fail)?;
                let path = self.expand(path).map_err(fail)?;
                let message = self.upload(user, &path).await.map_err(fail)?;
                json!({"op": "send_peer", "to": to, "message": message})
            }
            UserAction::Say { channel, text } => json!({
                "op": "send_channel", "channel": self.expand(channel).map_err(fail)?,
                "message": {"type": "text", "text": self.expand(text).map_err(fail)?},
            }),
            UserAction::Raw(json) => {
                let text = self.expand(json).map_err(fail)?;
                let value: Value =
                    serde_json::from_str(&text).map_err(|e| fail(format!("raw: not JSON: {e}")))?;
                if !value.is_object() {
                    return Err(fail("raw: the request must be a JSON object".into()));
                }
                value
            }
            UserAction::Expect(pattern) => {
                return self.expect_event(user, pattern, true).await.map_err(fail)
            }
            UserAction::ExpectNone(pattern) => {
                return self.expect_event(user, pattern, false).await.map_err(fail)
            }
            UserAction::Disconnect => {
                self.conn(user).map_err(fail)?;
                if let Some(conn) = self.users.get_mut(user).and_then(|u| u.conn.take()) {
                    conn.drop_abruptly();
                }
                return Ok(());
            }
            UserAction::Close => {
                let conn = self
                    .users
                    .get_mut(user)
                    .and_then(|u| u.conn.take())
                    .ok_or_else(|| fail("not connected".into()))?;
                conn.close();
                return Ok(());
            }
            UserAction::Ack(on) => {
                self.conn(user).map_err(fail)?.set_auto_ack(*on);
                if let Some(vu) = self.users.get_mut(user) {
                    vu.auto_ack = *on;
                }
                return Ok(());
            }
        };
        let name = op_name(&op);
        let conn = self.conn(user).map_err(fail)?;
        // Long enough for a peer send that waits for an ack timeout (10 s by default).
        let reply = conn
            .call_within(op, Duration::from_secs(20))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let code = code_of(&reply);
        match expect {
            ExpectCode::Code(want) if want != code => {
                let reason = reply.get("reason").and_then(Value::as_str).unwrap_or("");
                Err(fail(format!(
                    "{name} answered code {code} {reason:?}; expected {want}"
                )))
            }
            _ => Ok(()),
        }
    }

    async fn connect(&mut self, line: usize, user: &str) -> Result<(), RunError> {
        let (url, label) = self.placement.seat(user);
        let conn = RawConn::connect(&url, label, self.options.tracer.clone())
            .await
            .map_err(|e| match e {
                RawError::Connect { .. } => RunError::Connect {
                    line,
                    message: e.to_string(),
                },
                other => RunError::Failed {
                    line,
                    message: other.to_string(),
                },
            })?;
        let vu = self
            .users
            .entry(user.to_string())
            .or_insert_with(|| VirtualUser {
                id: user.to_string(),
                auto_ack: true,
                ..VirtualUser::default()
            });
        conn.set_auto_ack(vu.auto_ack);
        vu.conn = Some(conn);
        vu.url = url;
        Ok(())
    }

    /// Uploads the file at `path` as `user`; its `file` message.
    async fn upload(&mut self, user: &str, path: &str) -> Result<Value, String> {
        let path = match &self.options.base_dir {
            Some(base) => base.join(path),
            None => std::path::PathBuf::from(path),
        };
        let data = tokio::fs::read(&path)
            .await
            .map_err(|e| format!("send_file: cannot read {}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let conn = self.conn(user)?;
        let ticket = media::ticket(conn).await.map_err(|e| e.to_string())?;
        let url = self
            .users
            .get(user)
            .map(|u| u.url.clone())
            .unwrap_or_default();
        let api = media::api(&url, ticket).map_err(|e| e.to_string())?;
        let uploaded = media::upload(&api, &name, data)
            .await
            .map_err(|e| format!("send_file: {e}"))?;
        Ok(media::file_message(&name, &uploaded))
    }

    fn conn(&mut self, user: &str) -> Result<&mut RawConn, String> {
        self.users
            .get_mut(user)
            .and_then(|u| u.conn.as_mut())
            .ok_or_else(|| "not connected (use `login` or `reconnect` first)".to_string())
    }

    async fn expect_event(
        &mut self,
        user: &str,
        pattern: &EventPattern,
        wanted: bool,
    ) -> Result<(), String> {
        let mut fields = Vec::with_capacity(pattern.fields.len());
        for (key, value) in &pattern.fields {
            fields.push((key.clone(), self.expand(value)?));
        }
        let conn = self.conn(user)?;
        let found = conn
            .next_event(pattern.within, |e| event_fits(e, &pattern.event, &fields))
            .await;
        let wanted_text = describe(&pattern.event, &fields);
        match (found, wanted) {
            (Some(_), true) | (None, false) => Ok(()),
            (Some(event), false) => Err(format!(
                "got {event}, which `expect-none {wanted_text}` forbids"
            )),
            (None, true) => {
                let others: Vec<String> =
                    conn.drain_events().iter().map(Value::to_string).collect();
                Err(format!(
                    "no {wanted_text} within {:?}; other events: {}",
                    pattern.within,
                    if others.is_empty() {
                        "none".into()
                    } else {
                        others.join(", ")
                    }
                ))
            }
        }
    }
}

fn login_op(app_id: &str, user: &str, token: Option<&str>) -> Value {
    let mut op = json!({"op": "login", "app_id": app_id, "user": user});
    if let Some(token) = token {
        op["token"] = json!(token);
    }
    op
}

fn describe(event: &str, fields: &[(String, String)]) -> String {
    fields.iter().fold(event.to_string(), |text, (k, v)| {
        format!("{text} {k}={v:?}")
    })
}

/// True when `event` has name `name` and every dotted field path has the given text.
pub(super) fn event_fits(event: &Value, name: &str, fields: &[(String, String)]) -> bool {
    event.get("event").and_then(Value::as_str) == Some(name)
        && fields
            .iter()
            .all(|(path, want)| field(event, path).is_some_and(|have| as_text(have) == *want))
}

fn field<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let direct = path.split('.').try_fold(value, |v, key| v.get(key));
    match (direct, path) {
        (None, "text") => value.get("message").and_then(|m| m.get("text")),
        (found, _) => found,
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_by_dotted_path_and_text() {
        let event = json!({"event": "message_from_channel", "channel": "c", "from": "alice",
            "message": {"type": "text", "text": "hi"}, "message_id": 7});
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(event_fits(
            &event,
            "message_from_channel",
            &f(&[("from", "alice"), ("text", "hi"), ("message_id", "7")])
        ));
        assert!(event_fits(
            &event,
            "message_from_channel",
            &f(&[("message.type", "text")])
        ));
        assert!(!event_fits(
            &event,
            "message_from_channel",
            &f(&[("from", "bob")])
        ));
        assert!(!event_fits(&event, "message_from_peer", &[]));
    }
}

//! Expectations on a raw connection that fail a case with a readable reason, and small
//! helpers for building requests and judging bursts of replies.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};

use super::{CaseError, CaseResult, EVENT_TIMEOUT};
use crate::qa::raw::{code_of, op_name, PendingReply, RawConn, REPLY_TIMEOUT};

/// Expectations on a raw connection, failing the case with a readable reason.
pub trait Expect {
    /// Sends `op`, expects reply code `code`, returns the reply.
    fn code(
        &mut self,
        op: Value,
        code: u32,
    ) -> impl Future<Output = Result<Value, CaseError>> + Send;
    /// Sends `op`, expects code 0.
    fn ok(&mut self, op: Value) -> impl Future<Output = Result<Value, CaseError>> + Send;
    /// Sends `op`, expects code 0 and the reply's `field` to equal `expected`; returns the
    /// reply.
    fn ok_with(
        &mut self,
        op: Value,
        field: &str,
        expected: Value,
    ) -> impl Future<Output = Result<Value, CaseError>> + Send;
    /// Waits for event `name` whose fields include `fields` (a JSON subset).
    fn event(
        &mut self,
        name: &str,
        fields: Value,
    ) -> impl Future<Output = Result<Value, CaseError>> + Send;
    /// Takes the next `count` events `name` with `fields`, in arrival order.
    fn events(
        &mut self,
        name: &str,
        fields: Value,
        count: usize,
    ) -> impl Future<Output = Result<Vec<Value>, CaseError>> + Send;
    /// Fails if event `name` with `fields` arrives within `within`.
    fn no_event(
        &mut self,
        name: &str,
        fields: Value,
        within: Duration,
    ) -> impl Future<Output = CaseResult> + Send;
}

impl Expect for RawConn {
    async fn code(&mut self, op: Value, code: u32) -> Result<Value, CaseError> {
        let name = op_name(&op);
        let reply = self.call(op).await?;
        let got = code_of(&reply);
        if got != code {
            let reason = reply.get("reason").and_then(Value::as_str).unwrap_or("");
            fail!(
                "{name} by {}: expected code {code}, got {got} {reason:?}",
                self.label()
            );
        }
        if got != 0 && reply.get("reason").and_then(Value::as_str).is_none() {
            fail!("{name}: reply with code {got} carries no \"reason\"");
        }
        Ok(reply)
    }

    async fn ok(&mut self, op: Value) -> Result<Value, CaseError> {
        self.code(op, 0).await
    }

    async fn ok_with(
        &mut self,
        op: Value,
        field: &str,
        expected: Value,
    ) -> Result<Value, CaseError> {
        let what = format!("{} {op}", self.label());
        let reply = self.ok(op).await?;
        ensure!(
            reply[field] == expected,
            "{what}: {field} is {}; {expected} expected",
            reply[field]
        );
        Ok(reply)
    }

    async fn event(&mut self, name: &str, fields: Value) -> Result<Value, CaseError> {
        let found = self
            .next_event(EVENT_TIMEOUT, |e| event_matches(e, name, &fields))
            .await;
        if let Some(event) = found {
            return Ok(event);
        }
        let seen: Vec<String> = self.drain_events().iter().map(Value::to_string).collect();
        fail!(
            "{}: no {name} matching {fields} within {}s (other events: {})",
            self.label(),
            EVENT_TIMEOUT.as_secs(),
            if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            }
        )
    }

    async fn events(
        &mut self,
        name: &str,
        fields: Value,
        count: usize,
    ) -> Result<Vec<Value>, CaseError> {
        let mut got = Vec::with_capacity(count);
        for n in 0..count {
            match self
                .next_event(EVENT_TIMEOUT, |e| event_matches(e, name, &fields))
                .await
            {
                Some(event) => got.push(event),
                None => fail!(
                    "{}: only {n} of {count} {name} matching {fields} arrived",
                    self.label()
                ),
            }
        }
        Ok(got)
    }

    async fn no_event(&mut self, name: &str, fields: Value, within: Duration) -> CaseResult {
        if let Some(event) = self
            .next_event(within, |e| event_matches(e, name, &fields))
            .await
        {
            fail!("{}: unexpected {event}", self.label());
        }
        Ok(())
    }
}

/// True when `event` is named `name` and contains `fields` (recursively, as a subset).
pub fn event_matches(event: &Value, name: &str, fields: &Value) -> bool {
    event.get("event").and_then(Value::as_str) == Some(name) && json_contains(event, fields)
}

/// True when every key of `pattern` is in `value` with a matching value (objects compared
/// as subsets, everything else by equality).
pub fn json_contains(value: &Value, pattern: &Value) -> bool {
    match (value, pattern) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| have.get(k).is_some_and(|h| json_contains(h, w))),
        _ => value == pattern,
    }
}

/// Waits for each of several pipelined replies, in the order they were started.
pub async fn wait_all(pending: Vec<PendingReply>) -> Result<Vec<Value>, CaseError> {
    let mut replies = Vec::with_capacity(pending.len());
    for mut reply in pending {
        replies.push(reply.wait(REPLY_TIMEOUT).await?);
    }
    Ok(replies)
}

/// Fails unless every reply answered `code`; `what` names the requests.
pub fn all_answered(replies: &[Value], code: u32, what: &str) -> CaseResult {
    if let Some(odd) = replies.iter().find(|r| code_of(r) != code) {
        fail!("{what} answered {odd}; {code} expected");
    }
    Ok(())
}

/// The `message_id` of each reply or event (0 where missing, which no rule allows).
pub fn message_ids(objects: &[Value]) -> Vec<u64> {
    objects
        .iter()
        .map(|o| o["message_id"].as_u64().unwrap_or(0))
        .collect()
}

/// Fails unless `event` carries `message`; `what` names the message.
pub fn carries(event: &Value, message: &Value, what: &str) -> CaseResult {
    ensure!(
        &event["message"] == message,
        "{what} arrived as {}; {message} expected",
        event["message"]
    );
    Ok(())
}

/// Checks a burst of replies against a rate limit: each answered `normal` or `limited`, and
/// at least `min` were limited. An unexpected code is reported with its reason.
pub fn rate_limited(
    replies: &[Value],
    normal: u32,
    limited: u32,
    min: usize,
    what: &str,
) -> CaseResult {
    if let Some(odd) = replies
        .iter()
        .find(|r| ![normal, limited].contains(&code_of(r)))
    {
        fail!("{what}: a reply was {odd}; only {normal} or {limited} (too often) expected");
    }
    let count = replies.iter().filter(|r| code_of(r) == limited).count();
    ensure!(
        count >= min,
        "{what}: {count} of {} answered {limited} (too often); at least {min} expected",
        replies.len()
    );
    Ok(())
}

/// A text message as the wire carries it.
pub fn text(body: &str) -> Value {
    json!({"type": "text", "text": body})
}

//! Script calls a node owes Redis that nobody waits for but that must get there: the
//! delete of a user's attributes once the user went (`user_attributes.rs`), a change of
//! a channel's members for the expiry of its attributes (`channel_attributes.rs`). One
//! task sends them as they come and, while the Redis that holds one is away, tries again
//! every [`RETRY_AFTER`] until it takes it. Only the latest call per key and script is
//! kept (each replaces an earlier one that has not gone yet), so the queue is bounded by
//! the keys, and sending one again is harmless (the scripts compare generations or
//! epochs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use tokio::sync::Notify;

use super::{lock, stopped, Complaint, Inner, SUBMIT_TIMEOUT};

/// How long the task waits after a failure before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The calls not yet taken, by (script hash, key).
#[derive(Debug, Default)]
pub(super) struct Retried {
    calls: Mutex<HashMap<(&'static str, String), OwedCall>>,
    added: Notify,
}

#[derive(Debug, Clone)]
struct OwedCall {
    shard: usize,
    script: &'static Script,
    args: Vec<String>,
}

impl Retried {
    /// Queues `script` on `key` of Redis `shard` with `args`, replacing a call of the
    /// same script on the same key that has not gone yet.
    pub fn push(&self, shard: usize, script: &'static Script, key: String, args: Vec<String>) {
        let call = OwedCall {
            shard,
            script,
            args,
        };
        lock(&self.calls).insert((script.get_hash(), key), call);
        self.added.notify_one();
    }
}

impl OwedCall {
    /// The same call (not one queued since in its place).
    fn is(&self, other: &OwedCall) -> bool {
        self.shard == other.shard
            && std::ptr::eq(self.script, other.script)
            && self.args == other.args
    }
}

/// Sends the queued calls (see the module header) until the engine stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut complaint = Complaint::new("calls owed to redis");
    loop {
        let calls: Vec<_> = lock(&inner.retried.calls)
            .iter()
            .map(|(id, call)| (id.clone(), call.clone()))
            .collect();
        let sends = calls.into_iter().map(|(id, call)| {
            let mut conn = inner.shards[call.shard].conn.clone();
            let mut invocation = call.script.prepare_invoke();
            invocation.key(&id.1);
            for arg in &call.args {
                invocation.arg(arg);
            }
            async move {
                let sent =
                    tokio::time::timeout(SUBMIT_TIMEOUT, invocation.invoke_async::<()>(&mut conn))
                        .await;
                (id, call, sent)
            }
        });
        let mut failed = false;
        for (id, call, sent) in futures_util::future::join_all(sends).await {
            let failure = match sent {
                Ok(Ok(())) => {
                    let mut calls = lock(&inner.retried.calls);
                    if calls.get(&id).is_some_and(|queued| queued.is(&call)) {
                        calls.remove(&id);
                    }
                    continue;
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => "timed out".to_string(),
            };
            complaint.failed(&failure);
            failed = true;
        }
        if !failed {
            complaint.worked();
        }
        if !next_round(&inner, &inner.retried.added, failed).await {
            return;
        }
    }
}

/// Waits for the next round of a task that sends what it owes Redis: [`RETRY_AFTER`]
/// after a failure, else until `added` tells of more; false once the engine stops.
pub(super) async fn next_round(inner: &Inner, added: &Notify, failed: bool) -> bool {
    let more = async {
        if failed {
            tokio::time::sleep(RETRY_AFTER).await;
        } else {
            added.notified().await;
        }
    };
    tokio::select! {
        () = more => true,
        () = stopped(inner) => false,
    }
}

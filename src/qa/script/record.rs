//! Recording: what a person does by hand in `rtm-tui headless` (or `script --record`),
//! written as a scenario that `rtm-tui script` replays as a regression test against any
//! server. Each command becomes a step of user `me` with the code it got (`-> 3` when not
//! 0); a `wait EVENT` becomes an `expect EVENT`; events that arrived are kept as
//! comments (they came from other people, whom a replay does not have). Pure text: the
//! headless loop hands in each command and its outcome, [`Recording::to_scenario`] gives
//! the file.

use std::fmt::Write as _;

/// The user a recording's steps are played as.
const ME: &str = "me";

/// A session being recorded.
#[derive(Debug, Default, Clone)]
pub struct Recording {
    /// The server and app it was recorded against, for the header.
    pub server: String,
    pub app_id: String,
    lines: Vec<String>,
}

impl Recording {
    pub fn new(server: &str, app_id: &str) -> Self {
        Recording {
            server: server.to_string(),
            app_id: app_id.to_string(),
            lines: Vec::new(),
        }
    }

    /// Records a command (its words, its whole line) and the code it got (`None` for a
    /// local failure, such as a usage error, which is left out of the scenario).
    pub fn command(&mut self, words: &[String], line: &str, code: Option<u32>) {
        let Some((verb, args)) = words.split_first() else {
            return;
        };
        if code.is_none() && verb != "wait" {
            self.lines
                .push(format!("# failed here, not replayed: {}", line.trim()));
            return;
        }
        let step = match (verb.as_str(), args) {
            ("login", [user]) => format!("login as={}", word(user)),
            ("login", [user, token]) => format!("login as={} token={}", word(user), word(token)),
            ("logout", []) => "logout".into(),
            ("join" | "leave", [channel]) => format!("{verb} {}", word(channel)),
            ("say", [channel, text @ ..]) => {
                format!("say {} {}", word(channel), word(&text.join(" ")))
            }
            ("send", [peer, text @ ..]) => format!("send {} {}", word(peer), word(&text.join(" "))),
            ("send-offline", [peer, text @ ..]) => {
                format!("send {} {} offline", word(peer), word(&text.join(" ")))
            }
            ("wait", [event, rest @ ..]) if !is_state(event) && code == Some(0) => {
                let within = rest
                    .first()
                    .map_or(String::new(), |s| format!(" within={s}s"));
                // A wait is what the person checked: the event must come.
                self.lines.push(format!("{ME} expect {event}{within}"));
                return;
            }
            ("wait" | "quit", _) => return,
            _ => {
                let Some(json) = raw_op(verb, args, line) else {
                    self.lines
                        .push(format!("# not replayable: {}", line.trim()));
                    return;
                };
                format!("raw {}", json.replace('$', "$$"))
            }
        };
        let expect = match code {
            Some(0) | None => String::new(),
            Some(code) => format!(" -> {code}"),
        };
        self.lines.push(format!("{ME} {step}{expect}"));
    }

    /// Notes an event that arrived (a comment: another person's doing, as often as not).
    pub fn event(&mut self, json: &str) {
        self.lines.push(format!("# got {json}"));
    }

    /// The scenario file.
    pub fn to_scenario(&self) -> String {
        let mut out = format!(
            "# Recorded with `rtm-tui headless --record` against {} (app {}).\n\
             # Replay: rtm-tui script FILE --server URL --app-id {}\n\
             users {ME}\n\n",
            self.server, self.app_id, self.app_id
        );
        for line in &self.lines {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

/// A connection state (`wait CONNECTED`) rather than a server event: not a step.
fn is_state(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

/// One word of the scenario language: quoted when it has spaces or quotes, `$` doubled.
fn word(text: &str) -> String {
    let text = text.replace('$', "$$");
    if !text.is_empty() && !text.contains([' ', '"', '\\', '#', '\n', '\t']) {
        return text;
    }
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// The request of a headless command that has no scenario verb of its own, as JSON.
fn raw_op(verb: &str, args: &[String], line: &str) -> Option<String> {
    let op = match (verb, args) {
        ("raw", _) => return Some(line.trim_start().strip_prefix("raw")?.trim().to_string()),
        ("ping", []) => serde_json::json!({"op": "ping"}),
        ("renew", [token]) => serde_json::json!({"op": "renew_token", "token": token}),
        ("members", [channel]) => serde_json::json!({"op": "get_members", "channel": channel}),
        ("query", peers) if !peers.is_empty() => {
            serde_json::json!({"op": "query_peers_online", "peers": peers})
        }
        ("subscribe", peers) if !peers.is_empty() => {
            serde_json::json!({"op": "subscribe_peers_online", "peers": peers})
        }
        ("unsubscribe", peers) if !peers.is_empty() => {
            serde_json::json!({"op": "unsubscribe_peers_online", "peers": peers})
        }
        ("history", [kind, id, rest @ ..]) if kind == "peer" || kind == "channel" => {
            let limit = rest
                .first()
                .and_then(|l| l.parse::<u32>().ok())
                .unwrap_or(50);
            serde_json::json!({"op": "history", kind.as_str(): id, "limit": limit})
        }
        _ => return None,
    };
    Some(op.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        crate::qa::script::words(line).unwrap()
    }

    #[test]
    fn commands_become_steps_that_parse() {
        let mut recording = Recording::new("ws://127.0.0.1:7420/rtm/v1", "demo");
        for (line, code) in [
            ("login alice", Some(0)),
            ("join lobby", Some(0)),
            ("say lobby \"hi all, it's $5\"", Some(0)),
            ("send bob hello", Some(3)),
            ("members lobby", Some(0)),
            ("wait message_from_channel 5", Some(0)),
            ("wait member_left 1", None),
            ("wait CONNECTED", None),
            ("send", None),
            ("quit", Some(0)),
        ] {
            recording.command(&words(line), line, code);
        }
        recording.event(r#"{"event":"member_joined","channel":"lobby","user":"bob"}"#);
        let scenario = recording.to_scenario();
        assert!(scenario.contains("me login as=alice\n"), "{scenario}");
        assert!(
            scenario.contains("me say lobby \"hi all, it's $$5\"\n"),
            "{scenario}"
        );
        assert!(scenario.contains("me send bob hello -> 3\n"), "{scenario}");
        assert!(
            scenario.contains(r#"me raw {"channel":"lobby","op":"get_members"}"#)
                || scenario.contains(r#"me raw {"op":"get_members","channel":"lobby"}"#),
            "{scenario}"
        );
        assert!(
            scenario.contains("me expect message_from_channel within=5s\n"),
            "{scenario}"
        );
        assert!(
            !scenario.contains("CONNECTED") && !scenario.contains("member_left"),
            "{scenario}"
        );
        assert!(
            scenario.contains("# failed here, not replayed: send"),
            "{scenario}"
        );
        crate::qa::script::parse(&scenario).expect("a recording parses as a scenario");
    }
}

//! The scenario parser: lines → [`Script`], with errors that name the line.

use std::collections::HashSet;
use std::time::Duration;

use super::{EventPattern, ExpectCode, Script, Step, StepKind, Template, UserAction};

/// How long `expect` waits unless `within=` says.
pub(super) const DEFAULT_EXPECT_WITHIN: Duration = Duration::from_secs(3);
/// How long `expect-none` listens unless `within=` says.
pub(super) const DEFAULT_EXPECT_NONE_WITHIN: Duration = Duration::from_millis(500);
/// Words that start top-level steps and so cannot be user names.
const KEYWORDS: &[&str] = &["set", "users", "sleep", "repeat", "}"];

/// A bad script: what is wrong and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// One word of a line, and whether any of it was quoted.
#[derive(Debug, Clone, PartialEq)]
struct Word {
    text: String,
    quoted: bool,
}

struct Parser {
    declared_users: Option<HashSet<String>>,
    variables: HashSet<String>,
}

/// Parses a whole scenario.
pub fn parse(source: &str) -> Result<Script, ParseError> {
    let mut parser = Parser {
        declared_users: None,
        variables: ["run".to_string()].into_iter().collect(),
    };
    let lines: Vec<(usize, &str)> = source
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l))
        .collect();
    let mut cursor = 0;
    let steps = parser.block(&lines, &mut cursor, None)?;
    Ok(Script { steps })
}

impl Parser {
    /// Parses steps until the end or, inside a `repeat` opened on `open_line`, its `}`.
    fn block(
        &mut self,
        lines: &[(usize, &str)],
        cursor: &mut usize,
        open_line: Option<usize>,
    ) -> Result<Vec<Step>, ParseError> {
        let mut steps = Vec::new();
        while *cursor < lines.len() {
            let (line, text) = lines[*cursor];
            *cursor += 1;
            let err = |message: String| ParseError { line, message };
            let words = split_words(text).map_err(err)?;
            let Some(first) = words.first() else { continue };
            match first.text.as_str() {
                "}" if !first.quoted => {
                    if open_line.is_none() {
                        return Err(err("`}` without a `repeat` to close".into()));
                    }
                    if words.len() > 1 {
                        return Err(err("nothing may follow `}` on its line".into()));
                    }
                    return Ok(steps);
                }
                "repeat" => {
                    let count = match words.as_slice() {
                        [_, n, brace] if brace.text == "{" => {
                            n.text.parse::<u32>().map_err(|_| {
                                err(format!("repeat count {:?} is not a whole number", n.text))
                            })?
                        }
                        _ => return Err(err("expected `repeat N {`".into())),
                    };
                    let had_i = !self.variables.insert("i".into());
                    let body = self.block(lines, cursor, Some(line))?;
                    if !had_i {
                        self.variables.remove("i");
                    }
                    steps.push(Step {
                        line,
                        kind: StepKind::Repeat { count, body },
                    });
                }
                "set" => {
                    let [_, name, value] = words.as_slice() else {
                        return Err(err(
                            "expected `set NAME VALUE` (quote a value with spaces)".into()
                        ));
                    };
                    if !is_identifier(&name.text) {
                        return Err(err(format!(
                            "{:?} is not a variable name (letters, digits, _)",
                            name.text
                        )));
                    }
                    self.check_vars(&value.text).map_err(err)?;
                    self.variables.insert(name.text.clone());
                    steps.push(Step {
                        line,
                        kind: StepKind::Set {
                            name: name.text.clone(),
                            value: value.text.clone(),
                        },
                    });
                }
                "users" => {
                    if words.len() < 2 {
                        return Err(err("expected `users NAME...`".into()));
                    }
                    let names = words[1..].iter().map(|w| w.text.clone());
                    self.declared_users
                        .get_or_insert_with(HashSet::new)
                        .extend(names);
                }
                "sleep" => {
                    let [_, duration] = words.as_slice() else {
                        return Err(err("expected `sleep DURATION`, e.g. `sleep 500ms`".into()));
                    };
                    steps.push(Step {
                        line,
                        kind: StepKind::Sleep(parse_duration(&duration.text).map_err(err)?),
                    });
                }
                _ => {
                    let step = self.act(text, &words).map_err(err)?;
                    steps.push(Step { line, kind: step });
                }
            }
        }
        match open_line {
            Some(open) => Err(ParseError {
                line: open,
                message: "this `repeat {` is never closed with `}`".into(),
            }),
            None => Ok(steps),
        }
    }

    /// Parses `USER VERB args... [-> CODE]`.
    fn act(&self, line: &str, words: &[Word]) -> Result<StepKind, String> {
        let user = &words[0].text;
        if KEYWORDS.contains(&user.as_str()) {
            return Err(format!("{user:?} is a keyword"));
        }
        if let Some(users) = &self.declared_users {
            if !users.contains(user) {
                return Err(format!(
                    "unknown user {user:?} (declared: {})",
                    sorted(users).join(", ")
                ));
            }
        }
        let Some(verb) = words.get(1) else {
            return Err(format!(
                "expected a verb after {user:?} (login, join, send, say, expect, ...)"
            ));
        };
        // `raw` takes the rest of the line verbatim (JSON has its own quotes).
        if verb.text == "raw" {
            let rest = line.trim_start();
            let rest = rest[rest.find("raw").unwrap_or(0) + 3..].trim();
            let (json, expect) = match rest.rsplit_once("->") {
                Some((json, code)) if parse_code(code.trim()).is_ok() => {
                    (json.trim(), parse_code(code.trim())?)
                }
                _ => (rest, ExpectCode::Code(0)),
            };
            if json.is_empty() {
                return Err("expected `raw {\"op\": ...}`".into());
            }
            self.check_vars(json)?;
            return Ok(StepKind::Act {
                user: user.clone(),
                action: UserAction::Raw(json.to_string()),
                expect,
            });
        }
        let mut args: Vec<&Word> = words[2..].iter().collect();
        let mut expect = ExpectCode::Code(0);
        if let Some(pos) = args.iter().position(|w| w.text == "->" && !w.quoted) {
            let [code] = &args[pos + 1..] else {
                return Err("expected one code after `->`, e.g. `-> 4` or `-> any`".into());
            };
            expect = parse_code(&code.text)?;
            args.truncate(pos);
        }
        for arg in &args {
            self.check_vars(&arg.text)?;
        }
        let offline = verb.text == "send"
            && args.len() == 3
            && args
                .last()
                .is_some_and(|w| w.text == "offline" && !w.quoted);
        if offline {
            args.pop();
        }
        let plain = |n: usize, usage: &str| -> Result<Vec<Template>, String> {
            if args.len() == n {
                Ok(args.iter().map(|w| w.text.clone()).collect())
            } else {
                Err(format!("expected `{user} {usage}`"))
            }
        };
        let action = match verb.text.as_str() {
            "login" => {
                let (mut token, mut as_user) = (None, None);
                for arg in &args {
                    match arg.text.split_once('=') {
                        Some(("token", t)) => token = Some(t.to_string()),
                        Some(("as", id)) => as_user = Some(id.to_string()),
                        _ => return Err(format!("expected `{user} login [token=TOKEN] [as=ID]`")),
                    }
                }
                UserAction::Login { token, as_user }
            }
            "logout" => plain(0, "logout").map(|_| UserAction::Logout)?,
            "join" => UserAction::Join(plain(1, "join CHANNEL")?.remove(0)),
            "leave" => UserAction::Leave(plain(1, "leave CHANNEL")?.remove(0)),
            "say" => {
                let mut v = plain(2, "say CHANNEL TEXT")?;
                UserAction::Say { text: v.remove(1), channel: v.remove(0) }
            }
            "send" => {
                let mut v = plain(2, "send PEER TEXT [offline]")?;
                UserAction::Send { text: v.remove(1), to: v.remove(0), offline }
            }
            "send_file" => {
                let mut v = plain(2, "send_file PEER PATH")?;
                UserAction::SendFile { path: v.remove(1), to: v.remove(0) }
            }
            "expect" => UserAction::Expect(pattern(&args, DEFAULT_EXPECT_WITHIN)?),
            "expect-none" => UserAction::ExpectNone(pattern(&args, DEFAULT_EXPECT_NONE_WITHIN)?),
            "disconnect" => plain(0, "disconnect").map(|_| UserAction::Disconnect)?,
            "close" => plain(0, "close").map(|_| UserAction::Close)?,
            "reconnect" => plain(0, "reconnect").map(|_| UserAction::Reconnect)?,
            "ack" => match plain(1, "ack on|off")?[0].as_str() {
                "on" => UserAction::Ack(true),
                "off" => UserAction::Ack(false),
                other => return Err(format!("expected `ack on` or `ack off`, not {other:?}")),
            },
            other => return Err(format!("unknown verb {other:?} (login, logout, join, leave, send, send_file, say, expect, expect-none, disconnect, close, reconnect, raw, ack)")),
        };
        if expect != ExpectCode::Code(0) && !action.has_reply() {
            return Err(format!(
                "`{}` gets no reply, so `->` does not apply",
                verb.text
            ));
        }
        Ok(StepKind::Act {
            user: user.clone(),
            action,
            expect,
        })
    }

    /// Fails on a `$variable` that no earlier `set` (or `repeat`) defines.
    fn check_vars(&self, text: &str) -> Result<(), String> {
        for name in variables_in(text)? {
            if !self.variables.contains(&name) {
                return Err(format!(
                    "variable ${name} is not set (use `set {name} VALUE` before this line)"
                ));
            }
        }
        Ok(())
    }
}

fn pattern(args: &[&Word], default_within: Duration) -> Result<EventPattern, String> {
    let Some((event, rest)) = args.split_first() else {
        return Err("expected an event name, e.g. `expect message_from_peer from=alice`".into());
    };
    let mut fields = Vec::new();
    let mut within = default_within;
    for arg in rest {
        let Some((key, value)) = arg.text.split_once('=') else {
            return Err(format!("expected FIELD=VALUE, not {:?}", arg.text));
        };
        if key == "within" {
            within = parse_duration(value)?;
        } else {
            fields.push((key.to_string(), value.to_string()));
        }
    }
    Ok(EventPattern {
        event: event.text.clone(),
        fields,
        within,
    })
}

fn parse_code(text: &str) -> Result<ExpectCode, String> {
    if text == "any" {
        return Ok(ExpectCode::Any);
    }
    text.parse()
        .map(ExpectCode::Code)
        .map_err(|_| format!("{text:?} is not a reply code (a number or `any`)"))
}

/// `250ms`, `2s`, `1.5s`, `1m`.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 250ms, 2s, 1.5s, 1m)");
    let (number, unit) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(bad());
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !(0.0..=86_400.0).contains(&(value * unit)) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(value * unit))
}

/// Splits a line into words as scenarios do: spaces separate, `"double quotes"` keep
/// spaces (escapes `\"`, `\\`, `\n`), `#` starts a comment.
pub fn words(line: &str) -> Result<Vec<String>, String> {
    Ok(split_words(line)?.into_iter().map(|w| w.text).collect())
}

/// Splits a line into words, honouring double quotes and stopping at a `#` comment.
fn split_words(line: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => return Ok(words),
            _ => {}
        }
        let mut word = Word {
            text: String::new(),
            quoted: false,
        };
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c != '"' {
                word.text.push(c);
                continue;
            }
            word.quoted = true;
            loop {
                match chars.next() {
                    None => return Err("a quoted string is not closed".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => word.text.push('\n'),
                        Some(e @ ('"' | '\\')) => word.text.push(e),
                        Some(e) => return Err(format!("unknown escape \\{e} in a quoted string")),
                        None => return Err("a quoted string is not closed".into()),
                    },
                    Some(c) => word.text.push(c),
                }
            }
        }
        words.push(word);
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variable names `text` refers to (`$name`, `${name}`; `$$` is a literal dollar).
pub(super) fn variables_in(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    substitute_with(text, |name| {
        names.push(name.to_string());
        Some(String::new())
    })?;
    Ok(names)
}

/// Replaces variables using `lookup`; `None` from it is an error naming the variable.
pub(super) fn substitute_with(
    text: &str,
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            let end = braced.find('}').ok_or("`${` without a closing `}`")?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if !is_identifier(name) {
            return Err(format!(
                "`${name}` is not a variable (write $$ for a dollar sign)"
            ));
        }
        out.push_str(&lookup(name).ok_or_else(|| format!("variable ${name} is not set"))?);
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

fn sorted(set: &HashSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.iter().cloned().collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_users_verbs_codes_and_blocks() {
        let script = parse(
            "# demo\nset room lobby-$run\nusers alice bob\nalice login\nalice join $room\n\
             alice send bob \"hi there\" offline -> 4\nrepeat 2 {\n  alice say $room \"n $i\"\n}\n\
             bob expect message_from_channel from=alice text=\"n 2\" within=2s\nalice raw {\"op\":\"ping\"} -> any\nsleep 250ms\n",
        )
        .unwrap();
        assert_eq!(script.steps.len(), 8);
        assert_eq!(
            script.steps[3].kind,
            StepKind::Act {
                user: "alice".into(),
                action: UserAction::Send {
                    to: "bob".into(),
                    text: "hi there".into(),
                    offline: true
                },
                expect: ExpectCode::Code(4)
            }
        );
        let StepKind::Repeat { count: 2, body } = &script.steps[4].kind else {
            panic!()
        };
        assert_eq!(body[0].line, 8);
        let StepKind::Act {
            action: UserAction::Expect(p),
            ..
        } = &script.steps[5].kind
        else {
            panic!()
        };
        assert_eq!(p.within, Duration::from_secs(2));
        assert_eq!(
            p.fields,
            vec![
                ("from".into(), "alice".into()),
                ("text".into(), "n 2".into())
            ]
        );
        let StepKind::Act {
            action: UserAction::Raw(json),
            expect: ExpectCode::Any,
            ..
        } = &script.steps[6].kind
        else {
            panic!()
        };
        assert_eq!(json, "{\"op\":\"ping\"}");
        assert_eq!(
            script.steps[7].kind,
            StepKind::Sleep(Duration::from_millis(250))
        );
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("alice login\nalice fly\n", 2, "unknown verb"),
            ("users alice\nbob login\n", 2, "unknown user"),
            ("alice join $nowhere\n", 1, "$nowhere is not set"),
            ("\nrepeat 3 {\nalice login\n", 2, "never closed"),
            ("}\n", 1, "without a `repeat`"),
            ("sleep soon\n", 1, "not a duration"),
            ("alice say room \"open\n", 1, "not closed"),
            ("alice expect member_joined user\n", 1, "FIELD=VALUE"),
            ("alice disconnect -> 3\n", 1, "gets no reply"),
            (
                "alice login\nalice join lobby -> maybe\n",
                2,
                "not a reply code",
            ),
        ];
        for (source, line, text) in cases {
            let error = parse(source).unwrap_err();
            assert_eq!(error.line, line, "{source:?}: {error}");
            assert!(error.message.contains(text), "{source:?}: {error}");
        }
    }

    #[test]
    fn substitutes_variables() {
        let got = substitute_with("a $x ${y}z $$5", |n| Some(n.to_uppercase())).unwrap();
        assert_eq!(got, "a X Yz $5");
        assert!(substitute_with("$", |_| None).is_err());
    }
}

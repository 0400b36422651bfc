//! What a slash command is: the table (which also feeds `/help`), parsing a line into a
//! [`SlashCommand`], and Tab completion of command names, user ids and channel ids. What
//! each command does is `app/slash_handlers.rs`. A new command is a row in [`COMMANDS`],
//! a [`SlashCommand`] variant, an arm in `parse` and one in `App::run_command`.

/// (name, arguments, what it does), in the order `/help` lists them.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("join", "<channel>", "join a channel and open its tab"),
    (
        "leave",
        "[channel]",
        "leave a channel (default: this tab's)",
    ),
    (
        "msg",
        "<peer|#channel> [text]",
        "open a peer (or channel) tab, and send text if given",
    ),
    ("query", "<peer>", "open a peer tab"),
    ("close", "", "close this tab (leaves a channel)"),
    (
        "members",
        "[filter]",
        "show/refresh the member list, filtered",
    ),
    (
        "who",
        "[peer]...",
        "online status of peers (default: this peer, or this channel's members)",
    ),
    (
        "subscribed",
        "",
        "the peers whose presence you follow (open peer tabs)",
    ),
    (
        "count",
        "[channel]...",
        "member counts of channels, joined or not (default: this tab's)",
    ),
    ("ping", "", "round trip to the server"),
    ("me", "<text>", "send an action (* you waves)"),
    ("retry", "", "resend the last failed message of this tab"),
    ("clear", "", "clear this tab's messages from the screen"),
    (
        "search",
        "[text]",
        "search this tab's messages (also Ctrl-R; PgUp there: older history)",
    ),
    (
        "attr",
        "[set k v|set k=v k2=\"v 2\"…|replace k=v…|del k…|clear|get user]",
        "your attributes (replace: these and no others), or another user's",
    ),
    (
        "topic",
        "[text]",
        "this channel's topic, or set it (the topic attribute)",
    ),
    (
        "cattr",
        "[set k v|set k=v…|replace k=v…|del k…|clear]",
        "this channel's attributes (topic)",
    ),
    (
        "call",
        "<peer> [#channel] [content]",
        "invite a peer to a call (into a channel)",
    ),
    (
        "hangup",
        "",
        "cancel the call you are placing from this peer tab",
    ),
    ("accept", "[response]", "accept the pending invitation"),
    ("refuse", "[response]", "refuse the pending invitation"),
    (
        "file",
        "<path>",
        "send a file (up to 30 MiB; Esc cancels the upload)",
    ),
    (
        "image",
        "<path>",
        "send an image, shown as a picture (not an image: sent as a file)",
    ),
    ("raw", "<file>", "send a small file as a raw message"),
    (
        "save",
        "[path]",
        "download the newest file or image in view (also Alt-S; default: Downloads)",
    ),
    ("status", "", "connection details: user, app, server, notes"),
    (
        "renew",
        "[token]",
        "renew the session's token (without one: run --token-cmd)",
    ),
    (
        "reconnect",
        "",
        "while reconnecting: try again now instead of waiting",
    ),
    ("login", "", "back to the login form"),
    ("logout", "", "log out (stay in the app)"),
    ("quit", "", "quit rtm-tui"),
    ("help", "[command]", "keys and commands"),
];

/// What `/attr` and `/cattr` ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrArgs {
    /// The attributes (`/attr get user`: another user's).
    Show(Option<String>),
    /// `set k v` or `set k=v k2="v 2"`: add or update these.
    Set(Vec<(String, String)>),
    /// `replace k=v ...`: these and no others.
    Replace(Vec<(String, String)>),
    /// `del k ...`
    Delete(Vec<String>),
    Clear,
}

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlashCommand {
    Join(String),
    Leave(Option<String>),
    Msg(String, Option<String>),
    /// `/msg #channel text`: IRC's way to talk to a channel.
    ChannelMsg(String, Option<String>),
    Query(String),
    Close,
    Members(Option<String>),
    Who(Vec<String>),
    Subscribed,
    Count(Vec<String>),
    Ping,
    Me(String),
    Retry,
    Clear,
    Search(String),
    Attr(AttrArgs),
    Cattr(AttrArgs),
    Topic(Option<String>),
    Call {
        peer: String,
        channel: Option<String>,
        content: String,
    },
    Hangup,
    Accept(String),
    Refuse(String),
    File(String),
    Image(String),
    Raw(String),
    Save(Option<String>),
    Status,
    Renew(Option<String>),
    Reconnect,
    Login,
    Logout,
    Quit,
    Help(Option<String>),
}

/// `#lobby` -> `lobby`, `@bob` -> `bob`: the sigil the tab list shows, typed out of habit
/// (IRC's `/join #lobby`). A quoted id is taken as is, so `"#odd"` still names `#odd`.
fn without_sigil(arg: String, rest: &str, sigil: char) -> String {
    if rest.trim_start().starts_with('"') {
        return arg;
    }
    match arg.strip_prefix(sigil) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => arg,
    }
}

/// Splits off the first argument; `"quoted ids"` may hold spaces (ids allow them).
fn first_arg(rest: &str) -> Option<(String, &str)> {
    let rest = rest.trim_start();
    if rest.is_empty() {
        return None;
    }
    if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find('"')?;
        return Some((quoted[..end].to_string(), quoted[end + 1..].trim_start()));
    }
    let end = rest.find(' ').unwrap_or(rest.len());
    Some((rest[..end].to_string(), rest[end..].trim_start()))
}

fn usage(name: &str) -> String {
    let args = COMMANDS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or("", |(_, a, _)| *a);
    format!("usage: /{name} {args}")
}

fn optional(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// A value typed in quotes (`"in a meeting"`) without them: quotes group words, as in a
/// shell, and are not part of the value.
fn unquoted(value: &str) -> &str {
    let value = value.trim();
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|v| !v.contains('"'))
        .unwrap_or(value)
}

/// `/attr`'s and `/cattr`'s arguments; `None` for a form they do not have.
fn attr_args(rest: &str) -> Option<AttrArgs> {
    let Some((verb, tail)) = first_arg(rest) else {
        return Some(AttrArgs::Show(None));
    };
    Some(match verb.as_str() {
        "get" if tail.is_empty() => AttrArgs::Show(None),
        "get" => AttrArgs::Show(Some(all_args(tail).into_iter().next()?)),
        "set" | "replace" => {
            let pairs = match first_arg(tail) {
                // `set k v`: the value is the whole rest.
                Some((key, value)) if !key.contains('=') && !value.is_empty() => {
                    vec![(key, unquoted(value).to_string())]
                }
                _ => key_values(tail)?,
            };
            if verb == "set" {
                AttrArgs::Set(pairs)
            } else {
                AttrArgs::Replace(pairs)
            }
        }
        "del" | "delete" => {
            let keys = all_args(tail);
            (!keys.is_empty()).then_some(AttrArgs::Delete(keys))?
        }
        "clear" if tail.is_empty() => AttrArgs::Clear,
        _ => return None,
    })
}

/// `k=v k2="v 2" ...`; `None` when a word is not `key=value` (or there is none).
fn key_values(mut rest: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_at(after.find(' ').unwrap_or(after.len())),
        };
        pairs.push((key.to_string(), value.to_string()));
        rest = tail;
    }
    (!pairs.is_empty()).then_some(pairs)
}

/// Every argument of `rest`, each possibly `"quoted"`.
fn all_args(mut rest: &str) -> Vec<String> {
    let mut args = Vec::new();
    while let Some((arg, tail)) = first_arg(rest) {
        args.push(arg);
        rest = tail;
    }
    args
}

/// Parses a line that starts with `/`. `Err` carries the usage line to show.
pub fn parse(line: &str) -> Result<SlashCommand, String> {
    let body = line.strip_prefix('/').unwrap_or(line);
    let (name, rest) = body.split_once(' ').unwrap_or((body, ""));
    fn need<'a>(arg: Option<(String, &'a str)>, name: &str) -> Result<(String, &'a str), String> {
        arg.ok_or_else(|| usage(name))
    }
    Ok(match name {
        // A channel id may hold spaces: take the whole rest unless quoted.
        "join" | "j" => SlashCommand::Join(need(first_arg(rest), name).map(|(a, r)| {
            let id = if r.is_empty() || rest.trim_start().starts_with('"') {
                a
            } else {
                rest.trim().to_string()
            };
            without_sigil(id, rest, '#')
        })?),
        "leave" | "part" => {
            SlashCommand::Leave(first_arg(rest).map(|(a, _)| without_sigil(a, rest, '#')))
        }
        "msg" | "m" => {
            let (target, text) = need(first_arg(rest), name)?;
            let quoted = rest.trim_start().starts_with('"');
            match target.strip_prefix('#') {
                Some(channel) if !quoted && !channel.is_empty() => {
                    SlashCommand::ChannelMsg(channel.to_string(), optional(text))
                }
                _ => SlashCommand::Msg(without_sigil(target, rest, '@'), optional(text)),
            }
        }
        "query" | "q" => {
            SlashCommand::Query(without_sigil(need(first_arg(rest), name)?.0, rest, '@'))
        }
        "close" => SlashCommand::Close,
        "members" | "names" => SlashCommand::Members(optional(rest)),
        "who" => SlashCommand::Who(all_args(rest)),
        "subscribed" => SlashCommand::Subscribed,
        "count" => SlashCommand::Count(all_args(rest)),
        "ping" => SlashCommand::Ping,
        "me" => SlashCommand::Me(optional(rest).ok_or_else(|| usage(name))?),
        "retry" => SlashCommand::Retry,
        "clear" => SlashCommand::Clear,
        "search" => SlashCommand::Search(rest.trim().to_string()),
        "attr" | "cattr" => {
            let args = attr_args(rest).ok_or_else(|| usage(name))?;
            if name == "attr" {
                SlashCommand::Attr(args)
            } else {
                SlashCommand::Cattr(args)
            }
        }
        "topic" => SlashCommand::Topic(optional(rest)),
        "call" => {
            let (peer, after) = need(first_arg(rest), name)?;
            // `/call bob #room`: an invitation into a channel.
            let (channel, content) = match after.split_once(' ').unwrap_or((after, "")) {
                (word, content) if word.len() > 1 && word.starts_with('#') => {
                    (Some(word[1..].to_string()), content.trim())
                }
                _ => (None, after),
            };
            SlashCommand::Call {
                peer: without_sigil(peer, rest, '@'),
                channel,
                content: content.to_string(),
            }
        }
        "hangup" | "cancel" => SlashCommand::Hangup,
        "accept" => SlashCommand::Accept(rest.trim().to_string()),
        "refuse" => SlashCommand::Refuse(rest.trim().to_string()),
        "raw" => SlashCommand::Raw(optional(rest).ok_or_else(|| usage(name))?),
        "file" | "image" => {
            // A path may hold spaces: the whole rest, without quotes around it.
            let path = optional(unquoted(rest)).ok_or_else(|| usage(name))?;
            if name == "file" {
                SlashCommand::File(path)
            } else {
                SlashCommand::Image(path)
            }
        }
        "save" => SlashCommand::Save(optional(unquoted(rest))),
        "status" => SlashCommand::Status,
        "renew" => SlashCommand::Renew(optional(rest)),
        "reconnect" => SlashCommand::Reconnect,
        "login" => SlashCommand::Login,
        "logout" => SlashCommand::Logout,
        "quit" | "exit" => SlashCommand::Quit,
        "help" | "h" => {
            SlashCommand::Help(optional(rest).map(|c| c.trim_start_matches('/').to_string()))
        }
        other => return Err(format!("unknown command /{other} (try /help)")),
    })
}

/// What the word under completion is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completing {
    Command,
    User,
    Channel,
}

/// Finds what to complete at the end of `text`: (start byte of the word, kind).
pub fn completion_context(text: &str) -> (usize, Completing) {
    let start = text.rfind(' ').map_or(0, |i| i + 1);
    if !text.contains(' ') && text.starts_with('/') {
        return (1, Completing::Command);
    }
    let kind = match text.split(' ').next().unwrap_or("") {
        "/join" | "/leave" | "/cattr" | "/count" => Completing::Channel,
        _ => Completing::User,
    };
    (start, kind)
}

/// All replacements for the word at the end of `text`, from `candidates` of the right kind.
pub fn complete(text: &str, users: &[String], channels: &[String]) -> Vec<String> {
    let (start, kind) = completion_context(text);
    let word = &text[start..];
    let head = &text[..start];
    let mut out: Vec<String> = match kind {
        Completing::Command => COMMANDS
            .iter()
            .filter(|(n, _, _)| n.starts_with(word))
            .map(|(n, _, _)| format!("{n} "))
            .collect(),
        Completing::User | Completing::Channel => {
            let pool = if kind == Completing::User {
                users
            } else {
                channels
            };
            let lower = word.to_lowercase();
            let mut found: Vec<String> = pool
                .iter()
                .filter(|c| c.to_lowercase().starts_with(&lower))
                .map(|c| {
                    // A nick at the start of a plain line gets IRC's "nick: ".
                    if head.is_empty() && kind == Completing::User {
                        format!("{c}: ")
                    } else {
                        format!("{c} ")
                    }
                })
                .collect();
            found.sort();
            found.dedup();
            found
        }
    };
    for item in &mut out {
        item.insert_str(0, head);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("/join lobby"), Ok(SlashCommand::Join("lobby".into())));
        assert_eq!(
            parse("/join my room"),
            Ok(SlashCommand::Join("my room".into()))
        );
        assert_eq!(
            parse("/msg bob hi there"),
            Ok(SlashCommand::Msg("bob".into(), Some("hi there".into())))
        );
        assert_eq!(
            parse("/msg \"bob smith\" hi"),
            Ok(SlashCommand::Msg("bob smith".into(), Some("hi".into())))
        );
        assert_eq!(
            parse("/msg"),
            Err("usage: /msg <peer|#channel> [text]".into())
        );
        assert_eq!(
            parse("/who a b"),
            Ok(SlashCommand::Who(vec!["a".into(), "b".into()]))
        );
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            parse("/attr set mood very happy"),
            Ok(SlashCommand::Attr(AttrArgs::Set(vec![pair(
                "mood",
                "very happy"
            )])))
        );
        assert_eq!(
            parse("/attr set mood=happy status=\"in a meeting\""),
            Ok(SlashCommand::Attr(AttrArgs::Set(vec![
                pair("mood", "happy"),
                pair("status", "in a meeting")
            ])))
        );
        assert_eq!(
            parse("/cattr replace topic=hi"),
            Ok(SlashCommand::Cattr(AttrArgs::Replace(vec![pair(
                "topic", "hi"
            )])))
        );
        assert_eq!(
            parse("/attr del a b"),
            Ok(SlashCommand::Attr(AttrArgs::Delete(vec![
                "a".into(),
                "b".into()
            ])))
        );
        assert_eq!(
            parse("/attr get bob"),
            Ok(SlashCommand::Attr(AttrArgs::Show(Some("bob".into()))))
        );
        assert!(parse("/attr set mood").is_err());
        assert!(parse("/attr frobnicate").is_err());
        assert_eq!(
            parse("/attr set status \"in a meeting\""),
            Ok(SlashCommand::Attr(AttrArgs::Set(vec![pair(
                "status",
                "in a meeting"
            )])))
        );
        assert_eq!(
            parse("/topic release on Friday"),
            Ok(SlashCommand::Topic(Some("release on Friday".into())))
        );
        assert_eq!(parse("/topic"), Ok(SlashCommand::Topic(None)));
        assert_eq!(
            parse("/help join"),
            Ok(SlashCommand::Help(Some("join".into())))
        );
        assert_eq!(
            parse("/count lobby \"big room\""),
            Ok(SlashCommand::Count(vec!["lobby".into(), "big room".into()]))
        );
        assert_eq!(parse("/subscribed"), Ok(SlashCommand::Subscribed));
        assert_eq!(
            parse("/call bob #room pair?"),
            Ok(SlashCommand::Call {
                peer: "bob".into(),
                channel: Some("room".into()),
                content: "pair?".into()
            })
        );
        assert_eq!(
            parse("/renew 007abc"),
            Ok(SlashCommand::Renew(Some("007abc".into())))
        );
        assert_eq!(parse("/ping"), Ok(SlashCommand::Ping));
        // IRC habits: the sigil the tab list shows is not part of the id.
        assert_eq!(
            parse("/join #lobby"),
            Ok(SlashCommand::Join("lobby".into()))
        );
        assert_eq!(
            parse("/leave #lobby"),
            Ok(SlashCommand::Leave(Some("lobby".into())))
        );
        assert_eq!(
            parse("/msg #lobby hi"),
            Ok(SlashCommand::ChannelMsg("lobby".into(), Some("hi".into())))
        );
        assert_eq!(
            parse("/msg @bob hi"),
            Ok(SlashCommand::Msg("bob".into(), Some("hi".into())))
        );
        assert_eq!(
            parse("/join \"#odd\""),
            Ok(SlashCommand::Join("#odd".into()))
        );
        assert!(parse("/frobnicate").is_err());
    }

    #[test]
    fn completes_commands_users_and_channels() {
        let users = vec!["bob".to_string(), "bea".to_string(), "carol".to_string()];
        let channels = vec!["lobby".to_string()];
        assert_eq!(complete("/jo", &users, &channels), vec!["/join "]);
        assert_eq!(complete("/join l", &users, &channels), vec!["/join lobby "]);
        assert_eq!(
            complete("/msg b", &users, &channels),
            vec!["/msg bea ", "/msg bob "]
        );
        assert_eq!(complete("car", &users, &channels), vec!["carol: "]);
        assert_eq!(complete("hi car", &users, &channels), vec!["hi carol "]);
    }
}

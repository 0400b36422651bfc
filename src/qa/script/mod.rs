//! `rtm-tui script`: scenarios written by testers in a small line language, run against
//! any server through raw protocol connections (one per virtual user).
//!
//! [`parse`] turns text into a [`Script`] (errors carry line numbers); [`run`] plays it.
//! New verbs go into [`UserAction`], `parse::action` and `run::Runner::act`.
//!
//! # The language
//!
//! One step per line; `#` starts a comment; blank lines are ignored. Words are separated by
//! spaces; `"double quotes"` keep spaces (escapes `\"`, `\\`, `\n`). `$name` or `${name}`
//! is replaced by a variable (`$$` is a dollar sign); `$run` is an id unique to the run and
//! `$i` the iteration (from 1) of the innermost `repeat`.
//!
//! ```text
//! set room lobby-$run            # a variable
//! users alice bob                # optional: declares the virtual users (typos become errors)
//! alice login                    # connect and log in as "alice" (token=T for certified apps)
//! phone login as=alice           # a second virtual user with the same id (kicks the first)
//! bob login
//! alice join $room
//! bob join $room
//! alice expect member_joined user=bob channel=$room
//! alice say $room "hello all"    # send_channel; every op expects code 0 unless told
//! bob expect message_from_channel from=alice text="hello all" within=2s
//! alice expect-none message_from_channel within=300ms
//! alice send bob "psst"          # send_peer (answers 0 once bob's connection acks)
//! alice send carol "later" offline -> 4   # `-> CODE` expects that code; `-> any` anything
//! alice send_file bob ./app.log  # upload the file, then send_peer its `file` message
//! bob expect message_from_peer message.type=file message.name=app.log
//! repeat 3 {
//!   alice say $room "tick $i"
//! }
//! bob disconnect                 # drop the TCP connection without a close frame
//! bob reconnect                  # new connection, same user, log in again
//! alice raw {"op":"ping"}        # any request as JSON (an id is added)
//! bob ack off                    # stop acknowledging peer messages (provokes code 2)
//! sleep 500ms
//! alice logout
//! ```
//!
//! Verbs: `login [token=T] [as=ID]`, `logout`, `join CH`, `leave CH`, `send PEER TEXT [offline]`,
//! `send_file PEER PATH` (a relative PATH starts at the scenario's directory; the server
//! must keep files: rtm-tui's addition), `say CH TEXT`, `expect EVENT [field=value ...] [within=DUR]`,
//! `expect-none EVENT [field=value ...] [within=DUR]`, `disconnect`, `close`, `reconnect`,
//! `raw JSON`, `ack on|off`. Top-level: `set NAME VALUE`, `users NAME...`, `sleep DUR`,
//! `repeat N {` ... `}`. Fields of `expect` are dotted paths into the event (`message.text`;
//! `text` alone means `message.text`); values compare as text. Durations: `250ms`, `2s`,
//! `1.5s`, `1m`; `expect` waits 3 s and `expect-none` 500 ms unless `within=` says.

mod parse;
pub mod record;
mod run;

use std::time::Duration;

pub use parse::{parse, words, ParseError};
pub use run::{run, RunError, RunSummary, ScriptOptions};

/// A parsed scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub steps: Vec<Step>,
}

/// One step and the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub line: usize,
    pub kind: StepKind,
}

/// Text that may hold `$variables`, substituted when the step runs.
pub type Template = String;

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Set {
        name: String,
        value: Template,
    },
    Sleep(Duration),
    Repeat {
        count: u32,
        body: Vec<Step>,
    },
    Act {
        user: String,
        action: UserAction,
        expect: ExpectCode,
    },
}

/// What reply code a step expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectCode {
    Code(u32),
    Any,
}

/// What a virtual user does.
#[derive(Debug, Clone, PartialEq)]
pub enum UserAction {
    /// `as_user` logs in under another id than the virtual user's name.
    Login {
        token: Option<Template>,
        as_user: Option<Template>,
    },
    Logout,
    Join(Template),
    Leave(Template),
    Send {
        to: Template,
        text: Template,
        offline: bool,
    },
    Say {
        channel: Template,
        text: Template,
    },
    /// Uploads the file at `path` (over HTTP, with a ticket of `media_ticket`) and sends
    /// its `file` message to `to` (`send_peer`, whose code is the step's).
    SendFile {
        to: Template,
        path: Template,
    },
    Expect(EventPattern),
    ExpectNone(EventPattern),
    Disconnect,
    Close,
    Reconnect,
    Raw(Template),
    Ack(bool),
}

/// An event name, fields it must have, and how long to wait.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPattern {
    pub event: String,
    pub fields: Vec<(String, Template)>,
    pub within: Duration,
}

impl UserAction {
    /// Whether this action sends a request whose reply code is checked.
    pub fn has_reply(&self) -> bool {
        matches!(
            self,
            UserAction::Login { .. }
                | UserAction::Logout
                | UserAction::Join(_)
                | UserAction::Leave(_)
                | UserAction::Send { .. }
                | UserAction::SendFile { .. }
                | UserAction::Say { .. }
                | UserAction::Raw(_)
                | UserAction::Reconnect
        )
    }
}

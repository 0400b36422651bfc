//! What can happen to the app: [`Action`]s in (keys, server events, answers, timers) and
//! [`Effect`]s out (work for the event loop).
//!
//! `App::update` is the only consumer of actions and the only producer of effects, so the
//! state machine is testable without a terminal or a socket. A new key binding is a new
//! [`KeyAction`] (plus a row in `keymap.rs`); a new operation that is answered is a
//! [`Job`] (see `job.rs`), one that is not a new [`Effect`].

use tokio::sync::mpsc::UnboundedSender;

use crate::protocol::{ChangeReason, ConnectionState, Event};

use super::app::transfers::TransferUpdate;
use super::job::{Failure, Job, JobId, JobOutput};
use super::target::Target;

/// Actions a key can be bound to; their names are what the config's `[keys]` table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAction {
    Submit,
    NewLine,
    Complete,
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    WordBack,
    WordForward,
    KillToEnd,
    KillToStart,
    KillWordBack,
    Up,
    Down,
    NextTab,
    PrevTab,
    NextActivity,
    Switcher,
    /// Search the tab's messages (Ctrl-R, `/search`).
    Search,
    PageUp,
    PageDown,
    Help,
    ToggleMembers,
    MembersUp,
    MembersDown,
    ToggleJoins,
    Editor,
    Cancel,
    Redraw,
    Quit,
    /// Answer the call invitation waiting (its prompt names these keys).
    AcceptCall,
    RefuseCall,
    /// Download the file or image in view (`/save` without a path).
    SaveMedia,
    /// Alt-1..9: go to tab N (1-based).
    GoTo(u8),
}

/// One input to the state machine.
#[derive(Debug, Clone)]
pub enum Action {
    /// A bound key.
    Key(KeyAction),
    /// A printable character typed.
    Insert(char),
    /// A bracketed paste, delivered as one insert.
    Paste(String),
    /// Mouse wheel: positive scrolls toward older messages.
    Wheel(i32),
    /// The terminal was resized.
    Resize(u16, u16),
    /// The terminal gained (`true`) or lost the focus (where it reports it).
    Focus(bool),
    /// A periodic timer (only running while a countdown is on screen).
    Tick,
    /// The client's connection state changed; `retry_in_ms` counts down while RECONNECTING.
    Connection {
        state: ConnectionState,
        reason: ChangeReason,
        retry_in_ms: Option<u64>,
    },
    /// The client logged in on this server (URL): the one given, or one of those given
    /// (after a failover, another one). Comes just before the CONNECTED it belongs to.
    ConnectedTo(String),
    /// An event from the server.
    Server(Event),
    /// How the upload or download of this id is going (it ends with its [`Action::Done`]).
    Transfer(JobId, TransferUpdate),
    /// The answer to the [`Job`] of this id.
    Done(JobId, Result<JobOutput, Failure>),
    /// A note for the status line (the embedded server started, ...).
    Notice(String),
}

/// Work for the event loop: requests (answered with [`Action::Done`]), and what is only
/// done (terminal side effects, requests nobody waits for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Job(JobId, Job),
    /// Cancel the upload or download of this id (Esc); its answer still comes.
    CancelTransfer(JobId),
    /// While RECONNECTING: try again now (`/reconnect`).
    Reconnect,
    /// Follow these peers' presence (their tabs' headers).
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
    /// Remember the conversations open now, for the next run.
    SaveTabs {
        app_id: String,
        user: String,
        tabs: Vec<Target>,
    },
    Bell,
    /// A desktop notification (`tui/notify.rs`), where the terminal shows them.
    Notify {
        title: String,
        body: String,
    },
    /// Clear the terminal and draw everything again (Ctrl-L).
    Repaint,
    Title(String),
    Quit,
}

/// Answers request `id` on the loop's channel.
pub fn answer(tx: &UnboundedSender<Action>, id: JobId, result: Result<JobOutput, Failure>) {
    // The loop has quit when nobody listens; the answer has nowhere to go.
    let _ = tx.send(Action::Done(id, result));
}

//! The app's state and `App::update`, the only place it changes. `update` takes one
//! [`Action`] and returns the [`Effect`]s the event loop must perform; rendering reads the
//! state and never writes it. What slash commands do is in `app/slash_handlers.rs`, server
//! events in `app/server_events.rs`; helpers shared by both stay here.

mod server_events;
mod slash_handlers;

use jiff::tz::TimeZone;

use crate::protocol::{ChangeReason, ConnectionState, Message};

use super::action::{Action, Effect, Failure, KeyAction, Outcome, Target};
use super::config::{Config, Theme};
use super::keymap::Keymap;
use super::line_editor::LineEditor;
use super::login::{LoginForm, LoginStatus};
use super::tab::{Body, ChatMessage, Entry, EntryKind, HistoryState, Mark, Tab};

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Login,
    Main,
}

/// The connection as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnStatus {
    pub state: ConnectionState,
    pub reason: ChangeReason,
    /// When RECONNECTING: the time (ms) of the next attempt, for the countdown.
    pub retry_at: Option<u64>,
}

/// An incoming call invitation waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: String,
    pub caller: String,
    pub content: String,
    pub channel: Option<String>,
    pub expires_at: u64,
}

/// Invitations expire this long after they arrive (protocol.md).
pub const INVITATION_TTL_MS: u64 = 60_000;
/// Pastes of more lines than this ask before they are sent.
pub const PASTE_CONFIRM_LINES: usize = 5;

/// A window over the main screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help { scroll: u16, topic: Option<String> },
    Switcher { query: LineEditor, selected: usize },
    PasteConfirm { text: String },
    Invitation(Invitation),
}

/// Where the login details came from, and whether to log in without asking.
#[derive(Debug, Clone, Default)]
pub struct LoginDefaults {
    pub app_id: String,
    pub user: String,
    pub token: String,
    pub server: String,
}

/// The whole state of the terminal app.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub theme: Theme,
    pub keymap: Keymap,
    /// The zone timestamps are shown in (the config's `time_zone`).
    pub time_zone: TimeZone,
    /// Now, in UTC ms: set by the event loop (or a test) before each update.
    pub now_ms: u64,
    pub size: (u16, u16),
    pub screen: Screen,
    pub login: LoginForm,
    /// Who we are (logging in) as.
    pub me: Option<String>,
    /// A login succeeded before: the next one is a re-login that rejoins the channel tabs.
    has_logged_in: bool,
    pub app_id: String,
    /// The server as typed (completed): one URL, or several separated by commas.
    pub server: String,
    pub server_name: String,
    /// The server of the last CONNECTED, one of `server`'s.
    pub connected_to: Option<String>,
    pub conn: ConnStatus,
    /// A lasting note for the status line (embedded server started, ...).
    pub notice: Option<String>,
    pub tabs: Vec<Tab>,
    pub active: usize,
    pub input: LineEditor,
    pub overlay: Option<Overlay>,
    pub show_members: bool,
    /// Tab completion in progress: the choices and the one shown.
    completion: Option<(Vec<String>, usize)>,
    pub invitation: Option<Invitation>,
    /// Calls we placed and that are not answered yet: peer → invitation id.
    pub outgoing_calls: std::collections::HashMap<String, String>,
    /// Commands run once after the first login (the demo's `/join`).
    pub startup_commands: Vec<String>,
    next_local_id: u64,
    /// The marks of our sent messages by conversation and server id, so a tab closed and
    /// opened again shows them on the messages its history brings back.
    marks: std::collections::HashMap<(Target, u64), Mark>,
    /// The conversations last saved for the next run; `None` until the last run's tabs
    /// are restored (nothing is saved before, or an early save would lose them).
    saved_tabs: Option<Vec<Target>>,
    /// Something changed since the last draw.
    pub dirty: bool,
    pub quit: bool,
    title: String,
    effects: Vec<Effect>,
}

impl App {
    pub fn new(config: Config, theme: Theme, keymap: Keymap, defaults: &LoginDefaults) -> App {
        let time_zone = config.time_zone().unwrap_or(TimeZone::UTC);
        let show_members = config.members_pane;
        let mut home = Tab::new(None);
        home.history = HistoryState::Complete;
        App {
            config,
            theme,
            keymap,
            time_zone,
            now_ms: 0,
            size: (80, 24),
            screen: Screen::Login,
            login: LoginForm::new(
                &defaults.app_id,
                &defaults.user,
                &defaults.token,
                &defaults.server,
            ),
            me: None,
            has_logged_in: false,
            app_id: defaults.app_id.clone(),
            server: defaults.server.clone(),
            server_name: String::new(),
            connected_to: None,
            conn: ConnStatus {
                state: ConnectionState::Disconnected,
                reason: ChangeReason::Logout,
                retry_at: None,
            },
            notice: None,
            tabs: vec![home],
            active: 0,
            input: LineEditor::default(),
            overlay: None,
            show_members,
            completion: None,
            invitation: None,
            outgoing_calls: std::collections::HashMap::new(),
            startup_commands: Vec::new(),
            next_local_id: 1,
            marks: std::collections::HashMap::new(),
            saved_tabs: None,
            dirty: true,
            quit: false,
            title: String::new(),
            effects: Vec::new(),
        }
    }

    /// Starts a login with what the form holds (the CLI's values, when all were given).
    pub fn submit_login(&mut self) -> Vec<Effect> {
        self.start_login();
        std::mem::take(&mut self.effects)
    }

    /// Applies one action; returns what the event loop must do.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        self.dirty = true;
        if !matches!(action, Action::Key(KeyAction::Complete)) {
            if let Action::Key(_) | Action::Insert(_) | Action::Paste(_) = action {
                self.completion = None;
            }
        }
        match action {
            Action::Key(key) => self.on_key(key),
            Action::Insert(c) => self.on_insert(c),
            Action::Paste(text) => self.on_paste(&text),
            Action::Wheel(lines) => self.scroll_by(lines),
            Action::Resize(w, h) => self.size = (w, h),
            Action::Tick => self.on_tick(),
            Action::Connection {
                state,
                reason,
                retry_in_ms,
            } => self.on_connection(state, reason, retry_in_ms),
            Action::ConnectedTo(url) => self.on_connected_to(url),
            Action::Server(event) => self.on_server_event(event),
            Action::Done(outcome) => self.on_outcome(outcome),
            Action::Notice(text) => {
                let now = self.now_ms;
                self.home().info(now, text.clone());
                self.notice = Some(text);
            }
        }
        self.refresh_title();
        self.save_tabs();
        std::mem::take(&mut self.effects)
    }

    /// The conversations to reopen next time: peer tabs, and channels joined (or being
    /// joined); a channel left but still on screen is not rejoined.
    fn open_conversations(&self) -> Vec<Target> {
        self.tabs
            .iter()
            .filter(|t| t.peer().is_some() || t.joined || t.join_asked_at.is_some())
            .filter_map(|t| t.target.clone())
            .collect()
    }

    /// Asks the loop to save the open conversations when they changed.
    fn save_tabs(&mut self) {
        let Some(saved) = &self.saved_tabs else {
            return;
        };
        let now = self.open_conversations();
        if *saved != now {
            self.effect(Effect::SaveTabs {
                app_id: self.app_id.clone(),
                user: self.me().to_string(),
                tabs: now.clone(),
            });
            self.saved_tabs = Some(now);
        }
    }

    /// Reopens the conversations of the last run: channels are joined again, peer tabs
    /// opened (with their history). The tab in front stays in front.
    fn restore_tabs(&mut self, targets: Vec<Target>) {
        let now = self.now_ms;
        for target in targets {
            if self.tab_index(&target).is_some() {
                continue;
            }
            let i = self.ensure_tab(&target);
            if let Target::Channel(channel) = &target {
                let tab = &mut self.tabs[i];
                tab.join_asked_at = Some(tab.entries.len());
                self.effect(Effect::Join(channel.clone()));
            }
        }
        let reopened: Vec<String> = self
            .tabs
            .iter()
            .skip(1)
            .map(super::tab::Tab::name)
            .collect();
        if !reopened.is_empty() {
            self.home().info(
                now,
                format!("reopened the tabs of last time: {}", reopened.join(" ")),
            );
        }
        self.saved_tabs = Some(self.open_conversations());
    }

    /// True while something on screen counts down, so the loop must tick.
    pub fn needs_tick(&self) -> bool {
        self.conn.retry_at.is_some()
            || matches!(self.overlay, Some(Overlay::Invitation(_)))
            || self.invitation.is_some()
    }

    fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    pub fn me(&self) -> &str {
        self.me.as_deref().unwrap_or("")
    }

    pub fn active_tab(&self) -> &Tab {
        &self.tabs[self.active]
    }

    fn active_tab_mut(&mut self) -> &mut Tab {
        &mut self.tabs[self.active]
    }

    fn home(&mut self) -> &mut Tab {
        &mut self.tabs[0]
    }

    /// The index of the tab for `target`, if open.
    pub fn tab_index(&self, target: &Target) -> Option<usize> {
        self.tabs
            .iter()
            .position(|t| t.target.as_ref() == Some(target))
    }

    /// The tab for `target`, opened (with history and presence requests) if needed.
    fn ensure_tab(&mut self, target: &Target) -> usize {
        if let Some(i) = self.tab_index(target) {
            return i;
        }
        let mut tab = Tab::new(Some(target.clone()));
        if let Target::Peer(peer) = target {
            tab.history = HistoryState::Loading;
            self.effect(Effect::History {
                target: target.clone(),
                before: None,
            });
            self.effect(Effect::Subscribe(vec![peer.clone()]));
        }
        self.tabs.push(tab);
        self.tabs.len() - 1
    }

    fn activate(&mut self, index: usize) {
        if index < self.tabs.len() {
            self.active = index;
            let tab = &mut self.tabs[index];
            tab.unread = 0;
            tab.mentions = 0;
        }
    }

    /// The terminal title: mentions waiting elsewhere come first, as chat clients do.
    fn refresh_title(&mut self) {
        let mentions: usize = self.tabs.iter().map(|t| t.mentions).sum();
        let who = self.me.as_deref().unwrap_or("login");
        let title = if mentions > 0 {
            format!("({mentions}) rtm-tui — {who}")
        } else {
            format!("rtm-tui — {who}")
        };
        if title != self.title {
            self.title.clone_from(&title);
            self.effect(Effect::Title(title));
        }
    }

    fn on_tick(&mut self) {
        if let Some(Invitation { expires_at, .. }) = &self.invitation {
            if *expires_at <= self.now_ms {
                let inv = self.invitation.take().expect("checked above");
                let i = self.ensure_tab(&Target::Peer(inv.caller.clone()));
                self.tabs[i].info(self.now_ms, "the call invitation expired");
                if matches!(self.overlay, Some(Overlay::Invitation(_))) {
                    self.overlay = None;
                }
            }
        }
    }

    fn on_connection(&mut self, state: ConnectionState, reason: ChangeReason, retry: Option<u64>) {
        let before = self.conn.state;
        self.conn = ConnStatus {
            state,
            reason,
            retry_at: retry.map(|ms| self.now_ms + ms),
        };
        if state == before {
            return;
        }
        let now = self.now_ms;
        let line = format!("connection {} ({})", state.label(), reason.label());
        match state {
            ConnectionState::Aborted => {
                let why = match reason {
                    ChangeReason::RemoteLogin => "you logged in somewhere else",
                    ChangeReason::TokenExpired => "your token expired",
                    ChangeReason::BannedByServer => "the server banned this login",
                    _ => "the server ended the session",
                };
                self.home()
                    .error(now, format!("{line}: {why}. /login to log in again."));
            }
            ConnectionState::Reconnecting | ConnectionState::Connected
                if self.screen == Screen::Main =>
            {
                self.home().info(now, line);
                if before == ConnectionState::Reconnecting {
                    // Back: who is in each channel may have changed meanwhile.
                    let joined: Vec<String> = self
                        .tabs
                        .iter()
                        .filter(|t| t.joined)
                        .filter_map(|t| t.channel().map(str::to_string))
                        .collect();
                    for channel in joined {
                        self.effect(Effect::Members(channel));
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connected_to(&mut self, url: String) {
        let moved = self.connected_to.as_ref().is_some_and(|old| *old != url);
        if moved && self.has_several_servers() {
            let now = self.now_ms;
            self.home().info(now, format!("now on {url}"));
        }
        self.connected_to = Some(url);
    }

    /// Whether several servers were given, so which one is in use is worth showing.
    pub fn has_several_servers(&self) -> bool {
        self.server.contains(',')
    }

    fn start_login(&mut self) {
        if !self.login.is_valid() {
            self.login.status = LoginStatus::Refused("fix the fields marked ✗ first".into());
            return;
        }
        let same = self.me.as_deref() == Some(self.login.value(super::login::USER))
            && self.app_id == self.login.value(super::login::APP_ID)
            && self.server == super::login::server_url(self.login.value(super::login::SERVER));
        if same && self.in_session() {
            // Nothing to change: back to the chat rather than "already logged in (8)".
            self.screen = Screen::Main;
            self.login.status = LoginStatus::Editing;
            return;
        }
        self.login.status = LoginStatus::Busy;
        // Known before the server answers: offline messages may arrive before the reply
        // reaches us, and must already land in tabs of the right user.
        let user = self.login.value(super::login::USER).to_string();
        if self.me.as_ref().is_some_and(|me| *me != user) {
            self.tabs.truncate(1);
            self.active = 0;
            self.has_logged_in = false;
            self.saved_tabs = None;
        }
        self.me = Some(user);
        let token = self.login.value(super::login::TOKEN).trim().to_string();
        self.app_id = self.login.value(super::login::APP_ID).to_string();
        self.server = super::login::server_url(self.login.value(super::login::SERVER));
        self.effect(Effect::Login {
            server: self.server.clone(),
            app_id: self.app_id.clone(),
            user: self.login.value(super::login::USER).to_string(),
            token: (!token.is_empty()).then_some(token),
        });
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        let now = self.now_ms;
        match outcome {
            Outcome::Login(Ok(result)) => {
                let relogin = std::mem::replace(&mut self.has_logged_in, true);
                self.me = Some(result.user.clone());
                self.server_name.clone_from(&result.server);
                self.screen = Screen::Main;
                self.login.status = LoginStatus::Editing;
                let line = format!(
                    "logged in as {} to app {} on {} ({})",
                    result.user,
                    self.app_id,
                    self.server.replace(',', ", "),
                    result.server
                );
                self.home().info(now, line);
                if relogin {
                    self.rejoin_tabs();
                } else {
                    self.home().info(
                        now,
                        "/join <channel> to join a channel, /msg <peer> to talk to someone, F1 for help",
                    );
                    self.effect(Effect::LoadTabs {
                        app_id: self.app_id.clone(),
                        user: result.user.clone(),
                    });
                    for line in std::mem::take(&mut self.startup_commands) {
                        self.send_line(&line);
                    }
                }
            }
            Outcome::Login(Err(failure)) => {
                self.screen = Screen::Login;
                let token = self.login.fields[super::login::TOKEN].text().to_string();
                let words = match super::login::login_hint(failure.code, &token) {
                    Some(hint) => format!("{failure} — {hint}"),
                    None => failure.to_string(),
                };
                self.login.status = LoginStatus::Refused(words);
            }
            Outcome::Logout => {
                self.home().info(now, "logged out");
                self.screen = Screen::Login;
                // The next person types a user id first, not into the token field.
                self.login.focus = super::login::USER;
            }
            Outcome::PeerSent {
                peer,
                local_id,
                result,
            } => self.on_sent(
                &Target::Peer(peer),
                local_id,
                result.map_err(|f| peer_mark(&f)),
            ),
            Outcome::ChannelSent {
                channel,
                local_id,
                result,
            } => self.on_sent(
                &Target::Channel(channel),
                local_id,
                result.map_err(|f| channel_mark(&f)),
            ),
            Outcome::Joined { channel, result } => self.on_joined(&channel, result),
            Outcome::Left { channel, result } => {
                if let Some(i) = self.tab_index(&Target::Channel(channel.clone())) {
                    let tab = &mut self.tabs[i];
                    match result {
                        Ok(()) => {
                            // Out of the channel nothing tells us what changes: show none
                            // of it rather than what may be gone (a join reads it again).
                            tab.joined = false;
                            tab.members.clear();
                            tab.member_count = None;
                            tab.attributes.clear();
                            tab.info(now, format!("you left #{channel}"));
                        }
                        Err(f) => tab.error(now, format!("cannot leave: {f}")),
                    }
                }
            }
            Outcome::Members { channel, result } => {
                if let Some(i) = self.tab_index(&Target::Channel(channel)) {
                    let tab = &mut self.tabs[i];
                    match result {
                        Ok(mut members) => {
                            members.sort();
                            tab.member_count.get_or_insert(members.len() as u64);
                            tab.members = members;
                        }
                        Err(f) => tab.error(now, format!("cannot list members: {f}")),
                    }
                }
            }
            Outcome::History {
                target,
                before,
                result,
            } => {
                if let Some(i) = self.tab_index(&target) {
                    let me = self.me().to_string();
                    let marks = &self.marks;
                    let tab = &mut self.tabs[i];
                    match result {
                        Ok(messages) => {
                            let full = messages.len() as u32 >= super::tab::HISTORY_PAGE;
                            let added = tab.merge_history(&messages, &me);
                            // Our messages the history brings back get the mark they had;
                            // one in a channel's history was accepted by the server.
                            for entry in &mut tab.entries {
                                if let EntryKind::Message(m) = &mut entry.kind {
                                    if m.own && m.mark.is_none() {
                                        m.mark =
                                            m.id.and_then(|id| marks.get(&(target.clone(), id)))
                                                .cloned()
                                                .or_else(|| {
                                                    matches!(target, Target::Channel(_))
                                                        .then_some(Mark::Accepted)
                                                });
                                    }
                                }
                            }
                            tab.history = if full && (added > 0 || before.is_none()) {
                                HistoryState::More
                            } else {
                                HistoryState::Complete
                            };
                        }
                        Err(f) => {
                            tab.history = HistoryState::Complete;
                            tab.error(now, format!("cannot load history: {f}"));
                        }
                    }
                }
            }
            Outcome::Presence(result) => match result {
                Ok(peers) => {
                    let text: Vec<String> = peers
                        .iter()
                        .map(|(p, s)| format!("{p} is {}", presence_word(*s)))
                        .collect();
                    for (peer, status) in &peers {
                        if let Some(i) = self.tab_index(&Target::Peer(peer.clone())) {
                            self.tabs[i].presence = Some(*status);
                        }
                    }
                    self.active_tab_mut().info(now, text.join(", "));
                }
                Err(f) => self
                    .active_tab_mut()
                    .error(now, format!("/who failed: {f}")),
            },
            Outcome::ChannelAttributes { channel, result } => {
                if let Some(i) = self.tab_index(&Target::Channel(channel)) {
                    match result {
                        Ok(attributes) => self.tabs[i].attributes = attributes,
                        // The header just stays without a topic.
                        Err(f) => tracing::debug!("channel attributes: {f}"),
                    }
                }
            }
            Outcome::Info { target, result } => {
                let i = target.map_or(self.active, |t| self.ensure_tab(&t));
                match result {
                    Ok(text) => self.tabs[i].info(now, text),
                    Err(f) => self.tabs[i].error(now, f.to_string()),
                }
            }
            Outcome::RawFile {
                target,
                name,
                result,
            } => match result {
                Ok(data) => {
                    let description = format!("file {name}");
                    self.send_to(&target, Message::raw(&data, description));
                }
                Err(f) => self.active_tab_mut().error(now, format!("/raw: {f}")),
            },
            Outcome::SavedTabs(targets) => self.restore_tabs(targets),
            Outcome::Edited(text) => {
                self.input.set(text.trim_end_matches('\n'));
            }
        }
    }

    fn rejoin_tabs(&mut self) {
        let channels: Vec<String> = self
            .tabs
            .iter()
            .filter_map(|t| t.channel().map(str::to_string))
            .collect();
        for channel in channels {
            self.effect(Effect::Join(channel));
        }
    }

    fn on_joined(&mut self, channel: &str, result: Result<u64, Failure>) {
        let now = self.now_ms;
        let target = Target::Channel(channel.to_string());
        let i = self.ensure_tab(&target);
        match result {
            Ok(count) => {
                let tab = &mut self.tabs[i];
                tab.joined = true;
                tab.member_count = Some(count);
                let members = if count == 1 { "member" } else { "members" };
                let line = format!("you joined #{channel} ({count} {members})");
                match tab.join_asked_at.take() {
                    Some(at) => tab.insert_info(at, now, line),
                    None => tab.info(now, line),
                }
                let load = tab.history == HistoryState::NotLoaded;
                if load {
                    tab.history = HistoryState::Loading;
                }
                self.effect(Effect::Members(channel.to_string()));
                self.effect(Effect::LoadChannelAttributes(channel.to_string()));
                if load {
                    self.effect(Effect::History {
                        target,
                        before: None,
                    });
                }
            }
            Err(f) => self.tabs[i].error(now, format!("cannot join #{channel}: {f}")),
        }
    }

    fn on_sent(
        &mut self,
        target: &Target,
        local_id: u64,
        result: Result<crate::protocol::SendResult, Mark>,
    ) {
        let Some(i) = self.tab_index(target) else {
            return;
        };
        let peer = matches!(target, Target::Peer(_));
        if let Some(entry) = self.tabs[i].own_entry_mut(local_id) {
            let EntryKind::Message(message) = &mut entry.kind else {
                return;
            };
            match result {
                Ok(sent) => {
                    let mark = if peer { Mark::Received } else { Mark::Accepted };
                    message.id = Some(sent.message_id);
                    message.mark = Some(mark.clone());
                    // The server's time, as history will have it (and what repeats match).
                    entry.ts = sent.server_ts;
                    self.marks.insert((target.clone(), sent.message_id), mark);
                }
                Err(mark) => message.mark = Some(mark),
            }
        }
    }

    /// Sends `message` to a conversation: shows it at once, pending, and asks the loop to send.
    fn send_to(&mut self, target: &Target, message: Message) {
        let local_id = self.next_local_id;
        self.next_local_id += 1;
        let i = self.ensure_tab(target);
        let me = self.me().to_string();
        self.tabs[i].push(Entry {
            ts: self.now_ms,
            kind: EntryKind::Message(ChatMessage {
                id: None,
                local_id: Some(local_id),
                from: me,
                body: Body::from_message(&message),
                mark: Some(Mark::Pending),
                offline: false,
                mention: false,
                own: true,
            }),
        });
        self.tabs[i].scroll = 0;
        self.effect(send_effect(target, local_id, message));
    }

    /// Resends the newest message of the active tab whose send failed.
    fn retry(&mut self) {
        let now = self.now_ms;
        let tab = &mut self.tabs[self.active];
        let Some(target) = tab.target.clone() else {
            return;
        };
        let found = tab
            .entries
            .iter_mut()
            .rev()
            .find_map(|e| match &mut e.kind {
                EntryKind::Message(m) if m.mark.as_ref().is_some_and(Mark::retryable) => Some(m),
                _ => None,
            });
        let Some(message) = found else {
            tab.info(now, "nothing to retry: no failed message in this tab");
            return;
        };
        message.mark = Some(Mark::Pending);
        let wire = match &message.body {
            Body::Text(t) => Message::text(t.clone()),
            Body::Action(t) => Message::text(format!("/me {t}")),
            Body::Raw { description, data } => Message::raw(data, description.clone()),
        };
        let local_id = message.local_id.unwrap_or(0);
        self.effect(send_effect(&target, local_id, wire));
    }

    fn on_insert(&mut self, c: char) {
        match (&mut self.overlay, self.screen) {
            (Some(Overlay::Switcher { query, selected }), _) => {
                query.insert_char(c);
                *selected = 0;
            }
            (Some(Overlay::PasteConfirm { text }), _) => {
                if c == 'e' {
                    let text = std::mem::take(text);
                    self.input.insert_str(&text);
                    self.overlay = None;
                }
            }
            (Some(Overlay::Help { .. }), _) => self.overlay = None,
            (None | Some(Overlay::Invitation(_)), Screen::Login) => {
                self.login.focused().insert_char(c);
            }
            // The call prompt does not take letters: they go on the line being typed.
            (None | Some(Overlay::Invitation(_)), Screen::Main) => {
                if c == '?' && self.input.is_empty() {
                    self.overlay = Some(Overlay::Help {
                        scroll: 0,
                        topic: None,
                    });
                } else {
                    self.input.insert_char(c);
                }
            }
        }
    }

    fn on_paste(&mut self, text: &str) {
        // Terminals send CR for newlines in pastes; a copied last line brings its newline,
        // which would send an empty last line.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let text = text.trim_end_matches('\n').to_string();
        match (&mut self.overlay, self.screen) {
            (Some(Overlay::Switcher { query, .. }), _) => query.insert_str(text.trim()),
            (_, Screen::Login) => self.login.focused().insert_str(text.trim()),
            (None, Screen::Main) => {
                if text.lines().count() > PASTE_CONFIRM_LINES {
                    self.overlay = Some(Overlay::PasteConfirm { text });
                } else {
                    self.input.insert_str(&text);
                }
            }
            _ => {}
        }
    }

    fn scroll_by(&mut self, entries: i32) {
        let tab = &mut self.tabs[self.active];
        let max = tab.entries.len().saturating_sub(1);
        tab.scroll = if entries >= 0 {
            (tab.scroll + entries as usize).min(max)
        } else {
            tab.scroll.saturating_sub(entries.unsigned_abs() as usize)
        };
        self.maybe_load_older();
    }

    /// Near the top of what is held: fetch the page before it.
    fn maybe_load_older(&mut self) {
        let page = usize::from(self.size.1);
        let tab = &mut self.tabs[self.active];
        let near_top = tab.scroll + page >= tab.entries.len();
        if near_top && tab.history == HistoryState::More {
            if let Some(target) = tab.target.clone() {
                tab.history = HistoryState::Loading;
                let before = tab.oldest_id();
                self.effect(Effect::History { target, before });
            }
        }
    }

    fn on_key(&mut self, key: KeyAction) {
        if key == KeyAction::Quit {
            // As in irssi and WeeChat: Ctrl-C clears a half-typed line; on an empty one it quits.
            if self.screen == Screen::Main && !self.input.is_empty() {
                self.input.take();
                return;
            }
            self.quit();
            return;
        }
        if matches!(key, KeyAction::AcceptCall | KeyAction::RefuseCall) {
            if self.screen == Screen::Main {
                self.answer_invitation(key == KeyAction::AcceptCall, String::new());
            }
            return;
        }
        if matches!(self.overlay, Some(Overlay::Invitation(_))) {
            // Not modal: only Esc is the prompt's ("later"); every other key is the
            // screen's, so typing goes on while a call rings.
            if key == KeyAction::Cancel {
                self.overlay = None;
                return;
            }
            if self.screen == Screen::Main {
                self.on_main_key(key);
            }
            return;
        }
        if key == KeyAction::Redraw {
            self.effect(Effect::Repaint);
            return;
        }
        if self.overlay.is_some() {
            self.on_overlay_key(key);
            return;
        }
        match self.screen {
            Screen::Login => self.on_login_key(key),
            Screen::Main => self.on_main_key(key),
        }
    }

    pub(crate) fn quit(&mut self) {
        self.quit = true;
        self.effect(Effect::Quit);
    }

    /// Logged in (or getting back in by itself): the form was opened with `/login`.
    fn in_session(&self) -> bool {
        matches!(
            self.conn.state,
            ConnectionState::Connected | ConnectionState::Reconnecting
        )
    }

    fn on_login_key(&mut self, key: KeyAction) {
        match key {
            KeyAction::Submit => self.start_login(),
            KeyAction::Complete | KeyAction::Down => self.login.next_field(),
            KeyAction::Up | KeyAction::PrevTab => self.login.prev_field(),
            // Opened with /login while logged in: Esc goes back to the chat.
            KeyAction::Cancel if self.in_session() => {
                self.screen = Screen::Main;
                self.login.status = LoginStatus::Editing;
            }
            KeyAction::Cancel => self.login.focused().set(""),
            other => edit(self.login.focused(), other),
        }
    }

    fn on_overlay_key(&mut self, key: KeyAction) {
        let Some(overlay) = &mut self.overlay else {
            return;
        };
        match overlay {
            Overlay::Help { scroll, .. } => match key {
                KeyAction::Up => *scroll = scroll.saturating_sub(1),
                KeyAction::Down => *scroll += 1,
                KeyAction::PageUp => *scroll = scroll.saturating_sub(10),
                KeyAction::PageDown => *scroll += 10,
                _ => self.overlay = None,
            },
            Overlay::Switcher { query, selected } => match key {
                KeyAction::Up | KeyAction::PrevTab => *selected = selected.saturating_sub(1),
                KeyAction::Down | KeyAction::NextTab => *selected += 1,
                KeyAction::Submit => {
                    let selected = *selected;
                    let choice = self.switcher_matches().get(selected).copied();
                    self.overlay = None;
                    if let Some(i) = choice {
                        self.activate(i);
                    }
                }
                KeyAction::Cancel | KeyAction::Switcher => self.overlay = None,
                other => {
                    edit(query, other);
                    *selected = 0;
                }
            },
            Overlay::PasteConfirm { text } => match key {
                KeyAction::Submit => {
                    let text = std::mem::take(text);
                    self.overlay = None;
                    self.send_text(&text);
                }
                _ => self.overlay = None,
            },
            Overlay::Invitation(_) => {}
        }
    }

    /// Tab indices matching the switcher's query, best first (subsequence match).
    pub fn switcher_matches(&self) -> Vec<usize> {
        let query = match &self.overlay {
            Some(Overlay::Switcher { query, .. }) => query.text().to_lowercase(),
            _ => String::new(),
        };
        let mut scored: Vec<(usize, usize)> = self
            .tabs
            .iter()
            .enumerate()
            .filter_map(|(i, t)| fuzzy_score(&t.name().to_lowercase(), &query).map(|s| (s, i)))
            .collect();
        scored.sort_unstable();
        scored.into_iter().map(|(_, i)| i).collect()
    }

    fn on_main_key(&mut self, key: KeyAction) {
        match key {
            KeyAction::Submit => {
                let line = self.input.take();
                self.send_line(&line);
            }
            KeyAction::NewLine => self.input.insert_char('\n'),
            KeyAction::Complete => self.complete(),
            KeyAction::KillToEnd if self.input.is_empty() => self.open_switcher(),
            KeyAction::Switcher => self.open_switcher(),
            KeyAction::Up => {
                let current = self.input.text().to_string();
                if let Some(line) = self.tabs[self.active].input_history.older(&current) {
                    self.input.set(line);
                }
            }
            KeyAction::Down => {
                if let Some(line) = self.tabs[self.active].input_history.newer() {
                    self.input.set(line);
                }
            }
            KeyAction::NextTab => self.activate((self.active + 1) % self.tabs.len()),
            KeyAction::PrevTab => {
                self.activate((self.active + self.tabs.len() - 1) % self.tabs.len());
            }
            KeyAction::GoTo(n) => self.activate(usize::from(n) - 1),
            KeyAction::NextActivity => self.next_activity(),
            KeyAction::PageUp => self.scroll_by(i32::from(self.size.1 / 2).max(1)),
            KeyAction::PageDown => self.scroll_by(-(i32::from(self.size.1 / 2).max(1))),
            KeyAction::Help => {
                self.overlay = Some(Overlay::Help {
                    scroll: 0,
                    topic: None,
                });
            }
            KeyAction::ToggleMembers => self.show_members = !self.show_members,
            KeyAction::MembersUp => {
                let tab = self.active_tab_mut();
                tab.member_scroll = tab.member_scroll.saturating_sub(1);
            }
            KeyAction::MembersDown => {
                let tab = self.active_tab_mut();
                if tab.member_scroll + 1 < tab.visible_members().count() {
                    tab.member_scroll += 1;
                }
            }
            KeyAction::ToggleJoins => {
                let tab = self.active_tab_mut();
                tab.expand_joins = !tab.expand_joins;
            }
            KeyAction::Editor => {
                let text = self.input.take();
                self.effect(Effect::Editor(text));
            }
            KeyAction::Cancel => {
                self.input.take();
                self.active_tab_mut().scroll = 0;
            }
            other => edit(&mut self.input, other),
        }
    }

    fn open_switcher(&mut self) {
        self.overlay = Some(Overlay::Switcher {
            query: LineEditor::default(),
            selected: 0,
        });
    }

    /// Alt-A: the next tab with mentions, else the next with unread messages.
    fn next_activity(&mut self) {
        let n = self.tabs.len();
        let order = (1..n).map(|k| (self.active + k) % n);
        let pick = order
            .clone()
            .find(|&i| self.tabs[i].mentions > 0)
            .or_else(|| order.clone().find(|&i| self.tabs[i].unread > 0));
        if let Some(i) = pick {
            self.activate(i);
        }
    }

    fn complete(&mut self) {
        if let Some((choices, index)) = &mut self.completion {
            *index = (*index + 1) % choices.len();
            let text = choices[*index].clone();
            self.input.set(text);
            return;
        }
        let mut users: Vec<String> = self
            .tabs
            .iter()
            .flat_map(|t| {
                t.members
                    .iter()
                    .cloned()
                    .chain(t.peer().map(str::to_string))
            })
            .collect();
        users.sort();
        users.dedup();
        let channels: Vec<String> = self
            .tabs
            .iter()
            .filter_map(|t| t.channel().map(str::to_string))
            .collect();
        let choices = super::slash_command::complete(self.input.text(), &users, &channels);
        if let Some(first) = choices.first() {
            self.input.set(first.clone());
            if choices.len() > 1 {
                self.completion = Some((choices, 0));
            }
        }
    }

    fn send_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        self.tabs[self.active].input_history.push(line);
        if line.starts_with('/') && !line.starts_with("//") {
            match super::slash_command::parse(line) {
                Ok(command) => self.run_command(command),
                Err(usage) => {
                    let now = self.now_ms;
                    self.active_tab_mut().error(now, usage);
                }
            }
        } else {
            // "//text" sends "/text" literally.
            let text = line
                .strip_prefix('/')
                .filter(|l| l.starts_with('/'))
                .unwrap_or(line)
                .to_string();
            self.send_text(&text);
        }
    }

    fn send_text(&mut self, text: &str) {
        let now = self.now_ms;
        // Trailing empty lines (Alt-Enter, an edited paste) would show as an empty line.
        let text = text.trim_end_matches(['\n', ' ']).to_string();
        if text.trim().is_empty() {
            return;
        }
        match self.active_tab().target.clone() {
            Some(target) => self.send_to(&target, Message::text(text)),
            None => self.active_tab_mut().error(
                now,
                "this is the rtm tab: /join <channel> or /msg <peer> first",
            ),
        }
    }

    fn answer_invitation(&mut self, accept: bool, response: String) {
        let Some(inv) = self.invitation.take() else {
            let now = self.now_ms;
            self.active_tab_mut().error(now, "no invitation is waiting");
            return;
        };
        if matches!(self.overlay, Some(Overlay::Invitation(_))) {
            self.overlay = None;
        }
        let request = if accept {
            super::action::InviteRequest::Accept {
                id: inv.id,
                caller: inv.caller,
                response,
            }
        } else {
            super::action::InviteRequest::Refuse {
                id: inv.id,
                caller: inv.caller,
                response,
            }
        };
        self.effect(Effect::Invite(request));
    }
}

/// Subsequence match score (lower is better), `None` when `query` does not match `name`.
fn fuzzy_score(name: &str, query: &str) -> Option<usize> {
    let mut score = 0;
    let mut rest = name;
    let mut last = 0;
    for c in query.chars() {
        let at = rest.find(c)?;
        score += at + usize::from(last > 0 && at > 0);
        last += at + c.len_utf8();
        rest = &rest[at + c.len_utf8()..];
    }
    Some(score)
}

/// Applies an editing key to a line editor.
fn edit(editor: &mut LineEditor, key: KeyAction) {
    match key {
        KeyAction::Backspace => editor.backspace(),
        KeyAction::Delete => editor.delete(),
        KeyAction::Left => editor.left(),
        KeyAction::Right => editor.right(),
        KeyAction::Home => editor.home(),
        KeyAction::End => editor.end(),
        KeyAction::WordBack => editor.word_back(),
        KeyAction::WordForward => editor.word_forward(),
        KeyAction::KillToEnd => editor.kill_to_end(),
        KeyAction::KillToStart => editor.kill_to_start(),
        KeyAction::KillWordBack => editor.kill_word_back(),
        _ => {}
    }
}

fn send_effect(target: &Target, local_id: u64, message: Message) -> Effect {
    match target {
        Target::Peer(peer) => Effect::SendPeer {
            peer: peer.clone(),
            local_id,
            message,
        },
        Target::Channel(channel) => Effect::SendChannel {
            channel: channel.clone(),
            local_id,
            message,
        },
    }
}

/// A failed peer send's mark, from PEER codes (contracts.md: 4 cached, 3 unreachable, 2 timeout).
fn peer_mark(failure: &Failure) -> Mark {
    use crate::protocol::codes::peer;
    match failure.code {
        Some(peer::CACHED_BY_SERVER) => Mark::Cached,
        Some(peer::PEER_UNREACHABLE) => Mark::Unreachable,
        Some(peer::TIMEOUT) => Mark::TimedOut,
        _ => Mark::Failed(failure.to_string()),
    }
}

fn channel_mark(failure: &Failure) -> Mark {
    match failure.code {
        Some(crate::protocol::codes::channel_msg::TIMEOUT) => Mark::TimedOut,
        _ => Mark::Failed(failure.to_string()),
    }
}

pub fn presence_word(status: crate::protocol::PeerStatus) -> &'static str {
    match status {
        crate::protocol::PeerStatus::Online => "online",
        crate::protocol::PeerStatus::Unreachable => "unreachable",
        crate::protocol::PeerStatus::Offline => "offline",
    }
}

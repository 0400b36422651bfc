//! The app's state and `App::update`, the only place it changes. `update` takes one
//! [`Action`] and returns the [`Effect`]s the event loop must perform; rendering reads the
//! state and never writes it.
//!
//! The state is held by components, each with its own module: the tab list
//! ([`tabs`]), the input line ([`input_line`]), the login form (`tui/login.rs`), windows
//! over the screen ([`overlay`]), calls ([`calls`]), the status of the session
//! ([`status`]) and the jobs waiting for answers ([`jobs`]). `App` composes them
//! and routes: keys here, answers in `replies.rs`, server events in `server_events.rs`,
//! slash commands in `slash_handlers.rs`. New state goes in the component it belongs to.

pub mod calls;
pub mod input_line;
pub mod jobs;
pub mod media_commands;
pub mod overlay;
mod replies;
mod server_events;
mod slash_handlers;
pub mod status;
pub mod tabs;
pub mod transfers;

use jiff::tz::TimeZone;

use crate::protocol::limits::MAX_MESSAGE_BYTES;
use crate::protocol::{ChangeReason, ConnectionState, InvitationAnswer, Message};

use super::action::{Action, Effect, KeyAction};
use super::config::{Theme, TuiConfig};
use super::job::{InviteJob, Job};
use super::keymap::Keymap;
use super::layout;
use super::login::{self, FormKey, LoginForm, LoginStatus};
use super::slash_command;
use super::tab::Tab;
use super::target::Target;
use calls::Calls;
use input_line::InputLine;
use jobs::{AttributesShown, Jobs, Pending};
use overlay::{Overlay, Reaction};
use status::{ConnStatus, Status};
use tabs::Tabs;
use transfers::Transfers;

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Login,
    Main,
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
    pub config: TuiConfig,
    pub theme: Theme,
    pub keymap: Keymap,
    /// The zone timestamps are shown in (the config's `time_zone`).
    pub time_zone: TimeZone,
    /// Now, in UTC ms: set by the event loop (or a test) before each update.
    pub now_ms: u64,
    pub size: (u16, u16),
    pub screen: Screen,
    pub login: LoginForm,
    pub status: Status,
    pub tabs: Tabs,
    pub input: InputLine,
    pub overlay: Option<Overlay>,
    pub calls: Calls,
    /// Uploads and downloads under way.
    pub transfers: Transfers,
    /// The size of a terminal cell in pixels of the pictures drawn (`pictures.rs`), which
    /// sizes images in the message list; `None`: images are a line, as files.
    pub picture_cells: Option<(u16, u16)>,
    pub show_members: bool,
    /// The terminal has the focus (as far as it tells: it starts focused).
    pub focused: bool,
    /// Commands run once after the first login (the demo's `/join`).
    pub startup_commands: Vec<String>,
    jobs: Jobs,
    /// The terminal title last asked for.
    title: String,
    /// Something changed since the last draw.
    pub dirty: bool,
    pub quit: bool,
}

impl App {
    pub fn new(config: TuiConfig, theme: Theme, keymap: Keymap, defaults: &LoginDefaults) -> App {
        let time_zone = config.time_zone().unwrap_or(TimeZone::UTC);
        let show_members = config.members_pane;
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
            status: Status::new(&defaults.app_id, &defaults.server),
            tabs: Tabs::default(),
            input: InputLine::default(),
            overlay: None,
            calls: Calls::default(),
            transfers: Transfers::default(),
            picture_cells: Some(super::pictures::HALFBLOCK_CELL),
            show_members,
            focused: true,
            startup_commands: Vec::new(),
            jobs: Jobs::default(),
            title: String::new(),
            dirty: true,
            quit: false,
        }
    }

    /// Starts a login with what the form holds (the CLI's values, when all were given).
    pub fn submit_login(&mut self) -> Vec<Effect> {
        self.start_login();
        self.jobs.take()
    }

    /// Applies one action; returns what the event loop must do.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        self.dirty = true;
        match action {
            Action::Key(KeyAction::Complete) => {}
            Action::Key(_) | Action::Insert(_) | Action::Paste(_) => self.input.end_completion(),
            _ => {}
        }
        match action {
            Action::Key(key) => self.on_key(key),
            Action::Insert(c) => self.on_insert(c),
            Action::Paste(text) => self.on_paste(&text),
            Action::Wheel(lines) => self.scroll_by(lines),
            Action::Resize(w, h) => self.size = (w, h),
            Action::Focus(focused) => self.focused = focused,
            Action::Tick => self.on_tick(),
            Action::Connection {
                state,
                reason,
                retry_in_ms,
            } => self.on_connection(state, reason, retry_in_ms),
            Action::ConnectedTo(url) => {
                if self.status.connected_to(url.clone()) && self.status.has_several_servers() {
                    let now = self.now_ms;
                    self.tabs.home().info(now, format!("now on {url}"));
                }
            }
            Action::Server(event) => self.on_server_event(event),
            Action::Transfer(id, update) => self.on_transfer(id, update),
            Action::Done(id, result) => self.on_reply(id, result),
            Action::Notice(text) => {
                let now = self.now_ms;
                self.tabs.home().info(now, text.clone());
                self.status.notice = Some(text);
            }
        }
        self.refresh_title();
        if let Some(tabs) = self.tabs.to_save() {
            self.jobs.push(Effect::SaveTabs {
                app_id: self.status.app_id.clone(),
                user: self.me().to_string(),
                tabs,
            });
        }
        self.jobs.take()
    }

    /// True while something on screen counts down, so the loop must tick.
    pub fn needs_tick(&self) -> bool {
        self.status.conn.retry_at.is_some()
            || self.jobs.has_paced()
            || matches!(self.overlay, Some(Overlay::Invitation(_)))
            || self.calls.incoming.is_some()
    }

    pub fn me(&self) -> &str {
        self.status.me()
    }

    pub fn active_tab(&self) -> &Tab {
        self.tabs.active_tab()
    }

    /// Tab indices matching the switcher's query, best first.
    pub fn switcher_matches(&self) -> Vec<usize> {
        let query = self.overlay.as_ref().and_then(Overlay::switcher_query);
        self.tabs.matching(query.unwrap_or(""))
    }

    /// The terminal title: mentions waiting elsewhere come first, as chat clients do.
    fn refresh_title(&mut self) {
        let mentions = self.tabs.mentions();
        let who = self.status.me.as_deref().unwrap_or("login");
        let title = if mentions > 0 {
            format!("({mentions}) rtm-tui — {who}")
        } else {
            format!("rtm-tui — {who}")
        };
        if title != self.title {
            self.title.clone_from(&title);
            self.jobs.push(Effect::Title(title));
        }
    }

    /// Writes a line in the tab in front.
    fn info(&mut self, text: impl Into<String>) {
        let now = self.now_ms;
        self.tabs.active_tab_mut().info(now, text);
    }

    /// Writes an error in the tab in front.
    fn error(&mut self, text: impl Into<String>) {
        let now = self.now_ms;
        self.tabs.active_tab_mut().error(now, text);
    }

    /// Writes a line in the tab of `target`, opening it if need be.
    fn info_in(&mut self, target: &Target, text: impl Into<String>) {
        let now = self.now_ms;
        let i = self.tabs.open(target, &mut self.jobs);
        self.tabs[i].info(now, text);
    }

    fn close_invitation_prompt(&mut self) {
        if matches!(self.overlay, Some(Overlay::Invitation(_))) {
            self.overlay = None;
        }
    }

    fn on_tick(&mut self) {
        self.jobs.release_paced(self.now_ms);
        if let Some(invitation) = self.calls.expire(self.now_ms) {
            self.info_in(
                &Target::Peer(invitation.caller),
                "the call invitation expired",
            );
            self.close_invitation_prompt();
        }
    }

    fn on_connection(&mut self, state: ConnectionState, reason: ChangeReason, retry: Option<u64>) {
        let before = self.status.conn.state;
        self.status.conn = ConnStatus {
            state,
            reason,
            retry_at: retry.map(|ms| self.now_ms + ms),
        };
        if state == before {
            return;
        }
        let now = self.now_ms;
        let line = match state {
            ConnectionState::Reconnecting => "connection lost; reconnecting…".to_string(),
            ConnectionState::Connected if before == ConnectionState::Reconnecting => {
                "reconnected".to_string()
            }
            _ => format!(
                "{}: {}",
                status::state_words(state),
                status::reason_words(reason)
            ),
        };
        match state {
            ConnectionState::Aborted => {
                self.tabs
                    .home()
                    .error(now, format!("{line}. /login to log in again."));
                self.tabs.forget_presence();
            }
            ConnectionState::Reconnecting | ConnectionState::Connected
                if self.screen == Screen::Main =>
            {
                self.tabs.home().info(now, line);
                if state == ConnectionState::Reconnecting {
                    self.tabs.connection_lost(now);
                }
                if before == ConnectionState::Reconnecting {
                    self.tabs.connection_back(now);
                    // Back: who is in each channel, and its attributes, may have changed
                    // meanwhile (a restarted server may have forgotten them).
                    for channel in self.tabs.joined_channels() {
                        self.jobs.ask_members(channel.clone(), now);
                        self.jobs.ask_with(
                            Pending::Attributes(AttributesShown::Header),
                            Job::GetChannelAttributes(channel),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn start_login(&mut self) {
        if !self.login.is_valid() {
            self.login.status = LoginStatus::Refused("fix the fields marked ✗ first".into());
            return;
        }
        let user = self.login.value(login::USER).to_string();
        let app_id = self.login.value(login::APP_ID).to_string();
        let server = login::server_url(self.login.value(login::SERVER));
        let status = &mut self.status;
        let same =
            status.me.as_ref() == Some(&user) && status.app_id == app_id && status.server == server;
        if same && status.in_session() {
            // Nothing to change: back to the chat rather than "already logged in (8)".
            self.screen = Screen::Main;
            self.login.status = LoginStatus::Editing;
            return;
        }
        self.login.status = LoginStatus::Busy;
        // Known before the server answers: offline messages may arrive before the reply
        // reaches us, and must already land in tabs of the right user.
        if status.me.as_ref().is_some_and(|me| *me != user) {
            self.tabs.reset();
            status.has_logged_in = false;
        }
        status.me = Some(user.clone());
        status.app_id.clone_from(&app_id);
        if status.server != server {
            // Another list: which of its servers is reached is not known yet.
            status.connected_to = None;
        }
        status.server.clone_from(&server);
        let token = self.login.value(login::TOKEN).trim().to_string();
        let request = Job::Login {
            server,
            app_id,
            user,
            token: (!token.is_empty()).then_some(token),
        };
        self.jobs.ask(request);
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
                let answer = if key == KeyAction::AcceptCall {
                    InvitationAnswer::Accept
                } else {
                    InvitationAnswer::Refuse
                };
                self.answer_invitation(answer, String::new());
            }
            return;
        }
        if let Some(overlay @ Overlay::Invitation(_)) = &mut self.overlay {
            // Not modal: only Esc is the prompt's ("later"); every other key is the
            // screen's, so typing goes on while a call rings.
            if overlay.on_key(key) == Reaction::Close {
                self.overlay = None;
            } else if self.screen == Screen::Main {
                self.on_main_key(key);
            }
            return;
        }
        if key == KeyAction::Redraw {
            self.jobs.push(Effect::Repaint);
            return;
        }
        if let Some(overlay) = &mut self.overlay {
            let reaction = overlay.on_key(key);
            self.on_reaction(reaction);
            return;
        }
        match self.screen {
            Screen::Login => match self.login.on_key(key, self.status.in_session()) {
                FormKey::Handled => {}
                FormKey::Submit => self.start_login(),
                FormKey::Leave => self.screen = Screen::Main,
            },
            Screen::Main => self.on_main_key(key),
        }
    }

    /// Does what a window asked for.
    fn on_reaction(&mut self, reaction: Reaction) {
        match reaction {
            Reaction::Stay => return,
            Reaction::Close => {}
            Reaction::Choose(selected) => {
                if let Some(&i) = self.switcher_matches().get(selected) {
                    self.tabs.activate(i);
                }
            }
            Reaction::Send(text) => self.send_text(&text),
            Reaction::EditFirst(text) => self.input.insert_str(&text),
            Reaction::ShowResult(n) => {
                let query = self.overlay.as_ref().and_then(Overlay::search_query);
                let results = self.active_tab().search(query.unwrap_or(""));
                // Up past the oldest result stays on it, as the window shows.
                if let Some(&index) = results.get(n.min(results.len().saturating_sub(1))) {
                    self.tabs.active_tab_mut().show_entry(index);
                }
            }
            Reaction::OlderHistory => {
                // The search stays open and takes in what the page brings.
                self.tabs.load_older(&mut self.jobs);
                return;
            }
        }
        self.overlay = None;
    }

    pub(crate) fn quit(&mut self) {
        self.quit = true;
        self.jobs.push(Effect::Quit);
    }

    fn scroll_by(&mut self, entries: i32) {
        let page = usize::from(self.size.1);
        self.tabs.scroll_by(entries, page, &mut self.jobs);
    }

    fn on_main_key(&mut self, key: KeyAction) {
        let half_page = i32::from(self.size.1 / 2).max(1);
        match key {
            KeyAction::Submit => {
                let line = self.input.take();
                self.send_line(&line);
            }
            KeyAction::NewLine => self.input.insert_char('\n'),
            KeyAction::Complete => {
                self.input
                    .complete(&self.tabs.users(), &self.tabs.channels());
            }
            // Ctrl-K on an empty line has nothing to kill: it opens the switcher.
            KeyAction::KillToEnd if self.input.is_empty() => self.open_switcher(),
            KeyAction::Switcher => self.open_switcher(),
            KeyAction::Search => self.overlay = Some(Overlay::search("")),
            KeyAction::Up => self
                .input
                .older(&mut self.tabs.active_tab_mut().input_history),
            KeyAction::Down => self
                .input
                .newer(&mut self.tabs.active_tab_mut().input_history),
            KeyAction::NextTab => self.tabs.next(),
            KeyAction::PrevTab => self.tabs.previous(),
            KeyAction::GoTo(n) => self.tabs.activate(usize::from(n) - 1),
            KeyAction::NextActivity => self.tabs.next_activity(),
            KeyAction::PageUp => self.scroll_by(half_page),
            KeyAction::PageDown => self.scroll_by(-half_page),
            KeyAction::Help => self.overlay = Some(Overlay::help()),
            KeyAction::ToggleMembers => {
                self.show_members = !self.show_members;
                let tab = self.tabs.active_tab();
                if self.show_members && tab.joined && !layout::member_list_fits(self.size.0) {
                    // No room beside the messages: F2 still answers, with the list.
                    let members = tab.members.join(", ");
                    self.info(format!(
                        "too narrow for the member list; the members: {members}"
                    ));
                }
            }
            KeyAction::MembersUp => {
                let tab = self.tabs.active_tab_mut();
                tab.member_scroll = tab.member_scroll.saturating_sub(1);
            }
            KeyAction::MembersDown => {
                let tab = self.tabs.active_tab_mut();
                if tab.member_scroll + 1 < tab.visible_members().count() {
                    tab.member_scroll += 1;
                }
            }
            KeyAction::ToggleJoins => {
                let tab = self.tabs.active_tab_mut();
                tab.expand_joins = !tab.expand_joins;
            }
            KeyAction::Editor => {
                let draft = self.input.take();
                self.jobs.ask(Job::Editor(draft));
            }
            // A transfer under way is what Esc stops first.
            KeyAction::Cancel if self.cancel_transfer() => {}
            KeyAction::SaveMedia => self.save_media(None),
            KeyAction::Cancel => {
                self.input.take();
                let tab = self.tabs.active_tab_mut();
                tab.scroll = 0;
                tab.unread = 0;
                tab.mentions = 0;
            }
            other => self.input.edit(other),
        }
    }

    /// The tab switcher, with the tab most likely wanted selected: one with something
    /// new, else the one in front before.
    fn open_switcher(&mut self) {
        let likely = self.tabs.likely_next();
        let selected = self
            .tabs
            .matching("")
            .iter()
            .position(|&i| i == likely)
            .unwrap_or(0);
        self.overlay = Some(Overlay::switcher(selected));
    }

    fn on_insert(&mut self, c: char) {
        if let Some(reaction) = self.overlay.as_mut().and_then(|o| o.on_insert(c)) {
            return self.on_reaction(reaction);
        }
        // No window, or the call prompt, which leaves letters to the line being typed.
        match self.screen {
            Screen::Login => self.login.focused().insert_char(c),
            Screen::Main if c == '?' && self.input.is_empty() => {
                self.overlay = Some(Overlay::help());
            }
            Screen::Main => self.input.insert_char(c),
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
            (None, Screen::Main) => match Overlay::paste(text) {
                Ok(question) => self.overlay = Some(question),
                Err(text) => self.input.insert_str(&text),
            },
            _ => {}
        }
    }

    fn send_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        self.tabs.active_tab_mut().input_history.push(line);
        if line.starts_with('/') && !line.starts_with("//") {
            match slash_command::parse(line) {
                Ok(command) => self.run_command(command),
                Err(usage) => self.error(usage),
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
        // Trailing empty lines (Alt-Enter, an edited paste) would show as an empty line.
        let text = text.trim_end_matches(['\n', ' ']).to_string();
        if text.trim().is_empty() {
            return;
        }
        if text.len() > MAX_MESSAGE_BYTES {
            // Said before sending, and nothing typed is lost: the server would refuse it.
            self.error(format!(
                "not sent: {} bytes, over the limit of {MAX_MESSAGE_BYTES} bytes by {}; \
                 it is back on the input line to shorten",
                text.len(),
                text.len() - MAX_MESSAGE_BYTES
            ));
            if self.input.is_empty() {
                self.input.set(text);
            }
            return;
        }
        match self.active_tab().target.clone() {
            Some(target) => self.send_to(&target, Message::text(text)),
            None => self.error("this is the rtm tab: /join <channel> or /msg <peer> first"),
        }
    }

    /// Sends `message` to a conversation: shown at once, pending, and asked of the loop.
    fn send_to(&mut self, target: &Target, message: Message) {
        let me = self.status.me().to_string();
        self.tabs
            .send(target, message, &me, self.now_ms, &mut self.jobs);
    }

    fn invite(&mut self, request: InviteJob) {
        let target = Target::Peer(request.peer().to_string());
        self.jobs
            .ask_with(Pending::LineTo(target), Job::Invite(request));
    }

    fn answer_invitation(&mut self, answer: InvitationAnswer, response: String) {
        match self.calls.answer(answer, response) {
            Some(request) => {
                self.close_invitation_prompt();
                self.invite(request);
            }
            None => self.error("no invitation is waiting"),
        }
    }
}

pub fn presence_word(status: crate::protocol::PeerStatus) -> &'static str {
    match status {
        crate::protocol::PeerStatus::Online => "online",
        crate::protocol::PeerStatus::Unreachable => "unreachable",
        crate::protocol::PeerStatus::Offline => "offline",
    }
}

//! The one loop: a `tokio::select!` over terminal input, client events, answers to our
//! requests and (only while a countdown shows) a one-second timer. Everything becomes an
//! [`Action`] for `App::update`; queued events are taken together before one draw, and
//! nothing is drawn unless something changed, so an idle client uses no CPU.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind, MouseEventKind};
use futures_util::StreamExt as _;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::client::{Client, ClientConfig, ClientEvent, Events};
use crate::protocol::ConnectionState;

use super::action::{answer, Action, Effect, KeyAction};
use super::app::App;
use super::error::{io, TuiError};
use super::job::{failure, Failure, Job, JobId, JobOutput};
use super::keymap::Keymap;
use super::local_server::{words, StartError};
use super::network::Network;
use super::notify::Notifier;
use super::pictures::Pictures;
use super::render;
use super::terminal::TerminalGuard;

/// Longest stretch of event handling between two draws, so a burst never freezes the screen.
const MAX_BATCH: Duration = Duration::from_millis(30);
/// Mouse wheel: entries per notch.
const WHEEL_STEP: i32 = 3;

/// Turns a terminal event into an action (keys through the keymap).
pub fn translate(event: &TermEvent, keymap: &Keymap) -> Option<Action> {
    match event {
        TermEvent::Key(key) if key.kind != KeyEventKind::Release => {
            if let Some(action) = keymap.lookup(key) {
                return Some(Action::Key(action));
            }
            let mods = key.modifiers;
            match key.code {
                crossterm::event::KeyCode::Char(c)
                    if !mods.intersects(
                        crossterm::event::KeyModifiers::CONTROL
                            | crossterm::event::KeyModifiers::ALT,
                    ) =>
                {
                    Some(Action::Insert(c))
                }
                _ => None,
            }
        }
        TermEvent::Paste(text) => Some(Action::Paste(text.clone())),
        TermEvent::Mouse(mouse) => match mouse.kind {
            MouseEventKind::ScrollUp => Some(Action::Wheel(WHEEL_STEP)),
            MouseEventKind::ScrollDown => Some(Action::Wheel(-WHEEL_STEP)),
            _ => None,
        },
        TermEvent::Resize(w, h) => Some(Action::Resize(*w, *h)),
        TermEvent::FocusGained => Some(Action::Focus(true)),
        TermEvent::FocusLost => Some(Action::Focus(false)),
        // Key releases (terminals that report them).
        TermEvent::Key(_) => None,
    }
}

/// The client's events as app actions.
pub fn client_action(event: ClientEvent) -> Action {
    match event {
        ClientEvent::StateChanged {
            state,
            reason,
            retry_in,
        } => Action::Connection {
            state,
            reason,
            retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
        },
        ClientEvent::Server(event) => Action::Server(event),
    }
}

/// Starts a server for a login when needed (the embedded default); returns a note to show.
pub type ServerStarter = Box<
    dyn FnMut(&str) -> futures_util::future::BoxFuture<'static, Result<Option<String>, StartError>>
        + Send,
>;

/// How new sessions are set up: a server to start first, a command for fresh tokens.
#[derive(Default)]
pub struct Connector {
    /// Asked before each login to a new server (the embedded default).
    pub start_server: Option<ServerStarter>,
    /// `--token-cmd`.
    pub token_cmd: Option<String>,
}

/// What the loop performs effects with: the terminal, the client session, and the way
/// back into the loop for answers.
struct Shell {
    terminal: Terminal<CrosstermBackend<io::Stdout>>,
    guard: TerminalGuard,
    network: Option<(Network, Events)>,
    tx: mpsc::UnboundedSender<Action>,
    connector: Connector,
    /// How this terminal shows desktop notifications, if it does.
    notifier: Option<Notifier>,
    /// How this terminal draws pictures, and those drawn so far.
    pictures: Pictures,
}

/// Runs the app in the terminal until it quits. `initial` are effects to perform first
/// (an automatic login).
pub async fn run(mut app: App, initial: Vec<Effect>, connector: Connector) -> Result<(), TuiError> {
    let guard = TerminalGuard::enter().map_err(io("cannot set up the terminal"))?;
    let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))
        .map_err(io("cannot draw on the terminal"))?;
    let size = terminal
        .size()
        .map_err(io("cannot read the terminal's size"))?;
    app.size = (size.width, size.height);
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();
    // Before anything reads the terminal's input: the answers to the query come there.
    let pictures = Pictures::detect(app.config.images);
    app.picture_cells = pictures.cell_pixels();
    let mut shell = Shell {
        terminal,
        guard,
        network: None,
        tx,
        connector,
        notifier: Notifier::resolve(app.config.notify, |name| std::env::var(name).ok()),
        pictures,
    };
    let mut input = EventStream::new();
    // Asked to stop (kill, a closed terminal): leave through the same door as /quit, so
    // the terminal is restored and the session logged out.
    let mut terminate = signal(SignalKind::terminate()).map_err(io("cannot watch SIGTERM"))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(io("cannot watch SIGHUP"))?;
    let mut pending = initial;

    // The connection dropped: if it was to the embedded default whose owner (another
    // rtm-tui) has quit, this one takes over by starting the server itself.
    let mut lost_server = false;
    // Actions taken from their queues and not yet handed to the app (`events_then`).
    let mut queued: VecDeque<Action> = VecDeque::new();
    loop {
        if std::mem::take(&mut lost_server) {
            shell.take_over_server().await;
        }
        for effect in std::mem::take(&mut pending) {
            shell.perform(effect, &mut app).await?;
        }
        if app.quit {
            break;
        }
        if app.dirty {
            let mut links = Vec::new();
            let pictures = &mut shell.pictures;
            shell
                .terminal
                .draw(|frame| links = render::draw_with_pictures(frame, &app, pictures))
                .map_err(io("cannot draw on the terminal"))?;
            hyperlinks(&links).map_err(io("cannot draw on the terminal"))?;
            app.dirty = false;
        }
        let tick = app.needs_tick();
        // Input first: a flood of messages must not starve the keyboard.
        let first = if let Some(action) = queued.pop_front() {
            Some(action)
        } else {
            tokio::select! {
                biased;
                event = input.next() => match event {
                    Some(Ok(event)) => translate(&event, &app.keymap),
                    Some(Err(e)) => return Err(io("terminal input failed")(e)),
                    None => break,
                },
                action = rx.recv() => action.map(|answer| events_then(answer, &mut shell.network, &mut queued)),
                event = next_client_event(&mut shell.network) => event.map(client_action),
                () = tokio::time::sleep(Duration::from_secs(1)), if tick => Some(Action::Tick),
                _ = terminate.recv() => Some(Action::Key(KeyAction::Quit)),
                _ = hangup.recv() => Some(Action::Key(KeyAction::Quit)),
            }
        };
        let started = Instant::now();
        let mut next = first;
        // Take everything already queued before drawing once.
        loop {
            if let Some(action) = next.take() {
                app.now_ms = crate::protocol::now_ms();
                match action {
                    Action::Connection {
                        state: ConnectionState::Reconnecting,
                        ..
                    } => lost_server = true,
                    Action::Connection {
                        state: ConnectionState::Connected,
                        ..
                    } => {
                        // Which server, of several: the client knows, the event does not say.
                        let url = shell
                            .network
                            .as_ref()
                            .and_then(|(s, _)| s.client.current_server());
                        if let Some(url) = url {
                            pending.extend(app.update(Action::ConnectedTo(url)));
                        }
                    }
                    _ => {}
                }
                pending.extend(app.update(action));
            }
            if started.elapsed() > MAX_BATCH || app.quit || !pending.is_empty() {
                break;
            }
            // Terminal input is not polled here: EventStream must only be polled with the
            // loop's real waker (a no-op waker would leave it asleep); keys come one by one
            // anyway, and pastes arrive as one event.
            if let Some(action) = queued.pop_front() {
                next = Some(action);
                continue;
            }
            next = match rx.try_recv() {
                Ok(answer) => Some(events_then(answer, &mut shell.network, &mut queued)),
                Err(_) => match shell
                    .network
                    .as_mut()
                    .and_then(|(_, events)| events.try_recv())
                {
                    Some(event) => Some(client_action(event)),
                    None => break,
                },
            };
        }
    }
    let Shell {
        terminal,
        guard,
        network,
        ..
    } = shell;
    if let Some((network, _)) = network {
        // A polite goodbye, but never hang on exit.
        let _ = tokio::time::timeout(Duration::from_secs(1), network.client.logout()).await;
    }
    drop(terminal);
    drop(guard);
    Ok(())
}

/// Writes the links just drawn again, each piece inside an OSC 8 hyperlink to its whole
/// URL: the same characters in the same cells, so ratatui's idea of the screen stays
/// true; terminals without OSC 8 ignore the sequence. The cursor goes back where the draw
/// left it.
fn hyperlinks(links: &[render::links::Link]) -> io::Result<()> {
    use crossterm::style::{Print, SetStyle};
    use crossterm::{cursor, queue};
    use ratatui::backend::IntoCrossterm;
    if links.is_empty() {
        return Ok(());
    }
    let mut out = io::stdout();
    queue!(out, cursor::SavePosition)?;
    for link in links {
        let style = crossterm::style::ContentStyle {
            foreground_color: link.style.fg.map(IntoCrossterm::into_crossterm),
            background_color: link.style.bg.map(IntoCrossterm::into_crossterm),
            underline_color: None,
            attributes: crossterm::style::Attribute::Underlined.into(),
        };
        // The URL must not end the sequence early (it holds no spaces or controls).
        let url: String = link.url.chars().filter(|c| !c.is_control()).collect();
        queue!(
            out,
            cursor::MoveTo(link.x, link.y),
            SetStyle(style),
            Print(format!("\x1b]8;;{url}\x1b\\{}\x1b]8;;\x1b\\", link.text)),
            crossterm::style::ResetColor,
            crossterm::style::SetAttribute(crossterm::style::Attribute::Reset),
        )?;
    }
    queue!(out, cursor::RestorePosition)?;
    out.flush()
}

/// The first action to handle of `answer` (one of our jobs' answers) and the client events
/// already received, which go before it: the client hands the application an event as
/// soon as it reads it (`client::connection`'s `emit`), so an event the server sent
/// before a reply (bob joined, then the member list that names him) is waiting before the
/// answer that reply makes. The rest go to `queued`, in order.
fn events_then(
    answer: Action,
    network: &mut Option<(Network, Events)>,
    queued: &mut VecDeque<Action>,
) -> Action {
    if let Some((_, events)) = network {
        while let Some(event) = events.try_recv() {
            queued.push_back(client_action(event));
        }
    }
    if queued.is_empty() {
        return answer;
    }
    queued.push_back(answer);
    queued.pop_front().expect("not empty")
}

async fn next_client_event(network: &mut Option<(Network, Events)>) -> Option<ClientEvent> {
    match network {
        Some((_, events)) => match events.recv().await {
            Some(event) => Some(event),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl Shell {
    /// Starts the embedded server if this session uses the default address and nothing
    /// listens there any more; the client's next reconnect attempt then finds it.
    async fn take_over_server(&mut self) {
        let (Some(start), Some((network, _))) =
            (self.connector.start_server.as_mut(), self.network.as_ref())
        else {
            return;
        };
        tracing::debug!("connection lost; checking the embedded server");
        match start(&network.server).await {
            Ok(Some(note)) => {
                let _ = self.tx.send(Action::Notice(format!("server gone; {note}")));
            }
            Ok(None) => {}
            // Another rtm-tui may have been quicker; the reconnect will find its server.
            Err(e) => tracing::info!("no takeover of the embedded server: {}", words(&e)),
        }
    }

    async fn perform(&mut self, effect: Effect, app: &mut App) -> Result<(), TuiError> {
        match effect {
            Effect::Bell => {
                print!("\x07");
                io::stdout()
                    .flush()
                    .map_err(io("cannot write to the terminal"))?;
            }
            Effect::Notify { title, body } => {
                if let Some(notifier) = self.notifier {
                    print!("{}", notifier.sequence(&title, &body));
                    io::stdout()
                        .flush()
                        .map_err(io("cannot write to the terminal"))?;
                }
            }
            Effect::Title(title) => {
                crossterm::execute!(io::stdout(), crossterm::terminal::SetTitle(title))
                    .map_err(io("cannot set the terminal's title"))?;
            }
            Effect::Quit => app.quit = true,
            Effect::SaveTabs { app_id, user, tabs } => {
                let path = super::saved_tabs::default_path();
                if let Err(e) = super::saved_tabs::save(&path, &app_id, &user, &tabs) {
                    tracing::warn!("cannot save the open tabs: {e}");
                }
            }
            Effect::Repaint => {
                self.terminal
                    .clear()
                    .map_err(io("cannot clear the terminal"))?;
                app.dirty = true;
            }
            Effect::Reconnect => {
                if let Some((s, _)) = self.network.as_ref() {
                    s.client.reconnect_now();
                }
            }
            Effect::CancelTransfer(id) => {
                if let Some((s, _)) = self.network.as_mut() {
                    s.cancel_transfer(id);
                }
            }
            Effect::Subscribe(peers) => self.follow_presence(peers, true),
            Effect::Unsubscribe(peers) => self.follow_presence(peers, false),
            Effect::Job(id, Job::Editor(draft)) => {
                let edited = super::editor::edit(&draft, &mut self.guard);
                // The editor had the terminal: everything is drawn again.
                self.terminal
                    .clear()
                    .map_err(io("cannot clear the terminal"))?;
                app.dirty = true;
                let result = edited
                    .map(JobOutput::Text)
                    .map_err(|e| Failure::new(None, format!("$EDITOR: {e}")));
                answer(&self.tx, id, result);
            }
            Effect::Job(id, request) => self.request(id, request).await,
        }
        Ok(())
    }

    fn follow_presence(&self, peers: Vec<String>, follow: bool) {
        if let Some((s, _)) = self.network.as_ref() {
            s.follow_presence(peers, follow);
        } else {
            tracing::debug!("no session to follow the presence of {peers:?} with");
        }
    }

    /// Starts `request`; its answer comes back to the loop with `id`.
    async fn request(&mut self, id: JobId, request: Job) {
        let tx = &self.tx;
        match request {
            Job::LoadTabs { app_id, user } => {
                let path = super::saved_tabs::default_path();
                let tabs = super::saved_tabs::load(&path, &app_id, &user);
                answer(tx, id, Ok(JobOutput::SavedTabs(tabs)));
            }
            Job::SaveFile { path, name, data } => super::files::save(path, name, data, id, tx),
            Job::ReadRawFile(path) => super::files::read_raw(path, id, tx),
            Job::Login {
                ref server,
                ref app_id,
                ..
            } => {
                let (server, app_id) = (server.clone(), app_id.clone());
                self.log_in(id, request, &server, &app_id).await;
            }
            other => match self.network.as_mut() {
                Some((s, _)) => s.perform(id, other, tx),
                None => answer(tx, id, Err(Failure::new(None, "not logged in"))),
            },
        }
    }

    /// A login: to the session's server (logging out whoever is in), or to another one
    /// through a new session (after starting the embedded server if it is the default).
    async fn log_in(&mut self, id: JobId, request: Job, server: &str, app_id: &str) {
        let reuse = self
            .network
            .as_ref()
            .is_some_and(|(s, _)| s.server == server && s.app_id == app_id);
        if !reuse {
            if let Some((old, _)) = self.network.take() {
                let _ = tokio::time::timeout(Duration::from_secs(1), old.client.logout()).await;
            }
            if let Some(start) = self.connector.start_server.as_mut() {
                match start(server).await {
                    Ok(Some(note)) => {
                        let _ = self.tx.send(Action::Notice(note));
                    }
                    Ok(None) => {}
                    Err(e) => return answer(&self.tx, id, Err(Failure::new(None, words(&e)))),
                }
            }
            // The form's server: one URL, or several separated by commas.
            let servers = super::login::servers(server);
            let config = match servers.split_first() {
                Some((first, rest)) => ClientConfig::new(first.clone(), app_id)
                    .with_fallback_servers(rest.iter().cloned()),
                None => ClientConfig::new(server, app_id),
            };
            match Client::new(config) {
                Ok((client, events)) => {
                    let mut new = Network::new(client, server.to_string(), app_id.to_string());
                    new.token_cmd.clone_from(&self.connector.token_cmd);
                    self.network = Some((new, events));
                }
                Err(e) => return answer(&self.tx, id, Err(failure(&e))),
            }
        }
        if let Some((s, _)) = self.network.as_mut() {
            if reuse && s.client.user().is_some() {
                // Logged in (as someone else, from /login): log out first, or the
                // server would answer "already logged in".
                let _ = tokio::time::timeout(Duration::from_secs(1), s.client.logout()).await;
            }
            s.perform(id, request, &self.tx);
        }
    }
}

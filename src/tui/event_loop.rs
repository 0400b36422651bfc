//! The one loop: a `tokio::select!` over terminal input, client events, answers to our
//! requests and (only while a countdown shows) a one-second timer. Everything becomes an
//! [`Action`] for `App::update`; queued events are taken together before one draw, and
//! nothing is drawn unless something changed, so an idle client uses no CPU.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind, MouseEventKind};
use futures_util::StreamExt as _;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::client::{Client, ClientConfig, ClientEvent, Events};
use crate::protocol::ConnectionState;

use super::action::{Action, Effect, Failure, KeyAction, Outcome};
use super::app::App;
use super::keymap::Keymap;
use super::render;
use super::session::{failure, Session};
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
        _ => None,
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
    dyn FnMut(&str) -> futures_util::future::BoxFuture<'static, Result<Option<String>, String>>
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

/// Runs the app in the terminal until it quits. `initial` are effects to perform first
/// (an automatic login).
pub async fn run(
    mut app: App,
    initial: Vec<Effect>,
    mut connector: Connector,
) -> anyhow::Result<()> {
    let mut guard = TerminalGuard::enter().context("cannot set up the terminal")?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))
        .context("cannot draw on the terminal")?;
    let size = terminal.size()?;
    app.size = (size.width, size.height);
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();
    let mut input = EventStream::new();
    // Asked to stop (kill, a closed terminal): leave through the same door as /quit, so
    // the terminal is restored and the session logged out.
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut session: Option<(Session, Events)> = None;
    let mut pending = initial;

    // The connection dropped: if it was to the embedded default whose owner (another
    // rtm-tui) has quit, this one takes over by starting the server itself.
    let mut lost_server = false;
    loop {
        if std::mem::take(&mut lost_server) {
            take_over_server(&mut connector, session.as_ref().map(|(s, _)| s), &tx).await;
        }
        for effect in std::mem::take(&mut pending) {
            perform(
                effect,
                &mut app,
                &mut session,
                &tx,
                &mut connector,
                &mut guard,
                &mut terminal,
            )
            .await?;
        }
        if app.quit {
            break;
        }
        if app.dirty {
            terminal.draw(|frame| render::draw(frame, &app))?;
            app.dirty = false;
        }
        let tick = app.needs_tick();
        // Input first: a flood of messages must not starve the keyboard.
        let first = tokio::select! {
            biased;
            event = input.next() => match event {
                Some(Ok(event)) => translate(&event, &app.keymap),
                Some(Err(e)) => return Err(e).context("terminal input failed"),
                None => break,
            },
            action = rx.recv() => action,
            event = next_client_event(&mut session) => event.map(client_action),
            () = tokio::time::sleep(Duration::from_secs(1)), if tick => Some(Action::Tick),
            _ = terminate.recv() => Some(Action::Key(KeyAction::Quit)),
            _ = hangup.recv() => Some(Action::Key(KeyAction::Quit)),
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
                        let url = session
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
            next = match rx.try_recv() {
                Ok(action) => Some(action),
                Err(_) => match session.as_mut().and_then(|(_, events)| events.try_recv()) {
                    Some(event) => Some(client_action(event)),
                    None => break,
                },
            };
        }
    }
    if let Some((session, _)) = session {
        // A polite goodbye, but never hang on exit.
        let _ = tokio::time::timeout(Duration::from_secs(1), session.client.logout()).await;
    }
    drop(terminal);
    drop(guard);
    Ok(())
}

/// Starts the embedded server if this session uses the default address and nothing
/// listens there any more; the client's next reconnect attempt then finds it.
async fn take_over_server(
    connector: &mut Connector,
    session: Option<&Session>,
    tx: &mpsc::UnboundedSender<Action>,
) {
    let (Some(start), Some(session)) = (connector.start_server.as_mut(), session) else {
        return;
    };
    tracing::debug!("connection lost; checking the embedded server");
    match start(&session.server).await {
        Ok(Some(note)) => {
            let _ = tx.send(Action::Notice(format!("server gone; {note}")));
        }
        Ok(None) => {}
        // Another rtm-tui may have been quicker; the reconnect will find its server.
        Err(e) => tracing::info!("no takeover of the embedded server: {e}"),
    }
}

async fn next_client_event(session: &mut Option<(Session, Events)>) -> Option<ClientEvent> {
    match session {
        Some((_, events)) => match events.recv().await {
            Some(event) => Some(event),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn perform(
    effect: Effect,
    app: &mut App,
    session: &mut Option<(Session, Events)>,
    tx: &mpsc::UnboundedSender<Action>,
    connector: &mut Connector,
    guard: &mut TerminalGuard,
    terminal: &mut Terminal<CrosstermBackend<io::Stdout>>,
) -> anyhow::Result<()> {
    match effect {
        Effect::Bell => {
            print!("\x07");
            io::stdout().flush()?;
        }
        Effect::Title(title) => {
            crossterm::execute!(io::stdout(), crossterm::terminal::SetTitle(title))?;
        }
        Effect::Quit => app.quit = true,
        Effect::LoadTabs { app_id, user } => {
            let tabs = super::saved_tabs::load(&super::saved_tabs::default_path(), &app_id, &user);
            let _ = tx.send(Action::Done(Outcome::SavedTabs(tabs)));
        }
        Effect::SaveTabs { app_id, user, tabs } => {
            if let Err(e) =
                super::saved_tabs::save(&super::saved_tabs::default_path(), &app_id, &user, &tabs)
            {
                tracing::warn!("cannot save the open tabs: {e}");
            }
        }
        Effect::Repaint => {
            terminal.clear()?;
            app.dirty = true;
        }
        Effect::Editor(text) => {
            let edited = super::editor::edit(&text, guard);
            terminal.clear()?;
            app.dirty = true;
            match edited {
                Ok(text) => {
                    let _ = tx.send(Action::Done(Outcome::Edited(text)));
                }
                Err(e) => {
                    let _ = tx.send(Action::Done(Outcome::Info {
                        target: None,
                        result: Err(Failure::new(None, format!("$EDITOR: {e}"))),
                    }));
                    let _ = tx.send(Action::Done(Outcome::Edited(text)));
                }
            }
        }
        Effect::Login {
            ref server,
            ref app_id,
            ..
        } => {
            let reuse = session
                .as_ref()
                .is_some_and(|(s, _)| s.server == *server && s.app_id == *app_id);
            if !reuse {
                if let Some((old, _)) = session.take() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), old.client.logout()).await;
                }
                if let Some(start) = connector.start_server.as_mut() {
                    match start(server).await {
                        Ok(Some(note)) => {
                            let _ = tx.send(Action::Notice(note));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let _ =
                                tx.send(Action::Done(Outcome::Login(Err(Failure::new(None, e)))));
                            return Ok(());
                        }
                    }
                }
                // The form's server: one URL, or several separated by commas.
                let servers = super::login::servers(server);
                let config = match servers.split_first() {
                    Some((first, rest)) => ClientConfig::new(first.clone(), app_id.clone())
                        .with_fallback_servers(rest.iter().cloned()),
                    None => ClientConfig::new(server.clone(), app_id.clone()),
                };
                match Client::new(config) {
                    Ok((client, events)) => {
                        let mut new = Session::new(client, server.clone(), app_id.clone());
                        new.token_cmd.clone_from(&connector.token_cmd);
                        *session = Some((new, events));
                    }
                    Err(e) => {
                        let _ = tx.send(Action::Done(Outcome::Login(Err(failure(&e)))));
                        return Ok(());
                    }
                }
            }
            if let Some((s, _)) = session.as_mut() {
                if reuse && s.client.user().is_some() {
                    // Logged in (as someone else, from /login): log out first, or the
                    // server would answer "already logged in".
                    let _ = tokio::time::timeout(Duration::from_secs(1), s.client.logout()).await;
                }
                s.perform(effect, tx);
            }
        }
        other => match session.as_mut() {
            Some((s, _)) => s.perform(other, tx),
            None => {
                let _ = tx.send(Action::Done(Outcome::Info {
                    target: None,
                    result: Err(Failure::new(None, "not logged in")),
                }));
            }
        },
    }
    Ok(())
}

//! The terminal chat client.
//!
//! - What happens: [`action`] (actions in, effects out) and [`job`] (work the app asks of
//!   the world, matched to its answer by id), about a [`target`] (a conversation).
//! - State, changed only by `App::update`: [`app`] and its components, with the data they
//!   hold: [`tab`] (a conversation's scrollback), [`login`] (the form), [`line_editor`]
//!   (text editing), [`input_history`] (the lines sent from a tab), [`slash_command`] (what
//!   a `/command` is), [`local_time`] (times in the user's zone), [`media`] (thumbnails,
//!   sizes, where downloads go).
//! - Drawing, a pure function of the state: [`render`], with [`layout`] (the panes' widths,
//!   which the app also asks); received images' pictures, encoded for this terminal and
//!   kept: [`pictures`].
//! - The shell: [`event_loop`] (the one `select!`), [`keymap`] (keys to actions),
//!   [`network`] (the client, and the jobs made over the network), [`files`], [`editor`]
//!   (`$EDITOR`), [`saved_tabs`] (the tabs of the last run), [`terminal`], [`config`],
//!   [`notify`] (desktop notifications through the terminal).
//!
//! Talks only to `client/` and `protocol/`. The reference server it may start in-process
//! (the embedded default, the demo's) comes from whoever runs it, as a
//! [`local_server::ServerLauncher`]: this room does not build the server. [`run`] is what
//! `rtm-tui` (no subcommand) calls, with the binary's launcher.

pub mod action;
pub mod app;
pub mod config;
pub mod demo;
pub mod editor;
pub mod embedded;
pub mod error;
pub mod event_loop;
pub mod files;
pub mod input_history;
pub mod job;
pub mod keymap;
pub mod layout;
pub mod line_editor;
pub mod local_server;
pub mod local_time;
pub mod login;
pub mod media;
pub mod network;
pub mod notify;
pub mod pictures;
pub mod render;
pub mod saved_tabs;
pub mod slash_command;
pub mod tab;
pub mod target;
pub mod terminal;
pub mod transfer_tasks;

use std::path::PathBuf;
use std::sync::Arc;

use app::{App, LoginDefaults};
use config::{Theme, TuiConfig};
use error::TuiError;
use keymap::Keymap;
use local_server::ServerLauncher;

/// How the chat client starts.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub app_id: Option<String>,
    pub user: Option<String>,
    pub token: Option<String>,
    /// Prints a fresh token; run when the server warns that the token will expire.
    pub token_cmd: Option<String>,
    /// The servers to use, in order (several: nodes of one service, the client fails over
    /// between them). Empty: the config file's `server`, else the default local server,
    /// started in-process if nothing listens.
    pub servers: Vec<String>,
    pub config: Option<PathBuf>,
    /// Commands run once after the first login (the demo joins its channel).
    pub startup_commands: Vec<String>,
}

/// Builds the app from the config and options: what tests and `run` share.
pub fn build_app(options: &Options) -> Result<App, TuiError> {
    Ok(build(options)?.0)
}

/// The app, and the servers it uses: `--server`'s, else the config file's; empty for the
/// default local server (which may be started in-process).
fn build(options: &Options) -> Result<(App, Vec<String>), TuiError> {
    let config = TuiConfig::load(options.config.as_deref())?;
    let servers = if options.servers.is_empty() {
        config.server.clone()
    } else {
        options.servers.clone()
    };
    let keymap = Keymap::new(config.keys.iter()).map_err(TuiError::Keys)?;
    let theme = Theme::new(&config.colors, config::no_color_requested());
    let defaults = LoginDefaults {
        app_id: options.app_id.clone().unwrap_or_default(),
        user: options.user.clone().unwrap_or_default(),
        token: options.token.clone().unwrap_or_default(),
        server: if servers.is_empty() {
            crate::protocol::DEFAULT_URL.to_string()
        } else {
            // The login form's Server field holds the list, comma-separated.
            servers.join(",")
        },
    };
    let mut app = App::new(config, theme, keymap, &defaults);
    app.startup_commands.clone_from(&options.startup_commands);
    Ok((app, servers))
}

/// Runs the interactive client until the user quits. With no server given, the client
/// starts the default one in-process through `launcher` if nothing listens there
/// (`embedded.rs`); with no launcher it only connects.
pub async fn run(
    options: Options,
    launcher: Option<Arc<dyn ServerLauncher>>,
) -> Result<(), TuiError> {
    let (mut app, servers_given) = build(&options)?;
    app.now_ms = crate::protocol::now_ms();
    let auto = options.app_id.is_some() && options.user.is_some();
    let initial = if auto { app.submit_login() } else { Vec::new() };
    let servers = embedded::StartedServers::default();
    let connector = event_loop::Connector {
        start_server: embedded::starter(servers_given.is_empty(), launcher, &servers),
        token_cmd: options.token_cmd.clone(),
    };
    let result = event_loop::run(app, initial, connector).await;
    embedded::shutdown(&servers).await;
    result
}

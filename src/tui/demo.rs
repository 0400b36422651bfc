//! `rtm-tui demo`: an ephemeral reference server on a free port, three simulated users who
//! chat in `#lobby` and answer peer messages (through the client library, like any user),
//! and the TUI logged in as you. With `embedded.rs`, the TUI's one allowed import of
//! `crate::server` (it starts a server; it never talks to it except over the protocol).

use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinSet;

use crate::client::{Client, ClientConfig, ClientEvent, SendOptions};
use crate::protocol::{Event, Message};
use crate::server::{self, StoreLocation};

use super::Options;

/// App id of the demo.
pub const DEMO_APP: &str = "demo";
/// The channel the simulated users talk in.
pub const DEMO_CHANNEL: &str = "lobby";
/// The simulated users.
const BOTS: [&str; 3] = ["ada", "linus", "grace"];
/// What they say, in turn.
const LINES: [&str; 10] = [
    "morning all ☕",
    "anyone tried the new build? the marks on peer messages are neat",
    "PgUp loads older history, by the way",
    "a peer message to someone offline gets cached ✓ and arrives at their next login",
    "emoji check: 🦀 🚀 漢字 — widths look right here",
    "who broke the build again 😅",
    "stretching, back in a minute",
    "F1 shows every key; Ctrl-K switches tabs",
    "try /call with one of us",
    "lunch?",
];

/// Runs the demo until the user quits the TUI.
pub async fn run(user: String, config: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = server::spawn(
        listener,
        server::Config {
            store: StoreLocation::Ephemeral,
            ..server::Config::default()
        },
    )
    .await
    .context("cannot start the demo server")?;
    let url = server.url();
    let mut bots = JoinSet::new();
    for (i, name) in BOTS.iter().enumerate() {
        let url = url.clone();
        let you = user.clone();
        bots.spawn(async move {
            if let Err(e) = bot(&url, name, &you, i).await {
                tracing::warn!("demo user {name}: {e}");
            }
        });
    }
    let options = Options {
        app_id: Some(DEMO_APP.into()),
        user: Some(user),
        token: None,
        token_cmd: None,
        server: Some(url),
        config,
        startup_commands: vec![format!("/join {DEMO_CHANNEL}")],
    };
    let result = super::run(options).await;
    bots.shutdown().await;
    server.shutdown().await;
    result
}

/// One simulated user: joins the lobby, talks now and then, answers whoever talks to it.
async fn bot(
    url: &str,
    name: &str,
    you: &str,
    seat: usize,
) -> Result<(), crate::client::ClientError> {
    let (client, mut events) = Client::new(ClientConfig::new(url, DEMO_APP))?;
    client.login(None, name).await?;
    let lobby = client.create_channel(DEMO_CHANNEL)?;
    lobby.join().await?;
    let period = Duration::from_secs(7 + 3 * seat as u64);
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut turn = seat * 3;
    loop {
        tokio::select! {
            _ = timer.tick() => {
                let line = LINES[turn % LINES.len()];
                turn += 1;
                let text = if turn % 4 == 0 { format!("{you}: {line}") } else { line.to_string() };
                let _ = lobby.send_message(Message::text(text)).await;
            }
            event = events.recv() => match event {
                Some(ClientEvent::Server(Event::MessageFromPeer { from, message, .. })) => {
                    let reply = format!("got your message “{}” — I'm {name}, a demo user", message.summary());
                    let client = client.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(800)).await;
                        let _ = client.send_message_to_peer(&from, Message::text(reply), SendOptions { offline: true }).await;
                    });
                }
                Some(ClientEvent::Server(Event::MessageFromChannel { from, message, .. }))
                    if crate::tui::tab::mentions(&message.summary(), name) =>
                {
                    let _ = lobby.send_message(Message::text(format!("{from}: you called? 👋"))).await;
                }
                Some(ClientEvent::Server(Event::InvitationReceived { invitation_id, caller, .. })) => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let _ = client.accept_invitation(&invitation_id, &caller, "on my way").await;
                }
                Some(_) => {}
                None => return Ok(()),
            },
        }
    }
}

//! The chat client (no subcommand) and `demo`: the TUI, with the embedded server by default.
//! The `tui` room does not build the server; [`ReferenceServer`] is how it starts one.

use std::process::ExitCode;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt as _;
use rtm::server::{self, StoreLocation};
use rtm::tui::local_server::{LocalServer, ServerData, ServerLauncher, StartError};
use tokio::net::TcpListener;

use crate::cli::{ChatArgs, DemoArgs};

/// The reference server with its default settings, as the chat client starts it
/// in-process (the embedded default, the demo's).
struct ReferenceServer;

impl ServerLauncher for ReferenceServer {
    fn launch(
        &self,
        listener: TcpListener,
        data: ServerData,
    ) -> BoxFuture<'static, Result<LocalServer, StartError>> {
        async move {
            let store = match data {
                ServerData::Dir(path) => StoreLocation::Path(path),
                ServerData::Ephemeral => StoreLocation::Ephemeral,
            };
            let config = server::Config {
                store,
                ..server::Config::default()
            };
            let running = server::spawn(listener, config)
                .await
                .map_err(|e| StartError::Server(e.into()))?;
            let (addr, url) = (running.addr(), running.url());
            Ok(LocalServer::new(addr, url, move || {
                running.shutdown().boxed()
            }))
        }
        .boxed()
    }
}
/// `rtm-tui [--app-id A --user U ...]`: the interactive client.
pub(crate) async fn chat(chat: ChatArgs) -> anyhow::Result<ExitCode> {
    let options = rtm::tui::Options {
        app_id: chat.app_id,
        user: chat.user,
        token: chat.token,
        token_cmd: chat.token_cmd,
        servers: chat.server,
        config: chat.config,
        startup_commands: Vec::new(),
    };
    rtm::tui::run(options, Some(Arc::new(ReferenceServer))).await?;
    Ok(ExitCode::SUCCESS)
}

/// `rtm-tui demo`: embedded server, simulated users, and the client logged in as you.
pub(crate) async fn demo(args: DemoArgs, chat: ChatArgs) -> anyhow::Result<ExitCode> {
    // `rtm-tui --user bob demo` means the same as `rtm-tui demo --user bob`.
    let user = chat.user.unwrap_or(args.user);
    rtm::tui::demo::run(user, chat.config, &ReferenceServer).await?;
    Ok(ExitCode::SUCCESS)
}

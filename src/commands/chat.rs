//! The chat client (no subcommand) and `demo`: the TUI, with the embedded server by default.

use std::process::ExitCode;

use crate::cli::{ChatArgs, DemoArgs};

/// `rtm-tui [--app-id A --user U ...]`: the interactive client.
pub async fn chat(chat: ChatArgs) -> anyhow::Result<ExitCode> {
    let options = rtm::tui::Options {
        app_id: chat.app_id,
        user: chat.user,
        token: chat.token,
        token_cmd: chat.token_cmd,
        servers: chat.server,
        config: chat.config,
        startup_commands: Vec::new(),
    };
    rtm::tui::run(options).await?;
    Ok(ExitCode::SUCCESS)
}

/// `rtm-tui demo`: embedded server, simulated users, and the client logged in as you.
pub async fn demo(args: DemoArgs, chat: ChatArgs) -> anyhow::Result<ExitCode> {
    // `rtm-tui --user bob demo` means the same as `rtm-tui demo --user bob`.
    let user = chat.user.unwrap_or(args.user);
    rtm::tui::demo::run(user, chat.config).await?;
    Ok(ExitCode::SUCCESS)
}

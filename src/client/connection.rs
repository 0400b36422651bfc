//! The background task of a client (being built): owns the WebSocket and runs the
//! connection state machine.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::client::Shared;
use super::config::ClientConfig;
use super::error::ClientError;
use super::event::ClientEvent;
use crate::protocol::{LoginResult, Op, Reply};

/// What the [`Client`](super::Client) handle asks of its task.
#[allow(dead_code)] // the fields are read once the task is complete
pub(crate) enum Command {
    Login {
        user: String,
        token: Option<String>,
        reply: oneshot::Sender<Result<LoginResult, ClientError>>,
    },
    Logout {
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    Request {
        op: Op,
        reply: oneshot::Sender<Result<Reply, ClientError>>,
    },
    Release {
        channel: String,
    },
}

/// The task that owns one client's connection.
pub(crate) struct ConnectionHandler {
    commands: mpsc::UnboundedReceiver<Command>,
}

impl ConnectionHandler {
    pub(crate) fn new(
        _config: ClientConfig,
        _shared: Arc<Mutex<Shared>>,
        commands: mpsc::UnboundedReceiver<Command>,
        _events: mpsc::Sender<ClientEvent>,
    ) -> Self {
        ConnectionHandler { commands }
    }

    pub(crate) async fn run(mut self) {
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::Login { reply, .. } => {
                    let _ = reply.send(Err(ClientError::Connect("not implemented yet".into())));
                }
                Command::Logout { reply } => {
                    let _ = reply.send(Err(ClientError::NotLoggedIn));
                }
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(ClientError::NotLoggedIn));
                }
                Command::Release { .. } => {}
            }
        }
    }
}

//! What comes out of a client: [`ClientEvent`]s on the one [`Events`] stream.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::protocol::{ChangeReason, ConnectionState, Event};

/// One thing that happened to a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// Connection state change, Agora's states and reasons; RECONNECTING carries the delay
    /// until the next attempt so the TUI can show a countdown (one such event per attempt).
    StateChanged {
        /// The state now.
        state: ConnectionState,
        /// Why it changed.
        reason: ChangeReason,
        /// While RECONNECTING: how long until the next attempt.
        retry_in: Option<Duration>,
    },
    /// Every server event (messages, members, presence, invitations, kicks, errors).
    /// Channel messages missed during a reconnect are fetched with `history` and delivered
    /// here as ordinary `MessageFromChannel` events, in order.
    Server(Event),
}

impl ClientEvent {
    /// The channel this event belongs to, if any (what a [`Channel`](super::Channel)'s
    /// view filters on).
    pub fn channel(&self) -> Option<&str> {
        match self {
            ClientEvent::Server(event) => event.channel(),
            ClientEvent::StateChanged { .. } => None,
        }
    }
}

/// The one stream of [`ClientEvent`]s of a client, in the order they happened.
///
/// It ends (`recv` gives `None`) when every handle of the client has been dropped. An
/// application that stops reading slows its client down (events wait in the client's
/// task, then the socket is no longer read); it never loses events.
#[derive(Debug)]
pub struct Events {
    pub(crate) receiver: mpsc::Receiver<ClientEvent>,
}

impl Events {
    /// The next event; `None` once the client has shut down.
    ///
    /// ```no_run
    /// # async fn demo(mut events: rtm::client::Events) {
    /// while let Some(event) = events.recv().await {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.receiver.recv().await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        self.receiver.try_recv().ok()
    }
}

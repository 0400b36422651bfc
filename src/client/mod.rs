//! The client library: what the TUI, the QA kit and the demo use to talk to an RTM server.
//!
//! Shape (like async-nats' `Client` and `ConnectionHandler`): a cheap cloneable [`Client`]
//! handle sends `ClientCommand`s with oneshot replies to one background task per client,
//! which owns the WebSocket, matches replies to requests, acknowledges peer messages, pings,
//! and runs the connection state machine of docs/protocol.md (login timeout, reconnect with
//! backoff, rejoin and catch-up, abort on kick).
//! Everything that happens comes out of one [`Events`] stream of [`ClientEvent`]s.
//!
//! - `config.rs`: [`ClientConfig`] (one server, or several to fail over between),
//!   [`ReconnectPolicy`].
//! - `handle.rs`: the [`Client`] handle, one method per op, client-side validation.
//! - `channel.rs`: the [`Channel`] handle (and [`Client::create_channel`], which makes one).
//! - `shared.rs`: what the handle and the background task both read (state, user, server).
//! - `event.rs`: [`ClientEvent`], [`Events`].
//! - `error.rs`: [`ClientError`].
//! - `media/`: files and images: [`Transfer`], [`Client::upload_file`],
//!   [`Client::upload_image`], [`Client::download_media`]; `media/http.rs` their HTTP side.
//! - `tls.rs`: the rustls connector for `wss://` (extra root certificates).
//! - `connection/`: the background task (`mod.rs`: loop, socket, requests; `lifecycle.rs`:
//!   login, loss, reconnect, end; `restore.rs`: what is remembered and restored).
//!
//! ```no_run
//! use rtm::client::{Client, ClientConfig, ClientEvent};
//! use rtm::protocol::{Event, Message};
//! # async fn demo() -> Result<(), rtm::client::ClientError> {
//! let (client, mut events) = Client::new(ClientConfig::new("ws://127.0.0.1:7420/rtm/v1", "demo"))?;
//! client.login(None, "alice").await?;
//! let lobby = client.create_channel("lobby")?;
//! lobby.join().await?;
//! lobby.send_message(Message::text("hello")).await?;
//! while let Some(event) = events.recv().await {
//!     if let ClientEvent::Server(Event::MessageFromChannel { from, message, .. }) = event {
//!         println!("{from}: {}", message.summary());
//!     }
//! }
//! # Ok(()) }
//! ```

// The client library is what applications build on: every public item says what it is.
#![warn(missing_docs)]

mod channel;
mod config;
pub(crate) mod connection;
mod error;
mod event;
mod handle;
mod media;
mod shared;
mod tls;

pub use channel::Channel;
pub use config::{
    server_url, ClientConfig, ReconnectPolicy, DEFAULT_DEAD_TIMEOUT, DEFAULT_EVENT_BUFFER,
    DEFAULT_LOGIN_TIMEOUT, DEFAULT_PING_INTERVAL, DEFAULT_REQUEST_TIMEOUT,
};
pub use error::{ClientError, ConnectError, UnexpectedReply, LOGIN_TIMEOUT_CODE};
pub use event::{ClientEvent, Events};
pub use handle::{new_invitation_id, Client, HistoryTarget, SendOptions};
pub use media::{DownloadTarget, Downloaded, ImageInfo, MediaSource, Progress, Transfer};

// What callers of the client need from the protocol, so `use rtm::client::*` is enough.
pub use crate::protocol::reply::OrderedPeers;
pub use crate::protocol::{
    Attributes, ChangeReason, ChannelAttribute, ConnectionState, Event, HistoryMessage, JoinResult,
    LoginResult, MediaFailure, Message, PeerStatus, PingResult, RenewResult, SendResult,
};

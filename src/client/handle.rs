//! [`Client`]: the cheap, cloneable handle applications call. Each method builds its op,
//! which [`Client::call`] checks against the protocol's rules (`Op::check`, the same
//! rules the server applies), sends as one [`ClientCommand`] to the connection task, and
//! whose reply it awaits on a oneshot channel; it never touches the socket itself.
//!
//! A new op gets a method here ([`Client::call`] with its result type); if the client must
//! remember its effect across a reconnect, teach `connection/restore.rs` too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::{DeserializeOwned, IgnoredAny};
use tokio::sync::{mpsc, oneshot};

use super::config::ClientConfig;
use super::connection::{ClientCommand, ConnectionHandler};
use super::error::{ClientError, ConnectError, UnexpectedReply};
use super::event::Events;
use super::shared::{lock, ClientState};
use crate::protocol::limits::{validate_app_id, validate_channel_id};
use crate::protocol::reply::OrderedPeers;
use crate::protocol::request_rules::check_login;
use crate::protocol::{
    AttributeWrite, Attributes, ChangeReason, ChannelAttribute, ChannelAttributesResult,
    ConnectionState, HistoryMessage, HistoryResult, InvitationAnswer, LoginResult,
    MemberCountResult, Message, Op, OpName, PeersOnlineResult, PingResult, RenewResult, Reply,
    SendResult, SubscribedPeersResult, UserAttributesResult,
};

/// Options of a peer message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Cache the message on the server when the peer is offline (result code 4) rather
    /// than failing with code 3.
    pub offline: bool,
}

/// Whose conversation [`Client::history`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryTarget {
    /// The conversation between the logged-in user and this peer.
    Peer(String),
    /// A channel the logged-in user has joined.
    Channel(String),
}

struct HandleInner {
    commands: mpsc::UnboundedSender<ClientCommand>,
    shared: Arc<Mutex<ClientState>>,
    config: ClientConfig,
    /// The last ticket for files and images, reused while it is young (`client::http`).
    media_ticket: Mutex<Option<CachedTicket>>,
}

/// A client of one RTM app: log in as a user, send peer and channel messages, read
/// presence and attributes. Cheap to clone; all clones share one connection, run by one
/// background task that ends when the last clone (and every [`Channel`](super::Channel)) is dropped.
///
/// Requests made while the connection is RECONNECTING wait for the reconnect (and its
/// rejoin of channels) and are then sent; they fail with [`ClientError::Timeout`] if that
/// takes longer than [`ClientConfig::request_timeout`]. Requests in flight when the
/// connection drops fail with [`ClientError::Disconnected`] (they may or may not have
/// reached the server, so they are not sent twice).
///
/// ```no_run
/// use rtm::client::{Client, ClientConfig, ClientEvent, SendOptions};
/// use rtm::protocol::Message;
/// # async fn demo() -> Result<(), rtm::client::ClientError> {
/// let (client, mut events) = Client::new(ClientConfig::new("ws://127.0.0.1:7420/rtm/v1", "demo"))?;
/// client.login(None, "alice").await?;
/// client.send_message_to_peer("bob", Message::text("hi"), SendOptions::default()).await?;
/// while let Some(event) = events.recv().await {
///     if let ClientEvent::Server(event) = event {
///         println!("{event:?}");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<HandleInner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (state, reason) = self.state();
        f.debug_struct("Client")
            .field("servers", &self.inner.config.servers().collect::<Vec<_>>())
            .field("current_server", &self.current_server())
            .field("app_id", &self.inner.config.app_id)
            .field("user", &self.user())
            .field("state", &state)
            .field("reason", &reason)
            .finish()
    }
}

impl Client {
    /// Creates a client for `config.app_id` and starts its background task (so it needs a
    /// tokio runtime). It starts DISCONNECTED; nothing is sent before [`login`](Self::login).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rtm::client::ClientError> {
    /// use rtm::client::{Client, ClientConfig};
    /// let (client, events) = Client::new(ClientConfig::new("ws://127.0.0.1:7420/rtm/v1", "demo"))?;
    /// # Ok(()) }
    /// ```
    pub fn new(config: ClientConfig) -> Result<(Client, Events), ClientError> {
        validate_app_id(&config.app_id)?;
        // Say now, not at the first login, when a URL cannot work.
        for url in config.servers() {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return Err(ClientError::Connect(ConnectError::NotWebSocket {
                    url: url.to_string(),
                }));
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        let shared = Arc::new(Mutex::new(ClientState::new()));
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let (event_sender, event_receiver) = mpsc::channel(config.event_buffer.max(1));
        let handler = ConnectionHandler::new(
            config.clone(),
            Arc::clone(&shared),
            command_receiver,
            event_sender,
        );
        runtime.spawn(handler.run());
        let client = Client {
            inner: Arc::new(HandleInner {
                commands,
                shared,
                config,
                media_ticket: Mutex::default(),
            }),
        };
        Ok((
            client,
            Events {
                receiver: event_receiver,
            },
        ))
    }

    /// The configuration this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The cached ticket for files and images (`client::http`).
    pub(crate) fn media_ticket(&self) -> MutexGuard<'_, Option<CachedTicket>> {
        self.inner
            .media_ticket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Logs in as `user` (with a token where the app has a certificate). Goes CONNECTING,
    /// then CONNECTED (LOGIN_SUCCESS) on code 0, or DISCONNECTED with LOGIN_FAILURE (a
    /// non-zero code, or no connection) or LOGIN_TIMEOUT (no reply within
    /// [`ClientConfig::login_timeout`]). Peer messages cached for the user arrive as events
    /// right after.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let result = client.login(None, "alice").await?;
    /// println!("logged in to {} as {}", result.server, result.user);
    /// # Ok(()) }
    /// ```
    pub async fn login(&self, token: Option<&str>, user: &str) -> Result<LoginResult, ClientError> {
        check_login(&self.inner.config.app_id, user).map_err(|r| ClientError::Invalid(r.error))?;
        let (reply, answer) = oneshot::channel();
        self.send(ClientCommand::Login {
            user: user.to_string(),
            token: token.map(str::to_string),
            reply,
        })?;
        answer.await.map_err(|_| ClientError::Closed)?
    }

    /// Logs out: the server leaves all channels, clears the user's attributes and presence
    /// subscriptions; the state becomes DISCONNECTED (LOGOUT). Also stops a reconnect.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// client.logout().await?;
    /// # Ok(()) }
    /// ```
    pub async fn logout(&self) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.send(ClientCommand::Logout { reply })?;
        answer.await.map_err(|_| ClientError::Closed)?
    }

    /// Replaces the login token (before it expires; see `token_privilege_will_expire`).
    /// The new token is also the one used to log in again after a reconnect.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client, fresh_token: &str) -> Result<(), rtm::client::ClientError> {
    /// let renewed = client.renew_token(fresh_token).await?;
    /// println!("now valid until {:?}", renewed.token_expires_at);
    /// # Ok(()) }
    /// ```
    pub async fn renew_token(&self, token: &str) -> Result<RenewResult, ClientError> {
        self.call(Op::RenewToken {
            token: token.to_string(),
        })
        .await
    }

    /// Asks the server for its time; the round trip shows the latency.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let started = std::time::Instant::now();
    /// let pong = client.ping().await?;
    /// println!("server time {} after {:?}", pong.server_ts, started.elapsed());
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<PingResult, ClientError> {
        self.call(Op::Ping).await
    }

    /// Sends `message` to `peer`. `Ok` means the peer's client received it (code 0); an
    /// error with code 4 means it was cached for offline delivery, 3 that the peer is
    /// unreachable, 2 that the peer did not acknowledge in time.
    ///
    /// The message is queued for sending when this is called, not when the future is
    /// first polled: sends called one after the other leave in that order, even when each
    /// future is awaited in a task of its own.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) {
    /// use rtm::client::SendOptions;
    /// use rtm::protocol::Message;
    /// match client.send_message_to_peer("bob", Message::text("hi"), SendOptions { offline: true }).await {
    ///     Ok(sent) => println!("delivered as #{}", sent.message_id),
    ///     Err(e) if e.code() == Some(4) => println!("bob is offline; cached"),
    ///     Err(e) => println!("failed: {e}"),
    /// }
    /// # }
    /// ```
    pub fn send_message_to_peer(
        &self,
        peer: &str,
        message: Message,
        options: SendOptions,
    ) -> impl std::future::Future<Output = Result<SendResult, ClientError>> + Send + 'static {
        self.call(Op::SendPeer {
            to: peer.to_string(),
            message,
            offline: options.offline,
        })
    }

    /// Whether each of `peers` (1..256) is online, in the order asked.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let peers = client.query_peers_online_status(&["bob".to_string()]).await?;
    /// println!("bob is {:?}", peers.get("bob"));
    /// # Ok(()) }
    /// ```
    pub async fn query_peers_online_status(
        &self,
        peers: &[String],
    ) -> Result<OrderedPeers, ClientError> {
        let result: PeersOnlineResult = self
            .call(Op::QueryPeersOnline {
                peers: peers.to_vec(),
            })
            .await?;
        Ok(result.peers)
    }

    /// Subscribes to the online status of `peers`: a `peers_online_status` event with their
    /// current states follows, then one per change. Kept across reconnects, ended by logout.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// client.subscribe_peers_online_status(&["bob".to_string()]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_peers_online_status(&self, peers: &[String]) -> Result<(), ClientError> {
        self.call_unit(Op::SubscribePeersOnline {
            peers: peers.to_vec(),
        })
        .await
    }

    /// Ends the subscription to the online status of `peers`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// client.unsubscribe_peers_online_status(&["bob".to_string()]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn unsubscribe_peers_online_status(
        &self,
        peers: &[String],
    ) -> Result<(), ClientError> {
        self.call_unit(Op::UnsubscribePeersOnline {
            peers: peers.to_vec(),
        })
        .await
    }

    /// The peers whose online status this user is subscribed to.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// for peer in client.query_subscribed_peers().await? {
    ///     println!("watching {peer}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn query_subscribed_peers(&self) -> Result<Vec<String>, ClientError> {
        let result: SubscribedPeersResult = self.call(Op::QuerySubscribedPeers).await?;
        Ok(result.peers)
    }

    /// Writes this user's own attributes: any [`AttributeWrite`]. The four methods below
    /// are Agora's names for each kind of write.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// use rtm::protocol::AttributeWrite;
    /// client.write_local_user_attributes(AttributeWrite::Delete(vec!["mood".into()])).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_local_user_attributes(
        &self,
        write: AttributeWrite,
    ) -> Result<(), ClientError> {
        self.call_unit(write.user_op()).await
    }

    /// Writes the attributes of `channel` (no need to be a member): any
    /// [`AttributeWrite`]; with `notify`, its members get `channel_attributes_updated`.
    /// The four `*_channel_attributes*` methods are Agora's names for each kind of write.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// use rtm::protocol::AttributeWrite;
    /// client.write_channel_attributes("lobby", AttributeWrite::Clear, true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_channel_attributes(
        &self,
        channel: &str,
        write: AttributeWrite,
        notify: bool,
    ) -> Result<(), ClientError> {
        self.call_unit(write.channel_op(channel.to_string(), notify))
            .await
    }

    /// Replaces all of this user's attributes with `attrs`. Re-sent after a reconnect.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let attrs = [("mood".to_string(), "busy".to_string())].into_iter().collect();
    /// client.set_local_user_attributes(&attrs).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_local_user_attributes(&self, attrs: &Attributes) -> Result<(), ClientError> {
        self.write_local_user_attributes(AttributeWrite::Set(attrs.clone()))
            .await
    }

    /// Adds `attrs` to this user's attributes, replacing the values of existing keys.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let attrs = [("status".to_string(), "lunch".to_string())].into_iter().collect();
    /// client.add_or_update_local_user_attributes(&attrs).await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_or_update_local_user_attributes(
        &self,
        attrs: &Attributes,
    ) -> Result<(), ClientError> {
        self.write_local_user_attributes(AttributeWrite::AddOrUpdate(attrs.clone()))
            .await
    }

    /// Deletes the attributes of this user with these keys (missing keys are fine).
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// client.delete_local_user_attributes_by_keys(&["mood".to_string()]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_local_user_attributes_by_keys(
        &self,
        keys: &[String],
    ) -> Result<(), ClientError> {
        self.write_local_user_attributes(AttributeWrite::Delete(keys.to_vec()))
            .await
    }

    /// Deletes all attributes of this user.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// client.clear_local_user_attributes().await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear_local_user_attributes(&self) -> Result<(), ClientError> {
        self.write_local_user_attributes(AttributeWrite::Clear)
            .await
    }

    /// The attributes of an online `user`: all of them, or only those with `keys`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let attrs = client.get_user_attributes("bob", None).await?;
    /// println!("bob's mood: {:?}", attrs.get("mood"));
    /// # Ok(()) }
    /// ```
    pub async fn get_user_attributes(
        &self,
        user: &str,
        keys: Option<&[String]>,
    ) -> Result<Attributes, ClientError> {
        let result: UserAttributesResult = self
            .call(Op::GetUserAttributes {
                user: user.to_string(),
                keys: keys.map(<[String]>::to_vec),
            })
            .await?;
        Ok(result.attributes)
    }

    /// The member count of each of `channels` (1..32); a channel nobody is in counts 0.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let counts = client.get_channel_member_count(&["lobby".to_string()]).await?;
    /// println!("{} in the lobby", counts["lobby"]);
    /// # Ok(()) }
    /// ```
    pub async fn get_channel_member_count(
        &self,
        channels: &[String],
    ) -> Result<BTreeMap<String, u64>, ClientError> {
        let result: MemberCountResult = self
            .call(Op::GetChannelMemberCount {
                channels: channels.to_vec(),
            })
            .await?;
        Ok(result.counts)
    }

    /// Replaces all attributes of `channel` (no need to be a member); with `notify`, its
    /// members get `channel_attributes_updated`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let attrs = [("topic".to_string(), "release day".to_string())].into_iter().collect();
    /// client.set_channel_attributes("lobby", &attrs, true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_channel_attributes(
        &self,
        channel: &str,
        attrs: &Attributes,
        notify: bool,
    ) -> Result<(), ClientError> {
        let write = AttributeWrite::Set(attrs.clone());
        self.write_channel_attributes(channel, write, notify).await
    }

    /// Adds `attrs` to the attributes of `channel`, replacing the values of existing keys.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let attrs = [("topic".to_string(), "rust".to_string())].into_iter().collect();
    /// client.add_or_update_channel_attributes("lobby", &attrs, false).await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_or_update_channel_attributes(
        &self,
        channel: &str,
        attrs: &Attributes,
        notify: bool,
    ) -> Result<(), ClientError> {
        let write = AttributeWrite::AddOrUpdate(attrs.clone());
        self.write_channel_attributes(channel, write, notify).await
    }

    /// Deletes the attributes of `channel` with these keys.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// client.delete_channel_attributes_by_keys("lobby", &["topic".to_string()], true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_channel_attributes_by_keys(
        &self,
        channel: &str,
        keys: &[String],
        notify: bool,
    ) -> Result<(), ClientError> {
        let write = AttributeWrite::Delete(keys.to_vec());
        self.write_channel_attributes(channel, write, notify).await
    }

    /// Deletes all attributes of `channel`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// client.clear_channel_attributes("lobby", true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear_channel_attributes(
        &self,
        channel: &str,
        notify: bool,
    ) -> Result<(), ClientError> {
        self.write_channel_attributes(channel, AttributeWrite::Clear, notify)
            .await
    }

    /// The attributes of `channel` with who set them and when: all, or those with `keys`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// for attr in client.get_channel_attributes("lobby", None).await? {
    ///     println!("{} = {} (by {})", attr.key, attr.value, attr.updated_by);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_channel_attributes(
        &self,
        channel: &str,
        keys: Option<&[String]>,
    ) -> Result<Vec<ChannelAttribute>, ClientError> {
        let result: ChannelAttributesResult = self
            .call(Op::GetChannelAttributes {
                channel: channel.to_string(),
                keys: keys.map(<[String]>::to_vec),
            })
            .await?;
        Ok(result.attributes)
    }

    /// Invites `callee` to a call. `Ok` means the invitation reached the callee's client;
    /// the answer comes later as `invitation_accepted` / `invitation_refused` /
    /// `invitation_failure` (reason 3 after 60 s). Use [`new_invitation_id`] for the id.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let id = rtm::client::new_invitation_id();
    /// client.send_invitation(&id, "bob", "call me", Some("room-1")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_invitation(
        &self,
        invitation_id: &str,
        callee: &str,
        content: &str,
        channel: Option<&str>,
    ) -> Result<(), ClientError> {
        self.call_unit(Op::Invite {
            invitation_id: invitation_id.to_string(),
            callee: callee.to_string(),
            content: content.to_string(),
            channel: channel.map(str::to_string),
        })
        .await
    }

    /// Cancels an invitation this user sent; the callee gets `invitation_canceled`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client, id: &str) -> Result<(), rtm::client::ClientError> {
    /// client.cancel_invitation(id, "bob").await?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel_invitation(
        &self,
        invitation_id: &str,
        callee: &str,
    ) -> Result<(), ClientError> {
        self.call_unit(Op::CancelInvitation {
            invitation_id: invitation_id.to_string(),
            callee: callee.to_string(),
        })
        .await
    }

    /// Answers an invitation received from `caller` (accept or refuse), with an optional
    /// `response`; [`accept_invitation`](Self::accept_invitation) and
    /// [`refuse_invitation`](Self::refuse_invitation) are Agora's names for each.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client, id: &str) -> Result<(), rtm::client::ClientError> {
    /// use rtm::protocol::InvitationAnswer;
    /// client.answer_invitation(InvitationAnswer::Refuse, id, "alice", "busy").await?;
    /// # Ok(()) }
    /// ```
    pub async fn answer_invitation(
        &self,
        answer: InvitationAnswer,
        invitation_id: &str,
        caller: &str,
        response: &str,
    ) -> Result<(), ClientError> {
        let op = answer.op(
            invitation_id.to_string(),
            caller.to_string(),
            response.to_string(),
        );
        self.call_unit(op).await
    }

    /// Accepts an invitation received from `caller`, with an optional `response`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client, id: &str) -> Result<(), rtm::client::ClientError> {
    /// client.accept_invitation(id, "alice", "on my way").await?;
    /// # Ok(()) }
    /// ```
    pub async fn accept_invitation(
        &self,
        invitation_id: &str,
        caller: &str,
        response: &str,
    ) -> Result<(), ClientError> {
        let answer = InvitationAnswer::Accept;
        self.answer_invitation(answer, invitation_id, caller, response)
            .await
    }

    /// Refuses an invitation received from `caller`, with an optional `response`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client, id: &str) -> Result<(), rtm::client::ClientError> {
    /// client.refuse_invitation(id, "alice", "busy").await?;
    /// # Ok(()) }
    /// ```
    pub async fn refuse_invitation(
        &self,
        invitation_id: &str,
        caller: &str,
        response: &str,
    ) -> Result<(), ClientError> {
        let answer = InvitationAnswer::Refuse;
        self.answer_invitation(answer, invitation_id, caller, response)
            .await
    }

    /// Stored messages of a peer conversation or a joined channel, oldest first: the newest
    /// `limit` (1..100) before `before` (or overall), or the oldest `limit` after `after`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// use rtm::client::HistoryTarget;
    /// let last = client.history(HistoryTarget::Channel("lobby".into()), None, None, 50).await?;
    /// for message in last {
    ///     println!("{}: {}", message.from, message.message.summary());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn history(
        &self,
        target: HistoryTarget,
        before: Option<u64>,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<HistoryMessage>, ClientError> {
        let (peer, channel) = match target {
            HistoryTarget::Peer(peer) => (Some(peer), None),
            HistoryTarget::Channel(channel) => (None, Some(channel)),
        };
        let result: HistoryResult = self
            .call(Op::History {
                peer,
                channel,
                before,
                after,
                limit: Some(limit),
            })
            .await?;
        Ok(result.messages)
    }

    /// Claims channel `id` for a new [`Channel`] handle (`channel.rs`): refused for an
    /// invalid id, or one created and not released.
    pub(super) fn claim_channel(&self, id: &str) -> Result<(), ClientError> {
        validate_channel_id(id)?;
        if !lock(&self.inner.shared)
            .created_channels
            .insert(id.to_string())
        {
            return Err(ClientError::ChannelExists(id.to_string()));
        }
        Ok(())
    }

    /// The connection state and the reason of its last change.
    ///
    /// ```no_run
    /// # fn demo(client: rtm::client::Client) {
    /// let (state, reason) = client.state();
    /// println!("{} ({})", state.label(), reason.label());
    /// # }
    /// ```
    pub fn state(&self) -> (ConnectionState, ChangeReason) {
        let shared = lock(&self.inner.shared);
        (shared.state, shared.reason)
    }

    /// The user logged in (also while RECONNECTING), or `None`.
    ///
    /// ```no_run
    /// # fn demo(client: rtm::client::Client) {
    /// println!("{}", client.user().unwrap_or_else(|| "(nobody)".into()));
    /// # }
    /// ```
    pub fn user(&self) -> Option<String> {
        lock(&self.inner.shared).user.clone()
    }

    /// The URL of the server this client is logged in on, one of
    /// [`ClientConfig::servers`]: set when that server accepts the login, so it names the
    /// server of every CONNECTED state (after a failover, the new one); `None` while no
    /// logged-in connection exists (DISCONNECTED, CONNECTING, RECONNECTING).
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client, mut events: rtm::client::Events) {
    /// use rtm::client::{ClientEvent, ConnectionState};
    /// while let Some(event) = events.recv().await {
    ///     if let ClientEvent::StateChanged { state: ConnectionState::Connected, .. } = event {
    ///         println!("on {}", client.current_server().unwrap_or_default());
    ///     }
    /// }
    /// # }
    /// ```
    pub fn current_server(&self) -> Option<String> {
        lock(&self.inner.shared).server.clone()
    }

    /// Escape hatch for QA: sends any op as it is and returns the raw reply, whatever its
    /// code (no local validation). Needs a logged-in client like every other request; the
    /// client still tracks joins, leaves, subscriptions and attributes sent this way.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// use rtm::protocol::Op;
    /// let reply = client.request(Op::Join { channel: "null".into() }).await?;
    /// assert_eq!(reply.code, 3);
    /// # Ok(()) }
    /// ```
    pub fn request(
        &self,
        op: Op,
    ) -> impl std::future::Future<Output = Result<Reply, ClientError>> + Send + 'static {
        // Queued now, so that requests leave in the order they were made.
        let (reply, answer) = oneshot::channel();
        let queued = self.send(ClientCommand::Request { op, reply });
        async move {
            queued?;
            answer.await.map_err(|_| ClientError::Closed)?
        }
    }

    /// Checks `op` against the protocol's rules ([`ClientError::Invalid`] if it breaks
    /// one), sends it (queued at once) and reads a code-0 reply into `T`; a non-zero code
    /// becomes [`ClientError::Code`] of the op's family.
    pub(crate) fn call<T: DeserializeOwned>(
        &self,
        op: Op,
    ) -> impl std::future::Future<Output = Result<T, ClientError>> + Send + 'static {
        let family = op.family();
        let name = OpName::from(&op).as_str();
        let reply = op
            .check()
            .map(|()| self.request(op))
            .map_err(|refusal| ClientError::Invalid(refusal.error));
        async move {
            let reply = reply?.await?;
            if reply.code != 0 {
                return Err(ClientError::from_code(family, reply.code, reply.reason));
            }
            reply.result().map_err(|e| {
                ClientError::Protocol(UnexpectedReply {
                    op: name,
                    problem: e.to_string(),
                })
            })
        }
    }

    /// While RECONNECTING: try to reconnect now rather than at the end of the backoff
    /// delay (a user who knows the server is back). Does nothing in any other state.
    ///
    /// ```no_run
    /// # fn demo(client: rtm::client::Client) {
    /// client.reconnect_now();
    /// # }
    /// ```
    pub fn reconnect_now(&self) {
        let _ = self.send(ClientCommand::ReconnectNow);
    }

    /// [`call`](Self::call) for ops whose success carries no result.
    pub(crate) async fn call_unit(&self, op: Op) -> Result<(), ClientError> {
        self.call::<IgnoredAny>(op).await.map(|_| ())
    }

    /// Forgets a created channel (and leaves it if joined); see [`Channel::release`].
    pub(crate) fn release_channel(&self, id: &str) {
        lock(&self.inner.shared).created_channels.remove(id);
        // If the task is gone there is nothing left to leave.
        let _ = self.inner.commands.send(ClientCommand::Release {
            channel: id.to_string(),
        });
    }

    fn send(&self, command: ClientCommand) -> Result<(), ClientError> {
        self.inner
            .commands
            .send(command)
            .map_err(|_| ClientError::Closed)
    }
}

/// A fresh random invitation id (32 hex digits), unique enough for [`Client::send_invitation`].
///
/// ```
/// let id = rtm::client::new_invitation_id();
/// assert_eq!(id.len(), 32);
/// ```
pub fn new_invitation_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A ticket kept for the transfers that follow, on the server that gave it.
#[derive(Debug, Clone)]
pub(crate) struct CachedTicket {
    pub(crate) ticket: String,
    pub(crate) server: String,
    /// Until when it is used: half its life, so a transfer never begins on an old one.
    pub(crate) fresh_until: std::time::Instant,
}

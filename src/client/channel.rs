//! [`Channel`]: a handle on one channel created by [`Client::create_channel`], in the
//! shape of Agora's `RtmChannel` (join, leave, send, members, release).

use std::sync::Arc;

use super::error::ClientError;
use super::event::ClientEvent;
use super::handle::Client;
use crate::protocol::{JoinResult, MembersResult, Message, Op, SendResult};

/// One channel of a [`Client`]. Cheap to clone. Its events (messages, members joining and
/// leaving, counts, attributes) come on the client's one [`Events`](super::Events) stream;
/// [`Channel::owns`] tells which are its own. While the channel is joined the client
/// rejoins it after a reconnect and catches up on missed messages.
#[derive(Clone, Debug)]
pub struct Channel {
    client: Client,
    id: Arc<str>,
}

impl Client {
    /// A handle on channel `id`, to join, send and leave. Refused for an invalid id, or for
    /// a channel this client created and has not [`released`](Channel::release). Needs no
    /// login; joining does.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let lobby = client.create_channel("lobby")?;
    /// lobby.join().await?;
    /// # Ok(()) }
    /// ```
    pub fn create_channel(&self, id: &str) -> Result<Channel, ClientError> {
        self.claim_channel(id)?;
        Ok(Channel::new(self.clone(), id))
    }
}

impl Channel {
    fn new(client: Client, id: &str) -> Self {
        Channel {
            client,
            id: Arc::from(id),
        }
    }

    /// The channel id.
    ///
    /// ```no_run
    /// # fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let lobby = client.create_channel("lobby")?;
    /// assert_eq!(lobby.id(), "lobby");
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether `event` belongs to this channel.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client, mut events: rtm::client::Events) -> Result<(), rtm::client::ClientError> {
    /// let lobby = client.create_channel("lobby")?;
    /// while let Some(event) = events.recv().await {
    ///     if lobby.owns(&event) {
    ///         println!("lobby: {event:?}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn owns(&self, event: &ClientEvent) -> bool {
        event.channel() == Some(self.id())
    }

    /// Joins the channel; the result carries its member count. Others get `member_joined`.
    /// Before answering, the client also asks for the channel's newest message id (a
    /// `history` of one), so that after a reconnect it catches up exactly from there.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm::client::Client) -> Result<(), rtm::client::ClientError> {
    /// let lobby = client.create_channel("lobby")?;
    /// let joined = lobby.join().await?;
    /// println!("{} members", joined.member_count);
    /// # Ok(()) }
    /// ```
    pub async fn join(&self) -> Result<JoinResult, ClientError> {
        self.client
            .call(Op::Join {
                channel: self.id.to_string(),
            })
            .await
    }

    /// Leaves the channel. Others get `member_left`.
    ///
    /// ```no_run
    /// # async fn demo(lobby: rtm::client::Channel) -> Result<(), rtm::client::ClientError> {
    /// lobby.leave().await?;
    /// # Ok(()) }
    /// ```
    pub async fn leave(&self) -> Result<(), ClientError> {
        self.client
            .call_unit(Op::Leave {
                channel: self.id.to_string(),
            })
            .await
    }

    /// Sends `message` to the other members (not back to this client). `Ok` means the
    /// server received it. Queued when called, like
    /// [`Client::send_message_to_peer`](super::Client::send_message_to_peer): sends leave
    /// in the order they were made.
    ///
    /// ```no_run
    /// # async fn demo(lobby: rtm::client::Channel) -> Result<(), rtm::client::ClientError> {
    /// use rtm::protocol::Message;
    /// let sent = lobby.send_message(Message::text("hello, lobby")).await?;
    /// println!("message #{}", sent.message_id);
    /// # Ok(()) }
    /// ```
    pub fn send_message(
        &self,
        message: Message,
    ) -> impl std::future::Future<Output = Result<SendResult, ClientError>> + Send + 'static {
        self.client.call(Op::SendChannel {
            channel: self.id.to_string(),
            message,
        })
    }

    /// The members of the channel (at most 512 listed).
    ///
    /// ```no_run
    /// # async fn demo(lobby: rtm::client::Channel) -> Result<(), rtm::client::ClientError> {
    /// for member in lobby.get_members().await? {
    ///     println!("{member}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_members(&self) -> Result<Vec<String>, ClientError> {
        let result: MembersResult = self
            .client
            .call(Op::GetMembers {
                channel: self.id.to_string(),
            })
            .await?;
        Ok(result.members)
    }

    /// Destroys the handle: the client forgets the channel (leaving it first if joined, in
    /// the background), and [`Client::create_channel`] may create it again.
    ///
    /// ```no_run
    /// # fn demo(lobby: rtm::client::Channel) {
    /// lobby.release();
    /// # }
    /// ```
    pub fn release(self) {
        self.client.release_channel(&self.id);
    }
}

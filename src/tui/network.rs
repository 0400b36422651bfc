//! The client session the event loop talks through (a [`Client`] and the channel handles
//! it created), and how each network [`Job`] is made with it: one spawned task per
//! request, each answering with [`Action::Done`] and the request's id on the loop's
//! channel, so the loop never waits on the network. Sends are queued with the client
//! before their task is spawned, so they leave in the order typed (the client library
//! queues a send when it is called).

use std::collections::HashMap;

use tokio::sync::mpsc::UnboundedSender;

use crate::client::{Channel, Client, ClientError, HistoryTarget, SendOptions};
use crate::protocol::AttributeWrite;

use super::action::{answer, Action};
use super::job::{failure, Failure, InviteJob, Job, JobId, JobOutput, QueryJob};
use super::tab::HISTORY_PAGE;
use super::target::Target;
use super::transfer_tasks::TransferTasks;

/// Awaits `request` in a task and answers `id` with what `reply` makes of its result.
fn spawn_answer<T, Fut>(
    tx: &UnboundedSender<Action>,
    id: JobId,
    request: Fut,
    reply: impl FnOnce(T) -> JobOutput + Send + 'static,
) where
    Fut: std::future::Future<Output = Result<T, Failure>> + Send + 'static,
    T: Send + 'static,
{
    let tx = tx.clone();
    tokio::spawn(async move { answer(&tx, id, request.await.map(reply)) });
}

/// A logged-in (or logging-in) client and the channel handles it created.
pub struct Network {
    pub client: Client,
    pub server: String,
    pub app_id: String,
    /// `--token-cmd`: prints a fresh token when the server warns of expiry.
    pub token_cmd: Option<String>,
    channels: HashMap<String, Channel>,
    /// Uploads and downloads under way.
    transfers: TransferTasks,
}

impl Network {
    pub fn new(client: Client, server: String, app_id: String) -> Network {
        Network {
            client,
            server,
            app_id,
            token_cmd: None,
            channels: HashMap::new(),
            transfers: TransferTasks::default(),
        }
    }

    /// Esc: cancels the upload or download of request `id`.
    pub fn cancel_transfer(&mut self, id: JobId) {
        self.transfers.cancel(id);
    }

    fn channel(&mut self, id: &str) -> Result<Channel, Failure> {
        if let Some(channel) = self.channels.get(id) {
            return Ok(channel.clone());
        }
        let channel = self.client.create_channel(id).map_err(|e| failure(&e))?;
        self.channels.insert(id.to_string(), channel.clone());
        Ok(channel)
    }

    /// Makes the request of `call` on the channel's handle now (so it is queued in order),
    /// and answers `id` from a task.
    fn channel_call<T, Fut>(
        &mut self,
        channel: &str,
        tx: &UnboundedSender<Action>,
        id: JobId,
        call: impl FnOnce(Channel) -> Fut,
        reply: impl FnOnce(T) -> JobOutput + Send + 'static,
    ) where
        Fut: std::future::Future<Output = Result<T, ClientError>> + Send + 'static,
        T: Send + 'static,
    {
        match self.channel(channel) {
            Ok(handle) => {
                let request = call(handle);
                spawn_answer(
                    tx,
                    id,
                    async move { request.await.map_err(|e| failure(&e)) },
                    reply,
                );
            }
            Err(f) => answer(tx, id, Err(f)),
        }
    }

    /// Starts a network request; its answer arrives on `tx`. (Login is the loop's, which
    /// sets the session up first; then it comes here too.)
    pub fn perform(&mut self, id: JobId, request: Job, tx: &UnboundedSender<Action>) {
        let client = self.client.clone();
        let f = |e: ClientError| failure(&e);
        match request {
            Job::Login { user, token, .. } => spawn_answer(
                tx,
                id,
                async move { client.login(token.as_deref(), &user).await.map_err(f) },
                JobOutput::LoggedIn,
            ),
            Job::RenewToken(Some(token)) => spawn_answer(
                tx,
                id,
                async move {
                    client.renew_token(&token).await.map_err(f)?;
                    Ok("token renewed".to_string())
                },
                JobOutput::Text,
            ),
            Job::RenewToken(None) => {
                let Some(command) = self.token_cmd.clone() else {
                    return answer(
                        tx,
                        id,
                        Err(Failure::new(None, "no --token-cmd to renew the token with")),
                    );
                };
                spawn_answer(
                    tx,
                    id,
                    async move { renew(&client, &command).await },
                    JobOutput::Text,
                );
            }
            Job::Logout => spawn_answer(
                tx,
                id,
                async move {
                    // Out either way: a logout that fails leaves no session to speak of.
                    let _ = client.logout().await;
                    Ok(())
                },
                |()| JobOutput::Done,
            ),
            Job::SendPeer { peer, message } => {
                // Offline delivery on: a peer who is away gets it at next login (mark "cached").
                let options = SendOptions { offline: true };
                let request = client.send_message_to_peer(&peer, message, options);
                spawn_answer(
                    tx,
                    id,
                    async move { request.await.map_err(f) },
                    JobOutput::Sent,
                );
            }
            Job::SendChannel { channel, message } => self.channel_call(
                &channel,
                tx,
                id,
                move |handle| handle.send_message(message),
                JobOutput::Sent,
            ),
            Job::Join(channel) => self.channel_call(
                &channel,
                tx,
                id,
                |handle| async move { handle.join().await.map(|r| r.member_count) },
                JobOutput::Joined,
            ),
            Job::Leave(channel) => self.channel_call(
                &channel,
                tx,
                id,
                |handle| async move { handle.leave().await },
                |()| JobOutput::Done,
            ),
            Job::Members(channel) => self.channel_call(
                &channel,
                tx,
                id,
                |handle| async move { handle.get_members().await },
                JobOutput::Members,
            ),
            Job::History { target, before } => {
                let wire = match target {
                    Target::Peer(p) => HistoryTarget::Peer(p),
                    Target::Channel(c) => HistoryTarget::Channel(c),
                };
                spawn_answer(
                    tx,
                    id,
                    async move {
                        client
                            .history(wire, before, None, HISTORY_PAGE)
                            .await
                            .map_err(f)
                    },
                    JobOutput::History,
                );
            }
            Job::QueryPresence(peers) => spawn_answer(
                tx,
                id,
                async move { client.query_peers_online_status(&peers).await.map_err(f) },
                |peers| JobOutput::Presence(peers.into_iter().collect()),
            ),
            Job::Query(request) => {
                spawn_answer(
                    tx,
                    id,
                    async move { query(&client, request).await },
                    JobOutput::Text,
                );
            }
            Job::ChangeUserAttributes(write) => spawn_answer(
                tx,
                id,
                async move { change_user_attributes(&client, write).await },
                JobOutput::Text,
            ),
            Job::GetUserAttributes(user) => spawn_answer(
                tx,
                id,
                async move { user_attributes(&client, &user).await },
                JobOutput::Text,
            ),
            Job::ChangeChannelAttributes { channel, write } => spawn_answer(
                tx,
                id,
                async move {
                    client
                        .write_channel_attributes(&channel, write, true)
                        .await
                        .map_err(f)
                },
                |()| JobOutput::Done,
            ),
            Job::GetChannelAttributes(channel) => spawn_answer(
                tx,
                id,
                async move {
                    client
                        .get_channel_attributes(&channel, None)
                        .await
                        .map_err(f)
                },
                JobOutput::ChannelAttributes,
            ),
            Job::Invite(request) => {
                spawn_answer(
                    tx,
                    id,
                    async move { invite(&client, request).await },
                    JobOutput::Text,
                );
            }
            Job::UploadFile(path) => self.transfers.upload_file(&client, id, &path, tx),
            Job::UploadImage(path) => self.transfers.upload_image(&client, id, &path, tx),
            Job::Download {
                media_id,
                name,
                path,
            } => self
                .transfers
                .download(&client, id, (media_id, name, path), tx),
            Job::SaveFile { .. } | Job::ReadRawFile(_) | Job::LoadTabs { .. } | Job::Editor(_) => {
                tracing::error!("not a network request: {request:?}");
                answer(tx, id, Err(Failure::new(None, "not a network request")));
            }
        }
    }

    /// Follows (or stops following) peers' presence; nobody waits for the answer.
    pub fn follow_presence(&self, peers: Vec<String>, follow: bool) {
        let client = self.client.clone();
        tokio::spawn(async move {
            let result = if follow {
                client.subscribe_peers_online_status(&peers).await
            } else {
                client.unsubscribe_peers_online_status(&peers).await
            };
            if let Err(e) = result {
                tracing::warn!("(un)subscribe {peers:?}: {e}");
            }
        });
    }
}

/// Runs the token command and renews the session's token with what it prints.
async fn renew(client: &Client, command: &str) -> Result<String, Failure> {
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Failure::new(None, format!("--token-cmd: {e}")))?;
    if !output.status.success() {
        return Err(Failure::new(
            None,
            format!("--token-cmd exited with {}", output.status),
        ));
    }
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    client.renew_token(&token).await.map_err(|e| failure(&e))?;
    Ok("token renewed".into())
}

async fn query(client: &Client, request: QueryJob) -> Result<String, Failure> {
    let f = |e: ClientError| failure(&e);
    match request {
        QueryJob::Subscribed => {
            let peers = client.query_subscribed_peers().await.map_err(f)?;
            Ok(if peers.is_empty() {
                "you follow nobody's presence (open a peer tab to follow it)".into()
            } else {
                format!("you follow the presence of: {}", peers.join(", "))
            })
        }
        QueryJob::MemberCount(channels) => {
            let counts = client
                .get_channel_member_count(&channels)
                .await
                .map_err(f)?;
            let list: Vec<String> = channels
                .iter()
                .map(|c| format!("#{c}: {}", counts.get(c).copied().unwrap_or(0)))
                .collect();
            Ok(format!("members: {}", list.join(", ")))
        }
        QueryJob::Ping => {
            let started = std::time::Instant::now();
            client.ping().await.map_err(f)?;
            Ok(format!(
                "pong from the server in {:.1} ms",
                started.elapsed().as_secs_f64() * 1e3
            ))
        }
    }
}

/// Writes our own attributes; words for what changed.
async fn change_user_attributes(client: &Client, write: AttributeWrite) -> Result<String, Failure> {
    let done = match &write {
        AttributeWrite::Set(attrs) | AttributeWrite::AddOrUpdate(attrs) => {
            let list: Vec<String> = attrs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("your attribute {}", list.join(", "))
        }
        AttributeWrite::Delete(keys) => format!("your attribute {} deleted", keys.join(", ")),
        AttributeWrite::Clear => "your attributes cleared".into(),
    };
    client
        .write_local_user_attributes(write)
        .await
        .map_err(|e| failure(&e))?;
    Ok(done)
}

async fn user_attributes(client: &Client, user: &str) -> Result<String, Failure> {
    let attrs = client
        .get_user_attributes(user, None)
        .await
        .map_err(|e| failure(&e))?;
    if attrs.is_empty() {
        return Ok(format!("{user} has no attributes"));
    }
    let list: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!("{user}: {}", list.join(", ")))
}

async fn invite(client: &Client, request: InviteJob) -> Result<String, Failure> {
    let result = match &request {
        InviteJob::Send {
            id,
            peer,
            channel,
            content,
        } => client
            .send_invitation(id, peer, content, channel.as_deref())
            .await
            .map(|()| format!("{peer} got the call invitation; waiting for an answer")),
        InviteJob::Cancel { id, peer } => client
            .cancel_invitation(id, peer)
            .await
            .map(|()| format!("you canceled the call to {peer}")),
        InviteJob::Answer {
            answer,
            id,
            caller,
            response,
        } => client
            .answer_invitation(*answer, id, caller, response)
            .await
            .map(|()| format!("you {} {caller}'s call", answer.past_tense())),
    };
    result.map_err(|e| failure(&e))
}

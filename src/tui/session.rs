//! The client session the event loop talks through (a [`Client`] and the channel handles
//! it created), and the network [`Effect`]s performed with it: one spawned task per request,
//! each answering with an [`Outcome`] on the loop's channel, so the loop never waits on
//! the network. Sends are queued with the client before their task is spawned, so they
//! leave in the order typed (the client library queues a send when it is called). Also
//! turns [`ClientError`]s into the [`Failure`]s the app shows.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::mpsc::UnboundedSender;

use crate::client::{Channel, Client, ClientError, HistoryTarget, SendOptions};

use super::action::{
    Action, AttrRequest, Effect, Failure, InviteRequest, Outcome, QueryRequest, Target,
};
use super::tab::HISTORY_PAGE;

/// Largest file `/raw` sends: the message limit minus room for the description.
const MAX_RAW_FILE: usize = crate::protocol::limits::MAX_MESSAGE_BYTES - 256;

/// A client error as the app shows it: Agora's words for the code, and the code.
pub fn failure(error: &ClientError) -> Failure {
    match error {
        ClientError::Code { family, code, .. } => Failure::new(Some(*code), family.describe(*code)),
        ClientError::Timeout { .. } => Failure::new(error.code(), "timed out"),
        other => Failure::new(other.code(), other.to_string()),
    }
}

/// A logged-in (or logging-in) client and the channel handles it created.
pub struct Session {
    pub client: Client,
    pub server: String,
    pub app_id: String,
    /// `--token-cmd`: prints a fresh token when the server warns of expiry.
    pub token_cmd: Option<String>,
    channels: HashMap<String, Channel>,
}

impl Session {
    pub fn new(client: Client, server: String, app_id: String) -> Session {
        Session {
            client,
            server,
            app_id,
            token_cmd: None,
            channels: HashMap::new(),
        }
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
    /// and awaits it in a task; `outcome` words the answer.
    fn channel_call<T, Fut>(
        &mut self,
        channel: String,
        tx: &UnboundedSender<Action>,
        call: impl FnOnce(Channel) -> Fut + Send + 'static,
        outcome: impl FnOnce(String, Result<T, Failure>) -> Outcome + Send + 'static,
    ) where
        Fut: std::future::Future<Output = Result<T, ClientError>> + Send + 'static,
        T: Send + 'static,
    {
        let tx = tx.clone();
        match self.channel(&channel) {
            Ok(handle) => {
                let request = call(handle);
                tokio::spawn(async move {
                    let result = request.await.map_err(|e| failure(&e));
                    let _ = tx.send(Action::Done(outcome(channel, result)));
                });
            }
            Err(f) => {
                let _ = tx.send(Action::Done(outcome(channel, Err(f))));
            }
        }
    }

    /// Starts the request for `effect` (a network one); its answer arrives on `tx`.
    pub fn perform(&mut self, effect: Effect, tx: &UnboundedSender<Action>) {
        let client = self.client.clone();
        let loop_tx = tx;
        let tx = tx.clone();
        let done = move |outcome: Outcome| {
            let _ = tx.send(Action::Done(outcome));
        };
        match effect {
            Effect::Login { user, token, .. } => {
                tokio::spawn(async move {
                    let result = client.login(token.as_deref(), &user).await;
                    done(Outcome::Login(result.map_err(|e| failure(&e))));
                });
            }
            Effect::RenewToken => {
                let Some(command) = self.token_cmd.clone() else {
                    return;
                };
                tokio::spawn(async move {
                    let result = renew(&client, &command).await;
                    done(Outcome::Info {
                        target: None,
                        result,
                    });
                });
            }
            Effect::Reconnect => client.reconnect_now(),
            Effect::Logout => {
                tokio::spawn(async move {
                    let _ = client.logout().await;
                    done(Outcome::Logout);
                });
            }
            Effect::SendPeer {
                peer,
                local_id,
                message,
            } => {
                // Offline delivery on: a peer who is away gets it at next login (mark "cached").
                let options = SendOptions { offline: true };
                let request = client.send_message_to_peer(&peer, message, options);
                tokio::spawn(async move {
                    let result = request.await;
                    done(Outcome::PeerSent {
                        peer,
                        local_id,
                        result: result.map_err(|e| failure(&e)),
                    });
                });
            }
            Effect::SendChannel {
                channel,
                local_id,
                message,
            } => self.channel_call(
                channel,
                loop_tx,
                move |handle| handle.send_message(message),
                move |channel, result| Outcome::ChannelSent {
                    channel,
                    local_id,
                    result,
                },
            ),
            Effect::Join(channel) => self.channel_call(
                channel,
                loop_tx,
                |handle| async move { handle.join().await.map(|r| r.member_count) },
                |channel, result| Outcome::Joined { channel, result },
            ),
            Effect::Leave(channel) => self.channel_call(
                channel,
                loop_tx,
                |handle| async move { handle.leave().await },
                |channel, result| Outcome::Left { channel, result },
            ),
            Effect::Members(channel) => self.channel_call(
                channel,
                loop_tx,
                |handle| async move { handle.get_members().await },
                |channel, result| Outcome::Members { channel, result },
            ),
            Effect::History { target, before } => {
                tokio::spawn(async move {
                    let wire = match &target {
                        Target::Peer(p) => HistoryTarget::Peer(p.clone()),
                        Target::Channel(c) => HistoryTarget::Channel(c.clone()),
                    };
                    let result = client.history(wire, before, None, HISTORY_PAGE).await;
                    done(Outcome::History {
                        target,
                        before,
                        result: result.map_err(|e| failure(&e)),
                    });
                });
            }
            Effect::QueryPresence(peers) => {
                tokio::spawn(async move {
                    let result = client.query_peers_online_status(&peers).await;
                    done(Outcome::Presence(
                        result
                            .map(|p| p.into_iter().collect())
                            .map_err(|e| failure(&e)),
                    ));
                });
            }
            Effect::Subscribe(peers) => {
                tokio::spawn(async move {
                    if let Err(e) = client.subscribe_peers_online_status(&peers).await {
                        tracing::warn!("subscribe {peers:?}: {e}");
                    }
                });
            }
            Effect::Unsubscribe(peers) => {
                tokio::spawn(async move {
                    let _ = client.unsubscribe_peers_online_status(&peers).await;
                });
            }
            Effect::Query(request) => {
                tokio::spawn(async move {
                    let result = query(&client, request).await;
                    done(Outcome::Info {
                        target: None,
                        result,
                    });
                });
            }
            Effect::UserAttr(request) => {
                tokio::spawn(async move {
                    let result = user_attr(&client, request).await;
                    done(Outcome::Info {
                        target: None,
                        result,
                    });
                });
            }
            Effect::ChannelAttr { channel, request } => {
                tokio::spawn(async move {
                    let result = channel_attr(&client, &channel, request).await;
                    match &result {
                        Ok(Some(attributes)) => done(Outcome::ChannelAttributes {
                            channel: channel.clone(),
                            result: Ok(attributes.clone()),
                        }),
                        // A change of ours: the server does not tell us, so the header
                        // reads the attributes again (a deleted one must not stay).
                        Ok(None) => done(Outcome::ChannelAttributes {
                            channel: channel.clone(),
                            result: client
                                .get_channel_attributes(&channel, None)
                                .await
                                .map_err(|e| failure(&e)),
                        }),
                        Err(_) => {}
                    }
                    let text = result.map(|attrs| match attrs {
                        Some(list) if list.is_empty() => "no channel attributes".to_string(),
                        Some(list) => list
                            .iter()
                            .map(|a| format!("{}={} (by {})", a.key, a.value, a.updated_by))
                            .collect::<Vec<_>>()
                            .join(", "),
                        None => "channel attributes updated".to_string(),
                    });
                    done(Outcome::Info {
                        target: Some(Target::Channel(channel)),
                        result: text,
                    });
                });
            }
            Effect::LoadChannelAttributes(channel) => {
                tokio::spawn(async move {
                    let result = client.get_channel_attributes(&channel, None).await;
                    done(Outcome::ChannelAttributes {
                        channel,
                        result: result.map_err(|e| failure(&e)),
                    });
                });
            }
            Effect::Invite(request) => {
                tokio::spawn(async move {
                    let (peer, result) = invite(&client, request).await;
                    done(Outcome::Info {
                        target: Some(Target::Peer(peer)),
                        result,
                    });
                });
            }
            Effect::SaveFile { path, data } => {
                tokio::spawn(async move {
                    let result = tokio::fs::write(&path, &data)
                        .await
                        .map(|()| format!("saved {} bytes to {path}", data.len()))
                        .map_err(|e| Failure::new(None, format!("cannot save to {path}: {e}")));
                    done(Outcome::Info {
                        target: None,
                        result,
                    });
                });
            }
            Effect::ReadRawFile { path, target } => {
                tokio::spawn(async move {
                    let name = std::path::Path::new(&path)
                        .file_name()
                        .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
                    let result = match tokio::fs::read(&path).await {
                        Ok(data) if data.len() > MAX_RAW_FILE => Err(Failure::new(
                            None,
                            format!(
                                "{path} is {} bytes; raw messages hold {MAX_RAW_FILE}",
                                data.len()
                            ),
                        )),
                        Ok(data) => Ok(data),
                        Err(e) => Err(Failure::new(None, format!("cannot read {path}: {e}"))),
                    };
                    done(Outcome::RawFile {
                        target,
                        name,
                        result,
                    });
                });
            }
            Effect::Bell
            | Effect::LoadTabs { .. }
            | Effect::SaveTabs { .. }
            | Effect::Repaint
            | Effect::Title(_)
            | Effect::Editor(_)
            | Effect::Quit => {}
        }
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

async fn query(client: &Client, request: QueryRequest) -> Result<String, Failure> {
    let f = |e: ClientError| failure(&e);
    match request {
        QueryRequest::Subscribed => {
            let peers = client.query_subscribed_peers().await.map_err(f)?;
            Ok(if peers.is_empty() {
                "you follow nobody's presence (open a peer tab to follow it)".into()
            } else {
                format!("you follow the presence of: {}", peers.join(", "))
            })
        }
        QueryRequest::MemberCount(channels) => {
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
        QueryRequest::Ping => {
            let started = std::time::Instant::now();
            client.ping().await.map_err(f)?;
            Ok(format!(
                "pong from the server in {:.1} ms",
                started.elapsed().as_secs_f64() * 1e3
            ))
        }
    }
}

async fn user_attr(client: &Client, request: AttrRequest) -> Result<String, Failure> {
    let f = |e: ClientError| failure(&e);
    match request {
        AttrRequest::Set(key, value) => {
            let attrs = BTreeMap::from([(key.clone(), value.clone())]);
            client
                .add_or_update_local_user_attributes(&attrs)
                .await
                .map_err(f)?;
            Ok(format!("your attribute {key} = {value}"))
        }
        AttrRequest::Delete(key) => {
            client
                .delete_local_user_attributes_by_keys(std::slice::from_ref(&key))
                .await
                .map_err(f)?;
            Ok(format!("your attribute {key} deleted"))
        }
        AttrRequest::Clear => {
            client.clear_local_user_attributes().await.map_err(f)?;
            Ok("your attributes cleared".into())
        }
        AttrRequest::Get(user) => {
            let attrs = client.get_user_attributes(&user, None).await.map_err(f)?;
            if attrs.is_empty() {
                return Ok(format!("{user} has no attributes"));
            }
            let list: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Ok(format!("{user}: {}", list.join(", ")))
        }
    }
}

async fn channel_attr(
    client: &Client,
    channel: &str,
    request: AttrRequest,
) -> Result<Option<Vec<crate::protocol::ChannelAttribute>>, Failure> {
    let f = |e: ClientError| failure(&e);
    match request {
        AttrRequest::Set(key, value) => {
            let attrs = BTreeMap::from([(key, value)]);
            client
                .add_or_update_channel_attributes(channel, &attrs, true)
                .await
                .map_err(f)?;
        }
        AttrRequest::Delete(key) => {
            client
                .delete_channel_attributes_by_keys(channel, &[key], true)
                .await
                .map_err(f)?;
        }
        AttrRequest::Clear => client
            .clear_channel_attributes(channel, true)
            .await
            .map_err(f)?,
        AttrRequest::Get(_) => {
            return client
                .get_channel_attributes(channel, None)
                .await
                .map(Some)
                .map_err(f);
        }
    }
    Ok(None)
}

async fn invite(client: &Client, request: InviteRequest) -> (String, Result<String, Failure>) {
    let f = |e: ClientError| failure(&e);
    match request {
        InviteRequest::Send { id, peer, content } => {
            let result = client
                .send_invitation(&id, &peer, &content, None)
                .await
                .map(|()| format!("{peer} got the call invitation; waiting for an answer"))
                .map_err(f);
            (peer, result)
        }
        InviteRequest::Cancel { id, peer } => {
            let result = client
                .cancel_invitation(&id, &peer)
                .await
                .map(|()| format!("you canceled the call to {peer}"))
                .map_err(f);
            (peer, result)
        }
        InviteRequest::Accept {
            id,
            caller,
            response,
        } => {
            let result = client
                .accept_invitation(&id, &caller, &response)
                .await
                .map(|()| format!("you accepted {caller}'s call"))
                .map_err(f);
            (caller, result)
        }
        InviteRequest::Refuse {
            id,
            caller,
            response,
        } => {
            let result = client
                .refuse_invitation(&id, &caller, &response)
                .await
                .map(|()| format!("you refused {caller}'s call"))
                .map_err(f);
            (caller, result)
        }
    }
}

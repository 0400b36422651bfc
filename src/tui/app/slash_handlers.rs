//! What each slash command does (`/join`, `/msg`, ...), as state changes and effects.
//! What a command is (the table, parsing, completion) is `tui/slash_command.rs`.

use crate::protocol::limits::{validate_channel_id, validate_user_id};
use crate::protocol::Message;

use super::super::action::{AttrRequest, Effect, InviteRequest, QueryRequest, Target};
use super::super::login::LoginStatus;
use super::super::slash_command::{SlashCommand, COMMANDS};
use super::super::tab::{Body, EntryKind};
use super::{App, Overlay, Screen};

impl App {
    pub(super) fn run_command(&mut self, command: SlashCommand) {
        let now = self.now_ms;
        match command {
            SlashCommand::Join(channel) => {
                if let Err(e) = validate_channel_id(&channel) {
                    self.active_tab_mut().error(now, format!("/join: {e}"));
                    return;
                }
                let i = self.ensure_tab(&Target::Channel(channel.clone()));
                self.activate(i);
                // Already in: /join just goes to the tab.
                if !self.tabs[i].joined {
                    let tab = &mut self.tabs[i];
                    tab.join_asked_at = Some(tab.entries.len());
                    self.effect(Effect::Join(channel));
                }
            }
            SlashCommand::Leave(channel) => {
                let Some(channel) =
                    channel.or_else(|| self.active_tab().channel().map(str::to_string))
                else {
                    self.active_tab_mut()
                        .error(now, "/leave: this is not a channel tab");
                    return;
                };
                self.effect(Effect::Leave(channel));
            }
            SlashCommand::Msg(peer, _)
            | SlashCommand::Call(peer, _)
            | SlashCommand::Query(peer)
                if validate_user_id(&peer).is_err() =>
            {
                let e = validate_user_id(&peer).unwrap_err();
                self.active_tab_mut().error(now, format!("{e}"));
            }
            SlashCommand::Msg(peer, text) => {
                let target = Target::Peer(peer);
                let i = self.ensure_tab(&target);
                self.activate(i);
                if let Some(text) = text {
                    self.send_to(&target, Message::text(text));
                }
            }
            SlashCommand::ChannelMsg(channel, text) => {
                if let Err(e) = validate_channel_id(&channel) {
                    self.active_tab_mut().error(now, format!("/msg: {e}"));
                    return;
                }
                let target = Target::Channel(channel.clone());
                let Some(i) = self.tab_index(&target).filter(|&i| self.tabs[i].joined) else {
                    self.active_tab_mut().error(
                        now,
                        format!("/msg: you are not in #{channel} (/join {channel} first)"),
                    );
                    return;
                };
                self.activate(i);
                if let Some(text) = text {
                    self.send_to(&target, Message::text(text));
                }
            }
            SlashCommand::Query(peer) => self.run_command(SlashCommand::Msg(peer, None)),
            SlashCommand::Close => self.close_tab(),
            SlashCommand::Members(filter) => {
                let Some(channel) = self.active_tab().channel().map(str::to_string) else {
                    self.active_tab_mut()
                        .error(now, "/members: this is not a channel tab");
                    return;
                };
                self.show_members = true;
                let tab = self.active_tab_mut();
                tab.member_filter = filter.unwrap_or_default();
                tab.member_scroll = 0;
                self.effect(Effect::Members(channel));
            }
            SlashCommand::Who(mut peers) => {
                if peers.is_empty() {
                    let Some(peer) = self.active_tab().peer().map(str::to_string) else {
                        self.active_tab_mut().error(now, "usage: /who <peer>...");
                        return;
                    };
                    peers.push(peer);
                }
                self.effect(Effect::QueryPresence(peers));
            }
            SlashCommand::Subscribed => self.effect(Effect::Query(QueryRequest::Subscribed)),
            SlashCommand::Count(mut channels) => {
                if channels.is_empty() {
                    let Some(channel) = self.active_tab().channel().map(str::to_string) else {
                        self.active_tab_mut()
                            .error(now, "usage: /count <channel>...");
                        return;
                    };
                    channels.push(channel);
                }
                self.effect(Effect::Query(QueryRequest::MemberCount(channels)));
            }
            SlashCommand::Ping => self.effect(Effect::Query(QueryRequest::Ping)),
            SlashCommand::Me(text) => self.send_text(&format!("/me {text}")),
            SlashCommand::Retry => self.retry(),
            SlashCommand::Clear => {
                let tab = self.active_tab_mut();
                tab.entries.clear();
                tab.scroll = 0;
            }
            SlashCommand::Attr(args) => self.attr_command(&args),
            SlashCommand::Cattr(args) => self.cattr_command(&args),
            SlashCommand::Call(peer, content) => {
                let id = format!("{}-{}-{}", self.me(), now, self.next_local_id);
                self.next_local_id += 1;
                let i = self.ensure_tab(&Target::Peer(peer.clone()));
                self.activate(i);
                self.tabs[i].info(now, format!("calling {peer}… (/hangup to cancel)"));
                self.outgoing_calls.insert(peer.clone(), id.clone());
                self.effect(Effect::Invite(InviteRequest::Send { id, peer, content }));
            }
            SlashCommand::Hangup => {
                let peer = self.active_tab().peer().map(str::to_string);
                let call = peer.and_then(|p| self.outgoing_calls.remove(&p).map(|id| (p, id)));
                match call {
                    Some((peer, id)) => {
                        self.effect(Effect::Invite(InviteRequest::Cancel { id, peer }));
                    }
                    None => self
                        .active_tab_mut()
                        .error(now, "/hangup: no call from this tab is waiting"),
                }
            }
            SlashCommand::Accept(response) => self.answer_invitation(true, response),
            SlashCommand::Refuse(response) => self.answer_invitation(false, response),
            SlashCommand::Raw(path) => match self.active_tab().target.clone() {
                Some(target) => self.effect(Effect::ReadRawFile { path, target }),
                None => self
                    .active_tab_mut()
                    .error(now, "/raw: open a peer or channel tab first"),
            },
            SlashCommand::Save(path) => {
                let data = self
                    .active_tab()
                    .entries
                    .iter()
                    .rev()
                    .find_map(|e| match &e.kind {
                        EntryKind::Message(m) => match &m.body {
                            Body::Raw { data, .. } => Some(data.clone()),
                            _ => None,
                        },
                        _ => None,
                    });
                match data {
                    Some(data) => self.effect(Effect::SaveFile { path, data }),
                    None => self
                        .active_tab_mut()
                        .error(now, "/save: no raw message in this tab"),
                }
            }
            SlashCommand::Status => {
                for line in self.status_lines() {
                    self.active_tab_mut().info(now, line);
                }
            }
            SlashCommand::Reconnect => {
                if self.conn.state == crate::protocol::ConnectionState::Reconnecting {
                    self.active_tab_mut().info(now, "reconnecting now…");
                    self.effect(Effect::Reconnect);
                } else {
                    let state = self.conn.state.label();
                    self.active_tab_mut().info(
                        now,
                        format!("/reconnect: nothing to do, the connection is {state}"),
                    );
                }
            }
            SlashCommand::Login => {
                self.screen = Screen::Login;
                self.login.status = LoginStatus::Editing;
            }
            SlashCommand::Logout => self.effect(Effect::Logout),
            SlashCommand::Quit => self.quit(),
            SlashCommand::Help(topic) => match topic {
                Some(name) => {
                    let line = COMMANDS.iter().find(|(n, _, _)| *n == name).map_or_else(
                        || format!("no command /{name}"),
                        |(n, args, what)| format!("/{n} {args} — {what}"),
                    );
                    self.active_tab_mut().info(now, line);
                }
                None => {
                    self.overlay = Some(Overlay::Help {
                        scroll: 0,
                        topic: None,
                    });
                }
            },
        }
    }

    /// What `/status` prints: the details the status line leaves out.
    pub(crate) fn status_lines(&self) -> Vec<String> {
        let conn = &self.conn;
        let mut lines = vec![format!(
            "connection {} ({})",
            conn.state.label(),
            conn.reason.label()
        )];
        let who = match self.me.as_deref() {
            Some(me) => format!("{me} in app {}", self.app_id),
            None => "not logged in".to_string(),
        };
        let connected = self.conn.state == crate::protocol::ConnectionState::Connected;
        let url = match &self.connected_to {
            Some(url) if connected => url.clone(),
            _ => self.server.replace(',', ", "),
        };
        let server = if self.server_name.is_empty() {
            url
        } else {
            format!("{url} ({})", self.server_name)
        };
        lines.push(format!("{who} on {server}"));
        if self.has_several_servers() {
            let list = self.server.replace(',', ", ");
            lines.push(format!("servers, tried in turn: {list}"));
        }
        if let Some(notice) = &self.notice {
            lines.push(notice.clone());
        }
        lines
    }

    fn close_tab(&mut self) {
        if self.active == 0 {
            let now = self.now_ms;
            self.active_tab_mut()
                .error(now, "the rtm tab stays open (/quit to leave)");
            return;
        }
        let tab = self.tabs.remove(self.active);
        match tab.target {
            Some(Target::Channel(channel)) if tab.joined => self.effect(Effect::Leave(channel)),
            Some(Target::Peer(peer)) => self.effect(Effect::Unsubscribe(vec![peer])),
            _ => {}
        }
        self.activate(self.active.min(self.tabs.len() - 1));
    }

    fn attr_command(&mut self, args: &[String]) {
        let request = match args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [] => AttrRequest::Get(self.me().to_string()),
            ["set", key, value] => AttrRequest::Set((*key).to_string(), (*value).to_string()),
            ["del", key] => AttrRequest::Delete((*key).to_string()),
            ["clear"] => AttrRequest::Clear,
            ["get", user] => AttrRequest::Get((*user).to_string()),
            _ => {
                let now = self.now_ms;
                self.active_tab_mut()
                    .error(now, "usage: /attr [set k v|del k|clear|get user]");
                return;
            }
        };
        self.effect(Effect::UserAttr(request));
    }

    fn cattr_command(&mut self, args: &[String]) {
        let now = self.now_ms;
        let Some(channel) = self.active_tab().channel().map(str::to_string) else {
            self.active_tab_mut()
                .error(now, "/cattr: this is not a channel tab");
            return;
        };
        let request = match args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [] | ["get"] => AttrRequest::Get(channel.clone()),
            ["set", key, value] => AttrRequest::Set((*key).to_string(), (*value).to_string()),
            ["del", key] => AttrRequest::Delete((*key).to_string()),
            ["clear"] => AttrRequest::Clear,
            _ => {
                self.active_tab_mut()
                    .error(now, "usage: /cattr [set k v|del k|clear]");
                return;
            }
        };
        self.effect(Effect::ChannelAttr { channel, request });
    }
}

//! What each slash command does (`/join`, `/msg`, ...), as state changes and requests.
//! What a command is (the table, parsing, completion) is `tui/slash_command.rs`.

use crate::protocol::limits::{validate_channel_id, validate_user_id, MAX_QUERY_PEERS};
use crate::protocol::{ConnectionState, Message};

use super::jobs::{AttributesShown, Pending};
use super::overlay::Overlay;
use super::{App, Screen};
use crate::protocol::{AttributeWrite, InvitationAnswer};
use crate::tui::action::Effect;
use crate::tui::job::{Job, QueryJob};
use crate::tui::login::LoginStatus;
use crate::tui::slash_command::{AttrArgs, SlashCommand, COMMANDS};
use crate::tui::tab::TOPIC;
use crate::tui::target::Target;

impl App {
    pub(super) fn run_command(&mut self, command: SlashCommand) {
        let now = self.now_ms;
        match command {
            SlashCommand::Join(channel) => {
                if let Err(e) = validate_channel_id(&channel) {
                    return self.error(format!("/join: {e}"));
                }
                let i = self.tabs.open(&Target::Channel(channel), &mut self.jobs);
                self.tabs.activate(i);
                // Already in: /join just goes to the tab.
                if !self.tabs[i].joined {
                    self.tabs.join(i, &mut self.jobs);
                }
            }
            SlashCommand::Leave(channel) => {
                let Some(channel) =
                    channel.or_else(|| self.active_tab().channel().map(str::to_string))
                else {
                    return self.error("/leave: this is not a channel tab");
                };
                self.jobs.ask(Job::Leave(channel));
            }
            SlashCommand::Msg(peer, _)
            | SlashCommand::Call { peer, .. }
            | SlashCommand::Query(peer)
                if validate_user_id(&peer).is_err() =>
            {
                let e = validate_user_id(&peer).unwrap_err();
                self.error(format!("{e}"));
            }
            SlashCommand::Msg(peer, text) => {
                let target = Target::Peer(peer);
                let i = self.tabs.open(&target, &mut self.jobs);
                self.tabs.activate(i);
                if let Some(text) = text {
                    self.send_to(&target, Message::text(text));
                }
            }
            SlashCommand::ChannelMsg(channel, text) => {
                if let Err(e) = validate_channel_id(&channel) {
                    return self.error(format!("/msg: {e}"));
                }
                let target = Target::Channel(channel.clone());
                let Some(i) = self.tabs.index_of(&target).filter(|&i| self.tabs[i].joined) else {
                    return self.error(format!(
                        "/msg: you are not in #{channel} (/join {channel} first)"
                    ));
                };
                self.tabs.activate(i);
                if let Some(text) = text {
                    self.send_to(&target, Message::text(text));
                }
            }
            SlashCommand::Query(peer) => self.run_command(SlashCommand::Msg(peer, None)),
            SlashCommand::Close => {
                if let Err(why) = self.tabs.close_active(&mut self.jobs) {
                    self.error(why);
                }
            }
            SlashCommand::Members(filter) => {
                let Some(channel) = self.active_tab().channel().map(str::to_string) else {
                    return self.error("/members: this is not a channel tab");
                };
                self.show_members = true;
                let tab = self.tabs.active_tab_mut();
                tab.member_filter = filter.unwrap_or_default();
                tab.member_scroll = 0;
                self.jobs.ask_members(channel, self.now_ms);
            }
            SlashCommand::Who(mut peers) => {
                if peers.is_empty() {
                    let tab = self.active_tab();
                    if let Some(peer) = tab.peer() {
                        peers.push(peer.to_string());
                    } else if tab.joined {
                        // In a channel: its members, as IRC's /who does.
                        peers.extend(tab.members.iter().take(MAX_QUERY_PEERS).cloned());
                    }
                    if peers.is_empty() {
                        return self.error("usage: /who <peer>... (or in a peer or channel tab)");
                    }
                }
                self.jobs.ask(Job::QueryPresence(peers));
            }
            SlashCommand::Subscribed => self.query(QueryJob::Subscribed),
            SlashCommand::Count(mut channels) => {
                if channels.is_empty() {
                    let Some(channel) = self.active_tab().channel().map(str::to_string) else {
                        return self.error("usage: /count <channel>...");
                    };
                    channels.push(channel);
                }
                self.query(QueryJob::MemberCount(channels));
            }
            SlashCommand::Ping => self.query(QueryJob::Ping),
            SlashCommand::Me(text) => self.send_text(&format!("/me {text}")),
            SlashCommand::Retry => self.tabs.retry(now, &mut self.jobs),
            SlashCommand::Clear => {
                let tab = self.tabs.active_tab_mut();
                tab.entries.clear();
                tab.scroll = 0;
                tab.unread_marker = None;
            }
            SlashCommand::Search(text) => self.overlay = Some(Overlay::search(&text)),
            SlashCommand::Attr(args) => self.attr_command(args),
            SlashCommand::Cattr(args) => self.cattr_command(args),
            SlashCommand::Topic(None) => {
                let Some(tab) = self.active_tab().channel().map(|_| self.active_tab()) else {
                    return self.error("/topic: this is not a channel tab");
                };
                let line = match tab.topic() {
                    Some(topic) => format!("topic: {} (set by {})", topic.value, topic.updated_by),
                    None => "no topic (/topic <text> sets one)".to_string(),
                };
                self.info(line);
            }
            SlashCommand::Topic(Some(text)) => {
                self.cattr_command(AttrArgs::Set(vec![(TOPIC.into(), text)]));
            }
            SlashCommand::Call {
                peer,
                channel,
                content,
            } => {
                if let Some(Err(e)) = channel.as_deref().map(validate_channel_id) {
                    return self.error(format!("/call: {e}"));
                }
                let target = Target::Peer(peer.clone());
                let i = self.tabs.open(&target, &mut self.jobs);
                self.tabs.activate(i);
                let into = channel
                    .as_ref()
                    .map_or_else(String::new, |c| format!(" into #{c}"));
                self.tabs[i].info(now, format!("calling {peer}{into}… (/hangup to cancel)"));
                let me = self.me().to_string();
                let request = self.calls.place(&me, now, peer, channel, content);
                self.invite(request);
            }
            SlashCommand::Hangup => {
                let peer = self.active_tab().peer().map(str::to_string);
                match peer.and_then(|p| self.calls.hang_up(&p)) {
                    Some(request) => self.invite(request),
                    None => self.error("/hangup: no call from this tab is waiting"),
                }
            }
            SlashCommand::Accept(response) => {
                self.answer_invitation(InvitationAnswer::Accept, response);
            }
            SlashCommand::Refuse(response) => {
                self.answer_invitation(InvitationAnswer::Refuse, response);
            }
            SlashCommand::Raw(path) => match self.active_tab().target.clone() {
                Some(target) => {
                    let name = std::path::Path::new(&path)
                        .file_name()
                        .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
                    self.jobs
                        .ask_with(Pending::RawFile { target, name }, Job::ReadRawFile(path));
                }
                None => self.error("/raw: open a peer or channel tab first"),
            },
            SlashCommand::File(path) => self.upload(path, false),
            SlashCommand::Image(path) => self.upload(path, true),
            SlashCommand::Save(path) => self.save_media(path),
            SlashCommand::Status => {
                for line in self.status.lines() {
                    self.info(line);
                }
            }
            SlashCommand::Renew(token) => {
                self.jobs.ask(Job::RenewToken(token));
            }
            SlashCommand::Reconnect => {
                let state = self.status.conn.state;
                if state == ConnectionState::Reconnecting {
                    self.info("reconnecting now…");
                    self.jobs.push(Effect::Reconnect);
                } else {
                    let state = super::status::state_words(state);
                    self.info(format!(
                        "/reconnect: nothing to do, the connection is {state}"
                    ));
                }
            }
            SlashCommand::Login => {
                self.screen = Screen::Login;
                self.login.status = LoginStatus::Editing;
            }
            SlashCommand::Logout => self.jobs.ask(Job::Logout),
            SlashCommand::Quit => self.quit(),
            SlashCommand::Help(Some(name)) => {
                let line = COMMANDS.iter().find(|(n, _, _)| *n == name).map_or_else(
                    || format!("no command /{name}"),
                    |(n, args, what)| format!("/{n} {args} — {what}"),
                );
                self.info(line);
            }
            SlashCommand::Help(None) => self.overlay = Some(Overlay::help()),
        }
    }

    /// A question whose answer is a line in the tab in front.
    fn query(&mut self, request: QueryJob) {
        self.jobs.ask(Job::Query(request));
    }

    fn attr_command(&mut self, args: AttrArgs) {
        let request = match attribute_write(args) {
            Ok(write) => Job::ChangeUserAttributes(write),
            Err(user) => Job::GetUserAttributes(user.unwrap_or_else(|| self.me().to_string())),
        };
        self.jobs.ask(request);
    }

    fn cattr_command(&mut self, args: AttrArgs) {
        let Some(channel) = self.active_tab().channel().map(str::to_string) else {
            return self.error("/cattr: this is not a channel tab");
        };
        let write = match attribute_write(args) {
            Ok(write) => write,
            Err(None) => {
                let pending = Pending::Attributes(AttributesShown::List);
                self.jobs
                    .ask_with(pending, Job::GetChannelAttributes(channel));
                return;
            }
            Err(Some(_)) => return self.error("usage: /cattr [set k v|replace k=v…|del k…|clear]"),
        };
        self.jobs
            .ask(Job::ChangeChannelAttributes { channel, write });
    }
}

/// The write `args` ask for, or (`Err`) whose attributes to show (`None`: our own, or
/// this channel's).
fn attribute_write(args: AttrArgs) -> Result<AttributeWrite, Option<String>> {
    Ok(match args {
        AttrArgs::Show(user) => return Err(user),
        AttrArgs::Set(pairs) => AttributeWrite::AddOrUpdate(pairs.into_iter().collect()),
        AttrArgs::Replace(pairs) => AttributeWrite::Set(pairs.into_iter().collect()),
        AttrArgs::Delete(keys) => AttributeWrite::Delete(keys),
        AttrArgs::Clear => AttributeWrite::Clear,
    })
}

//! Answers to our jobs: each is matched by its id with the job that asked for it (and the
//! [`Pending`] note kept beside it, if any) and handed to the component it concerns.

use crate::protocol::{ChannelAttribute, LoginResult, Message};

use super::jobs::{AttributesShown, Pending};
use super::{presence_word, App, Screen};
use crate::tui::job::{expect, Failure, Job, JobId, JobOutput};
use crate::tui::login::{self, LoginStatus};
use crate::tui::target::Target;

impl App {
    pub(super) fn on_reply(&mut self, id: JobId, result: Result<JobOutput, Failure>) {
        let Some((job, pending)) = self.jobs.answered(id) else {
            tracing::debug!("an answer to no job of ours: {id:?}");
            return;
        };
        let now = self.now_ms;
        match (job, pending) {
            (Job::Login { .. }, _) => self.on_login(expect(result)),
            (Job::Logout, _) => match expect::<()>(result) {
                Ok(()) => self.on_logout(),
                Err(f) => self.error(f.to_string()),
            },
            (Job::SendPeer { peer, .. }, Some(Pending::Send { local_id })) => {
                self.tabs
                    .on_sent(&Target::Peer(peer), local_id, expect(result));
            }
            (Job::SendChannel { channel, .. }, Some(Pending::Send { local_id })) => {
                self.tabs
                    .on_sent(&Target::Channel(channel), local_id, expect(result));
            }
            (Job::Join(channel), _) => {
                self.tabs
                    .on_joined(&channel, expect(result), now, &mut self.jobs);
            }
            (Job::Leave(channel), _) => self.tabs.on_left(&channel, expect(result), now),
            (Job::Members(channel), _) => self.tabs.on_members(&channel, expect(result), now),
            (Job::History { target, before }, _) => {
                let me = self.status.me().to_string();
                self.tabs
                    .on_history(&target, before, expect(result), &me, now);
            }
            (Job::QueryPresence(_), _) => self.on_presence(expect(result)),
            (Job::GetChannelAttributes(channel), pending) => {
                let show = match pending {
                    Some(Pending::Attributes(show)) => show,
                    _ => AttributesShown::Header,
                };
                self.on_channel_attributes(&channel, show, expect(result));
            }
            (Job::ChangeChannelAttributes { channel, .. }, _) => {
                let target = Target::Channel(channel.clone());
                match expect::<()>(result) {
                    Ok(()) => {
                        // The change's event says what changed, to us too; a server that
                        // does not send it to the writer still gets the header right
                        // (a deleted attribute must not stay) and the change said once.
                        self.jobs.ask_with(
                            Pending::Attributes(AttributesShown::Changes),
                            Job::GetChannelAttributes(channel),
                        );
                    }
                    Err(f) => {
                        let i = self.tabs.open(&target, &mut self.jobs);
                        self.tabs[i].error(now, f.to_string());
                    }
                }
            }
            (Job::ReadRawFile(_), Some(Pending::RawFile { target, name })) => {
                match expect::<Vec<u8>>(result) {
                    Ok(data) => self.send_to(&target, Message::raw(&data, format!("file {name}"))),
                    Err(f) => self.error(format!("/raw: {f}")),
                }
            }
            (Job::UploadFile(_) | Job::UploadImage(_), Some(Pending::Upload { target, name })) => {
                self.on_uploaded(id, &target, &name, result);
            }
            (Job::Download { name, .. }, Some(Pending::Download { target })) => {
                self.on_downloaded(id, target.as_ref(), &name, result);
            }
            (Job::LoadTabs { .. }, _) => {
                let targets = expect(result).unwrap_or_default();
                self.tabs.restore(targets, now, &mut self.jobs);
            }
            (Job::Editor(draft), _) => match expect::<String>(result) {
                Ok(text) => self.input.set(text.trim_end_matches('\n')),
                Err(f) => {
                    self.error(f.to_string());
                    self.input.set(draft.trim_end_matches('\n'));
                }
            },
            // A job with nothing to say (a token command that is not there) says so.
            (_, _) if matches!(result, Ok(JobOutput::Done)) => {}
            // Words: a query's answer, an invitation sent, a token renewed, a file saved.
            (
                Job::RenewToken(_)
                | Job::Query(_)
                | Job::ChangeUserAttributes(_)
                | Job::GetUserAttributes(_)
                | Job::Invite(_)
                | Job::SaveFile { .. },
                pending,
            ) => {
                let i = match pending {
                    Some(Pending::LineTo(target)) => self.tabs.open(&target, &mut self.jobs),
                    _ => self.tabs.active(),
                };
                match expect::<String>(result) {
                    Ok(text) => self.tabs[i].info(now, text),
                    Err(f) => self.tabs[i].error(now, f.to_string()),
                }
            }
            (job, pending) => {
                tracing::error!("no way to take the answer to {job:?} with {pending:?}");
            }
        }
    }

    fn on_login(&mut self, result: Result<LoginResult, Failure>) {
        let now = self.now_ms;
        let result = match result {
            Ok(result) => result,
            Err(failure) => {
                self.screen = Screen::Login;
                let token = self.login.value(login::TOKEN);
                let words = match login::login_hint(failure.code, token) {
                    Some(hint) => format!("{failure} — {hint}"),
                    None => login::connect_words(&failure.text, &self.status.server)
                        .unwrap_or_else(|| failure.to_string()),
                };
                self.login.status = LoginStatus::Refused(words);
                return;
            }
        };
        let relogin = std::mem::replace(&mut self.status.has_logged_in, true);
        self.status.me = Some(result.user.clone());
        self.status.server_name.clone_from(&result.server);
        self.screen = Screen::Main;
        self.login.status = LoginStatus::Editing;
        // The server in use, once connected (with several, the one the client reached).
        let server = self
            .status
            .connected_to
            .clone()
            .unwrap_or_else(|| self.status.server.replace(',', ", "));
        let line = format!(
            "logged in as {} to app {} on {server} ({})",
            result.user, self.status.app_id, result.server
        );
        self.tabs.home().info(now, line);
        if relogin {
            self.tabs.rejoin(&mut self.jobs);
            return;
        }
        self.tabs.home().info(
            now,
            "/join <channel> to join a channel, /msg <peer> to talk to someone, F1 for help",
        );
        self.jobs.ask(Job::LoadTabs {
            app_id: self.status.app_id.clone(),
            user: result.user,
        });
        for line in std::mem::take(&mut self.startup_commands) {
            self.send_line(&line);
        }
    }

    fn on_logout(&mut self) {
        let now = self.now_ms;
        self.tabs.home().info(now, "logged out");
        self.tabs.forget_presence();
        self.screen = Screen::Login;
        // The next person types a user id first, not into the token field.
        self.login.focus = login::USER;
    }

    fn on_presence(&mut self, result: Result<Vec<(String, crate::protocol::PeerStatus)>, Failure>) {
        let peers = match result {
            Ok(peers) => peers,
            Err(f) => return self.error(format!("/who failed: {f}")),
        };
        for (peer, status) in &peers {
            if let Some(i) = self.tabs.index_of(&Target::Peer(peer.clone())) {
                self.tabs[i].presence = Some(*status);
            }
        }
        let text: Vec<String> = peers
            .iter()
            .map(|(p, s)| format!("{p} is {}", presence_word(*s)))
            .collect();
        self.info(text.join(", "));
    }

    /// A channel's attributes: its header's topic, and what `show` asks for in the tab.
    fn on_channel_attributes(
        &mut self,
        channel: &str,
        show: AttributesShown,
        result: Result<Vec<ChannelAttribute>, Failure>,
    ) {
        let target = Target::Channel(channel.to_string());
        if show == AttributesShown::List {
            let text = result.as_ref().map(|list| {
                if list.is_empty() {
                    return "no channel attributes".to_string();
                }
                list.iter()
                    .map(|a| format!("{}={} (by {})", a.key, a.value, a.updated_by))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            match text {
                Ok(text) => self.info_in(&target, text),
                Err(f) => {
                    let now = self.now_ms;
                    let i = self.tabs.open(&target, &mut self.jobs);
                    self.tabs[i].error(now, f.to_string());
                }
            }
        }
        match (self.tabs.index_of(&target), result) {
            (Some(i), Ok(attributes)) => {
                let me = self.status.me().to_string();
                let changes = self.tabs[i].set_attributes(attributes, &me);
                if show == AttributesShown::Changes {
                    let now = self.now_ms;
                    for line in changes {
                        self.tabs[i].info(now, line);
                    }
                }
            }
            // The header just stays without a topic.
            (_, Err(f)) => tracing::debug!("channel attributes: {f}"),
            (None, Ok(_)) => {}
        }
    }
}

//! Server events applied to the state: messages into tabs (with mentions, unread counts and
//! the bell), member changes, presence, attributes, invitations, kicks.

use crate::protocol::Event;

use super::calls::{Invitation, INVITATION_TTL_MS};
use super::overlay::Overlay;
use super::{presence_word, App};
use crate::tui::action::Effect;
use crate::tui::job::Job;
use crate::tui::local_time;
use crate::tui::notify::NotifyMode;
use crate::tui::tab::ChatMessage;
use crate::tui::target::Target;

impl App {
    pub(super) fn on_server_event(&mut self, event: Event) {
        let now = self.now_ms;
        match event {
            Event::MessageFromPeer {
                from,
                message,
                message_id,
                server_ts,
                offline,
            } => {
                let target = Target::Peer(from.clone());
                // A new tab's history stops before this message, which it shows already.
                let i = self
                    .tabs
                    .open_before(&target, Some(message_id), &mut self.jobs);
                let message = ChatMessage::received(from, &message, message_id, offline, self.me());
                self.receive(i, server_ts, message);
            }
            Event::MessageFromChannel {
                channel,
                from,
                message,
                message_id,
                server_ts,
            } => {
                let i = self.tabs.open(&Target::Channel(channel), &mut self.jobs);
                let message = ChatMessage::received(from, &message, message_id, false, self.me());
                self.receive(i, server_ts, message);
            }
            // Our own membership is the join's reply and "you joined", not a line of its own.
            Event::MemberJoined { user, .. } | Event::MemberLeft { user, .. }
                if user == self.me() => {}
            Event::MemberJoined { channel, user } => {
                self.tabs.membership(&channel, user, true, now);
            }
            Event::MemberLeft { channel, user } => self.tabs.membership(&channel, user, false, now),
            Event::MemberCountUpdated { channel, count } => {
                if let Some(i) = self.tabs.index_of(&Target::Channel(channel)) {
                    self.tabs[i].member_count = Some(count);
                }
            }
            Event::ChannelAttributesUpdated {
                channel,
                attributes,
            } => {
                if let Some(i) = self.tabs.index_of(&Target::Channel(channel)) {
                    let me = self.status.me().to_string();
                    for line in self.tabs[i].set_attributes(attributes, &me) {
                        self.tabs[i].info(now, line);
                    }
                }
            }
            Event::PeersOnlineStatus { peers } => {
                for (peer, status) in peers {
                    if let Some(i) = self.tabs.index_of(&Target::Peer(peer.clone())) {
                        let tab = &mut self.tabs[i];
                        if tab.presence.is_some() && tab.presence != Some(status) {
                            tab.info(now, format!("{peer} is {}", presence_word(status)));
                        }
                        if status == crate::protocol::PeerStatus::Online {
                            tab.cached_delivered();
                        }
                        tab.presence = Some(status);
                    }
                }
            }
            Event::InvitationReceived {
                invitation_id,
                caller,
                content,
                channel,
            } => {
                let target = Target::Peer(caller.clone());
                let line = if content.is_empty() {
                    format!("{caller} is calling you")
                } else {
                    format!("{caller} is calling you: {content}")
                };
                self.info_in(&target, line);
                let invitation = Invitation {
                    id: invitation_id,
                    caller,
                    content,
                    channel,
                    expires_at: now + INVITATION_TTL_MS,
                };
                self.calls.ring(invitation.clone());
                self.overlay = Some(Overlay::Invitation(invitation));
                if self.config.bell {
                    self.jobs.push(Effect::Bell);
                }
            }
            Event::InvitationAccepted {
                callee, response, ..
            } => {
                self.calls.answered(&callee);
                self.call_outcome(&callee, "accepted your call", &response);
            }
            Event::InvitationRefused {
                callee, response, ..
            } => {
                self.calls.answered(&callee);
                self.call_outcome(&callee, "refused your call", &response);
            }
            Event::InvitationCanceled { caller, .. } => {
                if self.calls.canceled(&caller) {
                    self.close_invitation_prompt();
                }
                self.call_outcome(&caller, "canceled the call", "");
            }
            Event::InvitationFailure {
                invitation_id,
                reason,
            } => {
                let words = crate::protocol::Family::Invite.describe(reason);
                tracing::debug!(invitation_id, reason, "invitation failure");
                self.error(format!("the call failed: {words}"));
                if self.calls.failed(&invitation_id) {
                    self.close_invitation_prompt();
                }
            }
            Event::TokenPrivilegeWillExpire { expires_at } => {
                let at = local_time::format(expires_at * 1000, &self.time_zone, "%H:%M:%S");
                self.tabs.home().error(
                    now,
                    format!("your token expires at {at}; renewing with --token-cmd if given"),
                );
                self.jobs.ask(Job::RenewToken(None));
            }
            // The ABORTED that follows a kick says why, once (`App::on_connection`).
            Event::Kicked { reason } => tracing::info!(?reason, "kicked"),
            Event::Error { code, reason } => {
                self.tabs
                    .home()
                    .error(now, format!("server error {code}: {reason}"));
            }
        }
    }

    /// A message into tab `index`; a mention rings the bell; a mention or a live peer
    /// message that is not in sight (another tab, or the terminal not focused) is a
    /// desktop notification.
    fn receive(&mut self, index: usize, ts: u64, message: ChatMessage) {
        let mention = message.mention;
        let peer = self.tabs[index].peer().is_some() && !message.own && !message.offline;
        let in_sight = self.focused && index == self.tabs.active();
        // Made only when wanted: a burst of channel messages allocates nothing here.
        let notice = ((mention || peer) && !in_sight && self.config.notify != NotifyMode::Off)
            .then(|| {
                let title = match self.tabs[index].channel() {
                    Some(channel) => format!("#{channel}: {}", message.from),
                    None => message.from.clone(),
                };
                Effect::Notify {
                    title,
                    body: message.body.text().to_string(),
                }
            });
        if !self.tabs.receive(index, ts, message) {
            return;
        }
        if mention && self.config.bell {
            self.jobs.push(Effect::Bell);
        }
        if let Some(notice) = notice {
            self.jobs.push(notice);
        }
    }

    fn call_outcome(&mut self, peer: &str, what: &str, response: &str) {
        let line = if response.is_empty() {
            format!("{peer} {what}")
        } else {
            format!("{peer} {what}: {response}")
        };
        self.info_in(&Target::Peer(peer.to_string()), line);
    }
}

//! Server events applied to the state: messages into tabs (with mentions, unread counts and
//! the bell), member changes, presence, attributes, invitations, kicks.

use crate::protocol::Event;

use super::super::action::{Effect, Target};
use super::super::local_time;
use super::super::tab::{mentions, Body, ChatMessage, Entry, EntryKind};
use super::{presence_word, App, Invitation, Overlay, INVITATION_TTL_MS};

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
                let fresh = self.tab_index(&target).is_none();
                let i = self.ensure_tab(&target);
                self.receive(i, from, &message, message_id, server_ts, offline);
                if fresh {
                    // The history fetched for a new tab must stop before this message.
                    for effect in &mut self.effects {
                        if let Effect::History { target: t, before } = effect {
                            if *t == target {
                                *before = Some(message_id);
                            }
                        }
                    }
                }
            }
            Event::MessageFromChannel {
                channel,
                from,
                message,
                message_id,
                server_ts,
            } => {
                let i = self.ensure_tab(&Target::Channel(channel));
                self.receive(i, from, &message, message_id, server_ts, false);
            }
            Event::MemberJoined { channel, user } => self.membership(&channel, user, true),
            Event::MemberLeft { channel, user } => self.membership(&channel, user, false),
            Event::MemberCountUpdated { channel, count } => {
                if let Some(i) = self.tab_index(&Target::Channel(channel)) {
                    self.tabs[i].member_count = Some(count);
                }
            }
            Event::ChannelAttributesUpdated {
                channel,
                attributes,
            } => {
                if let Some(i) = self.tab_index(&Target::Channel(channel)) {
                    let who = attributes
                        .iter()
                        .max_by_key(|a| a.updated_ts)
                        .map_or_else(String::new, |a| format!(" by {}", a.updated_by));
                    self.tabs[i].attributes = attributes;
                    self.tabs[i].info(now, format!("channel attributes changed{who}"));
                }
            }
            Event::PeersOnlineStatus { peers } => {
                for (peer, status) in peers {
                    if let Some(i) = self.tab_index(&Target::Peer(peer.clone())) {
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
                let i = self.ensure_tab(&Target::Peer(caller.clone()));
                self.tabs[i].info(now, format!("{caller} is calling you: {content}"));
                let invitation = Invitation {
                    id: invitation_id,
                    caller,
                    content,
                    channel,
                    expires_at: now + INVITATION_TTL_MS,
                };
                self.invitation = Some(invitation.clone());
                self.overlay = Some(Overlay::Invitation(invitation));
                if self.config.bell {
                    self.effect(Effect::Bell);
                }
            }
            Event::InvitationAccepted {
                callee, response, ..
            } => {
                self.outgoing_calls.remove(&callee);
                self.call_outcome(&callee, "accepted your call", &response);
            }
            Event::InvitationRefused {
                callee, response, ..
            } => {
                self.outgoing_calls.remove(&callee);
                self.call_outcome(&callee, "refused your call", &response);
            }
            Event::InvitationCanceled { caller, .. } => {
                if self.invitation.as_ref().is_some_and(|i| i.caller == caller) {
                    self.invitation = None;
                    if matches!(self.overlay, Some(Overlay::Invitation(_))) {
                        self.overlay = None;
                    }
                }
                self.call_outcome(&caller, "canceled the call", "");
            }
            Event::InvitationFailure {
                invitation_id,
                reason,
            } => {
                let words = crate::protocol::Family::Invite.describe(reason);
                self.active_tab_mut().error(
                    now,
                    format!("call invitation {invitation_id} failed: {words} ({reason})"),
                );
                if self
                    .invitation
                    .as_ref()
                    .is_some_and(|i| i.id == invitation_id)
                {
                    self.invitation = None;
                    self.overlay = None;
                }
                self.outgoing_calls.retain(|_, id| *id != invitation_id);
            }
            Event::TokenPrivilegeWillExpire { expires_at } => {
                let at = local_time::format(expires_at * 1000, &self.time_zone, "%H:%M:%S");
                self.home().error(
                    now,
                    format!("your token expires at {at}; renewing with --token-cmd if given"),
                );
                self.effect(Effect::RenewToken);
            }
            Event::Kicked { reason } => {
                let why = match reason {
                    crate::protocol::KickReason::RemoteLogin => "you logged in somewhere else",
                    crate::protocol::KickReason::Banned => "the server banned this login",
                    crate::protocol::KickReason::TokenExpired => "your token expired",
                };
                self.home()
                    .error(now, format!("the server ended this session: {why}"));
            }
            Event::Error { code, reason } => {
                self.home()
                    .error(now, format!("server error {code}: {reason}"));
            }
        }
    }

    fn receive(
        &mut self,
        i: usize,
        from: String,
        message: &crate::protocol::Message,
        id: u64,
        ts: u64,
        offline: bool,
    ) {
        let body = Body::from_message(message);
        let me = self.me().to_string();
        let own = from == me;
        let mention = !own && mentions(body.text(), &me);
        let tab = &mut self.tabs[i];
        // A reconnect's catch-up may bring a message again (same id and time).
        if tab.holds(id, ts) {
            return;
        }
        if tab.peer().is_some() {
            // The peer talks, so it is online and has had what was cached for it.
            tab.cached_delivered();
        }
        tab.push(Entry {
            ts,
            kind: EntryKind::Message(ChatMessage {
                id: Some(id),
                local_id: None,
                from,
                body,
                mark: None,
                offline,
                mention,
                own,
            }),
        });
        let visible = i == self.active && tab.scroll == 0;
        if !visible {
            tab.unread += 1;
        }
        if mention {
            if i != self.active {
                tab.mentions += 1;
            }
            if self.config.bell {
                self.effect(Effect::Bell);
            }
        }
    }

    fn membership(&mut self, channel: &str, user: String, joined: bool) {
        let now = self.now_ms;
        if let Some(i) = self.tab_index(&Target::Channel(channel.to_string())) {
            let tab = &mut self.tabs[i];
            if joined && tab.members.binary_search(&user).is_ok() {
                // Already listed: a rejoin after a reconnect (or a server restart, which
                // forgets the grace period). Nobody left, so nobody "joined".
                return;
            }
            // Counts also come as member_count_updated (absolute); this keeps them current
            // in between.
            if joined {
                tab.add_member(&user);
                tab.member_count = tab.member_count.map(|c| c + 1);
            } else {
                tab.remove_member(&user);
                tab.member_count = tab.member_count.map(|c| c.saturating_sub(1));
            }
            tab.push(Entry {
                ts: now,
                kind: EntryKind::Membership { user, joined },
            });
        }
    }

    fn call_outcome(&mut self, peer: &str, what: &str, response: &str) {
        let now = self.now_ms;
        let i = self.ensure_tab(&Target::Peer(peer.to_string()));
        let line = if response.is_empty() {
            format!("{peer} {what}")
        } else {
            format!("{peer} {what}: {response}")
        };
        self.tabs[i].info(now, line);
    }
}

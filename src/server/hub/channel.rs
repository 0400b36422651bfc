//! The hub's CHANNEL family: join and leave (with the member events and the throttled
//! member count), channel messages through the shared order, members and counts.

use std::collections::BTreeMap;

use crate::protocol::limits::MAX_LISTED_MEMBERS;
use crate::protocol::{
    ChannelMsgError, Event, HistoryMessage, JoinError, LeaveError, MembersError, Message,
    SendResult,
};
use crate::server::clock::Instant;
use crate::server::engine::channel_conversation;
use crate::server::outbox::ConnHandle;

use super::state::{ChannelRecord, Here, State, Tenant};
use super::Hub;

impl Hub {
    /// `join`: the member count.
    pub(super) fn join(
        &self,
        state: &mut State,
        (app, user, channel): (&str, &str, &str),
        here: Here,
    ) -> Result<u64, JoinError> {
        let app_state = state.apps().entry(app.to_string()).or_default();
        let entry = app_state.users.get_mut(user).ok_or(JoinError::Failure)?;
        if entry.joined.contains(channel) {
            return Err(JoinError::AlreadyJoined);
        }
        if entry.joined.len() >= crate::protocol::limits::MAX_JOINED_CHANNELS {
            return Err(JoinError::ExceedsLimit);
        }
        let conn = entry.conn.clone();
        let rejoin = entry.held.remove(channel);
        entry.joined.insert(channel.to_string());
        let state_channel = app_state.channels.entry(channel.to_string()).or_default();
        let count = if rejoin && state_channel.members.contains_key(user) {
            // Back within the grace: quietly reattach, nobody saw the user leave.
            state_channel.members.insert(user.to_string(), conn);
            state_channel.members.len()
        } else {
            state_channel.members.insert(user.to_string(), conn);
            let count = state_channel.members.len();
            if count == 1 {
                super::attributes::occupancy_changed(self, app_state, (app, channel), true, here);
            }
            super::admin::channel_event(app_state, (channel, user), true, here.stamp.now_ms);
            let state_channel = app_state.channels.get_mut(channel).expect("joined above");
            if count <= MAX_LISTED_MEMBERS {
                let line = ConnHandle::encode_shared(&Event::MemberJoined {
                    channel: channel.to_string(),
                    user: user.to_string(),
                });
                state_channel.broadcast(&line, Some(user));
            }
            self.count_changed(app_state, app, channel);
            count
        };
        Ok(count as u64)
    }

    /// `leave`.
    pub(super) fn leave(
        &self,
        state: &mut State,
        app: &str,
        user: &str,
        channel: &str,
        here: Here,
    ) -> Result<(), LeaveError> {
        let app_state = state.apps().get_mut(app).ok_or(LeaveError::NotInChannel)?;
        let entry = app_state
            .users
            .get_mut(user)
            .ok_or(LeaveError::NotInChannel)?;
        if !entry.joined.remove(channel) {
            return Err(LeaveError::NotInChannel);
        }
        self.remove_member(app_state, app, channel, user, here);
        Ok(())
    }

    pub(super) fn remove_member(
        &self,
        app_state: &mut Tenant,
        app: &str,
        channel: &str,
        user: &str,
        here: Here,
    ) {
        let Some(state_channel) = app_state.channels.get_mut(channel) else {
            return;
        };
        let listed = state_channel.members.len() <= MAX_LISTED_MEMBERS;
        if state_channel.members.remove(user).is_none() {
            return;
        }
        super::admin::channel_event(app_state, (channel, user), false, here.stamp.now_ms);
        let state_channel = app_state.channels.get_mut(channel).expect("held a member");
        if listed {
            let line = ConnHandle::encode_shared(&Event::MemberLeft {
                channel: channel.to_string(),
                user: user.to_string(),
            });
            state_channel.broadcast(&line, None);
        }
        if state_channel.members.is_empty() {
            let count_pending = state_channel.count_timer;
            super::attributes::occupancy_changed(self, app_state, (app, channel), false, here);
            if !count_pending {
                app_state.channels.remove(channel);
                return;
            }
        }
        self.count_changed(app_state, app, channel);
    }

    /// Sends `member_count_updated` to this node's members now, or schedules it so that
    /// a channel gets at most one per `member_count_interval`, carrying the latest count.
    pub(super) fn count_changed(&self, app_state: &mut Tenant, app: &str, channel: &str) {
        let Some(state_channel) = app_state.channels.get_mut(channel) else {
            return;
        };
        if state_channel.count_timer {
            return; // the scheduled update will carry the latest count
        }
        let interval = self.config().member_count_interval;
        let now = Instant::now();
        match state_channel.count_sent_at {
            Some(sent) if now.duration_since(sent) < interval => {
                state_channel.count_timer = true;
                let (app, channel) = (app.to_string(), channel.to_string());
                self.after(
                    interval.saturating_sub(now.duration_since(sent)),
                    move |hub| {
                        hub.flush_count(&app, &channel);
                    },
                );
            }
            _ => send_count(state_channel, channel, now),
        }
    }

    pub(super) fn flush_count(&self, app: &str, channel: &str) {
        let mut state = self.lock();
        let Some(app_state) = state.apps().get_mut(app) else {
            return;
        };
        let Some(state_channel) = app_state.channels.get_mut(channel) else {
            return;
        };
        state_channel.count_timer = false;
        send_count(state_channel, channel, Instant::now());
        if state_channel.members.is_empty() {
            app_state.channels.remove(channel);
        }
    }

    /// `send_channel` (or the REST API's, `from_server`, which needs no membership): the
    /// id and timestamp.
    pub(super) fn send_channel(
        &self,
        state: &mut State,
        (app, user, channel): (&str, &str, &str),
        message: Message,
        from_server: bool,
        here: Here,
    ) -> Result<SendResult, ChannelMsgError> {
        let app_state = state.shared.apps.get(app);
        let joined = app_state
            .and_then(|a| a.users.get(user))
            .is_some_and(|u| u.joined.contains(channel));
        if !joined && !from_server {
            return Err(ChannelMsgError::NotInChannel);
        }
        let (message_id, server_ts) = self.stamp_message(here.stamp);
        let line = ConnHandle::encode_shared(&Event::MessageFromChannel {
            channel: channel.to_string(),
            from: user.to_string(),
            message: message.clone(),
            message_id,
            server_ts,
        });
        if let Some(state_channel) = app_state.and_then(|a| a.channels.get(channel)) {
            state_channel.broadcast(&line, Some(user));
        }
        if here.origin {
            self.engine().messages().append_history(
                app,
                &channel_conversation(channel),
                HistoryMessage {
                    message_id,
                    from: user.to_string(),
                    message,
                    server_ts,
                },
                self.config().history_limit,
            );
        }
        Ok(SendResult {
            message_id,
            server_ts,
        })
    }

    /// `get_members` (at most 512).
    pub fn members(
        &self,
        app: &str,
        user: &str,
        channel: &str,
    ) -> Result<Vec<String>, MembersError> {
        let state = self.lock();
        let app_state = state
            .shared
            .apps
            .get(app)
            .ok_or(MembersError::NotInChannel)?;
        if !app_state
            .users
            .get(user)
            .is_some_and(|u| u.joined.contains(channel))
        {
            return Err(MembersError::NotInChannel);
        }
        Ok(app_state
            .channels
            .get(channel)
            .map(|c| c.members.keys().take(MAX_LISTED_MEMBERS).cloned().collect())
            .unwrap_or_default())
    }

    /// True if `user`'s current connection joined `channel`.
    pub fn is_member(&self, app: &str, user: &str, channel: &str) -> bool {
        self.lock()
            .shared
            .user(app, user)
            .is_some_and(|u| u.joined.contains(channel))
    }

    /// `get_channel_member_count`: unknown channels count 0.
    pub fn member_counts(&self, app: &str, channels: &[String]) -> BTreeMap<String, u64> {
        let state = self.lock();
        let app_state = state.shared.apps.get(app);
        channels
            .iter()
            .map(|channel| {
                let count = app_state
                    .and_then(|a| a.channels.get(channel))
                    .map_or(0, |c| c.members.len() as u64);
                (channel.clone(), count)
            })
            .collect()
    }
}

fn send_count(state_channel: &mut ChannelRecord, channel: &str, now: Instant) {
    state_channel.count_sent_at = Some(now);
    let line = ConnHandle::encode_shared(&Event::MemberCountUpdated {
        channel: channel.to_string(),
        count: state_channel.members.len() as u64,
    });
    state_channel.broadcast(&line, None);
}

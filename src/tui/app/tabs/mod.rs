//! The tabs component: the open conversations in order, which one is in front, and what
//! happens to them: opening one (with its history and presence asked for), switching,
//! closing, scrolling, our messages going out and the answers that mark them, history and
//! member lists coming in, and the set of conversations saved for the next run. One
//! [`Tab`] (`tab.rs`) is the data of a conversation; this is the list and its rules.
//! Messages going out and coming in (send, retry, their marks, receive) are in
//! `tabs/messages.rs`.

mod messages;

use std::collections::HashMap;
use std::ops::{Index, IndexMut};

use crate::protocol::HistoryMessage;

use super::jobs::{AttributesShown, Jobs, Pending};
use crate::tui::action::Effect;
use crate::tui::job::{Failure, Job};
use crate::tui::tab::{Entry, EntryKind, HistoryState, Mark, Tab, HISTORY_PAGE};
use crate::tui::target::Target;

/// The tab list; the first tab is the home tab (`rtm`) and is never closed.
#[derive(Debug)]
pub struct Tabs {
    list: Vec<Tab>,
    active: usize,
    /// The tab in front before `active` (the switcher's default).
    previous: usize,
    /// The next id of a message we send, to find it again when its answer comes.
    next_local_id: u64,
    /// The marks of our sent messages by conversation and server id, so a tab closed and
    /// opened again shows them on the messages its history brings back.
    marks: HashMap<(Target, u64), Mark>,
    /// The conversations last saved for the next run; `None` until the last run's tabs
    /// are restored (nothing is saved before, or an early save would lose them).
    saved: Option<Vec<Target>>,
}

impl Default for Tabs {
    fn default() -> Self {
        let mut home = Tab::new(None);
        home.history = HistoryState::Complete;
        Tabs {
            list: vec![home],
            active: 0,
            previous: 0,
            next_local_id: 1,
            marks: HashMap::new(),
            saved: None,
        }
    }
}

impl Index<usize> for Tabs {
    type Output = Tab;
    fn index(&self, i: usize) -> &Tab {
        &self.list[i]
    }
}

impl IndexMut<usize> for Tabs {
    fn index_mut(&mut self, i: usize) -> &mut Tab {
        &mut self.list[i]
    }
}

impl<'a> IntoIterator for &'a Tabs {
    type Item = &'a Tab;
    type IntoIter = std::slice::Iter<'a, Tab>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl Tabs {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Tab> {
        self.list.iter()
    }

    /// The index of the tab in front.
    pub fn active(&self) -> usize {
        self.active
    }

    pub fn active_tab(&self) -> &Tab {
        &self.list[self.active]
    }

    pub fn active_tab_mut(&mut self) -> &mut Tab {
        &mut self.list[self.active]
    }

    /// The home tab, where what belongs to no conversation goes.
    pub fn home(&mut self) -> &mut Tab {
        &mut self.list[0]
    }

    /// The index of the tab for `target`, if open.
    pub fn index_of(&self, target: &Target) -> Option<usize> {
        self.list
            .iter()
            .position(|t| t.target.as_ref() == Some(target))
    }

    /// The tab for `target`, opened if needed (a peer's with its history and presence
    /// asked for).
    pub fn open(&mut self, target: &Target, jobs: &mut Jobs) -> usize {
        self.open_before(target, None, jobs)
    }

    /// [`Tabs::open`] for a message that arrived: a new tab's history stops before the
    /// message with id `before`, which it already shows.
    pub fn open_before(&mut self, target: &Target, before: Option<u64>, jobs: &mut Jobs) -> usize {
        if let Some(i) = self.index_of(target) {
            return i;
        }
        let mut tab = Tab::new(Some(target.clone()));
        if let Target::Peer(peer) = target {
            tab.history = HistoryState::Loading;
            ask_history(jobs, target.clone(), before);
            jobs.push(Effect::Subscribe(vec![peer.clone()]));
        }
        self.list.push(tab);
        self.list.len() - 1
    }

    /// Puts tab `index` in front; its unread and mention counts are seen.
    pub fn activate(&mut self, index: usize) {
        if index < self.list.len() {
            if index != self.active {
                self.previous = self.active;
                // Left after being read: its unread marker has done its job.
                if let Some(left) = self.list.get_mut(self.active) {
                    left.unread_marker = None;
                }
            }
            self.active = index;
            let tab = &mut self.list[index];
            tab.unread = 0;
            tab.mentions = 0;
        }
    }

    pub fn next(&mut self) {
        self.activate((self.active + 1) % self.list.len());
    }

    pub fn previous(&mut self) {
        self.activate((self.active + self.list.len() - 1) % self.list.len());
    }

    /// Alt-A: the next tab with mentions, else the next with unread messages.
    pub fn next_activity(&mut self) {
        if let Some(i) = self.with_activity() {
            self.activate(i);
        }
    }

    /// The next tab after the one in front with mentions, else with unread messages.
    fn with_activity(&self) -> Option<usize> {
        let n = self.list.len();
        let order = (1..n).map(|k| (self.active + k) % n);
        order
            .clone()
            .find(|&i| self.list[i].mentions > 0)
            .or_else(|| order.clone().find(|&i| self.list[i].unread > 0))
    }

    /// The tab the switcher offers first: one with something new, else the one in front
    /// before this one (as Alt-Tab does).
    pub fn likely_next(&self) -> usize {
        self.with_activity().unwrap_or(self.previous)
    }

    /// Closes the tab in front, leaving its channel or the peer's presence; the home tab
    /// stays (`Err`).
    pub fn close_active(&mut self, jobs: &mut Jobs) -> Result<(), &'static str> {
        if self.active == 0 {
            return Err("the rtm tab stays open (/quit to leave)");
        }
        let tab = self.list.remove(self.active);
        self.previous = 0;
        match tab.target {
            Some(Target::Channel(channel)) if tab.joined => {
                jobs.ask(Job::Leave(channel));
            }
            Some(Target::Peer(peer)) => {
                jobs.push(Effect::Unsubscribe(vec![peer]));
            }
            _ => {}
        }
        self.activate(self.active.min(self.list.len() - 1));
        Ok(())
    }

    /// Another user logs in: only the home tab stays, and nothing is saved until their
    /// tabs of last time are restored.
    pub fn reset(&mut self) {
        self.list.truncate(1);
        self.active = 0;
        self.previous = 0;
        self.saved = None;
    }

    /// Mentions waiting in all tabs (the terminal title counts them).
    pub fn mentions(&self) -> usize {
        self.list.iter().map(|t| t.mentions).sum()
    }

    /// The channels of the tabs, joined or not.
    pub fn channels(&self) -> Vec<String> {
        self.list
            .iter()
            .filter_map(|t| t.channel().map(str::to_string))
            .collect()
    }

    /// Our connection was lost: each joined channel's tab says so, and remembers who was
    /// in it, so their rejoins after the reconnect do not read as new joins.
    pub fn connection_lost(&mut self, now: u64) {
        for tab in self.list.iter_mut().filter(|t| t.joined) {
            tab.returning.clone_from(&tab.members);
            tab.info(now, "connection lost; reconnecting…");
        }
    }

    /// Back after a reconnect: each joined channel's tab says so.
    pub fn connection_back(&mut self, now: u64) {
        for tab in self.list.iter_mut().filter(|t| t.joined) {
            tab.info(now, "reconnected");
        }
    }

    /// The peers of the tabs.
    pub fn peers(&self) -> Vec<String> {
        self.list
            .iter()
            .filter_map(|t| t.peer().map(str::to_string))
            .collect()
    }

    /// The channels we are in.
    pub fn joined_channels(&self) -> Vec<String> {
        self.list
            .iter()
            .filter(|t| t.joined)
            .filter_map(|t| t.channel().map(str::to_string))
            .collect()
    }

    /// Everyone we know of: channel members and peers, sorted.
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self
            .list
            .iter()
            .flat_map(|t| {
                t.members
                    .iter()
                    .cloned()
                    .chain(t.peer().map(str::to_string))
            })
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// Tab indices whose names match `query` (a subsequence, any case), best first.
    pub fn matching(&self, query: &str) -> Vec<usize> {
        let query = query.to_lowercase();
        let mut scored: Vec<(usize, usize)> = self
            .list
            .iter()
            .enumerate()
            .filter_map(|(i, t)| fuzzy_score(&t.name().to_lowercase(), &query).map(|s| (s, i)))
            .collect();
        scored.sort_unstable();
        scored.into_iter().map(|(_, i)| i).collect()
    }

    /// Scrolls the tab in front by `entries` (positive: toward older ones); near the top
    /// of what it holds, the page before is fetched. `page` is the screen's height.
    pub fn scroll_by(&mut self, entries: i32, page: usize, jobs: &mut Jobs) {
        let tab = &mut self.list[self.active];
        let max = tab.entries.len().saturating_sub(1);
        tab.scroll = if entries >= 0 {
            (tab.scroll + entries as usize).min(max)
        } else {
            tab.scroll.saturating_sub(entries.unsigned_abs() as usize)
        };
        if tab.scroll == 0 {
            // Back at the newest: what came meanwhile is on screen now.
            tab.unread = 0;
            tab.mentions = 0;
        }
        if tab.scroll + page >= tab.entries.len() {
            self.load_older(jobs);
        }
    }

    /// Fetches the page of history before what the tab in front holds, if there is one
    /// and it is not on its way already.
    pub fn load_older(&mut self, jobs: &mut Jobs) {
        let tab = &mut self.list[self.active];
        if tab.history != HistoryState::More {
            return;
        }
        if let Some(target) = tab.target.clone() {
            tab.history = HistoryState::Loading;
            ask_history(jobs, target, tab.oldest_id());
        }
    }

    /// Asks to join the channel of tab `index`; "you joined" will go where the tab ends
    /// now, before whatever arrives while the server answers.
    pub fn join(&mut self, index: usize, jobs: &mut Jobs) {
        let tab = &mut self.list[index];
        let Some(channel) = tab.channel().map(str::to_string) else {
            return;
        };
        tab.join_asked_at = Some(tab.entries.len());
        jobs.ask(Job::Join(channel));
    }

    /// After a login again: every channel tab joins again, and every peer tab follows
    /// its peer's presence again (a new session follows nobody's; the server tells each
    /// peer's state right after the subscribe).
    pub fn rejoin(&self, jobs: &mut Jobs) {
        for channel in self.channels() {
            jobs.ask(Job::Join(channel));
        }
        let peers = self.peers();
        if !peers.is_empty() {
            jobs.push(Effect::Subscribe(peers));
        }
    }

    /// The session ended (logged out, kicked): what the tabs showed of presence is no
    /// longer followed, so it is no longer shown.
    pub fn forget_presence(&mut self) {
        for tab in &mut self.list {
            tab.presence = None;
        }
    }

    pub fn on_joined(
        &mut self,
        channel: &str,
        result: Result<u64, Failure>,
        now: u64,
        jobs: &mut Jobs,
    ) {
        let target = Target::Channel(channel.to_string());
        let i = self.open(&target, jobs);
        let tab = &mut self.list[i];
        let count = match result {
            Ok(count) => count,
            Err(f) => return tab.error(now, format!("cannot join #{channel}: {f}")),
        };
        tab.joined = true;
        tab.member_count = Some(count);
        let members = if count == 1 { "member" } else { "members" };
        let line = format!("you joined #{channel} ({count} {members})");
        match tab.join_asked_at.take() {
            Some(at) => tab.insert_info(at, now, line),
            None => tab.info(now, line),
        }
        let load = tab.history == HistoryState::NotLoaded;
        if load {
            tab.history = HistoryState::Loading;
        }
        let channel = channel.to_string();
        jobs.ask_members(channel.clone(), now);
        jobs.ask_with(
            Pending::Attributes(AttributesShown::Header),
            Job::GetChannelAttributes(channel),
        );
        if load {
            ask_history(jobs, target, None);
        }
    }

    pub fn on_left(&mut self, channel: &str, result: Result<(), Failure>, now: u64) {
        let Some(i) = self.index_of(&Target::Channel(channel.to_string())) else {
            return;
        };
        let tab = &mut self.list[i];
        match result {
            Ok(()) => {
                // Out of the channel nothing tells us what changes: show none of it rather
                // than what may be gone (a join reads it again).
                tab.joined = false;
                tab.members.clear();
                tab.member_count = None;
                tab.attributes.clear();
                tab.info(now, format!("you left #{channel}"));
            }
            Err(f) => tab.error(now, format!("cannot leave: {f}")),
        }
    }

    pub fn on_members(&mut self, channel: &str, result: Result<Vec<String>, Failure>, now: u64) {
        let Some(i) = self.index_of(&Target::Channel(channel.to_string())) else {
            return;
        };
        let tab = &mut self.list[i];
        match result {
            Ok(mut members) => {
                members.sort();
                tab.member_count.get_or_insert(members.len() as u64);
                tab.members = members;
            }
            Err(f) => tab.error(now, format!("cannot list members: {f}")),
        }
    }

    /// A page of history for `target` (asked `before` that message id, or the newest).
    pub fn on_history(
        &mut self,
        target: &Target,
        before: Option<u64>,
        result: Result<Vec<HistoryMessage>, Failure>,
        me: &str,
        now: u64,
    ) {
        let Some(i) = self.index_of(target) else {
            return;
        };
        let tab = &mut self.list[i];
        let messages = match result {
            Ok(messages) => messages,
            Err(f) => {
                tab.history = HistoryState::Complete;
                return tab.error(now, format!("cannot load history: {f}"));
            }
        };
        let full = messages.len() as u32 >= HISTORY_PAGE;
        let added = tab.merge_history(&messages, me);
        // Our messages the history brings back get the mark they had in this run; one
        // from an earlier run was at least accepted by the server, peer message or not
        // (the history holds only what the server took).
        for entry in &mut tab.entries {
            if let EntryKind::Message(m) = &mut entry.kind {
                if m.own && m.mark.is_none() {
                    m.mark =
                        m.id.and_then(|id| self.marks.get(&(target.clone(), id)))
                            .cloned()
                            .or(Some(Mark::Accepted));
                }
            }
        }
        tab.history = if full && (added > 0 || before.is_none()) {
            HistoryState::More
        } else {
            HistoryState::Complete
        };
    }

    /// Someone joined or left `channel`.
    pub fn membership(&mut self, channel: &str, user: String, joined: bool, now: u64) {
        let Some(i) = self.index_of(&Target::Channel(channel.to_string())) else {
            return;
        };
        let tab = &mut self.list[i];
        let returning = tab.returning.iter().position(|u| *u == user);
        if let Some(at) = returning {
            tab.returning.swap_remove(at);
        }
        if joined && (tab.members.binary_search(&user).is_ok() || returning.is_some()) {
            // Already listed, or listed when our connection was lost: a rejoin after a
            // reconnect (or a server restart, which forgets the grace period). Nobody
            // left, so nobody "joined".
            tab.add_member(&user);
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

    /// The conversations to reopen next time: peer tabs, and channels joined (or being
    /// joined); a channel left but still on screen is not rejoined.
    fn open_conversations(&self) -> Vec<Target> {
        self.list
            .iter()
            .filter(|t| t.peer().is_some() || t.joined || t.join_asked_at.is_some())
            .filter_map(|t| t.target.clone())
            .collect()
    }

    /// The open conversations when they changed since last saved (and the last run's
    /// were restored); they count as saved from now.
    pub fn to_save(&mut self) -> Option<Vec<Target>> {
        let saved = self.saved.as_ref()?;
        let now = self.open_conversations();
        if *saved == now {
            return None;
        }
        self.saved = Some(now.clone());
        Some(now)
    }

    /// Reopens the conversations of the last run: channels are joined again, peer tabs
    /// opened (with their history). The tab in front stays in front.
    pub fn restore(&mut self, targets: Vec<Target>, now: u64, jobs: &mut Jobs) {
        for target in targets {
            if self.index_of(&target).is_some() {
                continue;
            }
            let i = self.open(&target, jobs);
            self.join(i, jobs);
        }
        let reopened: Vec<String> = self.list.iter().skip(1).map(Tab::name).collect();
        if !reopened.is_empty() {
            self.home().info(
                now,
                format!("reopened the tabs of last time: {}", reopened.join(" ")),
            );
        }
        self.saved = Some(self.open_conversations());
    }
}

fn ask_history(jobs: &mut Jobs, target: Target, before: Option<u64>) {
    jobs.ask(Job::History { target, before });
}

/// Subsequence match score (lower is better), `None` when `query` does not match `name`.
fn fuzzy_score(name: &str, query: &str) -> Option<usize> {
    let mut score = 0;
    let mut rest = name;
    let mut last = 0;
    for c in query.chars() {
        let at = rest.find(c)?;
        score += at + usize::from(last > 0 && at > 0);
        last += at + c.len_utf8();
        rest = &rest[at + c.len_utf8()..];
    }
    Some(score)
}

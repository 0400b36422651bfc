//! Which server each connection of a check case or a script goes to, when the QA kit is
//! given several (`--server A --server B`: the nodes of one cluster).
//!
//! The rule, the same for `check` and `script`: each new user goes to the next server in
//! turn (in a two-user case alice is on the first server, bob on the second), and a user
//! who connects again goes to the server after the one it used last. So every exchange
//! between two users crosses nodes, and so do a remote-login kick, a reconnect within the
//! grace and the delivery of cached messages at the next login. With one server every
//! connection goes there. [`Placement`] also remembers where each user went, for reports.

use std::fmt::Write as _;

/// Hands out servers to the connections of one case (or script run).
#[derive(Debug, Clone)]
pub struct Placement {
    servers: Vec<String>,
    /// The server the next new user gets.
    next_new: usize,
    /// Each user and the servers its connections went to, in order (by first connection).
    used: Vec<(String, Vec<usize>)>,
}

impl Placement {
    /// Spreads over `servers`; panics when there is none (the command line always gives one).
    pub fn new(servers: Vec<String>) -> Placement {
        assert!(!servers.is_empty(), "a placement needs at least one server");
        Placement {
            servers,
            next_new: 0,
            used: Vec::new(),
        }
    }

    /// The servers, in the order given.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Picks the server of a new connection of `user` and returns its index and URL.
    pub fn connect(&mut self, user: &str) -> (usize, &str) {
        let count = self.servers.len();
        let index = if let Some((_, used)) = self.used.iter_mut().find(|(name, _)| name == user) {
            let index = (used.last().copied().unwrap_or(0) + 1) % count;
            used.push(index);
            index
        } else {
            let index = self.next_new;
            self.next_new = (index + 1) % count;
            self.used.push((user.to_string(), vec![index]));
            index
        };
        (index, &self.servers[index])
    }

    /// Picks the server of a new connection of `user`: its URL, and the label the
    /// connection carries in traces and failure reasons (`alice@2` when there are several
    /// servers, to say which one; just `alice` with one).
    pub fn seat(&mut self, user: &str) -> (String, String) {
        let several = self.servers.len() > 1;
        let (index, url) = self.connect(user);
        let label = if several {
            format!("{user}@{}", index + 1)
        } else {
            user.to_string()
        };
        (url.to_string(), label)
    }

    /// Each user (by first connection) and the indexes of the servers its connections went to.
    pub fn used(&self) -> &[(String, Vec<usize>)] {
        &self.used
    }

    /// Where users went, for people: `alice@1 bob@2 alice@2` is written `alice@1,2 bob@2`
    /// (servers counted from 1, as reports list them); `strip` is removed from the front of
    /// each user id (a case's unique prefix).
    pub fn describe(&self, strip: &str) -> String {
        let mut out = String::new();
        for (user, used) in &self.used {
            if !out.is_empty() {
                out.push(' ');
            }
            let name = user.strip_prefix(strip).unwrap_or(user);
            let _ = write!(out, "{name}@");
            for (n, index) in used.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", index + 1);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Placement {
        Placement::new(vec!["ws://a".into(), "ws://b".into()])
    }

    #[test]
    fn new_users_take_turns_over_the_servers() {
        let mut placement = two();
        assert_eq!(placement.connect("alice"), (0, "ws://a"));
        assert_eq!(placement.connect("bob"), (1, "ws://b"));
        assert_eq!(placement.connect("carol"), (0, "ws://a"));
        assert_eq!(placement.connect("dave"), (1, "ws://b"));
    }

    #[test]
    fn a_user_who_connects_again_moves_to_the_next_server() {
        let mut placement = two();
        placement.connect("alice");
        placement.connect("bob");
        // The second login of alice (a remote-login kick, a reconnect) crosses nodes.
        assert_eq!(placement.connect("alice").1, "ws://b");
        assert_eq!(placement.connect("alice").1, "ws://a");
        // ...and does not shift where new users go.
        assert_eq!(placement.connect("carol").1, "ws://a");
        assert_eq!(placement.describe(""), "alice@1,2,1 bob@2 carol@1");
    }

    #[test]
    fn labels_name_the_server_only_when_there_is_a_choice() {
        let mut placement = two();
        assert_eq!(placement.seat("alice"), ("ws://a".into(), "alice@1".into()));
        assert_eq!(placement.seat("bob"), ("ws://b".into(), "bob@2".into()));
        let mut single = Placement::new(vec!["ws://only".into()]);
        assert_eq!(single.seat("alice"), ("ws://only".into(), "alice".into()));
    }

    #[test]
    fn one_server_takes_everything() {
        let mut placement = Placement::new(vec!["ws://only".into()]);
        for user in ["alice", "bob", "alice"] {
            assert_eq!(placement.connect(user), (0, "ws://only"));
        }
        assert_eq!(placement.describe("case-"), "alice@1,1 bob@1");
    }

    #[test]
    fn three_servers_wrap_around() {
        let mut placement = Placement::new(vec!["1".into(), "2".into(), "3".into()]);
        let firsts: Vec<usize> = ["a", "b", "c", "d"]
            .iter()
            .map(|u| placement.connect(u).0)
            .collect();
        assert_eq!(firsts, [0, 1, 2, 0]);
        assert_eq!(placement.connect("c").0, 0);
        assert_eq!(placement.describe(""), "a@1 b@2 c@3,1 d@1");
    }

    #[test]
    fn describe_strips_the_case_prefix() {
        let mut placement = two();
        placement.connect("qa1x-12-alice");
        placement.connect("qa1x-12-bob");
        placement.connect("storm");
        assert_eq!(placement.describe("qa1x-12-"), "alice@1 bob@2 storm@1");
    }
}

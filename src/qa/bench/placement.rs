//! Who each bench user is and which server it connects to: the same numbering for every
//! workload, so that a run over several servers puts a known share on each.

use super::Workload;

/// Which server (an index into the run's servers) user `n` connects to: round-robin by
/// user number, except that a peer pair straddles two servers. In fan-out the channel
/// senders are users `0..channels`, so with one channel the sender is on the first server
/// and the members alternate over all of them; in peer, sender `i` is on server
/// `i % servers` and its receiver (user `pairs + i`) on the next one, so that with
/// several servers every peer message goes from one server to another.
pub fn server_of(workload: Workload, users: u32, n: u32, servers: usize) -> usize {
    let pairs = users / 2;
    let slot = match workload {
        Workload::Peer if (pairs..2 * pairs).contains(&n) => n - pairs + 1,
        _ => n,
    };
    slot as usize % servers.max(1)
}

/// The user id of bench user `n` (this process's id keeps two runs apart).
pub(super) fn user_id(n: u32) -> String {
    format!("bench-{}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of `users` each of `servers` gets.
    fn loads(workload: Workload, users: u32, servers: usize) -> Vec<u32> {
        let mut loads = vec![0; servers];
        for n in 0..users {
            loads[server_of(workload, users, n, servers)] += 1;
        }
        loads
    }

    #[test]
    fn spreads_users_over_servers() {
        // One server: everyone on it.
        for workload in [
            Workload::Peer,
            Workload::Fanout,
            Workload::Login,
            Workload::Soak,
        ] {
            assert!((0..10).all(|n| server_of(workload, 10, n, 1) == 0));
        }
        // Fan-out: the sender (user 0) on the first server, the members alternating.
        let fanout: Vec<usize> = (0..6)
            .map(|n| server_of(Workload::Fanout, 1000, n, 2))
            .collect();
        assert_eq!(fanout, [0, 1, 0, 1, 0, 1]);
        assert_eq!(loads(Workload::Fanout, 1000, 2), [500, 500]);
        assert_eq!(loads(Workload::Soak, 999, 3), [333, 333, 333]);
        // Peer: every pair straddles two servers, whatever the number of pairs, and the
        // servers share the users evenly.
        for (users, servers) in [(20, 2), (22, 2), (2, 2), (30, 3), (7, 2)] {
            let pairs = users / 2;
            for i in 0..pairs {
                let sender = server_of(Workload::Peer, users, i, servers);
                let receiver = server_of(Workload::Peer, users, pairs + i, servers);
                assert_ne!(
                    sender, receiver,
                    "pair {i} of {users} users on {servers} servers"
                );
            }
            let loads = loads(Workload::Peer, pairs * 2, servers);
            let (least, most) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
            assert!(
                most - least <= 1,
                "{users} users on {servers} servers: {loads:?}"
            );
        }
    }
}

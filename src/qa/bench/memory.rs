//! The servers' resident memory: find the process listening on a loopback port through
//! `/proc/net/tcp{,6}` and `/proc/<pid>/fd`, and sample `VmRSS` from `/proc/<pid>/status`,
//! summed over the server processes (several `--server`s on this machine). Linux only;
//! elsewhere (or for another user's process) the bench reports no memory.

use std::time::Duration;

use super::MemoryReport;

/// How often memory is sampled during a run.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Whose memory to sample: the processes summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySource {
    /// Each process once (two URLs may lead to one server).
    pub pids: Vec<u32>,
    /// Said in the report: which processes these are.
    pub what: String,
}

impl MemorySource {
    /// The processes of `pids` (several servers' may be the same one), described for the
    /// report; `None` without any.
    pub fn of(pids: impl IntoIterator<Item = u32>, in_process: bool) -> Option<MemorySource> {
        let mut distinct: Vec<u32> = Vec::new();
        for pid in pids {
            if !distinct.contains(&pid) {
                distinct.push(pid);
            }
        }
        let what = if in_process {
            "in-process server (includes the load generator)".to_string()
        } else if distinct.len() == 1 {
            "server process".to_string()
        } else {
            format!("{} server processes, summed", distinct.len())
        };
        (!distinct.is_empty()).then_some(MemorySource {
            pids: distinct,
            what,
        })
    }
}

/// The process listening on `url`'s port, if the URL is loopback and the process is ours
/// to read.
pub(super) fn pid_for_url(url: &str) -> Option<u32> {
    pid_listening_on(loopback_port(url)?)
}

/// The resident set size of all of `pids` in KiB (`None` if any cannot be read).
pub(super) fn total_rss_kib(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySample {
    pub kib: u64,
}

/// Resident set size of `pid` in KiB.
pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The port of a `ws://` or `wss://` URL whose host is loopback.
pub(super) fn loopback_port(url: &str) -> Option<u16> {
    let (rest, default_port) = match url.strip_prefix("ws://") {
        Some(rest) => (rest, 80),
        None => (url.strip_prefix("wss://")?, 443),
    };
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host, port.parse().ok()?),
        _ => (authority, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then_some(port)
}

/// The pid owning a socket listening on `port`, found by the socket's inode.
fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN; inode is field 9.
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let listens = *state == "0A";
            let on_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if listens && on_port {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.to_str() == Some(i)) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Samples memory on a task until [`Sampler::finish`].
pub(super) struct Sampler {
    source: MemorySource,
    task: tokio::task::JoinHandle<Vec<u64>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Sampler {
    pub(super) fn start(source: MemorySource) -> Sampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let pids = source.pids.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => samples.extend(total_rss_kib(&pids)),
                    _ = &mut stopped => break,
                }
            }
            samples.extend(total_rss_kib(&pids));
            samples
        });
        Sampler { source, task, stop }
    }

    pub(super) async fn finish(self) -> Option<MemoryReport> {
        let _ = self.stop.send(());
        let samples = self.task.await.ok()?;
        Some(MemoryReport {
            pid: *self.source.pids.first()?,
            pids: self.source.pids,
            what: self.source.what,
            start_kib: *samples.first()?,
            peak_kib: samples.iter().copied().max()?,
            end_kib: *samples.last()?,
            load_start_kib: None,
            load_half_kib: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_only() {
        assert_eq!(loopback_port("ws://127.0.0.1:7420/rtm/v1"), Some(7420));
        assert_eq!(loopback_port("ws://localhost:9/rtm/v1"), Some(9));
        assert_eq!(loopback_port("ws://[::1]:8080/rtm/v1"), Some(8080));
        assert_eq!(loopback_port("ws://example.com:7420/rtm/v1"), None);
        assert_eq!(loopback_port("wss://127.0.0.1:7420/rtm/v1"), Some(7420));
        assert_eq!(loopback_port("wss://localhost/rtm/v1"), Some(443));
        assert_eq!(loopback_port("http://127.0.0.1:7420/"), None);
    }

    #[test]
    fn finds_our_own_listener_and_memory() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pid = pid_for_url(&format!("ws://127.0.0.1:{port}/rtm/v1")).expect("found");
        assert_eq!(pid, std::process::id());
        let one = rss_kib(pid).unwrap();
        assert!(one > 0);
        // The same process behind two URLs counts once.
        let source = MemorySource::of([pid, pid], false).unwrap();
        assert_eq!(source.pids, [pid]);
        assert_eq!(source.what, "server process");
        assert_eq!(MemorySource::of([], false), None);
        let two = MemorySource::of([pid, 1], false).unwrap();
        assert_eq!(two.what, "2 server processes, summed");
    }
}

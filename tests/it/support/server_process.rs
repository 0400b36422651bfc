//! The `rtm-tui serve` binary as a child process on 127.0.0.1, for the tests that need a
//! real server process (SIGKILL, restart, memory from /proc, command-line flags).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use super::WAIT;

/// A running `rtm-tui serve`, killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// The URL the server printed (`ws://` or `wss://`).
    pub url: String,
}

impl ServerProcess {
    /// Starts a server on `port` (0: any) with its store in `data_dir`.
    pub async fn start(data_dir: &Path, port: u16) -> ServerProcess {
        let listen = format!("127.0.0.1:{port}");
        let data_dir = data_dir.to_str().expect("UTF-8 temp path");
        ServerProcess::start_with(&["--listen", &listen, "--data-dir", data_dir]).await
    }

    /// Starts `rtm-tui serve ARGS` and waits for the line saying where it listens.
    pub async fn start_with(args: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start rtm-tui serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        tokio::time::timeout(WAIT, BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("the server says where it listens")
            .expect("read stdout");
        // "rtm-tui server listening on ws://127.0.0.1:PORT/rtm/v1"
        let url = line
            .split_whitespace()
            .last()
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let addr = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        ServerProcess { child, addr, url }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Resident memory of the server process (KiB), from /proc.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// SIGKILL: no shutdown, no flush; returns once the process is gone.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("kill");
        self.child.wait().await.expect("reaped");
    }
}

//! A terminal for end-to-end tests of the chat client: a tmux server of its own (own
//! socket, own `RTM_TUI_HOME`) with one 100x30 pane running a shell, the real `rtm-tui`
//! binary started in it; keys go in with `send-keys`, the screen comes back with
//! `capture-pane`, polled until what is expected shows (with a timeout, never a fixed
//! sleep). Used by `tui_e2e` and `tui_media_e2e`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Longest wait for the screen to show something (a busy 2-core box).
pub const WAIT: Duration = Duration::from_secs(15);
/// The shell prompt in the pane, to see the terminal given back after quitting.
pub const PROMPT: &str = "E2E-SHELL$";

/// A tmux server with one 100x30 pane running a shell; killed on drop.
pub struct Tmux {
    socket: String,
    _home: tempfile::TempDir,
    pub home_path: String,
}

impl Tmux {
    pub fn start(name: &str) -> Tmux {
        let socket = format!("rtm-e2e-{name}-{}", std::process::id());
        let home = tempfile::tempdir().unwrap();
        let home_path = home.path().display().to_string();
        let tmux = Tmux {
            socket,
            _home: home,
            home_path,
        };
        let shell = format!(
            "env -i PATH=/usr/bin:/bin TERM=xterm-256color HOME={} PS1='{PROMPT} ' sh",
            tmux.home_path
        );
        tmux.run(&["new-session", "-d", "-x", "100", "-y", "30", &shell]);
        tmux.wait_for(PROMPT);
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types a line and presses Enter.
    pub fn line(&self, text: &str) {
        self.run(&["send-keys", "-l", text]);
        self.keys(&["Enter"]);
    }

    /// Polls the screen until `check` holds; panics with the screen after [`WAIT`]. The
    /// polling blocks its thread: `block_in_place` hands the runtime's other tasks (the
    /// in-process server's among them) to another worker meanwhile, else a task queued on
    /// this one would wait for the poll to give up.
    pub fn wait_until(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        tokio::task::block_in_place(|| {
            let deadline = Instant::now() + WAIT;
            loop {
                let screen = self.screen();
                if check(&screen) {
                    return screen;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}; screen:\n{screen}\nthe client's log:\n{}",
                    self.log_tail()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    }

    /// The last lines of the chat client's log (`RTM_TUI_HOME/state`), for a failure.
    fn log_tail(&self) -> String {
        let dir = Path::new(&self.home_path).join("state");
        // `rtm-tui.log.<date>`, beside other state (`tabs.json`).
        let newest = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("rtm-tui.log"))
            })
            .max();
        let Some(text) = newest.and_then(|path| std::fs::read_to_string(path).ok()) else {
            return format!("(none in {})", dir.display());
        };
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn wait_for(&self, text: &str) -> String {
        self.wait_until(text, |s| s.contains(text))
    }

    pub fn format(&self, format: &str) -> String {
        self.run(&["display-message", "-p", format])
            .trim()
            .to_string()
    }
}

impl Tmux {
    /// Starts `rtm-tui` against `url` as `user` in the pane's shell (`env` before it),
    /// logging at debug level into its home, which a failed wait prints.
    pub fn launch(&self, env: &str, url: &str, user: &str) {
        let binary = env!("CARGO_BIN_EXE_rtm-tui");
        self.line(&format!(
            "{env} RTM_TUI_HOME={} RTM_TUI_LOG=debug {binary} --server {url} --app-id e2e --user {user}",
            self.home_path
        ));
        self.wait_for("[connected]");
    }

    /// alice and bob, each in a terminal of their own, logged in on these servers.
    pub fn alice_and_bob(name: &str, alice_url: &str, bob_url: &str) -> (Tmux, Tmux) {
        let alice = Tmux::start(&format!("{name}-alice"));
        alice.launch("", alice_url, "alice");
        let bob = Tmux::start(&format!("{name}-bob"));
        bob.launch("", bob_url, "bob");
        (alice, bob)
    }

    /// `/quit`, and waits for the shell to be back.
    pub fn quit(&self) {
        self.line("/quit");
        self.wait_for_shell();
    }

    /// Waits until rtm-tui has exited and the shell prompt shows again.
    pub fn wait_for_shell(&self) {
        self.wait_until("the shell prompt after quitting", |s| {
            s.lines().filter(|l| l.starts_with(PROMPT)).count() >= 2
        });
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

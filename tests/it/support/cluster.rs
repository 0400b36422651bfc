//! Several `rtm-tui serve` nodes sharing one Redis, as child processes on 127.0.0.1, for
//! the multi-node tests (`cluster`, and `tui_e2e` across two nodes): [`Redis`] (a `redis-server` on a free port
//! with an append-only file, killed and restarted on demand), [`Node`] (one `rtm-tui serve
//! --engine redis://... --node-id ID`) and [`Cluster`] (one Redis and N nodes).
//!
//! Every process is killed (SIGKILL) when its handle drops. Their logs go to files in a
//! temporary directory, never to the test output; when a test fails, a node's directory is
//! kept and the end of its log is printed with the failure (a node or Redis that fails to
//! start says why in the panic itself).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Longest a process may take to start answering (a debug build on a loaded 2-core box).
pub const START_WAIT: Duration = Duration::from_secs(20);
/// Free ports tried before giving up on starting Redis (another process may take the port
/// between the pick and redis-server's bind).
const REDIS_PORT_TRIES: usize = 5;
/// How often a starting Redis is asked for PONG: polling is the only way to see a
/// listener come up.
const POLL: Duration = Duration::from_millis(20);
/// Lines of a log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// A `redis-server` on 127.0.0.1 with an append-only file (fsync on every write), so that
/// its data survives [`Redis::kill`] and [`Redis::restart`]; killed when dropped.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    /// Its `--dir` (the append-only file) and `redis.log`.
    dir: TempDir,
}

impl Redis {
    /// Starts `redis-server` on a free port and returns once it answers PING.
    pub async fn start() -> Redis {
        let dir = temp_dir("rtm-redis-");
        let mut errors = Vec::new();
        for _ in 0..REDIS_PORT_TRIES {
            let port = free_port();
            match spawn_redis(dir.path(), port).await {
                Ok(child) => {
                    return Redis {
                        child: Some(child),
                        port,
                        dir,
                    }
                }
                Err(error) => errors.push(format!("port {port}: {error}")),
            }
        }
        panic!("cannot start redis-server:\n{}", errors.join("\n"));
    }

    /// `redis://127.0.0.1:PORT`, as `serve --engine` takes it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it answers PING with PONG now.
    pub async fn ping(&self) -> bool {
        redis_ping(self.port).await
    }

    /// Sends one command (its words as RESP bulk strings) and returns the reply: a simple
    /// string, error or integer as its line (`+OK`, `-ERR ...`, `:1`), a bulk string as
    /// its content, a nil as `(nil)`. Enough for the self-test; no Redis crate.
    pub async fn command(&self, words: &[&str]) -> String {
        let mut request = format!("*{}\r\n", words.len());
        for word in words {
            let _ = write!(request, "${}\r\n{word}\r\n", word.len());
        }
        let exchange = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut reply = Vec::new();
            loop {
                if let Some(parsed) = parse_reply(&reply) {
                    return Ok::<_, std::io::Error>(parsed);
                }
                let mut chunk = [0u8; 512];
                let read = stream.read(&mut chunk).await?;
                if read == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                reply.extend_from_slice(&chunk[..read]);
            }
        };
        tokio::time::timeout(START_WAIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("redis did not answer {words:?}"))
            .unwrap_or_else(|e| panic!("redis command {words:?}: {e}"))
    }

    /// SIGSTOP: it keeps its connections but answers nothing (a network cut, a hung
    /// host) until [`Redis::resume`].
    pub fn pause(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    /// SIGCONT after [`Redis::pause`]: it answers what came meanwhile.
    pub fn resume(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
            .expect("redis-server runs");
        rustix::process::kill_process(pid, signal).expect("redis-server takes the signal");
    }

    /// SIGKILL: no shutdown, no save; returns once the process is gone. What the
    /// append-only file holds (every write acknowledged so far) survives.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port and directory (killing it first if it runs), and
    /// returns once it answers PING: it has loaded its append-only file by then.
    pub async fn restart(&mut self) {
        self.kill().await;
        let mut errors = Vec::new();
        // The port was just ours; a second try covers a slow release of it.
        for _ in 0..3 {
            match spawn_redis(self.dir.path(), self.port).await {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(error) => errors.push(error),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "cannot restart redis-server on port {}:\n{}",
            self.port,
            errors.join("\n")
        );
    }
}

/// Starts `redis-server` on `port` with its data in `dir`; returns once it answers PING,
/// or why it did not (it exited, e.g. the port was taken, or it stayed silent).
async fn spawn_redis(dir: &Path, port: u16) -> Result<Child, String> {
    let log = dir.join("redis.log");
    let port_text = port.to_string();
    let mut child = Command::new("redis-server")
        .args(["--port", &port_text, "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args(["--logfile"])
        .arg(&log)
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .args(["--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run redis-server ({e}); install it (`bash .ci/test` does)"))?;
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server exited ({status}); its log ends:\n{}",
                log_tail(&log)
            ));
        }
        if redis_ping(port).await {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.start_kill();
            return Err(format!(
                "no PONG within {}s; its log ends:\n{}",
                START_WAIT.as_secs(),
                log_tail(&log)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `PING` → `+PONG` over a fresh connection (not `-LOADING` while it reads its file).
async fn redis_ping(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 64];
        let read = stream.read(&mut reply).await.ok()?;
        Some(reply[..read].starts_with(b"+PONG"))
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// One complete RESP reply at the start of `bytes`, or `None` while more must be read; an
/// array as its elements, one a line.
fn parse_reply(bytes: &[u8]) -> Option<String> {
    parse_one(bytes).map(|(reply, _)| reply)
}

/// One RESP value at the start of `bytes` and how many bytes it took.
fn parse_one(bytes: &[u8]) -> Option<(String, usize)> {
    let end = bytes.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let start = end + 2;
    if let Some(count) = line.strip_prefix('*') {
        let count: i64 = count.parse().ok()?;
        let (mut elements, mut at) = (Vec::new(), start);
        for _ in 0..count.max(0) {
            let (element, used) = parse_one(&bytes[at..])?;
            elements.push(element);
            at += used;
        }
        return Some((elements.join("\n"), at));
    }
    if !line.starts_with('$') {
        return Some((line, start));
    }
    let len: i64 = line[1..].parse().ok()?;
    if len < 0 {
        return Some(("(nil)".into(), start));
    }
    let stop = start + len as usize;
    (bytes.len() >= stop + 2).then(|| {
        (
            String::from_utf8_lossy(&bytes[start..stop]).into_owned(),
            stop + 2,
        )
    })
}

/// One `rtm-tui serve --engine REDIS --node-id ID --listen 127.0.0.1:0` (plus extra
/// arguments), with its own `RTM_TUI_HOME` and its log (stderr and stdout) in a file.
pub struct Node {
    child: Option<Child>,
    url: String,
    /// The node's `RTM_TUI_HOME` and its log.
    dir: TempDir,
    log: PathBuf,
}

impl Node {
    /// Starts a node on a free port and returns once it says where it listens; panics
    /// with the end of its log if it exits or stays silent instead.
    pub async fn start(redis_url: &str, node_id: &str, extra_args: &[&str]) -> Node {
        let dir = temp_dir(&format!("rtm-node-{node_id}-"));
        let log = dir.path().join(format!("{node_id}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_rtm-tui"))
            .arg("serve")
            .args(["--engine", redis_url, "--node-id", node_id])
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .env("RTM_TUI_HOME", dir.path().join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(append_to(&log))
            .kill_on_drop(true)
            .spawn()
            .expect("start rtm-tui serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let deadline = Instant::now() + START_WAIT;
        let url = loop {
            let mut line = String::new();
            let read = tokio::time::timeout_at(deadline, stdout.read_line(&mut line)).await;
            let _ = append_to_file(&log, &line);
            match read {
                // "rtm-tui server listening on ws://127.0.0.1:PORT/rtm/v1"
                Ok(Ok(n)) if n > 0 => {
                    if line.contains("listening on") {
                        break line
                            .split_whitespace()
                            .last()
                            .unwrap_or_default()
                            .to_string();
                    }
                }
                Ok(_) => {
                    let status = match tokio::time::timeout(START_WAIT, child.wait()).await {
                        Ok(Ok(status)) => status.to_string(),
                        other => format!("{other:?}"),
                    };
                    panic!(
                        "node {node_id} exited ({status}) before listening; its log ends:\n{}",
                        log_tail(&log)
                    );
                }
                Err(elapsed) => panic!(
                    "node {node_id} did not say where it listens ({elapsed}: {}s); its log ends:\n{}",
                    START_WAIT.as_secs(),
                    log_tail(&log)
                ),
            }
        };
        // Whatever the node prints later goes to its log too (and a closed pipe would fail
        // its writes).
        let mut rest = stdout.into_inner();
        let mut sink = tokio::fs::File::from_std(append_to_std(&log));
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut rest, &mut sink).await;
        });
        Node {
            child: Some(child),
            url,
            dir,
            log,
        }
    }

    /// The WebSocket URL the node printed (`ws://127.0.0.1:PORT/rtm/v1`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// SIGTERM, as an operator stops a node: it shuts down (its connections closed, what
    /// it owes Redis sent); returns once the process is gone.
    pub async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(id as i32));
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = tokio::time::timeout(START_WAIT, child.wait()).await;
        }
    }

    /// SIGKILL, as a node that dies: no shutdown, its connections cut; returns once the
    /// process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

impl Drop for Node {
    // The process itself is killed by `kill_on_drop` when `child` drops, after this.
    fn drop(&mut self) {
        keep_logs_of_a_failed_test(&mut self.dir, &self.log);
    }
}

/// One Redis (or several) and N nodes on it, named `n1`, `n2`, ...
pub struct Cluster {
    /// Dropped (killed) before Redis.
    pub nodes: Vec<Node>,
    /// The first Redis of the list (it carries the heartbeats).
    pub redis: Redis,
    /// The other Redis servers of the list (`serve --engine A,B,...`), in order.
    pub shards: Vec<Redis>,
}

impl Cluster {
    /// A Redis and `nodes` nodes with the server's defaults.
    pub async fn start(nodes: usize) -> Cluster {
        Cluster::start_with(nodes, &[]).await
    }

    /// A Redis and `nodes` nodes, each started with `extra_args` too.
    pub async fn start_with(nodes: usize, extra_args: &[&str]) -> Cluster {
        Cluster::start_sharded(nodes, 1, extra_args).await
    }

    /// `redis_servers` Redis servers and `nodes` nodes spreading their data over all of
    /// them (`serve --engine A,B,...`), each node started with `extra_args` too.
    pub async fn start_sharded(nodes: usize, redis_servers: usize, extra_args: &[&str]) -> Cluster {
        let redis = Redis::start().await;
        let mut shards = Vec::new();
        for _ in 1..redis_servers {
            shards.push(Redis::start().await);
        }
        let mut cluster = Cluster {
            nodes: Vec::with_capacity(nodes),
            redis,
            shards,
        };
        let engine = cluster.engine();
        for n in 1..=nodes {
            let node = Node::start(&engine, &format!("n{n}"), extra_args).await;
            cluster.nodes.push(node);
        }
        cluster
    }

    /// The `--engine` list of the cluster's Redis servers, the first first.
    pub fn engine(&self) -> String {
        std::iter::once(&self.redis)
            .chain(&self.shards)
            .map(Redis::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Redis `index` of the list (0: the first).
    pub fn redis_server(&self, index: usize) -> &Redis {
        if index == 0 {
            &self.redis
        } else {
            &self.shards[index - 1]
        }
    }

    /// The URL of node `index` (from 0: `url(0)` is `n1`'s).
    pub fn url(&self, index: usize) -> String {
        self.nodes[index].url()
    }
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// `path` opened for appending (created if missing): the log file several writers share.
fn append_to_std(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

fn append_to(path: &Path) -> Stdio {
    Stdio::from(append_to_std(path))
}

fn append_to_file(path: &Path, text: &str) -> std::io::Result<()> {
    append_to_std(path).write_all(text.as_bytes())
}

/// The last lines of a log file, for failure messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// When the test is failing: keeps a node's `dir` and prints the end of its `log` (the
/// test harness shows it with the failure).
fn keep_logs_of_a_failed_test(dir: &mut TempDir, log: &Path) {
    if std::thread::panicking() {
        dir.disable_cleanup(true);
        eprintln!("--- {} (kept) ends:\n{}\n---", log.display(), log_tail(log));
    }
}

//! The command line: clap types only. One subcommand per job; no subcommand runs the
//! interactive client. `main.rs` turns these into the library's config types.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Real-time messaging in the spirit of Agora RTM 1.x, in your terminal.
///
/// With no subcommand, rtm-tui is the interactive chat client. Without --server it connects
/// to ws://127.0.0.1:7420/rtm/v1 and, if nothing listens there, starts the reference server
/// inside the process, so that one command in each of two terminals is a working chat:
///
///   rtm-tui --app-id demo --user alice
///   rtm-tui --app-id demo --user bob
#[derive(Debug, Parser)]
#[command(name = "rtm-tui", version, propagate_version = true, verbatim_doc_comment, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub chat: ChatArgs,

    /// Log level (error, warn, info, debug, trace) or a tracing filter. The chat client logs
    /// to its log file, never to the screen; the other commands log to stderr. Default: info
    /// (warn for check, script, bench and headless).
    #[arg(long, global = true, env = "RTM_TUI_LOG")]
    pub log_level: Option<String>,
}

const AFTER_HELP: &str = "\
Files:
  config  $XDG_CONFIG_HOME/rtm-tui/config.toml (~/.config/rtm-tui)
  data    $XDG_DATA_HOME/rtm-tui (~/.local/share/rtm-tui): the server's SQLite store
  logs    $XDG_STATE_HOME/rtm-tui (~/.local/state/rtm-tui): rolling log files
  RTM_TUI_HOME=DIR puts all three under DIR.

Exit codes: 0 success, 1 failure (a check failed, a login was refused), 2 bad usage.";

/// How the interactive client logs in (also used by `demo`).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ChatArgs {
    /// App id to log in to; without it (or --user) a login form asks.
    #[arg(long, env = "RTM_APP_ID")]
    pub app_id: Option<String>,

    /// Your user id.
    #[arg(long, env = "RTM_USER")]
    pub user: Option<String>,

    /// Token for apps that have a certificate (see `rtm-tui token`).
    #[arg(long, env = "RTM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Command whose output is a fresh token, run when the server warns of expiry.
    #[arg(long)]
    pub token_cmd: Option<String>,

    /// Server URL; repeat it (or give a comma-separated list) for several nodes of one
    /// service. Without it, the config file's `server`, else ws://127.0.0.1:7420/rtm/v1,
    /// started in-process if nothing listens.
    ///
    /// A URL is ws://host:port/rtm/v1 (wss:// with TLS), or just host:port. With several
    /// (--server A --server B, or RTM_SERVER=A,B), the client logs in on the first that
    /// answers and, when its connection drops, reconnects to the next one, round the list;
    /// the status line shows the one in use.
    #[arg(long, value_name = "URL", env = "RTM_SERVER", value_delimiter = ',')]
    pub server: Vec<String>,

    /// Config file (default: the XDG config dir's config.toml); also for `demo`.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the reference server.
    Serve(ServeArgs),
    /// Build or inspect Agora RTM tokens (006 and 007).
    Token(TokenArgs),
    /// Check a server's conformance to protocol v1.
    Check(CheckArgs),
    /// Run a scenario script against a server.
    Script(ScriptArgs),
    /// Load-test a server: throughput, latency percentiles, CPU per operation and memory.
    Bench(BenchArgs),
    /// An embedded server, simulated users, and the chat client logged in as you.
    Demo(DemoArgs),
    /// A client without a screen: commands as lines on stdin, replies and events as JSON lines on stdout.
    Headless(HeadlessArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `rtm-tui serve`
#[derive(Debug, Args, Clone)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: the config file's, else 127.0.0.1:7420].
    #[arg(long)]
    pub listen: Option<SocketAddr>,

    /// Server config file (TOML: apps and certificates, limits, TLS; see the README).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// A customer key of the HTTP REST API (Agora's, plus kick and ban), as KEY:SECRET
    /// for HTTP Basic; repeatable. Without any (here or in the config file) the API is off.
    #[arg(long = "api-key", value_name = "KEY:SECRET")]
    pub api_keys: Vec<rtm::server::ApiKey>,

    /// Serve /healthz, /readyz and /metrics on this address alone (not on --listen).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// Accept app ids the server does not know (as apps without certificate). The default
    /// only on a loopback address with no --app (nor app in the config file); otherwise it
    /// must be asked for.
    #[arg(long)]
    pub open: bool,

    /// Serve wss:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Directory of the durable store (default: the XDG data dir).
    #[arg(long, conflicts_with = "ephemeral")]
    pub data_dir: Option<PathBuf>,

    /// Keep data in a temporary directory removed at exit (tests, demos).
    #[arg(long)]
    pub ephemeral: bool,

    /// Share users, channels, presence and history with other nodes through this Redis
    /// (redis://HOST:PORT[/DB]); run one `serve` per node against the same Redis. Repeat it
    /// (or give a comma-separated list) to spread channels, users and history over several
    /// Redis servers: every node must give the same list in the same order. Without it the
    /// server is a single node keeping its data in SQLite. See the README's "Running
    /// several nodes" for Redis persistence settings.
    #[arg(long, value_name = "URL", env = "RTM_ENGINE", value_delimiter = ',', conflicts_with_all = ["data_dir", "ephemeral"])]
    pub engine: Vec<String>,

    /// This node's name in logs and in its heartbeat (default: the host name and port).
    #[arg(long, value_name = "ID", requires = "engine")]
    pub node_id: Option<String>,

    /// With --engine: changes of an app between two snapshots of its state in Redis (a
    /// node loads an app's latest when its first user of the app comes, and reads on; the
    /// app's change stream is trimmed behind it).
    #[arg(long, value_name = "N", requires = "engine", default_value_t = rtm::server::SNAPSHOT_EVERY)]
    pub snapshot_every: u64,

    /// Reconnect grace period in seconds (docs/protocol.md: 30): how long a dropped user's
    /// channels and presence are kept for it to come back. Shorter for QA runs.
    #[arg(long, value_name = "SECONDS")]
    pub grace: Option<u64>,

    /// How long send_peer waits for the receiver's ack before answering 2, in seconds
    /// (docs/protocol.md: 10). Shorter for QA runs (`check --ack-timeout`).
    #[arg(long, value_name = "SECONDS")]
    pub ack_timeout: Option<u64>,

    /// How long an invitation may go unanswered before it fails, in seconds (docs/protocol.md:
    /// 60). Shorter for QA runs (`check --invite-expiry`).
    #[arg(long, value_name = "SECONDS")]
    pub invite_expiry: Option<u64>,

    /// How long before a token expires the server warns, in seconds (docs/protocol.md: 30;
    /// the config file's token_warning_secs). Shorter for QA runs (`check --token-warning`).
    #[arg(long, value_name = "SECONDS")]
    pub token_warning: Option<u64>,

    /// How long a channel's attributes outlive its last member, in seconds
    /// (docs/protocol.md: 300). Shorter for QA runs (`check --attribute-expiry`).
    #[arg(long, value_name = "SECONDS")]
    pub attribute_expiry: Option<u64>,

    /// How long uploaded files and images are kept, in seconds (docs/protocol.md: 7 days,
    /// 604800). Shorter for QA runs and tests of the expiry.
    #[arg(long, value_name = "SECONDS")]
    pub media_expiry: Option<u64>,

    /// Keep no files or images: `media_ticket` is answered 1, as a v1 server does.
    #[arg(long)]
    pub no_media: bool,

    /// Messages kept per conversation for `history`.
    #[arg(long, default_value_t = 1000)]
    pub history_limit: u32,

    /// An app the server knows, as ID or ID:CERTIFICATE; repeatable.
    #[arg(long = "app", value_name = "ID[:CERT]")]
    pub apps: Vec<String>,

    /// Turn off every per-connection rate limit (benchmarks, QA runs); each limit can
    /// also be set in the config file's [limits] table.
    #[arg(long)]
    pub no_rate_limits: bool,

    /// Longest wait, in milliseconds, for events to one connection to share a write (0:
    /// write each at once; replies never wait) [default: the config file's, else 20].
    #[arg(long, value_name = "MS")]
    pub write_delay: Option<u64>,

    /// Worker threads [default: one fewer than the cores, at least 1].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `rtm-tui token`
///
/// Builds an Agora RTM token, or with --inspect shows what a token holds and, given the
/// certificate, whether it verifies. Exit codes: 0 built / inspected (and verified when a
/// certificate was given), 1 the token is unreadable, invalid or expired, 2 bad usage.
#[derive(Debug, Args, Clone)]
pub(crate) struct TokenArgs {
    /// App id (Agora's form: 32 hex characters); when inspecting, defaults to the token's.
    #[arg(long, required_unless_present = "inspect")]
    pub app_id: Option<String>,
    /// App certificate (32 hex characters); when inspecting, checks the signature.
    #[arg(
        long,
        env = "RTM_APP_CERTIFICATE",
        hide_env_values = true,
        required_unless_present = "inspect"
    )]
    pub certificate: Option<String>,
    /// User id the token is for; when inspecting, defaults to a 007 token's RTM user.
    #[arg(long, required_unless_present = "inspect")]
    pub user: Option<String>,
    /// Seconds until the token expires (0: never).
    #[arg(long, default_value_t = 3600)]
    pub expire: u32,
    #[arg(long, value_enum, default_value_t = TokenFormat::V007)]
    pub format: TokenFormat,
    /// Print what TOKEN contains (and whether it verifies, with --certificate).
    #[arg(long, value_name = "TOKEN")]
    pub inspect: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TokenFormat {
    #[value(name = "006")]
    V006,
    #[value(name = "007")]
    V007,
}

/// A QA command's --server, completed as the chat client completes it: `host:port` gets
/// `ws://` and a missing path `/rtm/v1` ([`rtm::client::server_url`]).
#[allow(clippy::unnecessary_wraps)] // clap's value parsers return a Result
fn server_url(typed: &str) -> Result<String, String> {
    Ok(rtm::client::server_url(typed))
}

/// Output formats of the QA commands.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub(crate) enum OutputFormat {
    #[default]
    Text,
    Json,
    Junit,
}

/// `rtm-tui check`
///
/// Runs one named case per rule of protocol v1 with fresh users per case, several cases at
/// once (--jobs), shows progress on stderr, then prints a table (or JSON / JUnit XML) of pass, fail and skip with reasons.
/// Exit code 0 when no selected case fails, 1 when some fail, 2 when a server cannot be
/// reached or the arguments are wrong.
///
/// Several --server flags check the nodes of one cluster as one server: the users of each
/// case take turns over them (alice on the first, bob on the second, ...), and a user who
/// logs in again goes to the next one, so every exchange crosses nodes.
#[derive(Debug, Args, Clone)]
pub(crate) struct CheckArgs {
    /// Server URL; repeat it for the nodes of a cluster, which must share their state (the
    /// report names each server and which one every user was on).
    #[arg(long = "server", value_name = "URL", default_value = rtm::protocol::DEFAULT_URL,
          value_parser = server_url)]
    pub servers: Vec<String>,
    #[arg(long, default_value = "rtm-check")]
    pub app_id: String,
    /// Command that prints a token for a user id given as its last argument
    /// (RTM_CHECK_EXPIRE in its environment says how many seconds the token should live).
    #[arg(long)]
    pub token_cmd: Option<String>,
    /// Command that restarts the server (with several --server, what they share: every
    /// node, or their store), keeping its data, and returns once it is restarting: enables
    /// the case that cached messages survive a restart.
    #[arg(long)]
    pub restart_cmd: Option<String>,
    /// KEY:SECRET of the server's HTTP REST API (its `serve --api-key`): runs the rest.*
    /// cases, over plain HTTP to the last --server's host and port.
    #[arg(long, value_name = "KEY:SECRET")]
    pub api_key: Option<String>,
    /// Run only cases whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
    /// List the cases and the rules they check, then exit.
    #[arg(long)]
    pub list: bool,
    /// Skip cases that wait more than 10 s for a server timer (ack timeout, grace, expiry).
    #[arg(long)]
    pub quick: bool,
    /// How many cases run at once (each has its own users and channels). Cases that wait
    /// for a server timer start first, so a whole run takes about as long as the longest
    /// timer; 1 runs them one after the other.
    #[arg(long, default_value_t = rtm::qa::check::DEFAULT_JOBS, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub jobs: usize,
    /// The server's peer-ack timeout in seconds, if it is not docs/protocol.md's 10.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub ack_timeout: f64,
    /// The server's reconnect grace period in seconds, if it is not docs/protocol.md's 30.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub grace: f64,
    /// The server's invitation expiry in seconds, if it is not docs/protocol.md's 60.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub invite_expiry: f64,
    /// How long before token expiry the server warns, if not docs/protocol.md's 30 seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub token_warning: f64,
    /// How long a channel's attributes outlive its last member, if not docs/protocol.md's
    /// 300 seconds.
    #[arg(long, default_value_t = 300.0, value_name = "SECS")]
    pub attribute_expiry: f64,
    /// How long the server keeps uploaded files, if not docs/protocol.md's 7 days
    /// (604800 seconds); the media.expiry case waits for it when it is at most 300.
    #[arg(long, default_value_t = 604_800.0, value_name = "SECS")]
    pub media_expiry: f64,
    /// Print every frame sent and received to stderr (best with --filter, or --jobs 1 to
    /// keep the cases' frames apart).
    #[arg(long)]
    pub trace: bool,
    /// Also write the results as JUnit XML to FILE (one test case per case), whatever
    /// --format prints.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report to FILE: settings, the server's version, every
    /// case with its rule and, for failures, why.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// `rtm-tui script`
///
/// Plays a scenario (see assets/scenarios/README.md for the language). Exit code 0 when
/// every step holds, 1 when one fails (the line is printed), 2 for an unreadable or
/// malformed script or an unreachable server.
///
/// With --record FILE instead of a scenario, it records one: the headless client's
/// commands on stdin (see `rtm-tui headless`), with the codes they got, are written to
/// FILE as a scenario that replays as a regression test against any server.
///
/// Several --server flags spread the virtual users over the nodes of a cluster, as
/// `check` does: each new user goes to the next server, and a user who logs in again or
/// reconnects goes to the one after its last.
#[derive(Debug, Args, Clone)]
pub(crate) struct ScriptArgs {
    #[arg(required_unless_present = "record")]
    pub file: Option<PathBuf>,
    /// Record a scenario to FILE from headless commands on stdin, instead of playing one.
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    pub record: Option<PathBuf>,
    /// Server URL; repeat it for the nodes of a cluster.
    #[arg(long = "server", value_name = "URL", default_value = rtm::protocol::DEFAULT_URL,
          value_parser = server_url)]
    pub servers: Vec<String>,
    #[arg(long, default_value = "rtm-script")]
    pub app_id: String,
    /// Print every frame sent and received.
    #[arg(long)]
    pub trace: bool,
    /// Write a self-contained HTML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// `rtm-tui bench`
///
/// Without --server, starts the reference server in this process (temporary store, rate
/// limits off) and reports this process's memory, which then includes the load generator.
/// With a loopback --server, reports the memory of the process listening on its port when
/// it can be read.
///
/// Exit codes: 0 the run completed and met every --threshold; 1 a threshold was missed, or
/// the run stopped early because the server answered "too often" (its rate limits: the
/// message names a --rate that fits); 2 bad arguments or an unreachable server.
#[derive(Debug, Args, Clone)]
pub(crate) struct BenchArgs {
    /// Server URL; repeat to spread the users over several servers round-robin (a peer
    /// pair straddles two) [default: start the reference server in-process].
    #[arg(long, value_name = "URL", value_parser = server_url)]
    pub server: Vec<String>,
    /// App id every bench user logs in to (the server must accept it without a token).
    #[arg(long, default_value = "rtm-bench")]
    pub app_id: String,
    /// Workload: peer (send, ack, reply round trips), fanout (channel delivery),
    /// login (connect + login storm), soak (hold idle connections, ping, watch memory),
    /// media (each user uploads a file of --media-size and downloads it, over and over).
    #[arg(long, default_value = "peer")]
    pub workload: String,
    /// The media workload: bytes of each file (at most 31457280, the 30 MiB cap).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub media_size: u64,
    /// Users, one connection each (up to 20,000, spread over the source addresses
    /// 127.0.0.1-32 towards a loopback server); peer pairs them, fanout spreads them over
    /// the channels with one sender per channel.
    #[arg(long, default_value_t = 10)]
    pub users: u32,
    /// Channels of the fanout workload.
    #[arg(long, default_value_t = 1)]
    pub channels: u32,
    /// Operations per second in all (0: saturated, as fast as --window allows).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Seconds of load after set-up.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Print the report as JSON (for scripts and `cargo bench --bench versus_node`).
    #[arg(long)]
    pub json: bool,
    /// Draw latency by percentile and completions and errors per second to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Worker threads of the load generator [default: one fewer than the cores, at least 1].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Saturated runs (--rate 0): peer messages in flight per sender [default: 64], or
    /// channel messages not yet received by every member per sender [default: 32].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub window: Option<u32>,
    /// A budget the run must meet, as MEASURE OP VALUE: p99<50ms, p50<=2ms, max<1s,
    /// errors==0, error_rate<1%, throughput>=10000, completed>0 (measures: p50 p90 p99
    /// p99.9 max mean errors error_rate throughput completed). Repeatable; a table shows
    /// each met or MISSED, and a missed one makes the exit code 1.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<rtm::qa::bench::threshold::Threshold>,
    /// Thresholds from a TOML file, `thresholds = ["p99<50ms", "errors==0"]`, added to
    /// those of --threshold (keep a CI job's budgets in the repository).
    #[arg(long, value_name = "FILE")]
    pub thresholds_file: Option<PathBuf>,
    /// Write the thresholds as JUnit XML to FILE, one test case per threshold.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report to FILE: settings, the server's version,
    /// results, thresholds, the plots, and the server's own metrics when it serves them.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Where the server's Prometheus metrics are read for the report [default: GET
    /// /metrics on each --server's host and port; nothing is shown when none answer].
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,
}

/// `rtm-tui demo`
#[derive(Debug, Args, Clone)]
pub(crate) struct DemoArgs {
    /// Your user id in the demo.
    #[arg(long, default_value = "you")]
    pub user: String,
}

/// `rtm-tui headless`
///
/// Reads commands as lines on stdin (`login alice`, `join lobby`, `say lobby "hi all"`,
/// `send bob hello`, `raw {"op":"ping"}`, `wait message_from_peer 5`, `quit`; see
/// `rtm::qa::headless`) and writes every reply, event and state change as one JSON object
/// per line on stdout. Exit code 0 at the end of input, 2 for a bad app id or URL.
#[derive(Debug, Args, Clone)]
pub(crate) struct HeadlessArgs {
    #[arg(long, value_name = "URL", default_value = rtm::protocol::DEFAULT_URL, value_parser = server_url)]
    pub server: String,
    #[arg(long)]
    pub app_id: String,
    /// Also write what is done as a scenario to FILE (`rtm-tui script FILE` replays it):
    /// each command with the code it got, each `wait` as an `expect`, events as comments.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_repeats_and_takes_comma_separated_lists() {
        let cli = Cli::try_parse_from([
            "rtm-tui", "--server", "a:1", "--server", "b:2,c:3", "--user", "alice",
        ])
        .unwrap();
        assert_eq!(cli.chat.server, ["a:1", "b:2", "c:3"]);
        let cli = Cli::try_parse_from(["rtm-tui"]).unwrap();
        assert!(cli.chat.server.is_empty(), "no --server: the default");
        // The subcommands keep their own single --server.
        let cli = Cli::try_parse_from(["rtm-tui", "check", "--server", "a:1"]).unwrap();
        assert!(cli.chat.server.is_empty());
    }
}

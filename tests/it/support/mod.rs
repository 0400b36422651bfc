//! Helpers shared by the integration tests: a real server on 127.0.0.1:0 here; the
//! submodules hold what a family of tests needs: [`raw`] (raw protocol JSON, the QA kit's
//! connection with expectations that panic), [`client`] (the client library's tests),
//! [`cluster`] (nodes on one Redis), [`server_process`] (`rtm-tui serve` as a child
//! process) and [`token_builders`] (Agora's official token builders).
//!
//! Every wait has a timeout ([`WAIT`]); nothing sleeps "long enough".

pub mod client;
pub mod cluster;
pub mod raw;
pub mod server_process;
pub mod token_builders;

use std::time::Duration;

use rtm::server::{Config, RunningServer};

/// Longest wait for any expected reply, event or close.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts a server on 127.0.0.1:0 with `config`.
pub async fn start_server(config: Config) -> RunningServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    rtm::server::spawn(listener, config)
        .await
        .expect("server starts")
}

/// A config for tests: temporary store, protocol.md's values otherwise.
pub fn test_config() -> Config {
    Config::ephemeral()
}

/// A text message body.
pub use rtm::qa::check::text;

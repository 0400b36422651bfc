//! One real server for many cases, on its own runtime: what property tests
//! (`server_arbitrary_input.rs`) and the fuzz target `fuzz/fuzz_targets/request_handling.rs`
//! (which includes this file by path) throw arbitrary input at. A fresh server per case
//! would be mostly SQLite start-up; cases use distinct users so they do not kick each other.
//! Only `rtm` and tokio here: the fuzz crate has nothing else of the tests.

use std::sync::OnceLock;
use std::time::Duration;

use rtm::server::{Config, RateLimits, RunningServer};
use tokio::runtime::Runtime;

/// A server on 127.0.0.1:0 and the runtime it runs on.
pub struct SharedServer {
    pub runtime: Runtime,
    pub server: RunningServer,
}

/// The process's shared server, started at the first call: no rate limits (they would
/// turn most arbitrary input into "too often": the handlers are what is tested), and short
/// ack timeouts and grace periods, so that what a case leaves behind ends soon.
pub fn shared_server() -> &'static SharedServer {
    static SHARED: OnceLock<SharedServer> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = Runtime::new().expect("runtime");
        let server = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let mut config = Config::ephemeral();
            config.rate_limits = RateLimits::unlimited();
            config.ack_timeout = Duration::from_millis(100);
            config.grace = Duration::from_millis(100);
            rtm::server::spawn(listener, config)
                .await
                .expect("server starts")
        });
        SharedServer { runtime, server }
    })
}

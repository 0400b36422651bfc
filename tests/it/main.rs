//! The integration tests, as one test binary (one link instead of one per file): a real
//! server on 127.0.0.1:0, real sockets, real processes and a real terminal where needed.
//!
//! A module per subject, named after what it tests: `server_*` speak raw protocol JSON to
//! the reference server, `client_*` drive the client library against it, `cluster` runs
//! several nodes on one Redis, `qa_*` the QA kit and its subcommands, `tui_*` the terminal
//! app (rendered into a test backend, and end to end in tmux), `token_*` the tokens.
//! Helpers shared by several modules live in [`support`]; a new test file is a new `mod`
//! line here. Run one subject with `cargo test --test it server_peer::`.

// A test binary has no users: `pub` here means shared between its modules.
#![allow(unreachable_pub)]

mod support;

mod architecture;
mod client_failover;
mod client_local;
mod client_media;
mod client_messaging;
mod client_reconnect;
mod client_surface;
mod client_token;
mod cluster;
mod cluster_latency;
mod cluster_media;
mod cluster_shards;
mod protocol_fixtures;
mod qa_check;
mod qa_ci;
mod qa_commands;
mod qa_faulty_proxy;
mod qa_headless;
mod qa_restart;
mod server_admission;
mod server_arbitrary_input;
mod server_attributes;
mod server_channel;
mod server_config;
mod server_core;
mod server_data_dir;
mod server_disk_full;
mod server_faults;
mod server_hardening;
mod server_http_api;
mod server_http_cluster;
mod server_invitations;
mod server_limits;
mod server_media;
mod server_peer;
mod server_presence;
mod server_tls;
mod server_tokens;
mod server_under_abuse;
mod token_cli;
mod token_interop;
mod tui_e2e;
mod tui_media_e2e;
mod tui_render;

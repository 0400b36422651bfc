//! rtm: real-time messaging in the spirit of Agora RTM 1.x.
//!
//! The rooms, and which way their arrows point (the README's "Layout"):
//! `protocol` (wire types, no I/O) ← `server` (reference server) and `client` (library)
//! ← `tui` (terminal app) and `qa` (conformance, scripts, load). `token` is pure and used by
//! the server and the `token` subcommand. `paths` says where files live.
//!
//! `protocol`, `token` and `client` are always built; `server`, `tui` and `qa` are the
//! Cargo features of the same names (all on by default). A client application depends on
//! `rtm-tui` with `default-features = false` and builds none of SQLite, Redis, ratatui or
//! clap.

pub mod client;
#[cfg(any(feature = "server", feature = "tui"))]
pub mod paths;
pub mod protocol;
#[cfg(feature = "qa")]
pub mod qa;
#[cfg(feature = "server")]
pub mod server;
pub mod token;
#[cfg(feature = "tui")]
pub mod tui;

//! rtm: real-time messaging in the spirit of Agora RTM 1.x.
//!
//! The rooms, and which way their arrows point (see `shared/style.md`):
//! `protocol` (wire types, no I/O) ← `server` (reference server) and `client` (library)
//! ← `tui` (terminal app) and `qa` (conformance, scripts, load). `token` is pure and used by
//! the server and the `token` subcommand. `paths` says where files live.

pub mod client;
pub mod paths;
pub mod protocol;
pub mod qa;
pub mod server;
pub mod token;
pub mod tui;

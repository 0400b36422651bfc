//! One module per job of the command line: each turns clap arguments into library calls and
//! an exit code. New subcommands get a file here and an arm in `main.rs`'s dispatch.

pub mod chat;
pub mod qa;
pub mod serve;
pub mod token;

//! The terminal chat client: state ([`app`]), keys ([`keymap`], [`input`], [`command`]),
//! drawing ([`render`]), and the shell around them ([`event_loop`], [`terminal`],
//! [`config`]). Talks only to `client/` and `protocol/`; the one exception is starting the
//! reference server in-process, kept in `embedded.rs` and `demo.rs`.

pub mod action;
pub mod app;
pub mod clock;
pub mod command;
pub mod config;
pub mod input;
pub mod keymap;
pub mod login;
pub mod tab;

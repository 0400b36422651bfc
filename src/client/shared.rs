//! [`ClientState`]: the state the [`Client`](super::Client) handle and its connection task both
//! read and write (the connection state, the user, the server, the channels created), and
//! [`lock`], the one way to reach it.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use crate::protocol::{ChangeReason, ConnectionState};

/// What the handle and the connection task both read: the state for
/// [`Client::state`], the user for [`Client::user`], the server for
/// [`Client::current_server`], and the channels created.
#[derive(Debug)]
pub(crate) struct ClientState {
    pub(crate) state: ConnectionState,
    pub(crate) reason: ChangeReason,
    pub(crate) user: Option<String>,
    pub(crate) server: Option<String>,
    pub(crate) created_channels: HashSet<String>,
}

impl ClientState {
    /// A client that has not logged in yet: DISCONNECTED, nothing created.
    pub(crate) fn new() -> Self {
        ClientState {
            state: ConnectionState::Disconnected,
            reason: ChangeReason::Logout,
            user: None,
            server: None,
            created_channels: HashSet::new(),
        }
    }
}

/// Locks the shared state; a panic elsewhere cannot leave it half-written (every writer
/// sets plain fields), so a poisoned lock is still good to read.
pub(crate) fn lock(shared: &Mutex<ClientState>) -> MutexGuard<'_, ClientState> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

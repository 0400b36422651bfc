//! `handle`'s arms for the issue-5 ops: presence, attributes, invitations.

use std::time::Instant;

use crate::protocol::{Op, Reply};

use super::hub::Hub;
use super::session::{Identity, Session};

/// Handles every op `session::handle` does not.
pub(super) fn handle_extra(
    id: u32,
    op: &Op,
    _me: &Identity,
    session: &mut Session,
    _hub: &Hub,
    _now: Instant,
) {
    let family = op.family();
    session.conn.send_reply(&Reply::code(
        id,
        family.failure(),
        format!("{} is not supported by this server yet", op.name()),
    ));
}

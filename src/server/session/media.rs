//! `media_ticket`: a ticket for the logged-in user's uploads and downloads over HTTP
//! (docs/protocol.md, "Files and images"; the transfers are `http/media.rs`).

use super::Ask;
use crate::protocol::codes::{media, Family};
use crate::protocol::limits::MAX_MEDIA_BYTES;
use crate::protocol::{MediaTicketResult, Reply};
use crate::server::media::{TicketHolder, TICKET_LIFE};

pub(super) fn ticket(ask: &Ask<'_>) {
    let Some(store) = ask.hub.media() else {
        // What a v1 server answers too (unknown op): no media here.
        let reason = Family::Media.describe(media::FAILURE);
        return ask.reply(&Reply::code(ask.id, media::FAILURE, reason));
    };
    let holder = TicketHolder {
        app: ask.me.app.clone(),
        user: ask.me.user.clone(),
    };
    if let Some(ticket) = store.ticket(holder) {
        ask.ok(&MediaTicketResult {
            ticket,
            expires_in_ms: TICKET_LIFE.as_millis() as u64,
            max_bytes: MAX_MEDIA_BYTES,
        });
    } else {
        let reason = Family::Media.describe(media::TOO_OFTEN);
        ask.reply(&Reply::code(ask.id, media::TOO_OFTEN, reason));
    }
}

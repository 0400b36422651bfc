//! `handle`'s `history` (HISTORY codes): a page of a peer conversation or of a channel the
//! user is in, read from the engine's message store, cut to one object's size.

use crate::protocol::limits::{DEFAULT_HISTORY_LIMIT, MAX_OBJECT_BYTES};
use crate::protocol::{HistoryError, HistoryMessage, HistoryResult};

use super::Ask;
use crate::server::engine::{channel_conversation, peer_conversation, Outcome, ReadError};
use crate::server::store::HistoryQuery;

/// `history` of exactly one of `peer` and `channel`, at most `limit` (1..100) messages
/// strictly before and after the given ids.
pub(super) async fn history(
    ask: &Ask<'_>,
    (peer, channel): (Option<String>, Option<String>),
    (before, after): (Option<u64>, Option<u64>),
    limit: Option<u32>,
) {
    let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    let me = &ask.me;
    let conv = match (peer, channel) {
        (Some(peer), _) => peer_conversation(&me.user, &peer),
        (None, Some(channel)) => {
            if !ask.hub.is_member(&me.app, &me.user, &channel) {
                return ask.refuse(HistoryError::NotInChannel);
            }
            channel_conversation(&channel)
        }
        // `Op::check` asks for exactly one of the two.
        (None, None) => return ask.refuse(HistoryError::InvalidArgument),
    };
    let query = HistoryQuery {
        before,
        after,
        limit,
    };
    match ask
        .hub
        .engine()
        .messages()
        .history(&me.app, &conv, query)
        .await
    {
        Ok(messages) => {
            let (messages, truncated) = fit_page(messages, after.is_some());
            ask.ok(&HistoryResult {
                messages,
                truncated,
            });
        }
        Err(ReadError::Store(e)) => ask.refuse_why(HistoryError::Failure, e.to_string()),
        // Redis' own words go to the log; the client hears what it can act on.
        Err(e) => {
            tracing::warn!(error = %e, "history could not be read");
            ask.unavailable(&Outcome::Unavailable);
        }
    }
}

/// Room the reply takes around its messages (`{"id":..,"code":0,"result":{..}}`).
const REPLY_OVERHEAD_BYTES: usize = 256;

/// Keeps the messages (oldest first) that fit in one object: the newest ones of a page
/// read backward (no `after`), the oldest of one read forward, so that the next page,
/// from the last one kept, misses nothing. At least one is kept; true when some were cut.
fn fit_page(mut messages: Vec<HistoryMessage>, forward: bool) -> (Vec<HistoryMessage>, bool) {
    let mut room = MAX_OBJECT_BYTES - REPLY_OVERHEAD_BYTES;
    let size = |m: &HistoryMessage| serde_json::to_string(m).map_or(0, |s| s.len()) + 1;
    let fits = |m: &HistoryMessage, room: &mut usize| {
        let size = size(m);
        let fits = size <= *room;
        *room = room.saturating_sub(size);
        fits
    };
    let total = messages.len();
    let kept = if forward {
        let mut kept = messages.iter().take_while(|m| fits(m, &mut room)).count();
        kept = kept.max(1).min(total);
        messages.truncate(kept);
        kept
    } else {
        let mut kept = messages
            .iter()
            .rev()
            .take_while(|m| fits(m, &mut room))
            .count();
        kept = kept.max(1).min(total);
        messages.drain(..total - kept);
        kept
    };
    (messages, kept < total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;

    fn message(id: u64, bytes: usize) -> HistoryMessage {
        HistoryMessage {
            message_id: id,
            from: "alice".into(),
            message: Message::text("x".repeat(bytes)),
            server_ts: 0,
        }
    }

    #[test]
    fn a_page_fits_one_object() {
        let page: Vec<_> = (1..=10).map(|id| message(id, 30_000)).collect();
        let (back, cut) = fit_page(page.clone(), false);
        assert!(cut);
        assert_eq!(
            back.iter().map(|m| m.message_id).collect::<Vec<_>>(),
            [9, 10]
        );
        let (forward, cut) = fit_page(page, true);
        assert!(cut);
        assert_eq!(
            forward.iter().map(|m| m.message_id).collect::<Vec<_>>(),
            [1, 2]
        );
        let small: Vec<_> = (1..=100).map(|id| message(id, 100)).collect();
        assert_eq!(fit_page(small, false).0.len(), 100);
    }
}

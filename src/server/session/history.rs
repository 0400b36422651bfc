//! `handle`'s `history` (HISTORY codes): a page of a peer conversation or of a channel the
//! user is in, read from the engine's message store.

use crate::protocol::limits::DEFAULT_HISTORY_LIMIT;
use crate::protocol::{HistoryError, HistoryResult};

use super::super::hub::{channel_conversation, peer_conversation};
use super::super::store::HistoryQuery;
use super::Ask;

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
        Ok(messages) => ask.ok(&HistoryResult { messages }),
        Err(e) => ask.refuse_why(HistoryError::Failure, e),
    }
}

//! `handle`'s `history` (HISTORY codes): a page of a peer conversation or of a channel the
//! user is in, read from the engine's message store.

use crate::protocol::limits::{
    validate_channel_id, validate_user_id, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT,
};
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
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return ask.refuse_why(HistoryError::InvalidArgument, "limit must be 1..100");
    }
    let me = &ask.me;
    let conv = match (peer, channel) {
        (Some(peer), None) => match validate_user_id(&peer) {
            Ok(()) => peer_conversation(&me.user, &peer),
            Err(e) => return ask.refuse_why(HistoryError::InvalidArgument, e.to_string()),
        },
        (None, Some(channel)) => {
            if let Err(e) = validate_channel_id(&channel) {
                return ask.refuse_why(HistoryError::InvalidArgument, e.to_string());
            }
            if !ask.hub.is_member(&me.app, &me.user, &channel) {
                return ask.refuse(HistoryError::NotInChannel);
            }
            channel_conversation(&channel)
        }
        _ => {
            return ask.refuse_why(
                HistoryError::InvalidArgument,
                "give exactly one of \"peer\" and \"channel\"",
            )
        }
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

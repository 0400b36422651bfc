//! `handle`'s attribute ops (ATTR codes): writes of the user's own attributes and of a
//! channel's (set, add or update, delete, clear; one rate limit for all), and reads of
//! either.
//!
//! The sets, their size limits and the expiry of an empty channel's are the hub's
//! (`hub/attributes.rs`).

use crate::protocol::{AttrError, ChannelAttributesResult, UserAttributesResult};

use super::Ask;
use crate::protocol::AttributeWrite;
use crate::server::engine::Change;
use crate::server::engine::Outcome;

/// Counts a write against the rate limit; answers "too often" if over.
fn admitted(ask: &mut Ask<'_>) -> bool {
    ask.within(|limits| &mut limits.attribute_writes, AttrError::TooOften)
}

/// Submits an attribute write and answers 0 or its ATTR code.
async fn submit_write(ask: &Ask<'_>, change: Change) {
    match ask.submit(change).await {
        Outcome::AttributesWritten(result) => ask.ok_or_refuse(result),
        other => ask.unavailable(&other),
    }
}

/// A write of the user's own attributes (straight to the engine: no shared change).
pub(super) async fn write_user(ask: &mut Ask<'_>, write: AttributeWrite) {
    if !admitted(ask) {
        return;
    }
    let conn = ask.hub.conn_id(&ask.session.conn);
    let written = ask
        .hub
        .write_user_attributes(&ask.me.app, &ask.me.user, conn, &write)
        .await;
    ask.ok_or_refuse(written);
}

/// A write of a channel's attributes (members or not); `notify` tells its members.
pub(super) async fn write_channel(
    ask: &mut Ask<'_>,
    channel: String,
    write: AttributeWrite,
    notify: bool,
) {
    if !admitted(ask) {
        return;
    }
    let change = Change::ChannelAttributes {
        app: ask.me.app.clone(),
        user: ask.me.user.clone(),
        channel,
        write,
        notify,
    };
    submit_write(ask, change).await;
}

/// `get_user_attributes` of an online user: all, or the listed keys that exist.
pub(super) async fn get_user(ask: &Ask<'_>, user: &str, keys: Option<&[String]>) {
    match ask.hub.user_attributes(&ask.me.app, user, keys).await {
        Ok(attributes) => ask.ok(&UserAttributesResult { attributes }),
        Err(error) => ask.refuse(error),
    }
}

/// `get_channel_attributes`: all, or the listed keys that exist (none for an unknown
/// channel).
pub(super) fn get_channel(ask: &Ask<'_>, channel: &str, keys: Option<&[String]>) {
    let attributes = ask.hub.channel_attributes(&ask.me.app, channel, keys);
    ask.ok(&ChannelAttributesResult { attributes });
}

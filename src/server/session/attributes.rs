//! `handle`'s attribute ops (ATTR codes): writes of the user's own attributes and of a
//! channel's (set, add or update, delete, clear; one rate limit for all), and reads of
//! either.
//!
//! The rules of a write (size limits, who wrote which key when) are the hub's
//! (`hub/attributes.rs`); the attributes themselves, and the expiry of an empty
//! channel's, the engine's. Neither goes through the shared state's changes.

use crate::protocol::{AttrError, ChannelAttributesResult, UserAttributesResult};

use super::Ask;
use crate::protocol::AttributeWrite;

/// Counts a write against the rate limit; answers "too often" if over.
fn admitted(ask: &mut Ask<'_>) -> bool {
    ask.within(|limits| &mut limits.attribute_writes, AttrError::TooOften)
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
    let (app, user) = (&ask.me.app, &ask.me.user);
    let written = ask
        .hub
        .write_channel_attributes((app, user, &channel), &write, notify)
        .await;
    ask.ok_or_refuse(written);
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
pub(super) async fn get_channel(ask: &Ask<'_>, channel: &str, keys: Option<&[String]>) {
    match ask.hub.channel_attributes(&ask.me.app, channel, keys).await {
        Ok(attributes) => ask.ok(&ChannelAttributesResult { attributes }),
        Err(error) => ask.refuse(error),
    }
}

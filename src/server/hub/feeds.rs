//! What the REST API's event feeds need of the shared state ([`AppAdmin`], in
//! `Tenant::admin`; `admin.rs` changes it). The feeds themselves are
//! the engine's (`engine/event_feeds.rs`): a change notes the events it makes here, and
//! `Hub::apply` hands them to the engine's feed store on the change's origin.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::server::engine::{Feed, FeedEvent};

/// Who one app's user feed holds as online.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AppAdmin {
    /// Users whose `Login` the user feed got without a `Logout` since.
    pub(super) online: BTreeSet<String>,
    /// The events of the change being applied, in order, until `Hub::apply` hands them
    /// on (never kept across changes).
    #[serde(skip)]
    pub(super) noted: Vec<(Feed, FeedEvent)>,
}

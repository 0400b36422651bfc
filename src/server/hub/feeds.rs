//! One app's bans and what the REST API's event feeds need of the shared state
//! ([`AppAdmin`], in `Tenant::admin`; `admin.rs` changes them). The feeds themselves are
//! the engine's (`engine/event_feeds.rs`): a change notes the events it makes here, and
//! `Hub::apply` hands them to the engine's feed store on the change's origin.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::server::engine::{Feed, FeedEvent};

/// One app's bans, and who its user feed holds as online.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AppAdmin {
    /// Banned user → end of the ban (unix seconds; [`BANNED_FOREVER`]).
    pub(super) bans: HashMap<String, u64>,
    /// Users whose `Login` the user feed got without a `Logout` since.
    pub(super) online: BTreeSet<String>,
    /// The events of the change being applied, in order, until `Hub::apply` hands them
    /// on (never kept across changes).
    #[serde(skip)]
    pub(super) noted: Vec<(Feed, FeedEvent)>,
}

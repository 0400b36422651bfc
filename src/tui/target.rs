//! [`Target`]: a conversation, with a peer or in a channel. What a tab shows, what a job
//! is about (`job.rs`), what the tabs of the last run are saved as (`saved_tabs.rs`).

/// A conversation: what a tab shows, what `history` is asked about, what is saved for the
/// next run.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Peer(String),
    Channel(String),
}

impl Target {
    pub fn id(&self) -> &str {
        match self {
            Target::Peer(id) | Target::Channel(id) => id,
        }
    }
}

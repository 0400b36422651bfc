//! Records kept per user and generation in one node's memory: what the memory engine's
//! user attributes (`user_attributes.rs`) and presence subscriptions
//! (`subscriptions.rs`) share. What a generation is: `user_attributes.rs`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// A user's record, of the generation that wrote it.
#[derive(Debug, Default)]
pub(super) struct OfGeneration<T> {
    pub generation: u64,
    pub value: T,
}

/// Records by (app, user), each of one generation.
#[derive(Debug)]
pub(super) struct PerUser<T> {
    records: Mutex<HashMap<(String, String), OfGeneration<T>>>,
}

impl<T> Default for PerUser<T> {
    fn default() -> Self {
        PerUser {
            records: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> PerUser<T> {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), OfGeneration<T>>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets `user`'s record if it is `generation`'s or older (the user went).
    pub fn forget(&self, app: &str, user: &str, generation: u64) {
        let mut records = self.lock();
        let key = (app.to_string(), user.to_string());
        if records
            .get(&key)
            .is_some_and(|record| record.generation <= generation)
        {
            records.remove(&key);
        }
    }
}

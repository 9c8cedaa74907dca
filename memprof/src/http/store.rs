//! Snapshots kept in memory for `/snapshots` and `/diff`, bounded in count.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::profile::Snapshot;

pub(crate) struct Store {
    inner: Mutex<Inner>,
}

struct Inner {
    next_id: u64,
    max: usize,
    snapshots: VecDeque<(u64, Arc<Snapshot>)>,
}

impl Store {
    pub(crate) fn new(max: usize) -> Store {
        Store {
            inner: Mutex::new(Inner {
                next_id: 1,
                max: max.max(1),
                snapshots: VecDeque::new(),
            }),
        }
    }

    /// Keeps `snapshot`, dropping the oldest past the bound; returns its id.
    pub(crate) fn insert(&self, snapshot: Arc<Snapshot>) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = inner.next_id;
        inner.next_id += 1;
        inner.snapshots.push_back((id, snapshot));
        while inner.snapshots.len() > inner.max {
            inner.snapshots.pop_front();
        }
        id
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<Snapshot>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .snapshots
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| Arc::clone(s))
    }

    /// Every kept snapshot, oldest first.
    pub(crate) fn list(&self) -> Vec<(u64, Arc<Snapshot>)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.snapshots.iter().cloned().collect()
    }
}

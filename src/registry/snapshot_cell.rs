//! [`SnapshotCell`]: the snapshot a cache answers from and the moment it was last proven
//! current, shared by the cache handle, its listener thread and reloads made through
//! other connections.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::snapshot::RegistrySnapshot;

/// The snapshot and the moment it was last proven current.
#[derive(Debug, Default)]
struct Current {
    snapshot: Arc<RegistrySnapshot>,
    /// Every registry change committed before this instant is in `snapshot`; `None`
    /// until the first load.
    as_of: Option<Instant>,
}

/// State shared between the cache handle, its listener thread and reloads made through
/// other connections.
#[derive(Debug, Default)]
pub(super) struct SnapshotCell {
    current: RwLock<Current>,
    generation: AtomicU64,
    listening: AtomicBool,
}

impl SnapshotCell {
    /// Keeps `snapshot`, loaded by a transaction that began after `as_of`, unless a
    /// snapshot begun later is already kept (loads through several connections may
    /// finish out of order).
    pub(super) fn store(&self, snapshot: RegistrySnapshot, as_of: Instant) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_of.is_some_and(|kept| kept > as_of) {
            return;
        }
        current.snapshot = Arc::new(snapshot);
        current.as_of = Some(as_of);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records that nothing changed in the registry before `as_of` that the snapshot
    /// lacks (a ping sent then was answered with no notification pending).
    pub(super) fn prove(&self, as_of: Instant) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_of.is_some_and(|kept| kept < as_of) {
            current.as_of = Some(as_of);
        }
    }

    pub(super) fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
    }

    pub(super) fn load(&self) -> Arc<RegistrySnapshot> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current.snapshot)
    }

    /// The snapshot if it was proven current within `max_age`, else its age.
    pub(super) fn fresh(
        &self,
        max_age: Duration,
    ) -> std::result::Result<Arc<RegistrySnapshot>, Option<Duration>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let age = current.as_of.map(|as_of| as_of.elapsed());
        match age {
            Some(age) if age <= max_age => Ok(Arc::clone(&current.snapshot)),
            _ => Err(age),
        }
    }

    pub(super) fn age(&self) -> Option<Duration> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.as_of.map(|as_of| as_of.elapsed())
    }

    /// How many snapshots have been kept.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the listener is connected and subscribed.
    pub(super) fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }
}

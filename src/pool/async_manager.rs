//! [`AsyncManager`]: the deadpool manager of an [`AsyncTenantPool`](super::AsyncTenantPool).
//!
//! Why deadpool and not bb8: deadpool checks a connection's fitness when it is handed out
//! (an async `recycle`, here a check with no I/O) and lets the pool remove one for good
//! (`Object::take`), which the check-in of a cancelled or distrusted connection needs;
//! it runs no background reaper task and its `get` is cancel-safe (a connection being
//! recycled when the future is dropped is dropped with it). bb8 returns every connection
//! on drop and decides only through a synchronous `has_broken`, with its reaper and
//! connection spawning on tasks of their own.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Manager, Metrics, RecycleError, RecycleResult};

use super::async_managed::AsyncManagedConnection;
use super::settings::ConnectionSettings;
use crate::error::Error;

/// Opens [`AsyncManagedConnection`]s and refuses to hand out one it cannot trust.
pub(crate) struct AsyncManager {
    url: String,
    settings: Arc<ConnectionSettings>,
    /// Set once any connection of the pool met a stale plan (as the sync manager's).
    schemas_diverge: Arc<AtomicBool>,
    /// Whether a transaction pooler is in front (probed once, when the pool was built).
    behind_pooler: bool,
    max_lifetime: Option<Duration>,
    idle_timeout: Option<Duration>,
}

impl AsyncManager {
    pub(super) fn new(
        url: String,
        settings: Arc<ConnectionSettings>,
        behind_pooler: bool,
        max_lifetime: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Self {
        AsyncManager {
            url,
            settings,
            schemas_diverge: Arc::default(),
            behind_pooler,
            max_lifetime,
            idle_timeout,
        }
    }
}

impl Manager for AsyncManager {
    type Type = AsyncManagedConnection;
    type Error = Error;

    async fn create(&self) -> Result<AsyncManagedConnection, Error> {
        AsyncManagedConnection::open(
            &self.url,
            Arc::clone(&self.settings),
            Arc::clone(&self.schemas_diverge),
            self.behind_pooler,
        )
        .await
    }

    async fn recycle(
        &self,
        conn: &mut AsyncManagedConnection,
        metrics: &Metrics,
    ) -> RecycleResult<Error> {
        if conn.is_poisoned() {
            return Err(RecycleError::message("marked for disposal"));
        }
        if self.max_lifetime.is_some_and(|max| metrics.age() > max) {
            return Err(RecycleError::message("older than max_lifetime"));
        }
        if self
            .idle_timeout
            .is_some_and(|idle| metrics.last_used() > idle)
        {
            return Err(RecycleError::message("idle longer than idle_timeout"));
        }
        Ok(())
    }
}

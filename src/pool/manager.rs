//! [`ConnectionManager`]: the crate's own r2d2 connection manager.
//!
//! r2d2 has no checkout or check-in hook, so the scope cannot be set by a
//! `CustomizeConnection`. Instead the pooled type is [`ManagedConnection`]
//! (`managed.rs`), which is entered into a scope on every checkout and left on every
//! check-in. The manager opens those connections, after probing once for a transaction
//! pooler in front of the database (`pooler.rs`).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use super::managed::ManagedConnection;
use super::mode::PoolMode;
use super::settings::ConnectionSettings;
use crate::error::{Error, Result};

/// The r2d2 manager of a [`TenantPool`](crate::TenantPool).
///
/// Every way of building a pool goes through it, `rocket_sync_db_pools` included: before
/// its first connection it probes for a transaction pooler, refuses
/// [`PoolMode::Session`] behind one, and makes [`PoolMode::TransactionLocal`]
/// connections prove their session inline instead of with a prepared statement.
#[derive(Debug)]
pub struct ConnectionManager {
    url: String,
    settings: Arc<ConnectionSettings>,
    /// Set once any connection of the pool met a stale plan: from then on every
    /// connection deallocates its statements when it switches schema.
    schemas_diverge: Arc<AtomicBool>,
    /// The probe's answer once it ran: is a transaction pooler in front?
    pooler: Mutex<Option<bool>>,
}

impl ConnectionManager {
    pub(super) fn new(url: &str, settings: ConnectionSettings) -> Self {
        ConnectionManager {
            url: url.to_owned(),
            settings: Arc::new(settings),
            schemas_diverge: Arc::default(),
            pooler: Mutex::new(None),
        }
    }

    /// The settings its connections are opened and scoped with.
    pub(super) fn settings(&self) -> Arc<ConnectionSettings> {
        Arc::clone(&self.settings)
    }

    /// Whether a transaction pooler is in front of the database, probed once (three
    /// round trips on two extra connections; see `pooler.rs`). Fails with
    /// [`Error::SessionModeBehindPooler`] for a `Session`-mode pool behind one.
    pub(super) fn probe(&self) -> Result<bool> {
        let mut known = self.pooler.lock().unwrap_or_else(PoisonError::into_inner);
        let pooler = match *known {
            Some(pooler) => pooler,
            None if !self.settings.check_pooler() => false,
            None => {
                let found = super::pooler::detect_transaction_pooler(&self.url)?;
                *known = Some(found);
                found
            }
        };
        if pooler && self.settings.mode() == PoolMode::Session {
            return Err(Error::SessionModeBehindPooler);
        }
        Ok(pooler)
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = ManagedConnection;
    type Error = Error;

    fn connect(&self) -> Result<ManagedConnection> {
        let behind_pooler = self.probe()?;
        ManagedConnection::open(
            &self.url,
            Arc::clone(&self.settings),
            Arc::clone(&self.schemas_diverge),
            behind_pooler,
        )
    }

    fn is_valid(&self, conn: &mut ManagedConnection) -> Result<()> {
        conn.ping()
    }

    fn has_broken(&self, conn: &mut ManagedConnection) -> bool {
        conn.is_poisoned()
    }
}

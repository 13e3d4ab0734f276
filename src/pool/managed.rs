//! [`ManagedConnection`]: a pooled connection that is entered into a scope on every
//! checkout and left on every check-in.
//!
//! Entering sends the verified checkout (`proof.rs`): one message that resets the
//! session, sets the path and fails unless the server proves the session clean. Leaving
//! checks what the client side can prove without a round trip (the connection is still
//! the pool's own, Diesel's transaction state) and discards whatever it cannot trust.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use diesel::connection::{
    AnsiTransactionManager, CacheSize, Connection, SimpleConnection, TransactionManager,
};
use diesel::pg::PgConnection;
use diesel::prelude::*;

use super::mode::PoolMode;
use super::row_security;
use super::scope::Scope;
use super::session::{Backend, Session, BACKEND_SQL};
use super::settings::ConnectionSettings;
use super::watch::Watch;
use crate::error::{Error, Result};
use crate::schema_name::SchemaName;

/// A pooled PostgreSQL connection that is always entered into a [`Scope`] before use.
///
/// It gives no access to the raw [`PgConnection`] except through
/// [`with_tenant`](Self::with_tenant) and [`with_public`](Self::with_public), so a
/// pool that hands these out (e.g. `rocket_sync_db_pools`) hands out no unscoped
/// connection.
pub struct ManagedConnection {
    conn: PgConnection,
    /// What the pool knows and decides about this session (`session.rs`).
    session: Session,
}

impl std::fmt::Debug for ManagedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedConnection")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// How a scoped piece of work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Keep the work (commit in `TransactionLocal` mode).
    Commit,
    /// Discard the work (roll back in `TransactionLocal` mode).
    Rollback,
}

impl ManagedConnection {
    /// Opens a connection to `url`, prepares its proof (unless `behind_pooler`: then it
    /// is sent inline) and installs the pool's instrumentation on it.
    pub(super) fn open(
        url: &str,
        settings: Arc<ConnectionSettings>,
        schemas_diverge: Arc<AtomicBool>,
        behind_pooler: bool,
    ) -> Result<ManagedConnection> {
        let mut conn = PgConnection::establish(url)?;
        if !settings.statement_cache() {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        let backend = diesel::sql_query(BACKEND_SQL).get_result::<Backend>(&mut conn)?;
        // Also through the bare manager (e.g. `rocket_sync_db_pools`).
        if let Some(what) = settings.nologin_roles() {
            super::citus::refuse_nologin_roles(&mut conn, what)?;
        }
        if settings.row_tenants() {
            row_security::refuse_unbound_login(&mut conn)?;
        }
        let session = Session::new(&backend, settings, schemas_diverge, behind_pooler)?;
        if let Some(prepare) = session.prepare_sql() {
            conn.batch_execute(&prepare)?;
        }
        conn.set_instrumentation(session.watch(false));
        Ok(ManagedConnection { conn, session })
    }

    /// One round trip that proves the connection alive (r2d2's `test_on_check_out`).
    pub(super) fn ping(&mut self) -> Result<()> {
        self.conn.batch_execute("SELECT 1").map_err(Error::Query)
    }

    /// Runs `f` with this connection scoped to the tenant schema `schema`.
    ///
    /// In `TransactionLocal` mode `f` runs in a transaction that is committed when it
    /// returns `Ok` and rolled back otherwise. If the connection fails the checkout's
    /// proof it is discarded and the error returned; `f` does not run.
    pub fn with_tenant<T, E, F>(&mut self, schema: &SchemaName, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: From<Error>,
    {
        self.with_scope(&Scope::Tenant(schema.clone()), f)
    }

    /// Runs `f` with this connection scoped to `public`.
    pub fn with_public<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: From<Error>,
    {
        self.with_scope(&Scope::Public, f)
    }

    /// Runs `f` in `scope`, then leaves the scope whatever happened (a panic discards).
    pub fn with_scope<T, E, F>(&mut self, scope: &Scope, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: From<Error>,
    {
        self.enter(scope)?;
        let mut exit = LeaveOnDrop {
            conn: self,
            outcome: Outcome::Rollback,
        };
        let result = f(&mut exit.conn.conn);
        if result.is_ok() {
            exit.outcome = Outcome::Commit;
        }
        let ended = exit.finish();
        match (result, ended) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(e)) => Err(e.into()),
            (Err(e), _) => Err(e),
        }
    }

    /// True if the connection must not be reused.
    pub(super) fn is_poisoned(&mut self) -> bool {
        let broken = AnsiTransactionManager::is_broken_transaction_manager(&mut self.conn);
        self.session.is_poisoned(broken)
    }

    #[cfg(feature = "rocket")]
    /// Whether a query of this checkout failed on a missing relation or schema.
    pub(super) fn missed_relation(&self) -> bool {
        self.session.missed_relation()
    }

    pub(super) fn pg(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    pub(super) fn pg_ref(&self) -> &PgConnection {
        &self.conn
    }

    fn transaction_depth(&mut self) -> Option<u32> {
        match AnsiTransactionManager::transaction_manager_status_mut(&mut self.conn)
            .transaction_depth()
        {
            Ok(depth) => depth.map(|d| d.get()),
            Err(_) => Some(u32::MAX),
        }
    }

    /// Puts the connection into `scope` and proves its session clean; called on every
    /// checkout. On any failure the connection is discarded.
    pub(super) fn enter(&mut self, scope: &Scope) -> Result<()> {
        let depth = self.transaction_depth();
        let broken = AnsiTransactionManager::is_broken_transaction_manager(&mut self.conn);
        let plan = self.session.plan(scope, depth, broken, false)?;
        let sent = match self.session.mode() {
            PoolMode::Session => self.conn.batch_execute(&plan.sql),
            PoolMode::TransactionLocal => {
                AnsiTransactionManager::begin_transaction_sql(&mut self.conn, &plan.sql)
            }
        };
        if let Err(source) = sent {
            return Err(self.session.failed(scope, &plan, source));
        }
        if self.session.entered(scope, plan) {
            // The server forgot every prepared statement: make Diesel forget them too.
            self.conn
                .set_prepared_statement_cache_size(CacheSize::Disabled);
            self.conn
                .set_prepared_statement_cache_size(CacheSize::Unbounded);
        }
        self.drop_queued_notifications(scope)
    }

    /// Notifications libpq queued before the checkout belong to an earlier borrower's
    /// `LISTEN` (the proof refuses registrations, but a borrower may have listened and
    /// unlistened): drop them so this borrower never reads them.
    fn drop_queued_notifications(&mut self, scope: &Scope) -> Result<()> {
        let mut dropped = 0usize;
        loop {
            let next = self.conn.notifications_iter().next();
            match next {
                None => break,
                Some(Ok(_)) => dropped += 1,
                Some(Err(source)) => {
                    self.session
                        .discard("reading its queued notifications failed");
                    return Err(Error::SetScope {
                        place: scope.schema_ref(),
                        source,
                    });
                }
            }
        }
        if dropped > 0 {
            log::debug!(
                "diesel-tenancy: dropped {dropped} notifications queued for an earlier borrower"
            );
        }
        Ok(())
    }

    /// Ends the scoped work; called on every check-in. Whatever cannot be proven clean
    /// is discarded by the pool; the error, if any, is the commit's or rollback's.
    pub(super) fn leave(&mut self, outcome: Outcome) -> Result<()> {
        if std::thread::panicking() {
            self.session
                .discard("the borrower panicked while holding it");
            return Ok(());
        }
        if !Watch::is_installed_on(self.conn.instrumentation(), self.session.id()) {
            // `std::mem::replace`/`swap` on the `PgConnection`, or `set_instrumentation`:
            // this is not (or no longer watches) the session the pool handed out.
            self.session
                .discard("its PgConnection or its instrumentation was replaced while checked out");
            return Ok(());
        }
        let mut result = Ok(());
        if self.session.mode() == PoolMode::TransactionLocal {
            let ended = match self.transaction_depth() {
                Some(1) => match outcome {
                    Outcome::Commit => AnsiTransactionManager::commit_transaction(&mut self.conn),
                    Outcome::Rollback => {
                        AnsiTransactionManager::rollback_transaction(&mut self.conn)
                    }
                },
                // libpq reported the pool's transaction over: a statement the pool did
                // not send committed or rolled it back.
                None => Err(diesel::result::Error::NotInTransaction),
                Some(_) => Ok(()),
            };
            if let Err(e) = ended {
                self.session
                    .discard("its transaction could not be ended as asked");
                result = Err(Error::Query(e));
            }
        }
        let depth = self.transaction_depth();
        if self.session.left(depth) {
            // A borrower may have changed Diesel's statement cache; restore the pool's.
            self.conn.set_prepared_statement_cache_size(
                if self.session.settings().statement_cache() {
                    CacheSize::Unbounded
                } else {
                    CacheSize::Disabled
                },
            );
        }
        result
    }
}

/// Leaves the scope when dropped, so a panic in the borrower's closure still discards.
struct LeaveOnDrop<'a> {
    conn: &'a mut ManagedConnection,
    outcome: Outcome,
}

impl LeaveOnDrop<'_> {
    fn finish(self) -> Result<()> {
        let mut this = std::mem::ManuallyDrop::new(self);
        let outcome = this.outcome;
        this.conn.leave(outcome)
    }
}

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        // Only reached by unwinding: `finish` consumes the guard otherwise.
        let _ = self.conn.leave(Outcome::Rollback);
    }
}

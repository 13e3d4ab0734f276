//! The crate's own r2d2 connection manager and the pooled connection it makes.
//!
//! r2d2 has no checkout or check-in hook, so the scope cannot be set by a
//! `CustomizeConnection`. Instead the pooled type is [`ManagedConnection`], which
//! remembers the path it last set and the state its [`Watch`] observed, and is
//! entered into a scope on every checkout and left on every check-in.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use diesel::connection::{
    AnsiTransactionManager, CacheSize, Connection, SimpleConnection, TransactionManager,
};
use diesel::pg::PgConnection;

use crate::error::{Error, Result};
use crate::scope::Scope;
use crate::watch::{
    Flags, InstrumentationFactory, Watch, PATH_UNSURE, POISON, RAW_TRANSACTION, STALE_PLAN,
};

/// How a pool puts a connection into its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PoolMode {
    /// `SET search_path` on checkout, skipped when the connection already has that path.
    ///
    /// The fastest mode when tenants repeat. It needs a direct connection or a pooler in
    /// *session* mode.
    ///
    /// ### Warning
    /// Behind PgBouncer in *transaction* pooling mode a session `SET` leaks to other
    /// clients. Use [`PoolMode::TransactionLocal`] there.
    #[default]
    Session,
    /// Each checkout is a transaction that begins with
    /// `SET LOCAL search_path` (the SQL form of `set_config('search_path', …, true)`).
    ///
    /// Safe behind PgBouncer's transaction pooling. The work is committed by
    /// [`TenantConnection::commit`](crate::TenantConnection::commit) or by returning
    /// `Ok` from [`TenantPool::with_tenant`](crate::TenantPool::with_tenant); a guard
    /// dropped without commit rolls back.
    TransactionLocal,
}

/// What the manager needs to open and scope connections.
#[derive(Debug, Clone)]
pub(crate) struct ManagerConfig {
    pub(crate) url: String,
    pub(crate) mode: PoolMode,
    pub(crate) extra_schemas: Arc<[String]>,
    pub(crate) statement_cache: bool,
    pub(crate) reset_statements_on_switch: bool,
    /// Set once any connection of the pool met a stale plan: from then on every
    /// connection deallocates its statements when it switches schema.
    pub(crate) schemas_diverge: Arc<AtomicBool>,
    pub(crate) instrumentation: Option<InstrumentationFactory>,
    pub(crate) max_schemas_per_connection: usize,
}

/// The r2d2 manager of a [`TenantPool`](crate::TenantPool).
#[derive(Debug)]
pub struct ConnectionManager {
    config: ManagerConfig,
}

impl ConnectionManager {
    pub(crate) fn new(config: ManagerConfig) -> Self {
        ConnectionManager { config }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = ManagedConnection;
    type Error = Error;

    fn connect(&self) -> Result<ManagedConnection> {
        let mut conn = PgConnection::establish(&self.config.url)?;
        if !self.config.statement_cache {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        if self.config.mode == PoolMode::TransactionLocal {
            // Outside the pool's transactions the path is empty, so nothing that slips
            // out of a transaction can read an unqualified table of any schema.
            conn.batch_execute("SET search_path TO ''")?;
        }
        let flags = Flags::default();
        let app = self.config.instrumentation.as_ref().map(|make| (make.0)());
        conn.set_instrumentation(Watch::new(flags.clone(), app));
        Ok(ManagedConnection {
            conn,
            flags,
            path: None,
            last_path: None,
            schemas: HashSet::new(),
            poisoned: false,
            config: self.config.clone(),
        })
    }

    fn is_valid(&self, conn: &mut ManagedConnection) -> Result<()> {
        conn.conn.batch_execute("SELECT 1").map_err(Error::Query)
    }

    fn has_broken(&self, conn: &mut ManagedConnection) -> bool {
        conn.is_poisoned()
    }
}

/// A pooled PostgreSQL connection that is always entered into a [`Scope`] before use.
///
/// It gives no access to the raw [`PgConnection`] except through
/// [`with_tenant`](Self::with_tenant) and [`with_public`](Self::with_public), so a
/// pool that hands these out (e.g. `rocket_sync_db_pools`) hands out no unscoped
/// connection.
pub struct ManagedConnection {
    conn: PgConnection,
    flags: Flags,
    /// The scope whose `search_path` this session is known to have (`Session` mode;
    /// the pool's extension schemas are fixed, so the scope identifies the path).
    path: Option<Scope>,
    /// The scope last entered (both modes).
    last_path: Option<Scope>,
    /// Distinct tenant schemas this backend has worked in (each costs backend memory).
    schemas: HashSet<crate::SchemaName>,
    poisoned: bool,
    config: ManagerConfig,
}

impl std::fmt::Debug for ManagedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedConnection")
            .field("path", &self.path)
            .field("schemas", &self.schemas.len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// How a scoped piece of work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Keep the work (commit in `TransactionLocal` mode).
    Commit,
    /// Discard the work (roll back in `TransactionLocal` mode).
    Rollback,
}

impl ManagedConnection {
    /// Runs `f` with this connection scoped to the tenant schema `schema`.
    ///
    /// In `TransactionLocal` mode `f` runs in a transaction that is committed when it
    /// returns `Ok` and rolled back otherwise.
    pub fn with_tenant<T, E, F>(&mut self, schema: &crate::SchemaName, f: F) -> Result<T, E>
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

    /// Runs `f` in `scope`, then leaves the scope whatever happened (a panic poisons).
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
    pub(crate) fn is_poisoned(&mut self) -> bool {
        if self.flags.get() & STALE_PLAN != 0 {
            self.config.schemas_diverge.store(true, Ordering::Relaxed);
        }
        self.poisoned
            || self.flags.get() & POISON != 0
            || AnsiTransactionManager::is_broken_transaction_manager(&mut self.conn)
    }

    pub(crate) fn pg(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    pub(crate) fn pg_ref(&self) -> &PgConnection {
        &self.conn
    }

    /// Runs the crate's own maintenance work (migrations, provisioning), which scopes
    /// itself with `SET LOCAL` inside its transaction. Afterwards the session path is
    /// treated as unknown, and a transaction left open poisons the connection.
    pub(crate) fn run_internal<T>(
        &mut self,
        f: impl FnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        if self.transaction_depth().is_some() {
            self.poison();
            return Err(Error::ScopeChangeInTransaction {
                wanted: crate::error::Place::Public,
            });
        }
        let result = f(&mut self.conn);
        self.path = None;
        if self.transaction_depth().is_some() {
            self.poison();
        }
        let poison = self.flags.get() & POISON;
        self.flags.clear();
        self.flags.raise(poison);
        result
    }

    /// Marks the connection for disposal; r2d2 drops it at check-in.
    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
        self.path = None;
        self.last_path = None;
    }

    fn transaction_depth(&mut self) -> Option<u32> {
        match AnsiTransactionManager::transaction_manager_status_mut(&mut self.conn)
            .transaction_depth()
        {
            Ok(depth) => depth.map(|d| d.get()),
            Err(_) => Some(u32::MAX),
        }
    }

    /// Puts the connection into `scope`; called on every checkout.
    pub(crate) fn enter(&mut self, scope: &Scope) -> Result<()> {
        if self.transaction_depth().is_some() || self.flags.get() & RAW_TRANSACTION != 0 {
            return Err(Error::ScopeChangeInTransaction {
                wanted: scope.place(),
            });
        }
        if self.is_poisoned() {
            return Err(Error::SetScope {
                place: scope.place(),
                source: diesel::result::Error::BrokenTransactionManager,
            });
        }
        let unsure = self.flags.get() & PATH_UNSURE != 0;
        if self.config.mode == PoolMode::Session && !unsure && self.path.as_ref() == Some(scope) {
            // The repeated-tenant fast path: no statement, no allocation.
            return Ok(());
        }
        let path = scope.search_path(&self.config.extra_schemas);
        let reset = (self.config.reset_statements_on_switch
            || self.config.schemas_diverge.load(Ordering::Relaxed))
            && self.last_path.as_ref().is_some_and(|last| last != scope);
        let deallocate = if reset { "DEALLOCATE ALL; " } else { "" };
        self.path = None;
        let set = match self.config.mode {
            PoolMode::Session => self
                .conn
                .batch_execute(&format!("{deallocate}SET search_path TO {path}")),
            PoolMode::TransactionLocal => AnsiTransactionManager::begin_transaction_sql(
                &mut self.conn,
                &format!("BEGIN; {deallocate}SET LOCAL search_path TO {path}"),
            ),
        };
        if let Err(source) = set {
            self.poison();
            return Err(Error::SetScope {
                place: scope.place(),
                source,
            });
        }
        if reset && self.config.statement_cache {
            // The server forgot every prepared statement: make Diesel forget them too.
            self.conn
                .set_prepared_statement_cache_size(CacheSize::Disabled);
            self.conn
                .set_prepared_statement_cache_size(CacheSize::Unbounded);
        }
        self.flags.clear();
        if self.config.mode == PoolMode::Session {
            self.path = Some(scope.clone());
        }
        if self.last_path.as_ref() != Some(scope) {
            self.last_path = Some(scope.clone());
        }
        if let Scope::Tenant(schema) = scope {
            if !self.schemas.contains(schema) {
                self.schemas.insert(schema.clone());
            }
        }
        Ok(())
    }

    /// Ends the scoped work; called on every check-in. Never fails: whatever cannot be
    /// proven clean is poisoned and so discarded by the pool.
    pub(crate) fn leave(&mut self, outcome: Outcome) -> Result<()> {
        let mut result = Ok(());
        if std::thread::panicking() {
            self.poison();
            return result;
        }
        if self.config.mode == PoolMode::TransactionLocal && self.transaction_depth() == Some(1) {
            let ended = match outcome {
                Outcome::Commit => AnsiTransactionManager::commit_transaction(&mut self.conn),
                Outcome::Rollback => AnsiTransactionManager::rollback_transaction(&mut self.conn),
            };
            if let Err(e) = ended {
                self.poison();
                result = Err(Error::Query(e));
            }
        }
        let flags = self.flags.get();
        if flags & STALE_PLAN != 0 {
            self.config.schemas_diverge.store(true, Ordering::Relaxed);
        }
        let unsure_in_tl =
            self.config.mode == PoolMode::TransactionLocal && flags & PATH_UNSURE != 0;
        if self.transaction_depth().is_some()
            || flags & (RAW_TRANSACTION | POISON) != 0
            || unsure_in_tl
            || self.schemas.len() > self.config.max_schemas_per_connection
        {
            self.poison();
        }
        if flags & PATH_UNSURE != 0 {
            self.path = None;
        }
        result
    }
}

/// Leaves the scope when dropped, so a panic in the borrower's closure still poisons.
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

//! The crate's own r2d2 connection manager and the pooled connection it makes.
//!
//! r2d2 has no checkout or check-in hook, so the scope cannot be set by a
//! `CustomizeConnection`. Instead the pooled type is [`ManagedConnection`], which is
//! entered into a scope on every checkout and left on every check-in. Entering sends the
//! verified checkout (`proof.rs`): one message that resets the session, sets the path and
//! fails unless the server proves the session clean. Leaving checks what the client side
//! can prove without a round trip (the connection is still the pool's own, Diesel's
//! transaction state) and discards whatever it cannot trust.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use diesel::connection::{
    AnsiTransactionManager, CacheSize, Connection, SimpleConnection, TransactionManager,
};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use crate::error::{Error, Result};
use crate::proof::{self, Identity, Proof};
use crate::scope::Scope;
use crate::tenant_roles::RoleNames;
use crate::watch::{
    self, Flags, InstrumentationFactory, Watch, MISSING_RELATION, POISON, STALE_PLAN, TYPE_LOOKUP,
};

/// How a pool puts a connection into its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PoolMode {
    /// Every checkout sets the session's `search_path` and proves the session clean in
    /// one round trip; the borrower's statements then run in autocommit.
    ///
    /// The fastest mode. It needs a direct connection or a pooler in *session* mode.
    ///
    /// ### Warning
    /// Behind PgBouncer in *transaction* pooling mode a session `SET` leaks to other
    /// clients. The pool refuses to build there; use [`PoolMode::TransactionLocal`].
    #[default]
    Session,
    /// Each checkout is a transaction whose first round trip proves the session clean
    /// and sets the path with `SET LOCAL search_path`.
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
    /// Whether to probe for a transaction pooler before the first connection.
    pub(crate) check_pooler: bool,
    /// Per-tenant roles: tenant scopes run as their tenant's role.
    pub(crate) tenant_roles: Option<Arc<crate::TenantRoles>>,
}

/// The r2d2 manager of a [`TenantPool`](crate::TenantPool).
///
/// Every way of building a pool goes through it, `rocket_sync_db_pools` included: before
/// its first connection it probes for a transaction pooler, refuses
/// [`PoolMode::Session`] behind one, and makes [`PoolMode::TransactionLocal`]
/// connections prove their session inline instead of with a prepared statement.
#[derive(Debug)]
pub struct ConnectionManager {
    config: ManagerConfig,
    /// The probe's answer once it ran: is a transaction pooler in front?
    pooler: Mutex<Option<bool>>,
}

impl ConnectionManager {
    pub(crate) fn new(config: ManagerConfig) -> Self {
        ConnectionManager {
            config,
            pooler: Mutex::new(None),
        }
    }

    /// Whether a transaction pooler is in front of the database, probed once (three
    /// round trips on two extra connections; see `pooler.rs`). Fails with
    /// [`Error::SessionModeBehindPooler`] for a `Session`-mode pool behind one.
    pub(crate) fn probe(&self) -> Result<bool> {
        let mut known = self.pooler.lock().unwrap_or_else(PoisonError::into_inner);
        let pooler = match *known {
            Some(pooler) => pooler,
            None if !self.config.check_pooler => false,
            None => {
                let found = crate::pooler::detect_transaction_pooler(&self.config.url)?;
                *known = Some(found);
                found
            }
        };
        if pooler && self.config.mode == PoolMode::Session {
            return Err(Error::SessionModeBehindPooler);
        }
        Ok(pooler)
    }
}

#[derive(QueryableByName)]
struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Text)]
    login: String,
    /// The database's OID, which tenant role names are derived from.
    #[diesel(sql_type = BigInt)]
    database: i64,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = ManagedConnection;
    type Error = Error;

    fn connect(&self) -> Result<ManagedConnection> {
        let behind_pooler = self.probe()?;
        let mut conn = PgConnection::establish(&self.config.url)?;
        if !self.config.statement_cache {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        // `sql_query` is sent unnamed, which transaction poolers accept.
        let backend = diesel::sql_query(
            "SELECT pg_backend_pid() AS pid, session_user::text AS login, \
             (SELECT oid FROM pg_catalog.pg_database \
              WHERE datname = pg_catalog.current_database())::int8 AS database",
        )
        .get_result::<Backend>(&mut conn)?;
        let mut proof = Proof::new(
            Identity {
                pid: (!behind_pooler).then_some(backend.pid),
                login: backend.login,
            },
            self.config.mode,
            !behind_pooler,
        );
        let role_names = match self.config.tenant_roles {
            Some(_) => {
                crate::citus::detect::refuse_tenant_roles(&mut conn)?;
                let names = RoleNames::new(u32::try_from(backend.database).map_err(|_| {
                    Error::Config(format!("database OID {} out of range", backend.database))
                })?);
                proof = proof.with_tenant_roles(names.group());
                Some(names)
            }
            None => None,
        };
        if proof.is_prepared() {
            conn.batch_execute(&proof.prepare())?;
        }
        let id = watch::next_id();
        let flags = Flags::default();
        let app = self.config.instrumentation.as_ref().map(|make| (make.0)());
        conn.set_instrumentation(Watch::new(id, flags.clone(), app));
        Ok(ManagedConnection {
            conn,
            id,
            flags,
            proof,
            role_names,
            last_scope: None,
            types_scope: None,
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
    /// Matches the id of the [`Watch`] installed on `conn` while `conn` is this one.
    id: u64,
    flags: Flags,
    proof: Proof,
    /// With tenant roles on: how this database names them.
    role_names: Option<RoleNames>,
    /// The scope last entered.
    last_scope: Option<Scope>,
    /// The scope whose `search_path` Diesel used to look up (and cache, for the
    /// connection's life) a custom type declared without a schema.
    types_scope: Option<Scope>,
    /// Distinct tenant schemas this backend has worked in (each costs backend memory).
    schemas: HashSet<crate::SchemaName>,
    poisoned: bool,
    config: ManagerConfig,
}

impl std::fmt::Debug for ManagedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedConnection")
            .field("last_scope", &self.last_scope)
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
    /// returns `Ok` and rolled back otherwise. If the connection fails the checkout's
    /// proof it is discarded and the error returned; `f` does not run.
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
    pub(crate) fn is_poisoned(&mut self) -> bool {
        if self.flags.get() & STALE_PLAN != 0 {
            self.config.schemas_diverge.store(true, Ordering::Relaxed);
        }
        self.poisoned
            || self.flags.get() & POISON != 0
            || AnsiTransactionManager::is_broken_transaction_manager(&mut self.conn)
    }

    /// Whether a query of this checkout failed on a missing relation or schema.
    pub(crate) fn missed_relation(&self) -> bool {
        self.flags.get() & MISSING_RELATION != 0
    }

    pub(crate) fn pg(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    pub(crate) fn pg_ref(&self) -> &PgConnection {
        &self.conn
    }

    /// Marks the connection for disposal and says why; r2d2 drops it at check-in.
    fn discard(&mut self, reason: &str) {
        if !self.poisoned {
            log::warn!("diesel-tenancy: discarding a pooled connection: {reason}");
        }
        self.poisoned = true;
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
    pub(crate) fn enter(&mut self, scope: &Scope) -> Result<()> {
        if self.transaction_depth().is_some() {
            self.discard("Diesel still had a transaction open on it");
            return Err(Error::ScopeChangeInTransaction {
                wanted: scope.place(),
            });
        }
        if self.is_poisoned() {
            return Err(unclean(scope, "it was already marked for disposal"));
        }
        if let Some(bound) = self.types_scope.as_ref().filter(|bound| *bound != scope) {
            let reason = format!(
                "Diesel cached custom type OIDs it looked up by search_path in {}",
                bound.place()
            );
            self.discard(&reason);
            return Err(unclean(scope, &reason));
        }
        let deallocate = (self.config.reset_statements_on_switch
            || self.config.schemas_diverge.load(Ordering::Relaxed))
            && self.last_scope.as_ref().is_some_and(|last| last != scope);
        let path = scope.search_path(&self.config.extra_schemas);
        // Every scope that names a tenant schema (pinned routes included) runs as the
        // tenant's role; `public` as the login role.
        let role = match (scope.schema(), &self.role_names) {
            (Some(schema), Some(names)) => Some(names.tenant(schema)),
            _ => None,
        };
        let route = scope.route();
        let sql = self
            .proof
            .checkout(&path, route.as_deref(), role.as_deref(), deallocate);
        let sent = match self.config.mode {
            PoolMode::Session => self.conn.batch_execute(&sql),
            PoolMode::TransactionLocal => {
                AnsiTransactionManager::begin_transaction_sql(&mut self.conn, &sql)
            }
        };
        if let Err(source) = sent {
            return Err(self.failed_checkout(scope, role.as_deref(), source));
        }
        if deallocate && self.config.statement_cache {
            // The server forgot every prepared statement: make Diesel forget them too.
            self.conn
                .set_prepared_statement_cache_size(CacheSize::Disabled);
            self.conn
                .set_prepared_statement_cache_size(CacheSize::Unbounded);
        }
        self.drop_queued_notifications(scope)?;
        self.flags.clear();
        if self.last_scope.as_ref() != Some(scope) {
            self.last_scope = Some(scope.clone());
        }
        if let Some(schema) = scope.schema() {
            if !self.schemas.contains(schema) {
                self.schemas.insert(schema.clone());
            }
        }
        Ok(())
    }

    /// Discards the connection after its checkout statement failed, keeping the reason.
    ///
    /// A reason that names the scope's tenant role (missing, not settable by the login
    /// role, refused by the role proof) is about the tenant, not this connection: it is
    /// returned as [`Error::TenantRole`], which the pool does not retry on another one.
    fn failed_checkout(
        &mut self,
        scope: &Scope,
        role: Option<&str>,
        source: diesel::result::Error,
    ) -> Error {
        let reason = match &source {
            diesel::result::Error::DatabaseError(_, info) => proof::reason(info.message())
                .map_or_else(|| info.message().to_owned(), str::to_owned),
            other => other.to_string(),
        };
        self.discard(&format!(
            "its checkout for {} failed: {reason}",
            scope.place()
        ));
        if reason.starts_with(proof::STALE_ROUTE) {
            // The session itself was clean (no other reason): the route is what failed.
            return Error::StaleRoute {
                schema: scope.schema().map(|s| s.to_string()).unwrap_or_default(),
            };
        }
        if let Some(role) = role.filter(|role| reason.contains(role)) {
            return Error::TenantRole {
                place: scope.place(),
                role: role.to_owned(),
                reason,
            };
        }
        if watch::poisons(&source) & POISON != 0 {
            Error::SetScope {
                place: scope.place(),
                source,
            }
        } else {
            unclean(scope, &reason)
        }
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
                    self.discard("reading its queued notifications failed");
                    return Err(Error::SetScope {
                        place: scope.place(),
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
    pub(crate) fn leave(&mut self, outcome: Outcome) -> Result<()> {
        if std::thread::panicking() {
            self.discard("the borrower panicked while holding it");
            return Ok(());
        }
        if !Watch::is_installed_on(self.conn.instrumentation(), self.id) {
            // `std::mem::replace`/`swap` on the `PgConnection`, or `set_instrumentation`:
            // this is not (or no longer watches) the session the pool handed out.
            self.discard("its PgConnection or its instrumentation was replaced while checked out");
            return Ok(());
        }
        let mut result = Ok(());
        if self.config.mode == PoolMode::TransactionLocal {
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
                self.discard("its transaction could not be ended as asked");
                result = Err(Error::Query(e));
            }
        }
        let flags = self.flags.get();
        if flags & STALE_PLAN != 0 {
            self.config.schemas_diverge.store(true, Ordering::Relaxed);
        }
        if flags & TYPE_LOOKUP != 0 && self.types_scope.is_none() {
            self.types_scope = self.last_scope.clone();
        }
        if flags & POISON != 0 {
            self.discard("the server reported it unusable (lost, stale plan or missing statement)");
        }
        if self.transaction_depth().is_some() {
            self.discard("a transaction was left open on it");
        }
        if self.schemas.len() > self.config.max_schemas_per_connection {
            log::debug!(
                "diesel-tenancy: recycling a connection that worked in {} schemas",
                self.schemas.len()
            );
            self.poisoned = true;
        }
        if !self.poisoned {
            // A borrower may have changed Diesel's statement cache; restore the pool's.
            self.conn
                .set_prepared_statement_cache_size(if self.config.statement_cache {
                    CacheSize::Unbounded
                } else {
                    CacheSize::Disabled
                });
        }
        result
    }
}

fn unclean(scope: &Scope, reason: &str) -> Error {
    Error::UncleanSession {
        place: scope.place(),
        reason: reason.to_owned(),
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

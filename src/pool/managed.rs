//! [`ManagedConnection`]: a pooled connection that is entered into a scope on every
//! checkout and left on every check-in.
//!
//! Entering sends the verified checkout (`proof.rs`): one message that resets the
//! session, sets the path and fails unless the server proves the session clean. Leaving
//! checks what the client side can prove without a round trip (the connection is still
//! the pool's own, Diesel's transaction state) and discards whatever it cannot trust.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use diesel::connection::{
    AnsiTransactionManager, CacheSize, Connection, SimpleConnection, TransactionManager,
};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use super::mode::PoolMode;
use super::proof::{self, Checkout, Identity, Proof};
use super::row_security::{self, RowProof};
use super::scope::Scope;
use super::settings::ConnectionSettings;
use super::tenant_roles::RoleNames;
use super::watch::{self, Flags, Watch, POISON, STALE_PLAN, TYPE_LOOKUP};
use crate::error::{Error, Result};
use crate::schema_name::SchemaName;

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
    /// The `search_path` of the scope last entered: statements are planned against it,
    /// so only a change of path is a switch (row tenants share one).
    last_path: Option<String>,
    /// Whether the row statements are prepared on this session.
    rows_prepared: bool,
    /// The scope whose `search_path` Diesel used to look up (and cache, for the
    /// connection's life) a custom type declared without a schema.
    types_scope: Option<Scope>,
    /// Distinct tenant schemas this backend has worked in (each costs backend memory).
    schemas: HashSet<SchemaName>,
    poisoned: bool,
    settings: Arc<ConnectionSettings>,
    schemas_diverge: Arc<AtomicBool>,
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
        // `sql_query` is sent unnamed, which transaction poolers accept.
        let backend = diesel::sql_query(
            "SELECT pg_backend_pid() AS pid, session_user::text AS login, \
             (SELECT oid FROM pg_catalog.pg_database \
              WHERE datname = pg_catalog.current_database())::int8 AS database",
        )
        .get_result::<Backend>(&mut conn)?;
        let mut proof = Proof::new(
            Identity::new(
                (!behind_pooler).then_some(backend.pid),
                backend.login.clone(),
            ),
            settings.mode(),
            !behind_pooler,
        );
        let names = RoleNames::new(u32::try_from(backend.database).map_err(|_| {
            Error::Config(format!("database OID {} out of range", backend.database))
        })?);
        // Also through the bare manager (e.g. `rocket_sync_db_pools`).
        if let Some(what) = settings.nologin_roles() {
            super::citus::refuse_nologin_roles(&mut conn, what)?;
        }
        let role_names = match settings.tenant_roles() {
            Some(_) => {
                proof = proof.with_tenant_roles(names.group());
                Some(names)
            }
            None => None,
        };
        if settings.row_tenants() {
            row_security::refuse_unbound_login(&mut conn)?;
            proof = proof.with_rows(RowProof::new(
                &backend.login,
                names,
                settings.row_schema().clone(),
            ));
        }
        if proof.is_prepared() {
            conn.batch_execute(&proof.prepare())?;
        }
        let id = watch::next_id();
        let flags = Flags::default();
        let app = settings.make_instrumentation();
        conn.set_instrumentation(Watch::new(id, flags.clone(), app));
        Ok(ManagedConnection {
            conn,
            id,
            flags,
            proof,
            role_names,
            last_scope: None,
            last_path: None,
            rows_prepared: false,
            types_scope: None,
            schemas: HashSet::new(),
            poisoned: false,
            settings,
            schemas_diverge,
        })
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
        if self.flags.get() & STALE_PLAN != 0 {
            self.schemas_diverge.store(true, Ordering::Relaxed);
        }
        self.poisoned
            || self.flags.get() & POISON != 0
            || AnsiTransactionManager::is_broken_transaction_manager(&mut self.conn)
    }

    #[cfg(feature = "rocket")]
    /// Whether a query of this checkout failed on a missing relation or schema.
    pub(super) fn missed_relation(&self) -> bool {
        self.flags.get() & watch::MISSING_RELATION != 0
    }

    pub(super) fn pg(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    pub(super) fn pg_ref(&self) -> &PgConnection {
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
    pub(super) fn enter(&mut self, scope: &Scope) -> Result<()> {
        if self.transaction_depth().is_some() {
            self.discard("Diesel still had a transaction open on it");
            return Err(Error::ScopeChangeInTransaction {
                wanted: scope.schema_ref(),
            });
        }
        if self.is_poisoned() {
            return Err(unclean(scope, "it was already marked for disposal"));
        }
        if let Some(bound) = self.types_scope.as_ref().filter(|bound| *bound != scope) {
            let reason = format!(
                "Diesel cached custom type OIDs it looked up by search_path in {}",
                bound.schema_ref()
            );
            self.discard(&reason);
            return Err(unclean(scope, &reason));
        }
        let path = self.settings.search_path(scope);
        let deallocate = (self.settings.reset_statements_on_switch()
            || self.schemas_diverge.load(Ordering::Relaxed))
            && self.last_path.as_ref().is_some_and(|last| *last != path);
        let row_tenant = scope.row_tenant();
        let role = match (scope, self.proof.rows()) {
            (Scope::Rows { .. } | Scope::AllRows, None) => {
                return Err(Error::Config(format!(
                    "{} needs a pool that serves row tenants (TenantPoolBuilder::row_tenants)",
                    scope.schema_ref()
                )));
            }
            // A row tenant runs as the row role, which row security binds.
            (Scope::Rows { .. }, Some(rows)) => Some(rows.role().to_owned()),
            // Every scope that names a tenant schema (pinned routes included) runs as the
            // tenant's role with tenant roles on; `public` and every row tenant's rows at
            // once as the login role.
            _ => match (scope.schema(), &self.role_names) {
                (Some(schema), Some(names)) => Some(names.tenant(schema)),
                _ => None,
            },
        };
        let prepare_rows =
            row_tenant.is_some() && self.proof.is_prepared() && (deallocate || !self.rows_prepared);
        let route = scope.route();
        let sql = self.proof.message(&Checkout {
            path: &path,
            route: route.as_deref(),
            role: role.as_deref(),
            row_tenant,
            deallocate,
            prepare_rows,
        });
        let sent = match self.settings.mode() {
            PoolMode::Session => self.conn.batch_execute(&sql),
            PoolMode::TransactionLocal => {
                AnsiTransactionManager::begin_transaction_sql(&mut self.conn, &sql)
            }
        };
        if let Err(source) = sent {
            return Err(self.failed_checkout(scope, role.as_deref(), source));
        }
        if deallocate {
            self.rows_prepared = false;
        }
        if prepare_rows {
            self.rows_prepared = true;
        }
        if deallocate && self.settings.statement_cache() {
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
        if self.last_path.as_ref() != Some(&path) {
            self.last_path = Some(path);
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
            scope.schema_ref()
        ));
        if let Some(tenant) = reason.strip_prefix(row_security::STALE_ROW_TENANT) {
            return Error::StaleRoute {
                schema: format!("row tenant {tenant}"),
            };
        }
        if matches!(scope, Scope::Rows { .. }) && role.is_some_and(|role| reason.contains(role)) {
            // The row role is missing, not granted to the login role, or not bound by
            // row security: no connection of this pool would do better.
            return Error::RowSecurity {
                reason: format!(
                    "the row role {} cannot serve {}: {reason} (SyncRouter::migrate_shared \
                     creates and checks it)",
                    role.unwrap_or_default(),
                    scope.schema_ref()
                ),
            };
        }
        if reason.starts_with(proof::STALE_ROUTE) {
            // The session itself was clean (no other reason): the route is what failed.
            return Error::StaleRoute {
                schema: scope.schema().map(|s| s.to_string()).unwrap_or_default(),
            };
        }
        if let Some(role) = role.filter(|role| reason.contains(role)) {
            return Error::TenantRole {
                place: scope.schema_ref(),
                role: role.to_owned(),
                reason,
            };
        }
        if watch::poisons(&source) & POISON != 0 {
            Error::SetScope {
                place: scope.schema_ref(),
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
        if self.settings.mode() == PoolMode::TransactionLocal {
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
            self.schemas_diverge.store(true, Ordering::Relaxed);
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
        if self.schemas.len() > self.settings.max_schemas_per_connection() {
            log::debug!(
                "diesel-tenancy: recycling a connection that worked in {} schemas",
                self.schemas.len()
            );
            self.poisoned = true;
        }
        if !self.poisoned {
            // A borrower may have changed Diesel's statement cache; restore the pool's.
            self.conn
                .set_prepared_statement_cache_size(if self.settings.statement_cache() {
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
        place: scope.schema_ref(),
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

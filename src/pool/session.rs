//! [`Session`]: what the pool knows and decides about one pooled connection's session,
//! with no I/O.
//!
//! Both faces own one per connection and only do the I/O around it: the sync
//! [`ManagedConnection`](super::ManagedConnection) (`managed.rs`, on Diesel's
//! `PgConnection`) and, with the `async` feature, the async one (`async_managed.rs`, on
//! diesel-async's `AsyncPgConnection`). What a checkout sends, how its answer is read,
//! which state survives it and when a connection must be discarded is decided here,
//! once:
//!
//! 1. [`Session::plan`] refuses a connection the client side already distrusts (an open
//!    transaction, a broken transaction manager, a flag the [`Watch`] raised, custom
//!    type OIDs cached in another scope) and renders the verified checkout message for
//!    the scope (`proof.rs`);
//! 2. the face sends it; on success [`Session::entered`] records the new scope, on
//!    failure [`Session::failed`] discards the connection and turns the server's reason
//!    into the crate's error;
//! 3. on check-in [`Session::left`] reads what the client side can prove without a round
//!    trip and discards whatever it cannot trust.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use diesel::sql_types::{BigInt, Integer, Text};
use diesel::QueryableByName;

use super::mode::PoolMode;
use super::proof::{self, Checkout, Identity, Proof};
use super::row_security::{self, RowProof};
use super::scope::Scope;
use super::settings::ConnectionSettings;
use super::tenant_roles::RoleNames;
use super::watch::{self, Flags, Watch, POISON, STALE_PLAN, TYPE_LOOKUP};
use crate::error::{Error, Result};
use crate::schema_name::SchemaName;

/// What a new connection asks about itself, sent unnamed (transaction poolers accept it).
pub(crate) const BACKEND_SQL: &str =
    "SELECT pg_backend_pid() AS pid, session_user::text AS login, \
     (SELECT oid FROM pg_catalog.pg_database \
      WHERE datname = pg_catalog.current_database())::int8 AS database";

/// The answer to [`BACKEND_SQL`].
#[derive(QueryableByName)]
pub(crate) struct Backend {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Text)]
    login: String,
    /// The database's OID, which tenant role names are derived from.
    #[diesel(sql_type = BigInt)]
    database: i64,
}

/// The checkout a [`Session`] decided on: the message to send and what it changes.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The whole checkout message (one simple query).
    pub(crate) sql: String,
    path: String,
    /// The role the scope runs as, if any (a tenant role or the row role).
    role: Option<String>,
    /// The message forgets every prepared statement (the client's cache must follow).
    pub(crate) deallocate: bool,
    prepare_rows: bool,
}

/// The decisions about one pooled connection's session (see the module docs).
pub(crate) struct Session {
    /// Matches the id of the [`Watch`] installed on the connection.
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

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("last_scope", &self.last_scope)
            .field("schemas", &self.schemas.len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session of a connection that answered [`BACKEND_SQL`] with `backend`. Its proof
    /// is prepared on the connection ([`Session::prepare_sql`]) unless `behind_pooler`.
    pub(crate) fn new(
        backend: &Backend,
        settings: Arc<ConnectionSettings>,
        schemas_diverge: Arc<AtomicBool>,
        behind_pooler: bool,
    ) -> Result<Session> {
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
        let role_names = match settings.tenant_roles() {
            Some(_) => {
                proof = proof.with_tenant_roles(names.group());
                Some(names)
            }
            None => None,
        };
        if settings.row_tenants() {
            proof = proof.with_rows(RowProof::new(
                &backend.login,
                names,
                settings.row_schema().clone(),
            ));
        }
        Ok(Session {
            id: watch::next_id(),
            flags: Flags::default(),
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

    /// What to send once on a new connection, before its first checkout: the `PREPARE` of
    /// the proof, on a direct connection.
    pub(crate) fn prepare_sql(&self) -> Option<String> {
        self.proof.is_prepared().then(|| self.proof.prepare())
    }

    /// The instrumentation to install on the connection (the application's inside it).
    /// `concurrent`: queries of one checkout may overlap (diesel-async pipelines them),
    /// so a query started inside another is no sign of a type lookup.
    pub(crate) fn watch(&self, concurrent: bool) -> Watch {
        Watch::new(
            self.id,
            self.flags.clone(),
            self.settings.make_instrumentation(),
        )
        .concurrent(concurrent)
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    #[cfg(feature = "async")]
    pub(crate) fn flags(&self) -> &Flags {
        &self.flags
    }

    pub(crate) fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    pub(crate) fn mode(&self) -> PoolMode {
        self.settings.mode()
    }

    /// Marks the connection for disposal and says why.
    pub(crate) fn discard(&mut self, reason: &str) {
        if !self.poisoned {
            log::warn!("diesel-tenancy: discarding a pooled connection: {reason}");
        }
        self.poisoned = true;
    }

    /// True if the connection must not be reused; `broken`: the client's transaction
    /// manager says it is broken.
    pub(crate) fn is_poisoned(&self, broken: bool) -> bool {
        if self.flags.get() & STALE_PLAN != 0 {
            self.schemas_diverge.store(true, Ordering::Relaxed);
        }
        self.poisoned || broken || self.flags.get() & POISON != 0
    }

    /// Decides the checkout of `scope`: refuses a connection the client side distrusts
    /// (`depth`: the client's transaction depth, `broken`: its transaction manager is
    /// broken), else renders the message. `wrap`: in `Session` mode, run the message as
    /// one explicit transaction block (`BEGIN; …; COMMIT`), so that a failed proof leaves
    /// the session in an aborted block and any statement sent behind the message in the
    /// same round trip fails instead of running in the previous scope.
    pub(crate) fn plan(
        &mut self,
        scope: &Scope,
        depth: Option<u32>,
        broken: bool,
        wrap: bool,
    ) -> Result<Plan> {
        if depth.is_some() {
            self.discard("Diesel still had a transaction open on it");
            return Err(Error::ScopeChangeInTransaction {
                wanted: scope.schema_ref(),
            });
        }
        if self.is_poisoned(broken) {
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
        let mut sql = self.proof.message(&Checkout {
            path: &path,
            route: route.as_deref(),
            role: role.as_deref(),
            row_tenant,
            deallocate,
            prepare_rows,
        });
        if wrap && self.mode() == PoolMode::Session {
            sql = format!("BEGIN; {sql}; COMMIT");
        }
        Ok(Plan {
            sql,
            path,
            role,
            deallocate,
            prepare_rows,
        })
    }

    /// Records a checkout the server accepted. Returns whether the client's prepared
    /// statement cache must be emptied (the message deallocated every statement).
    pub(crate) fn entered(&mut self, scope: &Scope, plan: Plan) -> bool {
        if plan.deallocate {
            self.rows_prepared = false;
        }
        if plan.prepare_rows {
            self.rows_prepared = true;
        }
        self.flags.clear();
        if self.last_scope.as_ref() != Some(scope) {
            self.last_scope = Some(scope.clone());
        }
        if self.last_path.as_ref() != Some(&plan.path) {
            self.last_path = Some(plan.path);
        }
        if let Some(schema) = scope.schema() {
            if !self.schemas.contains(schema) {
                self.schemas.insert(schema.clone());
            }
        }
        plan.deallocate && self.settings.statement_cache()
    }

    /// Discards the connection after its checkout message failed, keeping the reason.
    ///
    /// A reason that names the scope's tenant role (missing, not settable by the login
    /// role, refused by the role proof) is about the tenant, not this connection: it is
    /// returned as [`Error::TenantRole`], which the pool does not retry on another one.
    pub(crate) fn failed(
        &mut self,
        scope: &Scope,
        plan: &Plan,
        source: diesel::result::Error,
    ) -> Error {
        let role = plan.role.as_deref();
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

    /// Whether a query of this checkout failed on a missing relation or schema.
    #[cfg(any(feature = "rocket", feature = "async"))]
    pub(crate) fn missed_relation(&self) -> bool {
        self.flags.get() & watch::MISSING_RELATION != 0
    }

    /// Reads what the client side proves at check-in (`depth`: the client's transaction
    /// depth once the pool's own transaction was ended) and discards what it cannot
    /// trust. Returns whether the connection is kept.
    pub(crate) fn left(&mut self, depth: Option<u32>) -> bool {
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
        if depth.is_some() {
            self.discard("a transaction was left open on it");
        }
        if self.schemas.len() > self.settings.max_schemas_per_connection() {
            log::debug!(
                "diesel-tenancy: recycling a connection that worked in {} schemas",
                self.schemas.len()
            );
            self.poisoned = true;
        }
        !self.poisoned
    }
}

/// [`Error::UncleanSession`] for `scope`.
pub(crate) fn unclean(scope: &Scope, reason: &str) -> Error {
    Error::UncleanSession {
        place: scope.schema_ref(),
        reason: reason.to_owned(),
    }
}

//! [`TenantPool`]: an r2d2 pool whose every checkout names its scope.

use std::sync::Arc;

use diesel::pg::PgConnection;

use super::builder::TenantPoolBuilder;
use super::connection::TenantConnection;
use super::manager::ConnectionManager;
use super::mode::PoolMode;
use super::scope::Scope;
use super::settings::ConnectionSettings;
use super::tenant_roles::TenantRoles;
use crate::error::{Error, Result};
use crate::schema_name::SchemaName;

/// A pool of PostgreSQL connections that are always scoped to a tenant or to `public`.
///
/// Cheap to clone; clones share the pool.
///
/// ```no_run
/// use diesel::prelude::*;
/// use diesel_tenancy::{SchemaName, TenantPool};
///
/// # fn main() -> diesel_tenancy::Result<()> {
/// let pool = TenantPool::builder().max_size(4).build("postgres://localhost/app")?;
/// let acme = SchemaName::new("acme")?;
/// let mut conn = pool.tenant(&acme)?; // search_path = "acme"
/// let n: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM hotels")
///     .get_result(&mut *conn)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TenantPool {
    inner: r2d2::Pool<ConnectionManager>,
    /// The settings its manager opens and scopes connections with.
    settings: Arc<ConnectionSettings>,
}

impl std::fmt::Debug for TenantPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantPool")
            .field("mode", &self.mode())
            .field("state", &self.inner.state())
            .finish()
    }
}

impl TenantPool {
    /// A builder with the defaults documented on each setter.
    pub fn builder() -> TenantPoolBuilder {
        TenantPoolBuilder::default()
    }

    /// The pool over connections from `manager` (called by the builder).
    pub(super) fn from_r2d2(
        inner: r2d2::Pool<ConnectionManager>,
        settings: Arc<ConnectionSettings>,
    ) -> Self {
        TenantPool { inner, settings }
    }

    /// Checks out a connection scoped to the tenant schema `schema` alone
    /// (plus the configured extension schemas).
    pub fn tenant(&self, schema: &SchemaName) -> Result<TenantConnection> {
        self.checkout(Scope::Tenant(schema.clone()))
    }

    /// Checks out a connection scoped to `public`.
    pub fn public(&self) -> Result<TenantConnection> {
        self.checkout(Scope::Public)
    }

    /// Checks out a connection scoped to `scope`.
    ///
    /// The checkout sends one message that resets the session, sets its `search_path`
    /// and proves the rest of its state clean (see the crate docs, "What a checkout
    /// proves"). A pooled connection that fails the proof, or turns out to be dead, is
    /// discarded and another one is tried, up to `max_size + 1` times; then the last
    /// error is returned ([`Error::UncleanSession`], or an unavailable error).
    pub fn checkout(&self, scope: Scope) -> Result<TenantConnection> {
        let attempts = self.inner.max_size() + 1;
        let mut last = None;
        for _ in 0..attempts {
            let pooled = self.inner.get()?;
            match TenantConnection::enter(pooled, scope.clone()) {
                Ok(conn) => return Ok(conn),
                // Every connection would say the same: the route, or the tenant's role,
                // failed, not the session.
                Err(
                    e @ (Error::StaleRoute { .. }
                    | Error::TenantRole { .. }
                    | Error::RowSecurity { .. }
                    | Error::Config(_)),
                ) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("the pool has no connections".into())))
    }

    /// Runs `f` on a connection scoped to `schema`. In `TransactionLocal` mode the work is
    /// committed when `f` returns `Ok` and rolled back otherwise.
    pub fn with_tenant<T, E, F>(&self, schema: &SchemaName, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: From<Error>,
    {
        self.with_scope(Scope::Tenant(schema.clone()), f)
    }

    /// Runs `f` on a connection scoped to `public`; see [`with_tenant`](Self::with_tenant).
    pub fn with_public<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: From<Error>,
    {
        self.with_scope(Scope::Public, f)
    }

    /// Runs `f` on a connection scoped to `scope`; see [`with_tenant`](Self::with_tenant).
    pub fn with_scope<T, E, F>(&self, scope: Scope, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: From<Error>,
    {
        let mut conn = self.checkout(scope)?;
        match f(&mut conn) {
            Ok(value) => {
                conn.commit()?;
                Ok(value)
            }
            Err(e) => {
                // Dropping rolls back in TransactionLocal mode; the closure's error wins.
                let _ = conn.rollback();
                Err(e)
            }
        }
    }

    #[cfg(feature = "rocket")]
    /// Runs `f` like [`with_scope`](Self::with_scope), but gives `f` back unrun when the
    /// checkout found the route stale, and says whether `f` met a missing relation.
    pub(crate) fn run_routed<T, E, F>(&self, scope: Scope, f: F) -> Routed<T, E, F>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: From<Error>,
    {
        let mut conn = match self.checkout(scope) {
            Ok(conn) => conn,
            Err(e @ Error::StaleRoute { .. }) => return Routed::Stale(e, f),
            Err(e) => return Routed::Done(Err(e.into())),
        };
        match f(&mut conn) {
            Ok(value) => Routed::Done(conn.commit().map(|()| value).map_err(E::from)),
            Err(e) => {
                let missed = conn.missed_relation();
                // Dropping rolls back in TransactionLocal mode; the closure's error wins.
                let _ = conn.rollback();
                if missed {
                    Routed::MissedRelation(e)
                } else {
                    Routed::Done(Err(e))
                }
            }
        }
    }

    /// The mode connections are scoped with.
    pub fn mode(&self) -> PoolMode {
        self.settings.mode()
    }

    /// The per-tenant role settings, if tenant roles are on.
    pub fn tenant_roles(&self) -> Option<&TenantRoles> {
        self.settings.tenant_roles()
    }

    /// Checks out the rows of row tenant `tenant` (its registry id); see [`Scope::Rows`].
    pub fn row_tenant(&self, tenant: i64) -> Result<TenantConnection> {
        self.checkout(Scope::Rows { tenant })
    }

    /// Checks out every row tenant's rows at once, as the owner of the row tables; see
    /// [`Scope::AllRows`]. For work across all row tenants only.
    pub fn all_tenant_rows(&self) -> Result<TenantConnection> {
        self.checkout(Scope::AllRows)
    }

    /// Whether the pool serves row tenants
    /// ([`TenantPoolBuilder::row_tenants`](crate::TenantPoolBuilder::row_tenants)).
    pub fn has_row_tenants(&self) -> bool {
        self.settings.row_tenants()
    }

    /// The schema that holds row tenants' tables.
    pub fn row_schema(&self) -> &SchemaName {
        self.settings.row_schema()
    }

    /// The pool's size limit.
    pub fn max_size(&self) -> u32 {
        self.inner.max_size()
    }

    /// Connections open and idle right now.
    pub fn state(&self) -> r2d2::State {
        self.inner.state()
    }

    /// The `search_path` a checkout into `scope` sets, for work the crate scopes itself
    /// inside one of its transactions (lifecycle hooks).
    pub(crate) fn search_path(&self, scope: &Scope) -> String {
        self.settings.search_path(scope)
    }
}

#[cfg(feature = "rocket")]
/// How [`TenantPool::run_routed`] ended.
pub(crate) enum Routed<T, E, F> {
    /// `f` ran (or the checkout failed for another reason).
    Done(Result<T, E>),
    /// The checkout proved the route stale; `f` did not run.
    Stale(Error, F),
    /// `f` failed after a query met a missing relation or schema.
    MissedRelation(E),
}

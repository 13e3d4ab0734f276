//! [`AsyncTenantPool`]: the async face of the pool, on diesel-async and deadpool, with
//! the same scopes, modes, verified checkout and discard rules as [`TenantPool`]
//! (the decisions are shared: `session.rs`).
//!
//! [`TenantPool`]: crate::TenantPool

use std::sync::Arc;

use deadpool::managed::{Pool, PoolError};
use diesel::result::QueryResult;
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

use super::async_connection::AsyncTenantConnection;
use super::async_manager::AsyncManager;
use super::mode::PoolMode;
use super::scope::Scope;
use super::settings::ConnectionSettings;
use super::tenant_roles::TenantRoles;
use crate::error::{Error, Result};
use crate::schema_name::SchemaName;

/// An async pool of PostgreSQL connections that are always scoped to a tenant or to
/// `public`, built with [`TenantPoolBuilder::build_async`](crate::TenantPoolBuilder::build_async).
///
/// Cheap to clone; clones share the pool.
///
/// ```no_run
/// use diesel::prelude::*;
/// use diesel_async::RunQueryDsl;
/// use diesel_tenancy::{SchemaName, TenantPool};
///
/// # async fn run() -> diesel_tenancy::Result<()> {
/// let pool = TenantPool::builder().max_size(4).build_async("postgres://localhost/app").await?;
/// let acme = SchemaName::new("acme")?;
/// let mut conn = pool.tenant(&acme).await?; // search_path = "acme", proven
/// let n: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM hotels")
///     .get_result(&mut *conn)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncTenantPool {
    inner: Pool<AsyncManager>,
    settings: Arc<ConnectionSettings>,
}

impl std::fmt::Debug for AsyncTenantPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTenantPool")
            .field("mode", &self.mode())
            .field("status", &self.inner.status())
            .finish()
    }
}

/// The errors a checkout returns at once instead of trying another connection: every
/// connection would say the same (the route, the tenant's role or the configuration
/// failed, not the session).
fn is_final(e: &Error) -> bool {
    matches!(
        e,
        Error::StaleRoute { .. }
            | Error::TenantRole { .. }
            | Error::RowSecurity { .. }
            | Error::Config(_)
    )
}

impl AsyncTenantPool {
    pub(super) fn new(inner: Pool<AsyncManager>, settings: Arc<ConnectionSettings>) -> Self {
        AsyncTenantPool { inner, settings }
    }

    /// Opens one connection (the builder's check that the database answers).
    pub(super) async fn warm_up(&self) -> Result<()> {
        drop(self.inner.get().await.map_err(pool_error)?);
        Ok(())
    }

    /// A connection from the pool, not yet entered into a scope.
    async fn get(&self, scope: &Scope) -> Result<AsyncTenantConnection> {
        let object = self.inner.get().await.map_err(pool_error)?;
        Ok(AsyncTenantConnection::new(object, scope.clone()))
    }

    /// How many times a checkout tries: every connection of the pool, and a new one.
    fn attempts(&self) -> usize {
        self.inner.status().max_size + 1
    }

    /// Checks out a connection scoped to `scope`: one round trip that resets the session,
    /// sets its `search_path` (and role, and row tenant) and proves the rest of its state
    /// clean. A pooled connection that fails the proof is closed and another one tried,
    /// as [`TenantPool::checkout`](crate::TenantPool::checkout) does.
    pub async fn checkout(&self, scope: Scope) -> Result<AsyncTenantConnection> {
        let mut last = None;
        for _ in 0..self.attempts() {
            let mut conn = self.get(&scope).await?;
            match conn.managed().enter(&scope).await {
                Ok(()) => return Ok(conn),
                Err(e) if is_final(&e) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("the pool has no connections".into())))
    }

    /// [`checkout`](Self::checkout) with the borrower's first query in the same network
    /// round trip: `first` builds it on the connection (e.g. `|mut c| query.load(&mut c)`
    /// boxed), and it is sent right behind the checkout message, pipelined.
    ///
    /// It runs only if the checkout succeeded: the message is one transaction block, so a
    /// failed proof aborts it and the server refuses `first` without running it (it is
    /// never run in the previous borrower's scope). `first` may be called again on another
    /// connection when a pooled one fails its proof. Returns the connection and the first
    /// query's own result.
    pub async fn checkout_with<T, F>(
        &self,
        scope: Scope,
        mut first: F,
    ) -> Result<(AsyncTenantConnection, QueryResult<T>)>
    where
        F: for<'c> FnMut(&'c AsyncPgConnection) -> BoxFuture<'c, QueryResult<T>>,
    {
        let mut last = None;
        for _ in 0..self.attempts() {
            let mut conn = self.get(&scope).await?;
            match conn.managed().enter_with(&scope, &mut first).await {
                Ok(result) => return Ok((conn, result)),
                Err(e) if is_final(&e) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("the pool has no connections".into())))
    }

    /// Checks out a connection scoped to the tenant schema `schema`.
    pub async fn tenant(&self, schema: &SchemaName) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::Tenant(schema.clone())).await
    }

    /// Checks out a connection scoped to `public`.
    pub async fn public(&self) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::Public).await
    }

    /// Checks out a connection scoped to the row tenant `tenant`'s rows.
    pub async fn row_tenant(&self, tenant: i64) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::Rows { tenant }).await
    }

    /// Checks out a connection that sees every row tenant's rows (the owner's scope).
    pub async fn all_tenant_rows(&self) -> Result<AsyncTenantConnection> {
        self.checkout(Scope::AllRows).await
    }

    /// The mode connections are scoped with.
    pub fn mode(&self) -> PoolMode {
        self.settings.mode()
    }

    /// The tenant roles every tenant checkout sets, if the pool has them.
    pub fn tenant_roles(&self) -> Option<&TenantRoles> {
        self.settings.tenant_roles()
    }

    /// Whether the pool serves row tenants.
    pub fn has_row_tenants(&self) -> bool {
        self.settings.row_tenants()
    }

    /// The schema of row tenants' tables.
    pub fn row_schema(&self) -> &SchemaName {
        self.settings.row_schema()
    }
}

fn pool_error(e: PoolError<Error>) -> Error {
    match e {
        PoolError::Backend(e) => e,
        other => Error::Unavailable {
            what: "the async connection pool",
            reason: other.to_string(),
        },
    }
}

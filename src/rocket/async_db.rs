//! [`AsyncTenantDb`]: the request's tenant on the async pool (feature `rocket-async`).

use std::sync::Arc;

use ::rocket::request::{FromRequest, Outcome};
use ::rocket::{Ignite, Request, Rocket, Sentinel};
use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

use super::api_error::ApiError;
use super::guards::{abort_without_fairing, fail, tenancy, CurrentTenant};
use super::state::{blocking, Routing, Tenancy, ASYNC_POOL_OFF};
use crate::error::{Error, Result};
use crate::pool::{Scope, TenantPool};
use crate::{AsyncTenantConnection, AsyncTenantPool};

/// A database handle scoped to the request's tenant, on the async pool: the handler
/// awaits its [diesel-async](crate::diesel_async) queries on the request's own task, with
/// no handoff to the blocking pool.
///
/// It fails like [`CurrentTenant`] (400 `{"detail":"Tenant not found"}`, …), and needs
/// the async pool: `tenancy.async_pool = true` or
/// [`TenancyFairing::async_pool`](super::TenancyFairing::async_pool) (launch aborts
/// without it). Nothing is checked out until the handler asks:
///
/// - [`connection`](Self::connection): an [`AsyncTenantConnection`] in the request's
///   scope; in `TransactionLocal` mode commit it
///   ([`AsyncTenantConnection::commit`]), or its work is rolled back when it drops.
/// - [`connection_with`](Self::connection_with): the same, with the first query sent in
///   the checkout's round trip.
/// - [`run`](Self::run): a closure's work on such a connection, committed when it
///   returns `Ok`, like [`TenantDb::run`](super::TenantDb::run).
///
/// A tenant's route is pinned to its schema's OID, which every checkout proves. If the
/// checkout finds the route stale (the tenant was deleted, or deleted and created again,
/// a moment ago), the registry is reloaded and the request decided again, once, as
/// [`TenantDb::run`](super::TenantDb::run) does: a tenant that is gone is
/// [`Error::UnknownTenant`] (400 "Tenant not found"). That reload, rare by design, runs
/// on the blocking pool through the sync pool.
///
/// The sync guards ([`TenantDb`](super::TenantDb), [`PublicDb`](super::PublicDb)) keep
/// working next to it, on the sync pool.
#[derive(Debug, Clone)]
pub struct AsyncTenantDb {
    pool: AsyncTenantPool,
    /// Reloads the registry when a route proves stale.
    sync: TenantPool,
    tenant: CurrentTenant,
    routing: Routing,
}

impl AsyncTenantDb {
    /// The tenant this handle is scoped to.
    pub fn tenant(&self) -> &CurrentTenant {
        &self.tenant
    }

    /// The async pool, e.g. to check out another scope explicitly.
    pub fn pool(&self) -> &AsyncTenantPool {
        &self.pool
    }

    /// Checks out a connection scoped to the request's tenant.
    ///
    /// A pool timeout or an unreachable database is an error whose [`ApiError`] is a 503;
    /// a tenant deleted since the request was resolved is [`Error::UnknownTenant`] (400).
    /// In `TransactionLocal` mode the connection's work is one transaction: commit it, or
    /// it is rolled back when the connection drops.
    pub async fn connection(&self) -> Result<AsyncTenantConnection> {
        match self.pool.checkout(self.tenant.scope().clone()).await {
            Err(Error::StaleRoute { .. }) => {
                let scope = self.decide_again().await?;
                self.pool.checkout(scope).await
            }
            done => done,
        }
    }

    /// Checks out like [`connection`](Self::connection) and runs `first` in the same
    /// network round trip as the checkout (pipelined), for a handler whose first query
    /// is known up front; see [`AsyncTenantPool::checkout_with`]. `first` runs again if
    /// the route proved stale and the request was decided again.
    ///
    /// ```rust,no_run
    /// use diesel::prelude::*;
    /// use diesel_async::RunQueryDsl;
    /// use diesel_tenancy::diesel_async;
    /// use diesel_tenancy::rocket::{ApiError, AsyncTenantDb};
    /// use rocket::futures::FutureExt;
    ///
    /// diesel::table! { hotels (id) { id -> BigInt, name -> Varchar } }
    ///
    /// #[rocket::get("/hotels")]
    /// async fn list(db: AsyncTenantDb) -> Result<String, ApiError> {
    ///     let (conn, names) = db
    ///         // `&AsyncPgConnection` runs queries too: take it by value, borrow it mutably.
    ///         .connection_with(|mut conn| {
    ///             async move { hotels::table.select(hotels::name).load::<String>(&mut conn).await }
    ///                 .boxed()
    ///         })
    ///         .await?;
    ///     let names = names?;
    ///     conn.commit().await?;
    ///     Ok(names.join(", "))
    /// }
    /// # fn main() {}
    /// ```
    pub async fn connection_with<T, F>(
        &self,
        mut first: F,
    ) -> Result<(AsyncTenantConnection, QueryResult<T>)>
    where
        F: for<'c> FnMut(&'c AsyncPgConnection) -> BoxFuture<'c, QueryResult<T>>,
        T: Send,
    {
        let scope = self.tenant.scope().clone();
        match self.pool.checkout_with(scope, &mut first).await {
            Err(Error::StaleRoute { .. }) => {
                let scope = self.decide_again().await?;
                self.pool.checkout_with(scope, first).await
            }
            done => done,
        }
    }

    /// Runs `f` on a connection scoped to the request's tenant (see
    /// [`connection`](Self::connection)): committed when `f` returns `Ok`, rolled back
    /// otherwise (in `TransactionLocal` mode; in `Session` mode each statement commits as
    /// it runs, unless `f` opens a transaction).
    ///
    /// If `f` fails after a query met a relation or schema that does not exist, the
    /// registry is reloaded and the request decided again, as
    /// [`TenantDb::run`](super::TenantDb::run) does: a tenant deleted meanwhile is
    /// [`Error::UnknownTenant`] (400), one that now routes elsewhere
    /// [`Error::StaleRoute`] (400), and otherwise `f`'s error stands.
    ///
    /// ```rust,no_run
    /// use diesel::prelude::*;
    /// use diesel_async::RunQueryDsl;
    /// use diesel_tenancy::diesel_async;
    /// use diesel_tenancy::rocket::{ApiError, AsyncTenantDb};
    /// use rocket::futures::FutureExt;
    ///
    /// diesel::table! { hotels (id) { id -> BigInt, name -> Varchar } }
    ///
    /// #[rocket::post("/hotels/<name>")]
    /// async fn add(db: AsyncTenantDb, name: String) -> Result<String, ApiError> {
    ///     let id: i64 = db
    ///         .run(|conn| {
    ///             async move {
    ///                 let id = diesel::insert_into(hotels::table)
    ///                     .values(hotels::name.eq(name))
    ///                     .returning(hotels::id)
    ///                     .get_result(conn)
    ///                     .await?;
    ///                 Ok::<_, ApiError>(id)
    ///             }
    ///             .boxed()
    ///         })
    ///         .await?;
    ///     Ok(id.to_string())
    /// }
    /// # fn main() {}
    /// ```
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<T, E>>,
        E: From<Error>,
    {
        let mut conn = self.connection().await?;
        match f(&mut conn).await {
            Ok(value) => {
                conn.commit().await?;
                Ok(value)
            }
            Err(e) => {
                let (missed, used) = (conn.missed_relation(), conn.scope().clone());
                // The closure's error wins over a failed rollback.
                let _ = conn.rollback().await;
                if !missed {
                    return Err(e);
                }
                // A relation or schema was missing: is the tenant gone?
                match self.decide_again().await {
                    Ok(now) if now == used => Err(e),
                    Ok(_) => Err(Error::StaleRoute {
                        schema: used.schema().map(ToString::to_string).unwrap_or_default(),
                    }
                    .into()),
                    Err(gone) => Err(gone.into()),
                }
            }
        }
    }

    /// Reloads the registry and decides the request again (on a blocking thread: the
    /// registry is read through the sync pool).
    async fn decide_again(&self) -> Result<Scope> {
        let (sync, routing) = (self.sync.clone(), self.routing.clone());
        let named = Arc::clone(self.tenant.named());
        blocking(move || routing.decide_again(&sync, &named)).await
    }
}

#[::rocket::async_trait]
impl<'r> FromRequest<'r> for AsyncTenantDb {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ApiError> {
        let tenant = match CurrentTenant::from_request(request).await {
            Outcome::Success(tenant) => tenant,
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(s) => return Outcome::Forward(s),
        };
        let found = tenancy(request).and_then(|t| {
            let pool = t.async_pool().map_err(ApiError::from)?;
            let sync = t.pool().map_err(ApiError::from)?;
            Ok((pool, sync, t.routing()))
        });
        match found {
            Ok((pool, sync, routing)) => Outcome::Success(AsyncTenantDb {
                pool,
                sync,
                tenant,
                routing,
            }),
            Err(e) => fail(request, e),
        }
    }
}

impl Sentinel for AsyncTenantDb {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        if abort_without_fairing(rocket, "AsyncTenantDb") {
            return true;
        }
        let off = !rocket
            .state::<Tenancy>()
            .is_some_and(Tenancy::has_async_pool);
        if off {
            log::error!(
                "diesel-tenancy: a route uses the `AsyncTenantDb` guard but {ASYNC_POOL_OFF}."
            );
        }
        off
    }
}

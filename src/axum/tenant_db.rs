//! [`TenantDb`]: checkouts from the async pool in the request's tenant scope.

use std::sync::Arc;

use ::axum::extract::FromRequestParts;
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use http::request::Parts;

use super::api_error::ApiError;
use super::decision::Decision;
use super::tenancy::Tenancy;
use crate::error::{Error, Result};
use crate::pool::Scope;
use crate::resolve::routing::blocking;
use crate::resolve::CurrentTenant;
use crate::AsyncTenantConnection;

/// A handle on the async pool, scoped to the request's tenant: connections are checked
/// out only when the handler asks ([`checkout`](Self::checkout),
/// [`checkout_with`](Self::checkout_with)), already scoped to the tenant.
///
/// It rejects like [`CurrentTenant`]: a request that resolved to no tenant never gets a
/// handle, so it cannot get a connection in any scope.
///
/// Every checkout proves that the tenant's schema is still the one the registry named
/// when the request was decided. If it is not (the tenant was deleted, or deleted and
/// created again, a moment ago), the registry is reloaded and the request decided again,
/// once: a tenant that is gone is [`Error::UnknownTenant`] (400 `Tenant not found`
/// through [`ApiError`]), one that moved gets its new schema.
#[derive(Debug, Clone)]
pub struct TenantDb {
    tenancy: Tenancy,
    tenant: CurrentTenant,
}

impl TenantDb {
    /// The tenant this handle is scoped to.
    pub fn tenant(&self) -> &CurrentTenant {
        &self.tenant
    }

    /// Checks out a connection scoped to the request's tenant (one round trip).
    ///
    /// In `TransactionLocal` mode the work is committed only by
    /// [`AsyncTenantConnection::commit`]; dropping the connection discards it.
    pub async fn checkout(&self) -> Result<AsyncTenantConnection> {
        let pool = self.tenancy.pool();
        match pool.checkout(self.tenant.scope().clone()).await {
            Err(Error::StaleRoute { .. }) => pool.checkout(self.decide_again().await?).await,
            checked_out => checked_out,
        }
    }

    /// Checks out a connection scoped to the request's tenant and runs `first` on it,
    /// the checkout and the first query leaving in one network round trip; see
    /// [`AsyncTenantPool::checkout_with`](crate::AsyncTenantPool::checkout_with). On a
    /// stale route `first` is run again on the new route's connection (it had no effect
    /// on the refused one).
    ///
    /// ```rust,no_run
    /// # use diesel_tenancy::axum::{ApiError, TenantDb};
    /// use diesel::prelude::*;
    /// use diesel_async::RunQueryDsl;
    /// use diesel_tenancy::diesel_async;
    /// use futures_util::FutureExt;
    ///
    /// async fn count(db: TenantDb) -> Result<String, ApiError> {
    ///     let (_conn, n) = db
    ///         .checkout_with(|conn| {
    ///             async move {
    ///                 let mut conn = conn; // `&AsyncPgConnection` runs queries too
    ///                 diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM hotels")
    ///                     .get_result::<i64>(&mut conn)
    ///                     .await
    ///             }
    ///             .boxed()
    ///         })
    ///         .await?;
    ///     Ok(n?.to_string())
    /// }
    /// ```
    pub async fn checkout_with<T, F>(
        &self,
        mut first: F,
    ) -> Result<(AsyncTenantConnection, diesel::QueryResult<T>)>
    where
        F: for<'c> FnMut(&'c AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<T>>,
        T: Send,
    {
        let pool = self.tenancy.pool();
        match pool
            .checkout_with(self.tenant.scope().clone(), &mut first)
            .await
        {
            Err(Error::StaleRoute { .. }) => {
                let scope = self.decide_again().await?;
                pool.checkout_with(scope, first).await
            }
            checked_out => checked_out,
        }
    }

    /// Reloads the registry through the router's pool and decides the request again.
    async fn decide_again(&self) -> Result<Scope> {
        let routing = self.tenancy.routing();
        let pool = self.tenancy.router().pool().clone();
        let named = Arc::clone(self.tenant.named());
        blocking(move || routing.decide_again(&pool, &named)).await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TenantDb {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let decision = Decision::of(parts, "TenantDb")?;
        Ok(TenantDb {
            tenant: decision.current_tenant().await?,
            tenancy: decision.tenancy().clone(),
        })
    }
}

//! [`TenantConn`]: a connection checked out for the request's tenant, as an extractor.

use std::ops::{Deref, DerefMut};

use ::axum::extract::FromRequestParts;
use http::request::Parts;

use super::api_error::ApiError;
use super::tenant_db::TenantDb;
use crate::error::Result;
use crate::AsyncTenantConnection;

/// A connection from the async pool, scoped to the request's tenant, checked out before
/// the handler runs ([`TenantDb::checkout`], with its stale-route handling). It derefs
/// to [`AsyncTenantConnection`], and so to `AsyncPgConnection`.
///
/// It rejects like [`CurrentTenant`](crate::resolve::CurrentTenant), and with 503 when
/// no connection can be had. In `TransactionLocal` mode call [`commit`](Self::commit):
/// a connection dropped without it has its work discarded.
#[derive(Debug)]
pub struct TenantConn(AsyncTenantConnection);

impl TenantConn {
    /// The connection.
    pub fn into_inner(self) -> AsyncTenantConnection {
        self.0
    }

    /// Commits the work done on it (`TransactionLocal` mode) and gives it back.
    pub async fn commit(self) -> Result<()> {
        self.0.commit().await
    }
}

impl Deref for TenantConn {
    type Target = AsyncTenantConnection;

    fn deref(&self) -> &AsyncTenantConnection {
        &self.0
    }
}

impl DerefMut for TenantConn {
    fn deref_mut(&mut self) -> &mut AsyncTenantConnection {
        &mut self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TenantConn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let db = TenantDb::from_request_parts(parts, state).await?;
        Ok(TenantConn(db.checkout().await?))
    }
}

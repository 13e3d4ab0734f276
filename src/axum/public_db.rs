//! [`PublicDb`]: checkouts from the async pool scoped to `public`.

use ::axum::extract::FromRequestParts;
use http::request::Parts;

use super::api_error::ApiError;
use super::decision::Decision;
use crate::error::Result;
use crate::{AsyncTenantConnection, AsyncTenantPool};

/// A handle on the async pool scoped to `public` (shared tables, the tenant registry),
/// whatever tenant the request names; it does not reject for want of a tenant.
#[derive(Debug, Clone)]
pub struct PublicDb {
    pool: AsyncTenantPool,
}

impl PublicDb {
    /// Checks out a connection scoped to `public`.
    pub async fn checkout(&self) -> Result<AsyncTenantConnection> {
        self.pool.public().await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PublicDb {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let decision = Decision::of(parts, "PublicDb")?;
        Ok(PublicDb {
            pool: decision.tenancy().pool().clone(),
        })
    }
}

//! [`CurrentTenant`] and [`Tenancy`] as axum extractors.

use ::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use super::api_error::ApiError;
use super::decision::Decision;
use super::tenancy::Tenancy;
use crate::resolve::CurrentTenant;

/// The request's tenant; rejects with 400 `{"detail":"Tenant not found"}` (or a
/// malformed request's 400, or the registry's 503) when there is none.
impl<S: Send + Sync> FromRequestParts<S> for CurrentTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Decision::of(parts, "CurrentTenant")?.current_tenant().await
    }
}

/// `Option<CurrentTenant>`: `None` wherever `CurrentTenant` would reject, as the Rocket
/// guard's `Option`. Only a missing [`TenancyLayer`](super::TenancyLayer) still rejects.
impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, ApiError> {
        let decision = Decision::of(parts, "CurrentTenant")?;
        Ok(decision.current_tenant().await.ok())
    }
}

/// The application's [`Tenancy`], on requests that passed through its layer.
impl<S: Send + Sync> FromRequestParts<S> for Tenancy {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Decision::of(parts, "Tenancy")?.tenancy().clone())
    }
}

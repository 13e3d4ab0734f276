//! [`ApiError`]: the axum face's JSON error (`{"detail": …}`).

use std::borrow::Cow;
use std::fmt;

use ::axum::http::StatusCode;
use ::axum::response::{IntoResponse, Response};
use ::axum::Json;
use serde::Serialize;

use crate::error::Error;
use crate::resolve::HttpError;

/// An HTTP error with a JSON body `{"detail": "…"}`, the same statuses and details as the
/// Rocket face's [`ApiError`](crate::rocket::ApiError) where both exist.
///
/// The extractors reject with it, and it is a handler's error type: converting a crate
/// [`Error`] maps a database that cannot be reached to 503, a tenant that is gone to 400
/// `Tenant not found`, a client mistake to 4xx (a lifecycle hook's
/// [`Refusal`](crate::Refusal) to 409 with its reason), and only the rest to 500
/// (logged, with a generic detail).
///
/// ```
/// use diesel_tenancy::axum::ApiError;
/// use diesel_tenancy::axum::axum::http::StatusCode;
///
/// let e = ApiError::from(diesel_tenancy::diesel::result::Error::NotFound);
/// assert_eq!((e.status(), e.detail()), (StatusCode::NOT_FOUND, "Not found"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    detail: Cow<'static, str>,
}

#[derive(Serialize)]
struct Body<'a> {
    detail: &'a str,
}

impl ApiError {
    /// An error with this status and detail.
    pub fn new(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    /// 400 `{"detail":"Tenant not found"}`.
    pub fn tenant_not_found() -> Self {
        ApiError::from(HttpError::tenant_not_found())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent to the client.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// A 500 for a tenancy extractor used without [`TenancyLayer`](super::TenancyLayer).
    pub(crate) fn missing_layer(extractor: &str) -> Self {
        log::error!(
            "diesel-tenancy: the `{extractor}` extractor ran on a request that did not pass \
             through `TenancyLayer`. Add it: `.layer(tenancy.layer())`."
        );
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        let (code, detail) = e.into_parts();
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError::new(status, detail)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::from(HttpError::from(e))
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        ApiError::from(Error::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(Body {
            detail: &self.detail,
        });
        (self.status, body).into_response()
    }
}

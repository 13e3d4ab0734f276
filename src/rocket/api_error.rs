//! [`ApiError`]: JSON error bodies (`{"detail": …}`) and the catchers that send them.

use std::borrow::Cow;
use std::fmt;

use ::rocket::http::Status;
use ::rocket::response::{self, Responder};
use ::rocket::serde::json::Json;
use ::rocket::{Catcher, Request};
use serde::Serialize;

use crate::error::Error;
use crate::resolve::HttpError;
pub use crate::resolve::TENANT_NOT_FOUND;

/// An HTTP error with a JSON body `{"detail": "…"}`.
///
/// Returned by the guards, by [`TenantDb::run`](super::TenantDb::run) (through `From`),
/// and usable as a handler's error type. Converting a crate [`Error`] maps a database
/// that cannot be reached to 503, a client mistake to 4xx (a lifecycle hook's
/// [`Refusal`](crate::Refusal) to 409 with its reason), and only the rest to 500 (logged, with a
/// generic detail).
///
/// ```
/// use diesel_tenancy::rocket::ApiError;
/// use diesel_tenancy::rocket::rocket::http::Status;
///
/// let e = ApiError::from(diesel_tenancy::diesel::result::Error::NotFound);
/// assert_eq!((e.status(), e.detail()), (Status::NotFound, "Not found"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: Status,
    detail: Cow<'static, str>,
}

#[derive(Serialize)]
struct Body<'a> {
    detail: &'a str,
}

impl ApiError {
    /// An error with this status and detail.
    pub fn new(status: Status, detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    /// 400 `{"detail":"Tenant not found"}`.
    pub fn tenant_not_found() -> Self {
        ApiError::new(Status::BadRequest, TENANT_NOT_FOUND)
    }

    /// The HTTP status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The message sent to the client.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::from(HttpError::from(e))
    }
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        let (code, detail) = e.into_parts();
        ApiError::new(Status::new(code), detail)
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        ApiError::from(Error::from(e))
    }
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let body = Json(Body {
            detail: &self.detail,
        });
        let mut response = body.respond_to(request)?;
        response.set_status(self.status);
        Ok(response)
    }
}

/// The error a guard failed with, kept for the catcher of the same status.
struct Stashed(Option<ApiError>);

/// Records `error` for this request's catcher and returns it.
pub(crate) fn stash(request: &Request<'_>, error: ApiError) -> ApiError {
    request.local_cache(|| Stashed(Some(error.clone())));
    error
}

#[::rocket::catch(default)]
fn json_error(status: Status, request: &Request<'_>) -> ApiError {
    match &request.local_cache(|| Stashed(None)).0 {
        Some(stashed) if stashed.status == status => stashed.clone(),
        _ => ApiError::new(status, default_detail(status)),
    }
}

fn default_detail(status: Status) -> &'static str {
    match status.code {
        400 => "Bad request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not found",
        405 => "Method not allowed",
        413 => "Payload too large",
        422 => "Unprocessable entity",
        500 => "Internal server error",
        503 => "Service unavailable",
        _ => status.reason().unwrap_or("Error"),
    }
}

/// JSON catchers for every status: `{"detail": …}`, with the guard's own detail when a
/// tenancy guard failed (e.g. 400 `{"detail":"Tenant not found"}`). Register them with
/// `.register("/", diesel_tenancy::rocket::catchers())`.
pub fn catchers() -> Vec<Catcher> {
    ::rocket::catchers![json_error]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hook;
    use crate::migrate::Refusal;

    fn hook_error(source: crate::error::HookError) -> Error {
        Error::Hook {
            hook: Hook::BeforeDelete,
            tenant: "acme".into(),
            source,
        }
    }

    #[test]
    fn a_hooks_refusal_is_a_conflict_with_its_reason_and_other_failures_are_500() {
        let refused = ApiError::from(hook_error(Box::new(Refusal::new("acme has invoices"))));
        assert_eq!(refused.status(), Status::Conflict);
        assert_eq!(
            refused.detail(),
            "the before-delete hook failed for tenant `acme`: acme has invoices"
        );
        let failed = ApiError::from(hook_error("disk full".into()));
        assert_eq!(failed.status(), Status::InternalServerError);
        assert!(!failed.detail().contains("disk full"));
    }
}

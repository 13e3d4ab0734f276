//! [`HttpError`]: the status and `detail` a web face answers, whatever the framework.
// Only the web faces (features `rocket`, `axum`) answer HTTP.
#![cfg_attr(not(any(feature = "rocket", feature = "axum")), allow(dead_code))]

use std::borrow::Cow;

use crate::error::Error;
use crate::migrate::Refusal;

/// The detail sent when no tenant was resolved or the one named is not registered.
pub const TENANT_NOT_FOUND: &str = "Tenant not found";

/// The detail of the 503 sent when the registry cannot be confirmed within its bound.
pub const REGISTRY_UNAVAILABLE: &str = "Tenant registry unavailable, try again later";

/// The detail of the 503 sent when the database cannot be reached in time.
pub(crate) const DATABASE_UNAVAILABLE: &str = "Database unavailable, try again later";

/// An HTTP status code and the `detail` of its JSON body, before a framework's response
/// type carries them: the Rocket and axum faces answer the same failures the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpError {
    status: u16,
    detail: Cow<'static, str>,
}

impl HttpError {
    /// An error with this status code and detail.
    pub(crate) fn new(status: u16, detail: impl Into<Cow<'static, str>>) -> Self {
        HttpError {
            status,
            detail: detail.into(),
        }
    }

    /// 400 `Tenant not found`.
    pub(crate) fn tenant_not_found() -> Self {
        HttpError::new(400, TENANT_NOT_FOUND)
    }

    /// The 503 for a registry that cannot be confirmed within its bound, logged with
    /// its cause.
    pub(crate) fn registry_unavailable(cause: Option<Error>) -> Self {
        match cause {
            Some(e) => log::warn!("diesel-tenancy: answering 503: {e}"),
            None => log::warn!(
                "diesel-tenancy: answering 503: the registry reload through the pool did not \
                 finish in time"
            ),
        }
        HttpError::new(503, REGISTRY_UNAVAILABLE)
    }

    /// The status code and the detail.
    pub(crate) fn into_parts(self) -> (u16, Cow<'static, str>) {
        (self.status, self.detail)
    }
}

/// A database that cannot be reached is 503, a client mistake 4xx (a lifecycle hook's
/// [`Refusal`] 409 with its reason), and only the rest 500 (logged, with a generic
/// detail).
impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        use diesel::result::Error as D;
        if e.is_unavailable() {
            log::warn!("diesel-tenancy: answering 503: {e}");
            return HttpError::new(503, DATABASE_UNAVAILABLE);
        }
        match e {
            // A route proved stale names a tenant that is gone (deleted a moment ago).
            Error::UnknownTenant { .. } | Error::StaleRoute { .. } => HttpError::tenant_not_found(),
            Error::Query(D::NotFound) => HttpError::new(404, "Not found"),
            Error::UnknownDomain { .. } => HttpError::new(404, e.to_string()),
            Error::InvalidTenantName { .. }
            | Error::InvalidDomain { .. }
            | Error::InvalidSchemaName { .. } => HttpError::new(400, e.to_string()),
            Error::TenantExists { .. }
            | Error::DomainExists { .. }
            | Error::SchemaExists { .. } => HttpError::new(409, e.to_string()),
            Error::Hook { ref source, .. } if source.downcast_ref::<Refusal>().is_some() => {
                HttpError::new(409, e.to_string())
            }
            other => {
                log::error!("diesel-tenancy: answering 500: {other}");
                HttpError::new(500, "Internal server error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hook;

    fn hook_error(source: crate::error::HookError) -> Error {
        Error::Hook {
            hook: Hook::BeforeDelete,
            tenant: "acme".into(),
            source,
        }
    }

    #[test]
    fn a_hooks_refusal_is_a_conflict_with_its_reason_and_other_failures_are_500() {
        let refused = HttpError::from(hook_error(Box::new(Refusal::new("acme has invoices"))));
        assert_eq!(
            refused.into_parts(),
            (
                409,
                "the before-delete hook failed for tenant `acme`: acme has invoices".into()
            )
        );
        let (status, detail) = HttpError::from(hook_error("disk full".into())).into_parts();
        assert_eq!(status, 500);
        assert!(!detail.contains("disk full"));
    }

    #[test]
    fn a_stale_route_or_unknown_tenant_is_tenant_not_found() {
        let stale = Error::StaleRoute {
            schema: "acme".into(),
        };
        assert_eq!(HttpError::from(stale), HttpError::tenant_not_found());
        let unknown = Error::UnknownTenant {
            name: "acme".into(),
        };
        assert_eq!(HttpError::from(unknown).into_parts().0, 400);
    }
}

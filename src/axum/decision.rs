//! [`Decision`]: what [`TenancyLayer`](super::TenancyLayer) read from a request, kept in
//! its extensions, and what that resolves to, looked up once, when an extractor first asks.

use std::sync::Arc;

use http::request::Parts;
use tokio::sync::OnceCell;

use super::api_error::ApiError;
use super::tenancy::Tenancy;
use crate::resolve::routing::Decided;
use crate::resolve::{CurrentTenant, HttpError, Malformed, TenantRef};

/// A request's decision, and the tenancy that makes it.
///
/// The layer reads what the request names (no lookup, no wait); the lookup against the
/// registry cache runs at most once per request, for the first extractor that needs the
/// tenant, as the Rocket guards resolve lazily: a route that needs no tenant never waits
/// for the registry, nor fails with it.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    tenancy: Tenancy,
    named: Arc<Result<Vec<TenantRef>, Malformed>>,
    decided: Arc<OnceCell<Result<Decided, HttpError>>>,
}

impl Decision {
    pub(crate) fn new(tenancy: Tenancy, named: Result<Vec<TenantRef>, Malformed>) -> Self {
        Decision {
            tenancy,
            named: Arc::new(named),
            decided: Arc::new(OnceCell::new()),
        }
    }

    /// The decision the layer stored in `parts` (a cheap clone), or a logged 500 naming
    /// `extractor` when the request did not pass through the layer.
    pub(crate) fn of(parts: &Parts, extractor: &str) -> Result<Decision, ApiError> {
        parts
            .extensions
            .get::<Decision>()
            .cloned()
            .ok_or_else(|| ApiError::missing_layer(extractor))
    }

    pub(crate) fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    /// The request's tenant with its pinned route, or what a tenant route answers.
    pub(crate) async fn current_tenant(&self) -> Result<CurrentTenant, ApiError> {
        let outcome = self
            .decided
            .get_or_init(|| self.tenancy.decide((*self.named).clone()))
            .await;
        let decided = match outcome {
            Ok(decided) => decided,
            Err(e) => return Err(e.clone().into()),
        };
        let tenant =
            CurrentTenant::from_resolution(decided.resolution(), self.tenancy.is_public_tenant())?;
        Ok(tenant.routed(decided))
    }
}

//! [`Decision`]: what [`TenancyLayer`](super::TenancyLayer) decided for a request, kept
//! in its extensions for the extractors.

use std::sync::Arc;

use http::request::Parts;

use super::api_error::ApiError;
use super::tenancy::Tenancy;
use crate::resolve::routing::Decided;
use crate::resolve::{CurrentTenant, HttpError};

/// A request's decision, and the tenancy that made it.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    tenancy: Tenancy,
    outcome: Arc<Result<Decided, HttpError>>,
}

impl Decision {
    pub(crate) fn new(tenancy: Tenancy, outcome: Result<Decided, HttpError>) -> Self {
        Decision {
            tenancy,
            outcome: Arc::new(outcome),
        }
    }

    /// The decision the layer stored in `parts`, or a logged 500 naming `extractor`
    /// when the request did not pass through the layer.
    pub(crate) fn of<'p>(parts: &'p Parts, extractor: &str) -> Result<&'p Decision, ApiError> {
        parts
            .extensions
            .get::<Decision>()
            .ok_or_else(|| ApiError::missing_layer(extractor))
    }

    pub(crate) fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    /// The request's tenant with its pinned route, or what a tenant route answers.
    pub(crate) fn current_tenant(&self) -> Result<CurrentTenant, ApiError> {
        let decided = match &*self.outcome {
            Ok(decided) => decided,
            Err(e) => return Err(e.clone().into()),
        };
        let tenant =
            CurrentTenant::from_resolution(decided.resolution(), self.tenancy.is_public_tenant())?;
        Ok(tenant.routed(decided))
    }
}

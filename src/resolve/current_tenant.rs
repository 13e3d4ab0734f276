//! [`CurrentTenant`]: the tenant a request resolved to, as the web faces hand it out.

use std::sync::Arc;

use serde::Serialize;

#[cfg(any(feature = "rocket", feature = "axum"))]
use super::http_error::HttpError;
#[cfg(any(feature = "rocket", feature = "axum"))]
use super::Resolution;
use super::TenantRef;
use crate::pool::Scope;
use crate::registry;

/// The tenant a request resolved to, resolved once per request from the cached
/// registry (no database round trip): a Rocket request guard (feature `rocket`) and an
/// axum extractor (feature `axum`).
///
/// Where a handler asks for it, it fails with 400 `{"detail":"Tenant not found"}` when no
/// tenant was named or the one named is not registered, and with 400 and a specific
/// detail when the request names its tenant in a malformed way. `public` is accepted only
/// with the public-tenant option on; it is then the public scope. Ask for
/// `Option<CurrentTenant>` where a tenant is optional.
///
/// It serializes as `{"id":1,"name":"demo1","schema":"demo1","mode":"schema"}`.
#[derive(Debug, Clone)]
pub struct CurrentTenant {
    scope: Scope,
    record: Option<Arc<registry::Tenant>>,
    /// What the request named, to decide again against a newer registry.
    #[cfg_attr(not(any(feature = "rocket", feature = "axum")), allow(dead_code))]
    named: Arc<[TenantRef]>,
}

impl CurrentTenant {
    /// Takes the route's pinned scope and what the request named.
    #[cfg(any(feature = "rocket", feature = "axum"))]
    pub(crate) fn routed(mut self, decided: &super::routing::Decided) -> Self {
        self.named = Arc::clone(decided.named());
        if let Some(scope) = decided.scope() {
            self.scope = scope.clone();
        }
        self
    }

    /// What the request named, in the order of the rules.
    #[cfg(any(feature = "rocket", feature = "axum"))]
    pub(crate) fn named(&self) -> &Arc<[TenantRef]> {
        &self.named
    }

    /// The scope this tenant's connections are put into.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The registry row, or `None` for the public tenant.
    pub fn record(&self) -> Option<&registry::Tenant> {
        self.record.as_deref()
    }

    /// The registry id, or `None` for the public tenant.
    pub fn id(&self) -> Option<i64> {
        self.record.as_ref().map(|t| t.id)
    }

    /// The tenant's name; `public` for the public tenant.
    pub fn name(&self) -> &str {
        self.record.as_ref().map_or("public", |t| t.name.as_str())
    }

    /// The tenant's schema; `public` for the public tenant. A row tenant's is the name
    /// reserved for it, which names no schema: its data is in the row schema.
    pub fn schema(&self) -> &str {
        self.record
            .as_ref()
            .map_or("public", |t| t.schema_name.as_str())
    }

    /// Where the tenant's data lives; the public tenant is a schema (`public`).
    pub fn mode(&self) -> registry::TenantMode {
        self.record
            .as_ref()
            .map_or(registry::TenantMode::Schema, |t| t.mode)
    }

    /// Whether this is the public tenant.
    pub fn is_public(&self) -> bool {
        self.record.is_none()
    }

    /// Maps a resolution to a tenant, or to the error a tenant route answers.
    #[cfg(any(feature = "rocket", feature = "axum"))]
    pub(crate) fn from_resolution(
        resolution: &Resolution,
        public_tenant: bool,
    ) -> Result<CurrentTenant, HttpError> {
        match resolution {
            Resolution::Tenant(t) => Ok(CurrentTenant {
                scope: t.scope(),
                record: Some(Arc::clone(t)),
                named: Arc::from([]),
            }),
            Resolution::Public if public_tenant => Ok(CurrentTenant {
                scope: Scope::Public,
                record: None,
                named: Arc::from([]),
            }),
            Resolution::Malformed(m) => Err(HttpError::new(400, m.detail.clone())),
            _ => Err(HttpError::tenant_not_found()),
        }
    }
}

impl Serialize for CurrentTenant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("CurrentTenant", 4)?;
        st.serialize_field("id", &self.id())?;
        st.serialize_field("name", self.name())?;
        st.serialize_field("schema", self.schema())?;
        st.serialize_field("mode", self.mode().as_str())?;
        st.end()
    }
}

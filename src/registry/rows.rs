//! The registry's rows: [`Tenant`] and [`Domain`].

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::domain_name::DomainName;
use super::schema::{domains, tenants};
use crate::error::{Error, Result};
use crate::schema_name::SchemaName;

/// A registered tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Tenant {
    /// Registry id.
    pub id: i64,
    /// Display name; unique case-insensitively.
    pub name: String,
    /// The tenant's schema.
    pub schema_name: SchemaName,
    /// When the tenant was registered.
    pub created_at: DateTime<Utc>,
}

/// A domain a tenant is reached at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = domains, check_for_backend(diesel::pg::Pg))]
#[non_exhaustive]
pub struct Domain {
    /// Registry id.
    pub id: i64,
    /// Normalized domain (lowercase, no port, no trailing dot).
    pub domain: String,
    /// The owning tenant's id.
    pub tenant_id: i64,
    /// Whether this is the tenant's primary domain (at most one per tenant).
    pub is_primary: bool,
}

impl Tenant {
    /// A tenant row as the registry would return it, e.g. for a
    /// [`RegistrySnapshot`](crate::RegistrySnapshot) or a
    /// [`TenantLookup`](crate::resolve::TenantLookup) built in a test.
    pub fn new(
        id: i64,
        name: impl Into<String>,
        schema_name: SchemaName,
        created_at: DateTime<Utc>,
    ) -> Self {
        Tenant {
            id,
            name: name.into(),
            schema_name,
            created_at,
        }
    }
}

impl Domain {
    /// A domain row as the registry would return it (`domain` as stored: normalized).
    pub fn new(id: i64, domain: &DomainName, tenant_id: i64, is_primary: bool) -> Self {
        Domain {
            id,
            domain: domain.to_string(),
            tenant_id,
            is_primary,
        }
    }
}

/// A tenant with its domains, the primary one first and the others by name: what a
/// listing of tenants shows ([`TenantRegistry::list_with_domains`](crate::TenantRegistry::list_with_domains)).
///
/// It serializes as the management CLI and the hotel example's admin API show a tenant:
/// `{"name", "schema_name", "domains": ["…"], "created_at": "<RFC 3339>"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantWithDomains {
    /// The tenant.
    pub tenant: Tenant,
    /// Its domains, primary first.
    pub domains: Vec<Domain>,
}

impl TenantWithDomains {
    /// `tenant` with `domains` (any order; they are put primary first, then by name).
    pub fn new(tenant: Tenant, mut domains: Vec<Domain>) -> Self {
        domains.sort_by(|a, b| (!a.is_primary, &a.domain).cmp(&(!b.is_primary, &b.domain)));
        TenantWithDomains { tenant, domains }
    }

    /// The domain names, primary first.
    pub fn domain_names(&self) -> Vec<&str> {
        self.domains.iter().map(|d| d.domain.as_str()).collect()
    }
}

impl Serialize for TenantWithDomains {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("TenantWithDomains", 4)?;
        st.serialize_field("name", &self.tenant.name)?;
        st.serialize_field("schema_name", self.tenant.schema_name.as_str())?;
        st.serialize_field("domains", &self.domain_names())?;
        st.serialize_field("created_at", &self.tenant.created_at.to_rfc3339())?;
        st.end()
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = tenants, check_for_backend(diesel::pg::Pg))]
pub(super) struct TenantRow {
    id: i64,
    name: String,
    schema_name: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = Error;
    fn try_from(row: TenantRow) -> Result<Tenant> {
        Ok(Tenant {
            schema_name: SchemaName::from_stored(&row.schema_name)?,
            id: row.id,
            name: row.name,
            created_at: row.created_at,
        })
    }
}

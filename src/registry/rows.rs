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

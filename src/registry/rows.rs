//! The registry's rows: [`Tenant`] and [`Domain`].

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::domain_name::DomainName;
use super::schema::{domains, tenants};
use crate::error::{Error, Result};
use crate::pool::Scope;
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
    /// Where its data lives: its own schema, or rows of the shared row schema.
    pub mode: TenantMode,
}

/// Where a tenant's data lives.
///
/// One application can hold tenants of both modes; the same `table!` declarations, queries
/// and tenant migrations serve both (see the crate docs, "Choosing a mode").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TenantMode {
    /// The tenant has its own schema (`schema_name`), alone on the path of its scope.
    #[default]
    Schema,
    /// The tenant's rows live in the tables of the pool's shared row schema, tagged with
    /// its registry id in a `tenant_id` column and kept apart by row-level security. Its
    /// `schema_name` is reserved for it but names no schema.
    Rows,
}

impl TenantMode {
    /// The registry's spelling: `"schema"` or `"rows"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantMode::Schema => "schema",
            TenantMode::Rows => "rows",
        }
    }

    /// Reads the registry's spelling (also `"row"`, case-insensitively, for humans).
    pub fn parse(text: &str) -> Option<TenantMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "schema" => Some(TenantMode::Schema),
            "rows" | "row" => Some(TenantMode::Rows),
            _ => None,
        }
    }
}

impl std::fmt::Display for TenantMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
            mode: TenantMode::Schema,
        }
    }

    /// The same tenant in `mode`.
    pub fn with_mode(mut self, mode: TenantMode) -> Self {
        self.mode = mode;
        self
    }

    /// The scope a checkout for this tenant's data names: its schema, or its rows in the
    /// row schema. A route made from a registry snapshot should use
    /// [`RegistrySnapshot::scope_of`](crate::RegistrySnapshot::scope_of), which also pins
    /// a schema tenant's schema by OID.
    pub fn scope(&self) -> Scope {
        match self.mode {
            TenantMode::Schema => Scope::Tenant(self.schema_name.clone()),
            TenantMode::Rows => Scope::Rows { tenant: self.id },
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
/// `{"name", "schema_name", "mode", "domains": ["…"], "created_at": "<RFC 3339>"}`.
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
        let mut st = s.serialize_struct("TenantWithDomains", 5)?;
        st.serialize_field("name", &self.tenant.name)?;
        st.serialize_field("schema_name", self.tenant.schema_name.as_str())?;
        st.serialize_field("mode", self.tenant.mode.as_str())?;
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
    mode: String,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = Error;
    fn try_from(row: TenantRow) -> Result<Tenant> {
        Ok(Tenant {
            schema_name: SchemaName::from_stored(&row.schema_name)?,
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            mode: TenantMode::parse(&row.mode).ok_or_else(|| {
                Error::Config(format!(
                    "the registry holds an unknown tenant mode `{}`",
                    row.mode
                ))
            })?,
        })
    }
}

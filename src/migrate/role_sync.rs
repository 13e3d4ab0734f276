//! [`SyncRouter::sync_tenant_roles`](crate::SyncRouter::sync_tenant_roles): the backfill (and repair) of tenant roles, and the
//! look-ups around it.

use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde::Serialize;

use super::report::Millis;
use super::role_provision::{ensure_tenant_role, existing_roles, sync_shared_grants, Context};
use crate::error::{Error, Result};
use crate::pool::{lock, TenantPool};
use crate::pool::{RoleNames, TenantRoles};
use crate::registry::{Tenant, TenantMode, TenantRegistry};
use crate::schema_name::SchemaName;

/// The schema tenants of `tenants` whose role does not exist (row tenants have none:
/// they share the row role).
fn without_role(
    conn: &mut PgConnection,
    names: &RoleNames,
    mut tenants: Vec<Tenant>,
) -> Result<Vec<Tenant>> {
    tenants.retain(|t| t.mode == TenantMode::Schema);
    let wanted: Vec<String> = tenants
        .iter()
        .map(|t| names.tenant(&t.schema_name))
        .collect();
    let existing = existing_roles(conn, &wanted)?;
    tenants.retain(|t| !existing.contains_key(&names.tenant(&t.schema_name)));
    Ok(tenants)
}

/// What [`SyncRouter::sync_tenant_roles`](crate::SyncRouter::sync_tenant_roles) did for one tenant.
///
/// It serializes as the `tenant roles --json` command prints it: `{"tenant", "schema",
/// "role", "created", "error" (text or null), "duration_ms"}`.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct TenantRoleReport {
    /// Tenant name.
    pub tenant: String,
    /// Tenant schema.
    pub schema: String,
    /// The tenant's role.
    pub role: String,
    /// Whether the role was created (otherwise it existed and was granted again).
    pub created: bool,
    /// Time taken.
    #[serde(rename = "duration_ms", serialize_with = "super::report::millis")]
    pub duration: Duration,
    /// Why it failed, if it did (nothing was changed for that tenant).
    #[serde(serialize_with = "super::report::error_text")]
    pub error: Option<Error>,
}

/// What [`SyncRouter::sync_tenant_roles`](crate::SyncRouter::sync_tenant_roles) did.
///
/// It serializes as the `tenant roles --json` command prints it: `{"tenants":
/// [TenantRoleReport…], "created", "failed", "duration_ms"}`.
#[derive(Debug)]
#[non_exhaustive]
pub struct RoleReport {
    /// One entry per registered schema tenant, in name order (row tenants have no role
    /// of their own).
    pub tenants: Vec<TenantRoleReport>,
    /// Wall time.
    pub duration: Duration,
}

impl Serialize for RoleReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RoleReport", 4)?;
        st.serialize_field("tenants", &self.tenants)?;
        st.serialize_field(
            "created",
            &self.tenants.iter().filter(|t| t.created).count(),
        )?;
        st.serialize_field("failed", &self.failures().count())?;
        st.serialize_field("duration_ms", &Millis(self.duration))?;
        st.end()
    }
}

impl RoleReport {
    /// Tenants whose role could not be made or granted.
    pub fn failures(&self) -> impl Iterator<Item = &TenantRoleReport> {
        self.tenants.iter().filter(|t| t.error.is_some())
    }
}

/// The name of the tenant role of `schema` in the pool's database.
pub(super) fn tenant_role_name(pool: &TenantPool, schema: &SchemaName) -> Result<String> {
    pool.with_public(|conn| Context::read(conn)?.names())
        .map(|names| names.tenant(schema))
}

/// The registered tenants whose role does not exist (tenant roles on or off).
pub(super) fn tenants_without_role(pool: &TenantPool) -> Result<Vec<Tenant>> {
    pool.with_public(|conn| {
        let names = Context::read(conn)?.names()?;
        let tenants = TenantRegistry::list(conn)?;
        without_role(conn, &names, tenants)
    })
}

/// Makes (or repairs) the role of every registered tenant, or with `only_missing` of
/// those that have none, each in its own transaction, after making the shared grants
/// exact.
pub(super) fn sync_roles(pool: &TenantPool, only_missing: bool) -> Result<RoleReport> {
    let started = Instant::now();
    let roles = pool.tenant_roles().cloned().ok_or_else(|| {
        Error::Config(
            "tenant roles are off for this pool: build it with \
             TenantPoolBuilder::tenant_roles"
                .into(),
        )
    })?;
    let (names, tenants) = pool.with_public(|conn| {
        conn.transaction(|conn| sync_shared_grants(conn, &roles))?;
        let names = Context::read(conn)?.names()?;
        let mut tenants = TenantRegistry::list(conn)?;
        tenants.retain(|t| t.mode == TenantMode::Schema);
        if only_missing {
            tenants = without_role(conn, &names, tenants)?;
        }
        Ok::<_, Error>((names, tenants))
    })?;
    let tenants = tenants
        .into_iter()
        .map(|tenant| sync_one(pool, &roles, &names, tenant))
        .collect();
    Ok(RoleReport {
        tenants,
        duration: started.elapsed(),
    })
}

fn sync_one(
    pool: &TenantPool,
    roles: &TenantRoles,
    names: &RoleNames,
    tenant: Tenant,
) -> TenantRoleReport {
    let started = Instant::now();
    let schema = &tenant.schema_name;
    let result = pool.with_public(|conn| {
        conn.transaction(|conn| {
            lock(conn, schema.as_str())?;
            if !crate::sql::schema_exists(conn, schema.as_str())? {
                return Err(Error::SchemaMissing {
                    schema: schema.to_string(),
                });
            }
            let context = Context::managing(conn)?;
            ensure_tenant_role(conn, &context, roles, schema)
        })
    });
    let (created, error) = match result {
        Ok((_, created)) => (created, None),
        Err(e) => (false, Some(e)),
    };
    TenantRoleReport {
        role: names.tenant(schema),
        schema: schema.to_string(),
        tenant: tenant.name,
        created,
        duration: started.elapsed(),
        error,
    }
}

//! [`SyncRouter::sync_tenant_roles`]: the backfill (and repair) of tenant roles, and the
//! look-ups around it.

use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde::Serialize;

use super::role_provision::{ensure_tenant_role, existing_roles, sync_shared_grants, Context};
use super::router::{schema_exists, SyncRouter};
use crate::error::{Error, Result};
use crate::pool::lock;
use crate::pool::{RoleNames, TenantRoles};
use crate::registry::{Tenant, TenantRegistry};
use crate::schema_name::SchemaName;

/// The tenants of `tenants` whose role does not exist.
fn without_role(
    conn: &mut PgConnection,
    names: &RoleNames,
    mut tenants: Vec<Tenant>,
) -> Result<Vec<Tenant>> {
    let wanted: Vec<String> = tenants
        .iter()
        .map(|t| names.tenant(&t.schema_name))
        .collect();
    let existing = existing_roles(conn, &wanted)?;
    tenants.retain(|t| !existing.contains_key(&names.tenant(&t.schema_name)));
    Ok(tenants)
}

/// What [`SyncRouter::sync_tenant_roles`] did for one tenant.
#[derive(Debug, Serialize)]
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
    pub duration: Duration,
    /// Why it failed, if it did (nothing was changed for that tenant).
    #[serde(serialize_with = "super::report::error_text")]
    pub error: Option<Error>,
}

/// What [`SyncRouter::sync_tenant_roles`] did.
#[derive(Debug, Serialize)]
pub struct RoleReport {
    /// One entry per registered tenant, in name order.
    pub tenants: Vec<TenantRoleReport>,
    /// Wall time.
    pub duration: Duration,
}

impl RoleReport {
    /// Tenants whose role could not be made or granted.
    pub fn failures(&self) -> impl Iterator<Item = &TenantRoleReport> {
        self.tenants.iter().filter(|t| t.error.is_some())
    }
}

impl SyncRouter {
    /// The name of the tenant role of `schema` in this router's database (whether or not
    /// it exists).
    pub fn tenant_role_name(&self, schema: &SchemaName) -> Result<String> {
        self.pool
            .with_public(|conn| Context::read(conn)?.names())
            .map(|names| names.tenant(schema))
    }

    /// The registered tenants whose role does not exist (tenant roles on or off).
    pub fn tenants_without_role(&self) -> Result<Vec<Tenant>> {
        self.pool.with_public(|conn| {
            let names = Context::read(conn)?.names()?;
            let tenants = TenantRegistry::list(conn)?;
            without_role(conn, &names, tenants)
        })
    }

    /// Makes every registered tenant's role, or repairs it (grants again what it should
    /// have), and makes the shared grants exactly the declared ones: the backfill after
    /// turning tenant roles on, and the repair after tables were added by hand. Each
    /// tenant is done in its own transaction under its schema's advisory lock; a tenant
    /// that fails is reported and the others still run.
    ///
    /// Fails with [`Error::Config`] when the pool has no
    /// [`tenant_roles`](crate::TenantPoolBuilder::tenant_roles), and with
    /// [`Error::TenantRolesNotPermitted`] without `CREATEROLE`.
    pub fn sync_tenant_roles(&self) -> Result<RoleReport> {
        self.sync_roles(false)
    }

    /// Like [`sync_tenant_roles`](Self::sync_tenant_roles), but only for the tenants
    /// whose role does not exist yet (one query when none is missing). The Rocket
    /// fairing runs it at launch.
    pub fn sync_missing_tenant_roles(&self) -> Result<RoleReport> {
        self.sync_roles(true)
    }

    fn sync_roles(&self, only_missing: bool) -> Result<RoleReport> {
        let started = Instant::now();
        let roles = self.pool.tenant_roles().cloned().ok_or_else(|| {
            Error::Config(
                "tenant roles are off for this pool: build it with \
                 TenantPoolBuilder::tenant_roles"
                    .into(),
            )
        })?;
        let (names, tenants) = self.pool.with_public(|conn| {
            conn.transaction(|conn| sync_shared_grants(conn, &roles))?;
            let names = Context::read(conn)?.names()?;
            let mut tenants = TenantRegistry::list(conn)?;
            if only_missing {
                tenants = without_role(conn, &names, tenants)?;
            }
            Ok::<_, Error>((names, tenants))
        })?;
        let tenants = tenants
            .into_iter()
            .map(|tenant| self.sync_one(&roles, &names, tenant))
            .collect();
        Ok(RoleReport {
            tenants,
            duration: started.elapsed(),
        })
    }

    fn sync_one(&self, roles: &TenantRoles, names: &RoleNames, tenant: Tenant) -> TenantRoleReport {
        let started = Instant::now();
        let schema = &tenant.schema_name;
        let result = self.pool.with_public(|conn| {
            conn.transaction(|conn| {
                lock(conn, schema.as_str())?;
                if !schema_exists(conn, schema)? {
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
}

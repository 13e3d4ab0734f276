//! Creating, deleting and renaming tenants: the registry row, the schema, its migrations,
//! its role and the application's hooks, each change in one transaction.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::apply::{run_pending, set_local_path};
use super::citus;
use super::hooks::TenantHooks;
use super::migration_set::MigrationSet;
use super::role_provision::{drop_tenant_role, ensure_tenant_role, Context};
use super::spares::claim_spare;
use crate::error::{Error, Result, SchemaRef};
use crate::pool::{lock, Scope, TenantPool};
use crate::registry::{validate_tenant_name, DomainName, Tenant, TenantRegistry};
use crate::schema_name::{SchemaName, SchemaRules};

/// A tenant to provision with [`SyncRouter::create_tenant`](crate::SyncRouter::create_tenant).
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    /// Free-form name, unique case-insensitively.
    pub name: String,
    /// The schema to create; derived from the name when `None`.
    pub schema_name: Option<SchemaName>,
    /// Domains to register; the first is the primary one.
    pub domains: Vec<DomainName>,
}

impl NewTenant {
    /// A tenant with a derived schema and no domains.
    pub fn named(name: impl Into<String>) -> Self {
        NewTenant {
            name: name.into(),
            ..NewTenant::default()
        }
    }
}

/// Registers `new`, creates its schema (or claims a spare), migrates it, makes its
/// role (tenant roles on), adds its domains and runs the after-create hooks, in one
/// transaction.
pub(super) fn create(
    pool: &TenantPool,
    tenant_set: &MigrationSet,
    rules: &SchemaRules,
    hooks: &TenantHooks,
    new: &NewTenant,
) -> Result<Tenant> {
    let name = validate_tenant_name(&new.name)?;
    let schema = match &new.schema_name {
        Some(s) => rules.validate(s.as_str())?,
        None => rules.derive_from(name)?,
    };
    pool.with_public(|conn| {
        conn.transaction(|conn| {
            // Without CREATEROLE, fail before doing any work.
            let roles = match pool.tenant_roles() {
                Some(roles) => Some((roles, Context::managing(conn)?)),
                None => None,
            };
            lock(conn, schema.as_str())?;
            let tenant = TenantRegistry::create(conn, name, &schema)?;
            if crate::sql::schema_exists(conn, schema.as_str())? {
                return Err(Error::SchemaExists {
                    tenant: name.to_owned(),
                    schema: schema.to_string(),
                });
            }
            // On Citus, the schema is a distributed schema (whatever the database's
            // setting says); a spare made before Citus is distributed once migrated.
            let citus = citus::shard_new_schemas(conn)?;
            if !claim_spare(conn, &schema)? {
                conn.batch_execute(&format!("CREATE SCHEMA {}", schema.quoted()))?;
            }
            set_local_path(conn, &schema.quoted())?;
            run_pending(conn, tenant_set, &SchemaRef::Schema(schema.to_string()))?;
            if citus {
                citus::ensure_distributed(conn, &schema)?;
            }
            if let Some((roles, context)) = &roles {
                ensure_tenant_role(conn, context, roles, &schema)?;
            }
            for (i, domain) in new.domains.iter().enumerate() {
                TenantRegistry::add_domain(conn, name, domain, i == 0)?;
            }
            hooks.run_after_create(conn, &tenant_path(pool, &schema), &tenant)?;
            Ok(tenant)
        })
    })
}

/// Runs the before-delete hooks, then deletes the row, the domains and the tenant's
/// role, and the schema with `drop_schema`, in one transaction.
pub(super) fn delete(
    pool: &TenantPool,
    hooks: &TenantHooks,
    name: &str,
    drop_schema: bool,
) -> Result<Tenant> {
    pool.with_public(|conn| {
        conn.transaction(|conn| {
            let tenant = TenantRegistry::get_by_name(conn, name)?;
            lock(conn, tenant.schema_name.as_str())?;
            let path = tenant_path(pool, &tenant.schema_name);
            hooks.run_before_delete(conn, &path, &tenant, drop_schema)?;
            TenantRegistry::delete(conn, name)?;
            // Whatever this pool's setting: a role made by another process goes too.
            drop_tenant_role(conn, &tenant.schema_name)?;
            if drop_schema {
                conn.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {} CASCADE",
                    tenant.schema_name.quoted()
                ))?;
            }
            Ok(tenant)
        })
    })
}

/// Renames the tenant and runs the after-rename hooks, in one transaction.
pub(super) fn rename(
    pool: &TenantPool,
    hooks: &TenantHooks,
    old: &str,
    new: &str,
) -> Result<Tenant> {
    pool.with_public(|conn| {
        conn.transaction(|conn| {
            let before = TenantRegistry::get_by_name(conn, old)?;
            let after = TenantRegistry::rename(conn, &before.name, new)?;
            let path = tenant_path(pool, &after.schema_name);
            hooks.run_after_rename(conn, &path, &after, &before.name)?;
            Ok(after)
        })
    })
}

/// The `search_path` a checkout of the tenant in `schema` sets.
fn tenant_path(pool: &TenantPool, schema: &SchemaName) -> String {
    pool.search_path(&Scope::Tenant(schema.clone()))
}

//! Creating, deleting and renaming tenants: the registry row, the schema, its migrations,
//! its role and the application's hooks, each change in one transaction. Row tenants'
//! side of it (no schema, rows in the row schema) is in `row_tenants.rs`.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use super::apply::{run_pending, set_local_path};
use super::citus;
use super::hooks::{HookScope, TenantHooks};
use super::migration_set::MigrationSet;
use super::role_provision::{drop_tenant_role, ensure_tenant_role, Context};
use super::row_role::row_role_name;
use super::row_tenants;
use super::spares::claim_spare;
use crate::error::{Error, Result, SchemaRef};
use crate::pool::{lock, TenantPool};
use crate::registry::{validate_tenant_name, DomainName, Tenant, TenantMode, TenantRegistry};
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
    /// Where its data lives; the router's
    /// [`default_tenant_mode`](crate::SyncRouter::default_tenant_mode) when `None`. A row
    /// tenant's `schema_name` is reserved for it but never created.
    pub mode: Option<TenantMode>,
}

impl NewTenant {
    /// A tenant with a derived schema, no domains and the router's default mode.
    pub fn named(name: impl Into<String>) -> Self {
        NewTenant {
            name: name.into(),
            ..NewTenant::default()
        }
    }

    /// The same tenant in `mode` (a schema tenant or a row tenant).
    pub fn mode(mut self, mode: TenantMode) -> Self {
        self.mode = Some(mode);
        self
    }
}

/// What creating tenants needs from the router.
#[derive(Debug, Clone, Copy)]
pub(super) struct Creation<'a> {
    pub(super) pool: &'a TenantPool,
    pub(super) tenant_set: &'a MigrationSet,
    /// The router's rules, plus the row schema's name reserved when row tenants are on.
    pub(super) rules: &'a SchemaRules,
    pub(super) hooks: &'a TenantHooks,
    /// The mode of a [`NewTenant`] that names none.
    pub(super) default_mode: TenantMode,
}

/// `new`'s validated name and the schema name it gets (given or derived).
pub(super) fn name_and_schema<'n>(
    rules: &SchemaRules,
    new: &'n NewTenant,
) -> Result<(&'n str, SchemaName)> {
    let name = validate_tenant_name(&new.name)?;
    let schema = match &new.schema_name {
        Some(s) => rules.validate(s.as_str())?,
        None => rules.derive_from(name)?,
    };
    Ok((name, schema))
}

/// Creates `new` in its mode; see [`create_schema_tenant`] and
/// [`row_tenants::create`].
pub(super) fn create(creation: &Creation<'_>, new: &NewTenant) -> Result<Tenant> {
    let (name, schema) = name_and_schema(creation.rules, new)?;
    match new.mode.unwrap_or(creation.default_mode) {
        TenantMode::Rows => row_tenants::create(creation, name, schema, &new.domains),
        TenantMode::Schema => create_schema_tenant(creation, name, schema, &new.domains),
    }
}

/// Registers a schema tenant, creates its schema (or claims a spare), migrates it,
/// makes its role (tenant roles on), adds its domains and runs the after-create hooks,
/// in one transaction.
fn create_schema_tenant(
    creation: &Creation<'_>,
    name: &str,
    schema: SchemaName,
    domains: &[DomainName],
) -> Result<Tenant> {
    let Creation {
        pool,
        tenant_set,
        hooks,
        ..
    } = *creation;
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
            for (i, domain) in domains.iter().enumerate() {
                TenantRegistry::add_domain_to(conn, &tenant, domain, i == 0)?;
            }
            let scope = hook_scope(conn, pool, &tenant)?;
            hooks.run_after_create(conn, &scope, &tenant)?;
            Ok(tenant)
        })
    })
}

/// Runs the before-delete hooks, then deletes the row, the domains and the tenant's
/// role, and the schema with `drop_schema` (a row tenant's rows: [`row_tenants::delete`]),
/// in one transaction.
pub(super) fn delete(
    pool: &TenantPool,
    hooks: &TenantHooks,
    name: &str,
    drop_schema: bool,
) -> Result<Tenant> {
    pool.with_public(|conn| {
        conn.transaction(|conn| {
            let tenant = TenantRegistry::get_by_name(conn, name)?;
            if tenant.mode == TenantMode::Rows {
                return row_tenants::delete(conn, pool, hooks, tenant, drop_schema);
            }
            lock(conn, tenant.schema_name.as_str())?;
            let scope = hook_scope(conn, pool, &tenant)?;
            hooks.run_before_delete(conn, &scope, &tenant, drop_schema)?;
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
            if !hooks.is_empty() {
                let scope = hook_scope(conn, pool, &after)?;
                hooks.run_after_rename(conn, &scope, &after, &before.name)?;
            }
            Ok(after)
        })
    })
}

/// Where `tenant`'s hooks run: its schema on the path, or (a row tenant) the row
/// schema, the row role and the tenant setting, as a checkout of the tenant sets them.
pub(super) fn hook_scope(
    conn: &mut PgConnection,
    pool: &TenantPool,
    tenant: &Tenant,
) -> Result<HookScope> {
    let path = pool.search_path(&tenant.scope());
    Ok(match tenant.mode {
        TenantMode::Rows => {
            let role = row_role_name(conn, pool.row_schema())?;
            HookScope::rows(&path, &role, tenant.id)
        }
        TenantMode::Schema => HookScope::schema(&path, &tenant.schema_name),
    })
}

//! Row tenants' lifecycle: creating one (a registry row, no DDL) or many at once (one
//! multi-row `INSERT` per chunk), and deleting one with or without its rows. Their
//! hooks run in the row tenant's scope, as the row role.

use std::collections::HashSet;

use diesel::pg::PgConnection;
use diesel::prelude::*;

use super::hooks::{HookScope, TenantHooks};
use super::lifecycle::{hook_scope, name_and_schema, Creation, NewTenant};
use super::row_role::row_role_name;
use super::row_schema::{delete_rows, require_provisioned};
use crate::error::{shorten, Error, Result};
use crate::pool::{Scope, TenantPool};
use crate::registry::{tenant_name_key, DomainName, Tenant, TenantMode, TenantRegistry};
use crate::schema_name::SchemaName;

/// Row tenants registered per `INSERT` by [`create_many`].
pub(super) const CHUNK: usize = 1000;

/// Fails with [`Error::Config`] unless the pool serves row tenants.
pub(super) fn require_row_tenants(pool: &TenantPool, what: &str) -> Result<()> {
    if pool.has_row_tenants() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{what}: this pool does not serve row tenants; build it with \
         TenantPoolBuilder::row_tenants(true) and run migrate_shared to provision the row \
         schema"
    )))
}

/// Registers row tenant `name` (its `schema` reserved, never created), adds its domains
/// and runs the after-create hooks in its scope, in one transaction. No DDL.
pub(super) fn create(
    creation: &Creation<'_>,
    name: &str,
    schema: SchemaName,
    domains: &[DomainName],
) -> Result<Tenant> {
    let (pool, hooks) = (creation.pool, creation.hooks);
    require_row_tenants(pool, "creating a row tenant")?;
    pool.with_public(|conn| {
        conn.transaction(|conn| {
            require_provisioned(conn, pool.row_schema())?;
            let tenant = TenantRegistry::create_in_mode(conn, name, &schema, TenantMode::Rows)?;
            for (i, domain) in domains.iter().enumerate() {
                TenantRegistry::add_domain_to(conn, &tenant, domain, i == 0)?;
            }
            if hooks.has_after_create() {
                let scope = hook_scope(conn, pool, &tenant)?;
                hooks.run_after_create(conn, &scope, &tenant)?;
            }
            Ok(tenant)
        })
    })
}

/// Registers every tenant of `new` as a row tenant, in one transaction (all or none):
/// [`CHUNK`] tenants per multi-row `INSERT`, then each one's domains and after-create
/// hooks. Returns them in the order given.
pub(super) fn create_many(creation: &Creation<'_>, new: &[NewTenant]) -> Result<Vec<Tenant>> {
    let (pool, hooks) = (creation.pool, creation.hooks);
    require_row_tenants(pool, "creating row tenants")?;
    let named = new
        .iter()
        .map(|n| match n.mode {
            Some(TenantMode::Schema) => Err(Error::Config(format!(
                "tenant `{}` is a schema tenant: create_row_tenants creates row tenants only",
                shorten(&n.name)
            ))),
            _ => name_and_schema(creation.rules, n),
        })
        .collect::<Result<Vec<_>>>()?;
    refuse_repeats(&named)?;
    pool.with_public(|conn| {
        conn.transaction(|conn| {
            require_provisioned(conn, pool.row_schema())?;
            let role = match hooks.has_after_create() {
                true => Some(row_role_name(conn, pool.row_schema())?),
                false => None,
            };
            let mut created = Vec::with_capacity(new.len());
            for (news, chunk) in new.chunks(CHUNK).zip(named.chunks(CHUNK)) {
                let pairs: Vec<(&str, &SchemaName)> =
                    chunk.iter().map(|(name, schema)| (*name, schema)).collect();
                let tenants = TenantRegistry::insert_row_tenants(conn, &pairs)?;
                for (n, tenant) in news.iter().zip(&tenants) {
                    for (i, domain) in n.domains.iter().enumerate() {
                        TenantRegistry::add_domain_to(conn, tenant, domain, i == 0)?;
                    }
                    if let Some(role) = &role {
                        let path = pool.search_path(&Scope::Rows { tenant: tenant.id });
                        let scope = HookScope::rows(&path, role, tenant.id);
                        hooks.run_after_create(conn, &scope, tenant)?;
                    }
                }
                created.extend(tenants);
            }
            Ok(created)
        })
    })
}

/// Refuses a batch that names a tenant, or a schema, twice.
fn refuse_repeats(named: &[(&str, SchemaName)]) -> Result<()> {
    let mut keys = HashSet::with_capacity(named.len());
    let mut schemas = HashSet::with_capacity(named.len());
    for (name, schema) in named {
        if !keys.insert(tenant_name_key(name).into_owned()) {
            return Err(Error::TenantExists {
                name: shorten(name),
            });
        }
        if !schemas.insert(schema.as_str()) {
            return Err(Error::SchemaExists {
                tenant: shorten(name),
                schema: schema.to_string(),
            });
        }
    }
    Ok(())
}

/// Deletes row tenant `tenant` inside the caller's transaction: the before-delete hooks
/// in its scope, its registry row and domains, and, with `drop_data`, its rows in every
/// table of the row schema. Without `drop_data` the rows are kept (no tenant can see
/// them: the id is never reused).
pub(super) fn delete(
    conn: &mut PgConnection,
    pool: &TenantPool,
    hooks: &TenantHooks,
    tenant: Tenant,
    drop_data: bool,
) -> Result<Tenant> {
    require_row_tenants(pool, "deleting a row tenant")?;
    if !hooks.is_empty() {
        let scope = hook_scope(conn, pool, &tenant)?;
        hooks.run_before_delete(conn, &scope, &tenant, drop_data)?;
    }
    diesel::delete(crate::registry::schema::tenants::table.find(tenant.id)).execute(conn)?;
    if drop_data {
        delete_rows(conn, pool.row_schema(), tenant.id)?;
    }
    Ok(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(list: &[(&'static str, &str)]) -> Vec<(&'static str, SchemaName)> {
        list.iter()
            .map(|(n, s)| (*n, SchemaName::new(s).unwrap()))
            .collect()
    }

    #[test]
    fn a_batch_may_not_name_a_tenant_or_a_schema_twice() {
        assert!(refuse_repeats(&named(&[("a", "a"), ("b", "b")])).is_ok());
        let err = refuse_repeats(&named(&[("Acme", "a"), (" acme ", "b")])).unwrap_err();
        assert!(matches!(err, Error::TenantExists { .. }), "{err}");
        let err = refuse_repeats(&named(&[("a b", "a_b"), ("a_b", "a_b")])).unwrap_err();
        assert!(
            matches!(err, Error::SchemaExists { ref schema, .. } if schema == "a_b"),
            "{err}"
        );
    }
}

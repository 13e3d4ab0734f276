//! [`TenantRegistry`]: tenants and their domains, stored in `public`.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::domain_name::DomainName;
use super::rows::{Domain, Tenant, TenantMode, TenantRow, TenantWithDomains};
use super::schema::{domains, tenants};
use super::tenant_name::{tenant_name_key, validate_tenant_name};
use crate::error::{shorten, Error, Result};
use crate::schema_name::SchemaName;

/// Reads and writes the tenant registry (`public.tenants`, `public.domains`).
///
/// Every function takes a connection in any scope: the tables are schema-qualified.
/// Creating, deleting and renaming tenants *with* their schema and the application's
/// [`TenantHooks`](crate::TenantHooks) is [`SyncRouter`](crate::SyncRouter)'s job; these
/// functions touch the rows only and run no hooks.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantRegistry;

impl TenantRegistry {
    /// Registers a schema tenant row for `schema`. Does not create the schema.
    pub fn create(conn: &mut PgConnection, name: &str, schema: &SchemaName) -> Result<Tenant> {
        Self::create_in_mode(conn, name, schema, TenantMode::Schema)
    }

    /// Registers a tenant row of `mode` for `schema` (for a row tenant, a name reserved
    /// for it that no schema has). Creates no schema and no rows elsewhere.
    pub fn create_in_mode(
        conn: &mut PgConnection,
        name: &str,
        schema: &SchemaName,
        mode: TenantMode,
    ) -> Result<Tenant> {
        let name = validate_tenant_name(name)?;
        diesel::insert_into(tenants::table)
            .values((
                tenants::name.eq(name),
                tenants::name_key.eq(&*tenant_name_key(name)),
                tenants::schema_name.eq(schema.as_str()),
                tenants::mode.eq(mode.as_str()),
            ))
            .returning(TenantRow::as_returning())
            .get_result(conn)
            .map_err(|e| conflict(e, name, schema.as_str()))?
            .try_into()
    }

    /// Registers many row tenants, `(name, schema)` each (names already validated), with
    /// one multi-row `INSERT`, and returns them in the order given. A name or schema
    /// already registered (or given twice) fails with [`Error::TenantExists`] or
    /// [`Error::SchemaExists`]; the caller's transaction then holds rows to roll back.
    pub(crate) fn insert_row_tenants(
        conn: &mut PgConnection,
        new: &[(&str, &SchemaName)],
    ) -> Result<Vec<Tenant>> {
        let keys: Vec<String> = new
            .iter()
            .map(|(name, _)| tenant_name_key(name).into_owned())
            .collect();
        let rows: Vec<_> = new
            .iter()
            .zip(&keys)
            .map(|((name, schema), key)| {
                (
                    tenants::name.eq(*name),
                    tenants::name_key.eq(key.as_str()),
                    tenants::schema_name.eq(schema.as_str()),
                    tenants::mode.eq(TenantMode::Rows.as_str()),
                )
            })
            .collect();
        let inserted: Vec<TenantRow> = diesel::insert_into(tenants::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .returning(TenantRow::as_returning())
            .get_results(conn)?;
        let mut by_schema: HashMap<String, Tenant> = HashMap::with_capacity(inserted.len());
        for row in inserted {
            let tenant = Tenant::try_from(row)?;
            by_schema.insert(tenant.schema_name.to_string(), tenant);
        }
        let mut out = Vec::with_capacity(new.len());
        for (name, schema) in new {
            match by_schema.remove(schema.as_str()) {
                Some(tenant) => out.push(tenant),
                None => return Err(Self::why_not_inserted(conn, name, schema)?),
            }
        }
        Ok(out)
    }

    /// Why `name` in `schema` was not inserted: its name or its schema is taken.
    fn why_not_inserted(conn: &mut PgConnection, name: &str, schema: &SchemaName) -> Result<Error> {
        Ok(if Self::find_by_name(conn, name)?.is_some() {
            Error::TenantExists {
                name: shorten(name),
            }
        } else {
            Error::SchemaExists {
                tenant: shorten(name),
                schema: schema.to_string(),
            }
        })
    }

    /// The tenant called `name`, compared by [`tenant_name_key`](crate::tenant_name_key)
    /// (trimmed, case-insensitive).
    pub fn find_by_name(conn: &mut PgConnection, name: &str) -> Result<Option<Tenant>> {
        tenants::table
            .filter(tenants::name_key.eq(&*tenant_name_key(name)))
            .select(TenantRow::as_select())
            .first(conn)
            .optional()?
            .map(Tenant::try_from)
            .transpose()
    }

    /// Like [`find_by_name`](Self::find_by_name), but a missing tenant is
    /// [`Error::UnknownTenant`].
    pub fn get_by_name(conn: &mut PgConnection, name: &str) -> Result<Tenant> {
        Self::find_by_name(conn, name)?.ok_or_else(|| Error::UnknownTenant {
            name: shorten(name),
        })
    }

    /// The tenant reached at `domain` (normalized first).
    pub fn find_by_domain(conn: &mut PgConnection, domain: &DomainName) -> Result<Option<Tenant>> {
        tenants::table
            .inner_join(domains::table)
            .filter(domains::domain.eq(domain.as_str()))
            .select(TenantRow::as_select())
            .first(conn)
            .optional()?
            .map(Tenant::try_from)
            .transpose()
    }

    /// The tenant registered for `schema`.
    pub fn find_by_schema(conn: &mut PgConnection, schema: &SchemaName) -> Result<Option<Tenant>> {
        tenants::table
            .filter(tenants::schema_name.eq(schema.as_str()))
            .select(TenantRow::as_select())
            .first(conn)
            .optional()?
            .map(Tenant::try_from)
            .transpose()
    }

    /// Whether any row tenant is registered.
    pub fn has_row_tenants(conn: &mut PgConnection) -> Result<bool> {
        Ok(diesel::select(diesel::dsl::exists(
            tenants::table.filter(tenants::mode.eq(TenantMode::Rows.as_str())),
        ))
        .get_result(conn)?)
    }

    /// Every tenant, ordered by name.
    pub fn list(conn: &mut PgConnection) -> Result<Vec<Tenant>> {
        tenants::table
            .order(tenants::name_key)
            .select(TenantRow::as_select())
            .load(conn)?
            .into_iter()
            .map(Tenant::try_from)
            .collect()
    }

    /// Every domain, ordered by tenant then domain.
    pub fn list_domains(conn: &mut PgConnection) -> Result<Vec<Domain>> {
        Ok(domains::table
            .order((domains::tenant_id, domains::domain))
            .select(Domain::as_select())
            .load(conn)?)
    }

    /// The domains of one tenant, primary first.
    pub fn domains_of(conn: &mut PgConnection, tenant: &Tenant) -> Result<Vec<Domain>> {
        Ok(domains::table
            .filter(domains::tenant_id.eq(tenant.id))
            .order((domains::is_primary.desc(), domains::domain))
            .select(Domain::as_select())
            .load(conn)?)
    }

    /// Every tenant, ordered by name, each with its domains (primary first), in two
    /// queries.
    pub fn list_with_domains(conn: &mut PgConnection) -> Result<Vec<TenantWithDomains>> {
        let mut domains: HashMap<i64, Vec<Domain>> = HashMap::new();
        for domain in Self::list_domains(conn)? {
            domains.entry(domain.tenant_id).or_default().push(domain);
        }
        Ok(Self::list(conn)?
            .into_iter()
            .map(|tenant| {
                let own = domains.remove(&tenant.id).unwrap_or_default();
                TenantWithDomains::new(tenant, own)
            })
            .collect())
    }

    /// `tenant` with its domains (primary first).
    pub fn with_domains(conn: &mut PgConnection, tenant: Tenant) -> Result<TenantWithDomains> {
        let domains = Self::domains_of(conn, &tenant)?;
        Ok(TenantWithDomains::new(tenant, domains))
    }

    /// Renames a tenant; its schema keeps its name. Runs no hooks:
    /// [`SyncRouter::rename_tenant`](crate::SyncRouter::rename_tenant) does.
    pub fn rename(conn: &mut PgConnection, old: &str, new: &str) -> Result<Tenant> {
        let new = validate_tenant_name(new)?;
        let tenant = Self::get_by_name(conn, old)?;
        diesel::update(tenants::table.find(tenant.id))
            .set((
                tenants::name.eq(new),
                tenants::name_key.eq(&*tenant_name_key(new)),
            ))
            .returning(TenantRow::as_returning())
            .get_result(conn)
            .map_err(|e| conflict(e, new, tenant.schema_name.as_str()))?
            .try_into()
    }

    /// Deletes a tenant's row and its domains. Does not touch its schema.
    pub fn delete(conn: &mut PgConnection, name: &str) -> Result<Tenant> {
        let tenant = Self::get_by_name(conn, name)?;
        diesel::delete(tenants::table.find(tenant.id)).execute(conn)?;
        Ok(tenant)
    }

    /// Adds a domain to `tenant`, found already (the caller's transaction holds its row).
    pub(crate) fn add_domain_to(
        conn: &mut PgConnection,
        tenant: &Tenant,
        domain: &DomainName,
        is_primary: bool,
    ) -> Result<Domain> {
        if is_primary {
            Self::clear_primary(conn, tenant.id)?;
        }
        diesel::insert_into(domains::table)
            .values((
                domains::domain.eq(domain.as_str()),
                domains::tenant_id.eq(tenant.id),
                domains::is_primary.eq(is_primary),
            ))
            .returning(Domain::as_returning())
            .get_result(conn)
            .map_err(|e| domain_conflict(e, domain))
    }

    /// Adds a domain to a tenant. With `is_primary`, it replaces the tenant's primary.
    pub fn add_domain(
        conn: &mut PgConnection,
        tenant_name: &str,
        domain: &DomainName,
        is_primary: bool,
    ) -> Result<Domain> {
        conn.transaction(|conn| {
            let tenant = Self::get_by_name(conn, tenant_name)?;
            Self::add_domain_to(conn, &tenant, domain, is_primary)
        })
    }

    /// Makes `domain` its tenant's primary domain.
    pub fn set_primary(conn: &mut PgConnection, domain: &DomainName) -> Result<Domain> {
        conn.transaction(|conn| {
            let row = Self::get_domain(conn, domain)?;
            Self::clear_primary(conn, row.tenant_id)?;
            Ok(diesel::update(domains::table.find(row.id))
                .set(domains::is_primary.eq(true))
                .returning(Domain::as_returning())
                .get_result(conn)?)
        })
    }

    /// Removes a domain.
    pub fn remove_domain(conn: &mut PgConnection, domain: &DomainName) -> Result<Domain> {
        diesel::delete(domains::table.filter(domains::domain.eq(domain.as_str())))
            .returning(Domain::as_returning())
            .get_result(conn)
            .optional()?
            .ok_or_else(|| Error::UnknownDomain {
                domain: domain.to_string(),
            })
    }

    /// Fills `name_key` for rows registered before the key existed (the shared migration
    /// that adds the column runs this right after it). Two names with the same key are a
    /// conflict the crate cannot settle: the error names them, and nothing changes.
    pub(crate) fn backfill_name_keys(conn: &mut PgConnection) -> Result<()> {
        let rows: Vec<(i64, String, Option<String>)> = tenants::table
            .select((tenants::id, tenants::name, tenants::name_key.nullable()))
            .order(tenants::id)
            .load(conn)?;
        let mut seen: std::collections::HashMap<String, &str> = Default::default();
        for (_, name, _) in &rows {
            let key = tenant_name_key(name).into_owned();
            if let Some(first) = seen.insert(key, name) {
                return Err(Error::Migration {
                    place: crate::error::SchemaRef::Public,
                    source: format!(
                        "tenants `{}` and `{}` are the same name under the crate's \
                         case-insensitive rule (diesel_tenancy::tenant_name_key); rename one \
                         of them (e.g. `tenant rename`) and migrate again",
                        shorten(first),
                        shorten(name)
                    )
                    .into(),
                });
            }
        }
        for (id, name, key) in rows {
            let wanted = tenant_name_key(&name);
            if key.as_deref() != Some(&*wanted) {
                diesel::update(tenants::table.find(id))
                    .set(tenants::name_key.eq(&*wanted))
                    .execute(conn)?;
            }
        }
        Ok(())
    }

    fn get_domain(conn: &mut PgConnection, domain: &DomainName) -> Result<Domain> {
        domains::table
            .filter(domains::domain.eq(domain.as_str()))
            .select(Domain::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(|| Error::UnknownDomain {
                domain: domain.to_string(),
            })
    }

    fn clear_primary(conn: &mut PgConnection, tenant_id: i64) -> Result<()> {
        diesel::update(domains::table.filter(domains::tenant_id.eq(tenant_id)))
            .set(domains::is_primary.eq(false))
            .execute(conn)?;
        Ok(())
    }
}

fn is_unique_violation(e: &DieselError) -> Option<&str> {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            Some(info.constraint_name().unwrap_or_default())
        }
        _ => None,
    }
}

fn conflict(e: DieselError, name: &str, schema: &str) -> Error {
    match is_unique_violation(&e) {
        Some(c) if c.contains("schema_name") => Error::SchemaExists {
            tenant: shorten(name),
            schema: schema.to_owned(),
        },
        Some(_) => Error::TenantExists {
            name: shorten(name),
        },
        None => Error::from(e),
    }
}

fn domain_conflict(e: DieselError, domain: &DomainName) -> Error {
    match is_unique_violation(&e) {
        Some(_) => Error::DomainExists {
            domain: domain.to_string(),
        },
        None => Error::from(e),
    }
}

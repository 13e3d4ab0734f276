//! Applying migrations: the shared set to `public`, the tenant set to one tenant schema
//! or to every tenant with something pending. Each schema is migrated in one transaction
//! under its advisory lock.

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::batch::run_parallel;
use super::migration_set::MigrationSet;
use super::report::{MigrateOptions, MigrateReport, MigrationStatus, TenantReport};
use super::role_provision::{ensure_tenant_role, sync_shared_grants, Context};
use crate::error::{Error, Result, SchemaRef};
use crate::pool::{lock, TenantPool};
use crate::registry::name_keys;
use crate::registry::{Tenant, TenantMode, TenantRegistry};
use crate::schema_name::SchemaName;

/// The crate's own shared migrations: the tenant registry.
pub const REGISTRY_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// The registry migration that adds `tenants.name_key`; the crate fills it right after.
const NAME_KEY_MIGRATION: &str = "0000-00-00-000003_diesel_tenancy_name_key";

/// Applies the pending migrations of `set` (the shared set) to `public` under its advisory
/// lock, re-keys stored tenant names under the current rule and, with tenant roles on,
/// makes the shared grants exact; returns the versions applied.
/// With `reference_tables`, also makes the shared tables Citus reference tables (a no-op
/// on plain PostgreSQL).
pub(super) fn migrate_shared(
    pool: &TenantPool,
    set: &MigrationSet,
    reference_tables: bool,
) -> Result<Vec<String>> {
    pool.with_public(|conn| {
        conn.transaction(|conn| {
            set_local_path(conn, "\"public\"")?;
            lock(conn, "public")?;
            let applied = run_shared(conn, set)?;
            // Stored tenant-name keys follow the crate's current rule (or the
            // migration fails, naming tenants the rule makes equal).
            name_keys::rekey(conn)?;
            if let Some(roles) = pool.tenant_roles() {
                sync_shared_grants(conn, roles)?;
            }
            if reference_tables {
                super::citus::reference::reference_shared_tables(conn)?;
            }
            Ok(applied)
        })
    })
}

/// Applies the pending migrations of `set` (the tenant set) to `schema`, in one
/// transaction under the schema's advisory lock; with tenant roles on and something
/// applied, grants the tenant's role what the migrations created.
pub(super) fn migrate_tenant(
    pool: &TenantPool,
    set: &MigrationSet,
    schema: &SchemaName,
) -> Result<Vec<String>> {
    let place = SchemaRef::Schema(schema.to_string());
    pool.with_public(|conn| {
        conn.transaction(|conn| {
            lock(conn, schema.as_str())?;
            if !crate::sql::schema_exists(conn, schema.as_str())? {
                return Err(Error::SchemaMissing {
                    schema: schema.to_string(),
                });
            }
            set_local_path(conn, &schema.quoted())?;
            let applied = run_pending(conn, set, &place)?;
            if let Some(roles) = pool.tenant_roles().filter(|_| !applied.is_empty()) {
                let context = Context::managing(conn)?;
                ensure_tenant_role(conn, &context, roles, schema)?;
            }
            Ok(applied)
        })
    })
}

/// Migrates the tenants `status` shows behind (those `options` select), `options.jobs`
/// at a time, each with [`migrate_tenant`]; first, with row tenants on, the row schema
/// (one unit of the report), unless `options` select tenants by name or skip it.
pub(super) fn migrate_all(
    pool: &TenantPool,
    set: &MigrationSet,
    status: &MigrationStatus,
    options: &MigrateOptions,
) -> Result<MigrateReport> {
    let todo = options.select(status)?;
    let jobs = options.jobs.clamp(1, pool.max_size().max(1) as usize);
    let started = Instant::now();
    let mut up_to_date = status
        .tenants
        .iter()
        .filter(|t| t.tenant.mode == TenantMode::Schema && t.pending.is_empty())
        .count();
    let mut tenants = Vec::new();
    if let Some(rows) = status
        .row_schema
        .as_ref()
        .filter(|r| options.admits_row_schema(r))
    {
        if rows.needs_migration() {
            let t0 = Instant::now();
            let result = super::row_schema::migrate(pool, set);
            let report = TenantReport::for_row_schema(&rows.schema, result, t0.elapsed());
            if let Some(progress) = &options.progress {
                progress(&report);
            }
            let stop = report.error.is_some() && !options.keep_going;
            tenants.push(report);
            if stop {
                return Ok(MigrateReport {
                    tenants,
                    up_to_date,
                    duration: started.elapsed(),
                });
            }
        } else {
            up_to_date += 1;
        }
    }
    tenants.extend(run_parallel(todo, jobs, options, |tenant: &Tenant| {
        let t0 = Instant::now();
        let result = migrate_tenant(pool, set, &tenant.schema_name);
        TenantReport::new(tenant, result, t0.elapsed())
    }));
    Ok(MigrateReport {
        tenants,
        up_to_date,
        duration: started.elapsed(),
    })
}

/// `SET LOCAL search_path` for the current transaction; `path` is already quoted.
pub(super) fn set_local_path(conn: &mut PgConnection, path: &str) -> Result<()> {
    conn.batch_execute(&format!("SET LOCAL search_path TO {path}"))?;
    Ok(())
}

/// Applies the pending shared migrations one by one, filling the tenant name keys as
/// soon as the migration that adds their column has run (the next one makes them
/// unique and `NOT NULL`).
fn run_shared(conn: &mut PgConnection, set: &MigrationSet) -> Result<Vec<String>> {
    let place = SchemaRef::Public;
    set.versions(&place)?;
    let failed = |source| Error::Migration {
        place: SchemaRef::Public,
        source,
    };
    let pending = conn.pending_migrations(set.clone()).map_err(failed)?;
    let mut applied = Vec::with_capacity(pending.len());
    for migration in pending {
        let version = conn.run_migration(&*migration).map_err(failed)?;
        if migration.name().to_string() == NAME_KEY_MIGRATION {
            TenantRegistry::backfill_name_keys(conn)?;
        }
        applied.push(version.to_string());
    }
    Ok(applied)
}

/// Applies the pending migrations of `set` on `conn`, whose path is already the schema.
pub(super) fn run_pending(
    conn: &mut PgConnection,
    set: &MigrationSet,
    place: &SchemaRef,
) -> Result<Vec<String>> {
    set.versions(place)?;
    let applied = conn
        .run_pending_migrations(set.clone())
        .map_err(|source| Error::Migration {
            place: place.clone(),
            source,
        })?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

//! Spare schemas: tenant schemas built ahead of time so that creating a tenant is a rename.
//!
//! Creating a table is the expensive part of provisioning (PostgreSQL writes catalog rows
//! and data files for each one). A spare schema already holds the tenant set; creating a
//! tenant claims one with `FOR UPDATE SKIP LOCKED` and renames it, inside the same single
//! transaction as the registry row. Without spares, creation builds the schema itself.

use std::time::{SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use super::apply::{run_pending, set_local_path};
use super::migration_set::MigrationSet;
use crate::error::{Error, Result, SchemaRef};
use crate::pool::TenantPool;
use crate::registry::schema::tenant_spares;
use crate::schema_name::SchemaName;

/// Builds `count` spare schemas, each fully migrated with `tenant_set`, each in its own
/// transaction; returns how many spares exist afterwards.
pub(super) fn prepare(pool: &TenantPool, tenant_set: &MigrationSet, count: usize) -> Result<i64> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for i in 0..count {
        let name = SchemaName::new(&format!("dt_spare_{stamp:x}_{i}"))?;
        pool.with_public(|conn| {
            conn.transaction(|conn| {
                super::citus::shard_new_schemas(conn)?;
                conn.batch_execute(&format!("CREATE SCHEMA {}", name.quoted()))?;
                set_local_path(conn, &name.quoted())?;
                run_pending(conn, tenant_set, &SchemaRef::Schema(name.to_string()))?;
                diesel::insert_into(tenant_spares::table)
                    .values(tenant_spares::schema_name.eq(name.as_str()))
                    .execute(conn)?;
                Ok::<_, Error>(())
            })
        })?;
    }
    count_spares(pool)
}

/// How many spare schemas are ready.
pub(super) fn count_spares(pool: &TenantPool) -> Result<i64> {
    pool.with_public(|conn| Ok(tenant_spares::table.count().get_result(conn)?))
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = diesel::sql_types::Text)]
    schema_name: String,
}

/// Takes one spare, if any, and renames it to `schema`; true if it did. Runs inside the
/// caller's transaction, so a failure later puts the spare back.
pub(super) fn claim_spare(conn: &mut PgConnection, schema: &SchemaName) -> Result<bool> {
    let claimed: Option<Claimed> = diesel::sql_query(
        "DELETE FROM public.tenant_spares WHERE schema_name = \
         (SELECT schema_name FROM public.tenant_spares ORDER BY created_at \
          LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING schema_name",
    )
    .get_result(conn)
    .optional()?;
    let claimed = claimed.map(|c| c.schema_name);
    let Some(spare) = claimed else {
        return Ok(false);
    };
    let spare = SchemaName::from_stored(&spare)?;
    if !crate::sql::schema_exists(conn, spare.as_str())? {
        return Ok(false);
    }
    conn.batch_execute(&format!(
        "ALTER SCHEMA {} RENAME TO {}",
        spare.quoted(),
        schema.quoted()
    ))?;
    Ok(true)
}

/// Names of the spare schemas (so status does not call them orphans).
pub(super) fn spare_names(conn: &mut PgConnection) -> Result<Vec<String>> {
    Ok(tenant_spares::table
        .select(tenant_spares::schema_name)
        .load(conn)?)
}

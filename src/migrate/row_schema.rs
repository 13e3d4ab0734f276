//! The row schema: the one schema that holds row tenants' tables. Provisioned (and
//! migrated with the tenant set) by [`SyncRouter::migrate_shared`](crate::SyncRouter::migrate_shared)
//! when the pool serves row tenants, migrated again by `migrate_all`, and emptied of one
//! tenant's rows when that tenant is deleted with its data.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::apply::{run_pending, set_local_path};
use super::migration_set::MigrationSet;
use super::role_provision::Context;
use super::row_check::require_protected;
use super::row_role::{ensure_row_role, refuse_unbound_login};
use crate::error::{Error, Result, SchemaRef};
use crate::pool::SENTINEL_TABLE as SENTINEL;
use crate::pool::{lock, Scope, TenantPool};
use crate::registry::TenantRegistry;
use crate::schema_name::{quote_ident, SchemaName};

/// Provisions the pool's row schema and applies the pending tenant migrations to it, in
/// a [`Scope::AllRows`] checkout (never a row tenant's scope), in one transaction under
/// the row schema's advisory lock: the schema (owned by the login
/// role), its sentinel table, the row role and its grants, the migrations (the row
/// schema alone on the path, as the login role), the grants again for what they added,
/// and the proof that every relation of the schema is protected by forced row-level
/// security. Any failure rolls all of it back. Returns the versions applied.
///
/// Fails with [`Error::RowSecurity`] when the login role is a superuser or has
/// `BYPASSRLS`, when it may not make the row role, or when a table is unprotected.
pub(super) fn migrate(pool: &TenantPool, set: &MigrationSet) -> Result<Vec<String>> {
    let schema = pool.row_schema().clone();
    let place = SchemaRef::Schema(schema.to_string());
    // The explicit scope of work across all row tenants: the row schema, as its owner.
    pool.with_scope(Scope::AllRows, |conn| {
        conn.transaction(|conn| {
            let context = Context::read(conn)?;
            refuse_unbound_login(&context)?;
            lock(conn, schema.as_str())?;
            refuse_schema_tenant(conn, &schema)?;
            create_schema(conn, &schema)?;
            ensure_row_role(conn, &context, pool.tenant_roles(), &schema)?;
            set_local_path(conn, &schema.quoted())?;
            let applied = run_pending(conn, set, &place)?;
            if !applied.is_empty() {
                ensure_row_role(conn, &context, pool.tenant_roles(), &schema)?;
            }
            require_protected(conn, &schema)?;
            Ok(applied)
        })
    })
}

/// Refuses a row schema that a schema tenant already has as its own schema.
fn refuse_schema_tenant(conn: &mut PgConnection, schema: &SchemaName) -> Result<()> {
    if !crate::sql::table_exists(conn, "public.tenants")? {
        return Ok(());
    }
    match TenantRegistry::find_by_schema(conn, schema)? {
        Some(tenant) => Err(Error::Config(format!(
            "the row schema `{schema}` is tenant `{}`'s schema; give the pool another row \
             schema (TenantPoolBuilder::row_schema)",
            tenant.name
        ))),
        None => Ok(()),
    }
}

/// Creates the row schema and its sentinel table unless they exist, and makes the
/// sentinel a row table (the helper is idempotent).
fn create_schema(conn: &mut PgConnection, schema: &SchemaName) -> Result<()> {
    let sentinel = format!("{}.{}", schema.quoted(), quote_ident(SENTINEL));
    conn.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION CURRENT_USER; \
         CREATE TABLE IF NOT EXISTS {sentinel} (tenant_id pg_catalog.int8 NOT NULL)",
        schema.quoted()
    ))?;
    diesel::sql_query("SELECT public.diesel_tenancy_row_table($1::pg_catalog.regclass)")
        .bind::<Text, _>(&sentinel)
        .execute(conn)?;
    Ok(())
}

/// Fails unless the row schema has been provisioned (its sentinel exists): a row tenant
/// created before would have nowhere to keep its rows.
pub(super) fn require_provisioned(conn: &mut PgConnection, schema: &SchemaName) -> Result<()> {
    let sentinel = format!("{}.{}", schema.quoted(), quote_ident(SENTINEL));
    if crate::sql::table_exists(conn, &sentinel)? {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the row schema `{schema}` is not provisioned: run SyncRouter::migrate_shared (the \
         CLI's `migrate`) with a pool built with TenantPoolBuilder::row_tenants(true) first"
    )))
}

#[derive(QueryableByName)]
struct Edge {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    references: Option<String>,
}

/// Deletes row tenant `tenant`'s rows from every table of row schema `schema` that has
/// a `tenant_id` column, tables that reference others first; in the caller's
/// transaction, as the login role (whose owner policy shows it every row). Returns the
/// rows deleted.
pub(super) fn delete_rows(
    conn: &mut PgConnection,
    schema: &SchemaName,
    tenant: i64,
) -> Result<u64> {
    let edges: Vec<Edge> = diesel::sql_query(
        "SELECT c.relname::text AS name, r.relname::text AS references \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_constraint f ON f.conrelid = c.oid AND f.contype = 'f' \
         LEFT JOIN pg_catalog.pg_class r ON r.oid = f.confrelid \
              AND r.relnamespace = c.relnamespace AND r.oid <> c.oid \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
         AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid \
                     AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
         ORDER BY 1, 2",
    )
    .bind::<Text, _>(schema.as_str())
    .load(conn)?;
    let edges: Vec<(String, Option<String>)> =
        edges.into_iter().map(|e| (e.name, e.references)).collect();
    // Referenced tables first, so referencing ones are emptied before them.
    let mut tables = super::citus::reference::ordered(&edges);
    tables.reverse();
    let mut deleted = 0;
    for table in tables {
        deleted += diesel::sql_query(format!(
            "DELETE FROM {}.{} WHERE tenant_id = $1",
            schema.quoted(),
            quote_ident(&table)
        ))
        .bind::<BigInt, _>(tenant)
        .execute(conn)? as u64;
    }
    Ok(deleted)
}

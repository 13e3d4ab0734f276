//! [`SyncRouter::status`]: pending migrations of every schema in a bounded number of queries.

use std::collections::{BTreeSet, HashMap, HashSet};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::query_builder::SqlQuery;
use diesel::sql_types::{Array, BigInt, Text};

use super::report::{MigrationStatus, RowSchemaStatus, TenantStatus};
use super::row_check::{unprotected_tables, UnprotectedTable};
use crate::error::{Error, Result};
use crate::pool::TenantPool;
use crate::registry::{Tenant, TenantMode, TenantRegistry};
use crate::schema_name::SchemaName;
use crate::schema_union::SchemaUnion;

/// Connections that read tracking tables at once.
const READERS: usize = 4;

#[derive(QueryableByName)]
struct CatalogRow {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = BigInt)]
    sample_relations: i64,
    #[diesel(sql_type = BigInt)]
    max_files: i64,
}

/// What the catalog says about the registered tenants' schemas, in one query.
struct TenantCatalog {
    /// The schemas that exist.
    existing: HashSet<String>,
    /// Relations with storage in them (the first schema's count times the schemas).
    relation_files: u64,
    /// The server's `max_files_per_process` (`None` when no schema exists).
    max_files_per_process: Option<u64>,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = Text)]
    version: String,
}

/// What status reads in `public`'s transaction: the registry, the catalog, the row
/// schema's protection.
struct Found {
    tenants: Vec<Tenant>,
    tracked: HashSet<String>,
    catalog: TenantCatalog,
    spares: Vec<String>,
    to_read: Vec<SchemaName>,
    name_keys: crate::registry::NameKeys,
    citus: Option<super::citus::provision::CitusStatus>,
    unprotected: Vec<UnprotectedTable>,
}

/// The registry, the catalog and the row schema's protection, on one connection.
fn find(conn: &mut PgConnection, rows: Option<&SchemaName>) -> Result<Found> {
    // On a database the shared set never reached, there is no registry yet:
    // everything shared is pending and there are no tenants.
    let tenants = if crate::sql::table_exists(conn, "public.tenants")? {
        TenantRegistry::list(conn)?
    } else {
        Vec::new()
    };
    let schema_tenants: Vec<Tenant> = tenants
        .iter()
        .filter(|t| t.mode == TenantMode::Schema)
        .cloned()
        .collect();
    let tracked: HashSet<String> = tracked_schemas(conn)?.into_iter().collect();
    let names: Vec<&str> = schema_tenants
        .iter()
        .map(|t| t.schema_name.as_str())
        .collect();
    let catalog = tenant_catalog(conn, &names)?;
    let mut to_read: Vec<SchemaName> = schema_tenants
        .iter()
        .map(|t| t.schema_name.clone())
        .filter(|s| tracked.contains(s.as_str()))
        .collect();
    let extra = std::iter::once("public").chain(rows.map(SchemaName::as_str));
    for schema in extra.filter(|s| tracked.contains(*s)) {
        to_read.push(SchemaName::from_stored(schema)?);
    }
    let spares = if crate::sql::table_exists(conn, "public.tenant_spares")? {
        super::spares::spare_names(conn)?
    } else {
        Vec::new()
    };
    let unprotected = match rows {
        Some(rows) => unprotected_tables(conn, rows)?,
        None => Vec::new(),
    };
    Ok(Found {
        name_keys: crate::registry::name_keys::check_if_present(conn)?,
        citus: super::citus::status(conn, &schema_tenants)?,
        tenants,
        tracked,
        catalog,
        spares,
        to_read,
        unprotected,
    })
}

/// Which schemas lack which of the `shared` and `tenant_versions`, plus
/// registry/catalog mismatches, in `8 + tenants / 500` queries (9 on Citus, one more
/// with row tenants on).
pub(super) fn status(
    pool: &TenantPool,
    shared: &[String],
    tenant_versions: &[String],
) -> Result<MigrationStatus> {
    let rows = pool.has_row_tenants().then(|| pool.row_schema().clone());
    let found = pool.with_public(|conn| find(conn, rows.as_ref()))?;
    let applied = applied_versions(pool, &found.to_read)?;
    let empty = BTreeSet::new();
    let registered: HashSet<&str> = found
        .tenants
        .iter()
        .filter(|t| t.mode == TenantMode::Schema)
        .map(|t| t.schema_name.as_str())
        .chain(found.spares.iter().map(String::as_str))
        .chain(rows.as_ref().map(SchemaName::as_str))
        .collect();
    let orphan_schemas = found
        .tracked
        .iter()
        .filter(|s| *s != "public" && !registered.contains(s.as_str()))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let shared_pending = missing(shared, applied.get("public").unwrap_or(&empty));
    let unknown = |done: &BTreeSet<String>| -> Vec<String> {
        done.iter()
            .filter(|v| !tenant_versions.contains(v))
            .cloned()
            .collect()
    };
    let row_schema = rows.map(|schema| {
        let done = applied.get(schema.as_str()).unwrap_or(&empty);
        RowSchemaStatus {
            pending: missing(tenant_versions, done),
            unknown_applied: unknown(done),
            schema_missing: !found.tracked.contains(schema.as_str()),
            schema,
        }
    });
    let catalog = &found.catalog;
    let tenants = found
        .tenants
        .into_iter()
        .map(|tenant| {
            if tenant.mode == TenantMode::Rows {
                return TenantStatus {
                    pending: Vec::new(),
                    unknown_applied: Vec::new(),
                    schema_missing: false,
                    tenant,
                };
            }
            let done = applied.get(tenant.schema_name.as_str()).unwrap_or(&empty);
            TenantStatus {
                pending: missing(tenant_versions, done),
                unknown_applied: unknown(done),
                schema_missing: !catalog.existing.contains(tenant.schema_name.as_str()),
                tenant,
            }
        })
        .collect();
    Ok(MigrationStatus {
        shared_pending,
        tenants,
        row_schema,
        unprotected_row_tables: found.unprotected,
        orphan_schemas,
        relation_files: catalog.relation_files,
        max_files_per_process: catalog.max_files_per_process,
        name_keys: found.name_keys,
        citus: found.citus,
    })
}

/// Diesel's tracking table in every schema: its versions.
fn tracking() -> SchemaUnion {
    SchemaUnion::new("__diesel_schema_migrations", "version::text AS version")
}

/// Runs `statements` (reads of tracking tables) on one pooled connection.
fn read_all(pool: &TenantPool, statements: &[SqlQuery]) -> Result<Vec<VersionRow>> {
    pool.with_public(|conn| {
        let mut rows = Vec::new();
        for statement in statements {
            rows.extend(statement.clone().load::<VersionRow>(conn)?);
        }
        Ok(rows)
    })
}

fn missing(expected: &[String], applied: &BTreeSet<String>) -> Vec<String> {
    expected
        .iter()
        .filter(|v| !applied.contains(*v))
        .cloned()
        .collect()
}

/// Every schema that has a tracking table (registered or not), in one catalog query.
fn tracked_schemas(conn: &mut PgConnection) -> Result<Vec<String>> {
    tracking().present(conn, None)
}

/// One catalog query: which tenant schemas exist, the relation files of the first one
/// (tenant schemas share one tenant set, so one stands for all; counting every schema's
/// relations would scan `pg_class` per schema), and the server's file limit.
fn tenant_catalog(conn: &mut PgConnection, names: &[&str]) -> Result<TenantCatalog> {
    let rows = diesel::sql_query(
        "SELECT n.nspname::text AS schema_name, \
                (SELECT count(*) FROM pg_catalog.pg_class c \
                   JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace \
                  WHERE s.nspname = ($1)[1] AND c.relkind IN ('r', 'i', 'S', 'm')) \
                  AS sample_relations, \
                current_setting('max_files_per_process')::bigint AS max_files \
         FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY($1)",
    )
    .bind::<Array<Text>, _>(names)
    .load::<CatalogRow>(conn)?;
    let per_schema = rows
        .first()
        .map_or(0, |r| r.sample_relations.unsigned_abs());
    Ok(TenantCatalog {
        relation_files: per_schema.saturating_mul(rows.len() as u64),
        max_files_per_process: rows.first().map(|r| r.max_files.unsigned_abs()),
        existing: rows.into_iter().map(|r| r.schema_name).collect(),
    })
}

/// Applied versions of each schema (each has a tracking table), one `UNION ALL` query per
/// 500 schemas ([`SchemaUnion`]), the queries spread over up to [`READERS`] pooled
/// connections at once.
fn applied_versions(
    pool: &TenantPool,
    schemas: &[SchemaName],
) -> Result<HashMap<String, BTreeSet<String>>> {
    let statements = tracking().statements(schemas);
    let readers = READERS
        .min(pool.max_size() as usize)
        .min(statements.len())
        .max(1);
    let rows: Vec<Result<Vec<VersionRow>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                let mine: Vec<SqlQuery> = statements
                    .iter()
                    .skip(r)
                    .step_by(readers)
                    .cloned()
                    .collect();
                scope.spawn(move || read_all(pool, &mine))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Config("a status reader panicked".into())))
            })
            .collect()
    });
    let mut applied: HashMap<String, BTreeSet<String>> = HashMap::new();
    for row in rows
        .into_iter()
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
    {
        applied
            .entry(row.schema_name)
            .or_default()
            .insert(row.version);
    }
    for s in schemas {
        applied.entry(s.as_str().to_owned()).or_default();
    }
    Ok(applied)
}

//! Tenant schemas as distributed schemas: at creation (new and spare schemas), on demand
//! (`tenant distribute`), and the status check that finds those that are not.

use std::time::Instant;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pool::lock;
use crate::pool::TenantPool;
use crate::registry::{Tenant, TenantMode, TenantRegistry};
use crate::schema_name::SchemaName;

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    value: String,
}

#[derive(QueryableByName)]
struct SchemaRow {
    #[diesel(sql_type = Text)]
    schema_name: String,
}

/// On a Citus database, makes every schema created later in the current transaction a
/// distributed schema (`citus.enable_schema_based_sharding`, transaction-local, whatever
/// the database's own setting) and returns true; on plain PostgreSQL does nothing and
/// returns false. One round trip either way: the setting is changed only for a row of
/// `pg_extension` that names `citus`.
pub(crate) fn shard_new_schemas(conn: &mut PgConnection) -> Result<bool> {
    let rows = diesel::sql_query(
        "SELECT pg_catalog.set_config('citus.enable_schema_based_sharding', 'on', true) AS value \
         FROM pg_catalog.pg_extension WHERE extname = 'citus'",
    )
    .load::<Setting>(conn)?;
    Ok(!rows.is_empty())
}

/// Whether `schema` is a Citus distributed schema (Citus databases only).
fn is_distributed(conn: &mut PgConnection, schema: &SchemaName) -> Result<bool> {
    let rows = diesel::sql_query(
        "SELECT n.nspname::text AS schema_name FROM pg_catalog.pg_namespace n \
         JOIN pg_catalog.pg_dist_schema d ON d.schemaid = n.oid WHERE n.nspname = $1",
    )
    .bind::<Text, _>(schema.as_str())
    .load::<SchemaRow>(conn)?;
    Ok(!rows.is_empty())
}

/// Makes `schema` a distributed schema unless it is one already, inside the caller's
/// transaction (Citus databases only); true if it did. Data its tables held is copied to
/// the worker, and the coordinator's now invisible copy is truncated.
///
/// Creation needs this for a spare schema built before Citus was installed (spares built
/// on Citus are distributed when built): the claimed spare is renamed, then distributed
/// here, so a tenant created on Citus is always a distributed schema.
pub(crate) fn ensure_distributed(conn: &mut PgConnection, schema: &SchemaName) -> Result<bool> {
    if is_distributed(conn, schema)? {
        return Ok(false);
    }
    diesel::sql_query("SELECT pg_catalog.citus_schema_distribute($1::text::regnamespace)")
        .bind::<Text, _>(schema.as_str())
        .execute(conn)?;
    diesel::sql_query(
        "SELECT pg_catalog.truncate_local_data_after_distributing_table(c.oid) \
         FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = $1::text::regnamespace AND c.relkind IN ('r', 'p')",
    )
    .bind::<Text, _>(schema.as_str())
    .execute(conn)?;
    Ok(true)
}

/// What status knows about a Citus database's tenants.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct CitusStatus {
    /// Registered tenants whose schema exists but is not a distributed schema: its
    /// tables live on the coordinator. `tenant distribute NAME` (or
    /// [`SyncRouter::distribute_tenant`](crate::SyncRouter::distribute_tenant)) fixes one, `tenant distribute --all` all.
    pub undistributed: Vec<Tenant>,
}

/// On a Citus database, the tenants among `tenants` whose schema exists and is not
/// distributed; `None` on plain PostgreSQL. One query there, two on Citus.
pub(crate) fn status(conn: &mut PgConnection, tenants: &[Tenant]) -> Result<Option<CitusStatus>> {
    if !crate::pool::citus::installed(conn)? {
        return Ok(None);
    }
    let names: Vec<&str> = tenants.iter().map(|t| t.schema_name.as_str()).collect();
    let local: Vec<String> = diesel::sql_query(
        "SELECT n.nspname::text AS schema_name FROM pg_catalog.pg_namespace n \
         WHERE n.nspname = ANY($1) \
         AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_schema d WHERE d.schemaid = n.oid)",
    )
    .bind::<Array<Text>, _>(&names)
    .load::<SchemaRow>(conn)?
    .into_iter()
    .map(|r| r.schema_name)
    .collect();
    Ok(Some(CitusStatus {
        undistributed: tenants
            .iter()
            .filter(|t| local.iter().any(|s| s == t.schema_name.as_str()))
            .cloned()
            .collect(),
    }))
}

/// What [`SyncRouter::distribute_tenant`](crate::SyncRouter::distribute_tenant) did for one tenant.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Distributed {
    /// Tenant name.
    pub tenant: String,
    /// Tenant schema.
    pub schema: String,
    /// True if the schema was made a distributed schema now, false if it already was.
    pub distributed_now: bool,
    /// Time taken (copying the tenant's data to a worker is most of it).
    pub duration: std::time::Duration,
    /// Why it failed, if it did (nothing changed for that tenant then).
    #[serde(serialize_with = "crate::migrate::report::error_text")]
    pub error: Option<Error>,
}

/// See [`SyncRouter::distribute_tenant`](crate::SyncRouter::distribute_tenant).
pub(crate) fn distribute_tenant(pool: &TenantPool, name: &str) -> Result<Distributed> {
    let started = Instant::now();
    let (tenant, result) = pool.with_public(|conn| {
        crate::pool::citus::require(conn, "`tenant distribute`")?;
        let tenant = TenantRegistry::get_by_name(conn, name)?;
        refuse_row_tenant(&tenant, "`tenant distribute`")?;
        let result = conn.transaction(|conn| {
            lock(conn, tenant.schema_name.as_str())?;
            ensure_distributed(conn, &tenant.schema_name)
        });
        Ok::<_, Error>((tenant, result))
    })?;
    Ok(distributed(&tenant, result, started))
}

/// See [`SyncRouter::distribute_all`].
pub(crate) fn distribute_all(pool: &TenantPool) -> Result<Vec<Distributed>> {
    let todo = pool.with_public(|conn| {
        crate::pool::citus::require(conn, "`tenant distribute --all`")?;
        let tenants = schema_tenants(TenantRegistry::list(conn)?);
        Ok::<_, Error>(status(conn, &tenants)?.unwrap_or_default().undistributed)
    })?;
    Ok(todo
        .iter()
        .map(|tenant| {
            let started = Instant::now();
            let result = pool.with_public(|conn| {
                conn.transaction(|conn| {
                    lock(conn, tenant.schema_name.as_str())?;
                    ensure_distributed(conn, &tenant.schema_name)
                })
            });
            distributed(tenant, result, started)
        })
        .collect())
}

/// Fails with [`Error::Citus`] for a row tenant: its rows live in the row schema with
/// every other row tenant's, so there is no schema of its own to distribute or move.
pub(crate) fn refuse_row_tenant(tenant: &Tenant, what: &'static str) -> Result<()> {
    if tenant.mode == TenantMode::Rows {
        return Err(Error::Citus {
            what,
            reason: format!(
                "tenant `{}` is a row tenant: its rows live in the shared row schema, not in \
                 a schema of its own that Citus could place or move",
                tenant.name
            ),
        });
    }
    Ok(())
}

/// The schema tenants of `tenants` (the only ones Citus places).
pub(crate) fn schema_tenants(mut tenants: Vec<Tenant>) -> Vec<Tenant> {
    tenants.retain(|t| t.mode == TenantMode::Schema);
    tenants
}

fn distributed(tenant: &Tenant, result: Result<bool>, started: Instant) -> Distributed {
    let (distributed_now, error) = match result {
        Ok(now) => (now, None),
        Err(e) => (false, Some(e)),
    };
    Distributed {
        tenant: tenant.name.clone(),
        schema: tenant.schema_name.to_string(),
        distributed_now,
        duration: started.elapsed(),
        error,
    }
}

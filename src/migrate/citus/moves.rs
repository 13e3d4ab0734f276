//! Moving tenants between Citus nodes: one tenant (`citus_schema_move`), or all of them
//! evenly over the workers (`rebalance_table_shards`).

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text};
use serde::Serialize;

use super::placement::{nodes_of, CitusNode};
use crate::error::{Error, Result};
use crate::pool::TenantPool;
use crate::registry::{Tenant, TenantRegistry};

/// How a tenant's tables are copied to their new node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// Logical replication (Citus's `auto` mode): reads and writes go on during the
    /// copy; writes wait only for the final switch-over. Needs `wal_level = logical` on
    /// the node the tenant leaves, and a primary key (or replica identity) on each of
    /// its tables (Citus refuses the move otherwise, and nothing moves).
    Online,
    /// Writes to the tenant wait until the whole copy is done (`block_writes`); reads
    /// go on. Works whatever `wal_level` is.
    BlockWrites,
}

impl TransferMode {
    fn citus_name(self) -> &'static str {
        match self {
            TransferMode::Online => "auto",
            TransferMode::BlockWrites => "block_writes",
        }
    }
}

/// One tenant moved (or, for a dry run, to be moved) from one node to another.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TenantMove {
    /// Tenant name.
    pub tenant: String,
    /// Tenant schema.
    pub schema: String,
    /// The node it left.
    pub from: CitusNode,
    /// The node it lives on now.
    pub to: CitusNode,
    /// How its tables were copied.
    pub mode: TransferMode,
}

#[derive(QueryableByName)]
struct Logical {
    #[diesel(sql_type = Bool)]
    logical: bool,
}

/// Whether every node in `nodes` has `wal_level = logical` (the coordinator's own
/// setting stands for a node that is not a worker). One query, one round trip per worker.
fn logical_everywhere(conn: &mut PgConnection, nodes: &[&CitusNode]) -> Result<bool> {
    for node in nodes {
        let answer = diesel::sql_query(
            "SELECT COALESCE((SELECT w.result FROM pg_catalog.run_command_on_workers('SHOW wal_level') w \
                              WHERE w.success AND w.nodename = $1 AND w.nodeport = $2), \
                             pg_catalog.current_setting('wal_level')) = 'logical' AS logical",
        )
        .bind::<Text, _>(&node.host)
        .bind::<Integer, _>(i32::from(node.port))
        .get_result::<Logical>(conn)?;
        if !answer.logical {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `mode`, or the online mode when the nodes allow it and writes-blocked otherwise.
fn choose(
    conn: &mut PgConnection,
    mode: Option<TransferMode>,
    from: &[&CitusNode],
) -> Result<TransferMode> {
    match mode {
        Some(mode) => Ok(mode),
        None if logical_everywhere(conn, from)? => Ok(TransferMode::Online),
        None => Ok(TransferMode::BlockWrites),
    }
}

/// See [`SyncRouter::move_tenant`].
pub(crate) fn move_tenant(
    pool: &TenantPool,
    name: &str,
    to: &CitusNode,
    mode: Option<TransferMode>,
) -> Result<TenantMove> {
    pool.with_public(|conn| {
        crate::pool::citus::require(conn, "`tenant move`")?;
        let tenant = TenantRegistry::get_by_name(conn, name)?;
        super::provision::refuse_row_tenant(&tenant, "`tenant move`")?;
        let schema = tenant.schema_name.as_str();
        let from = nodes_of(conn, &[schema])?
            .remove(schema)
            .ok_or_else(|| Error::Citus {
                what: "`tenant move`",
                reason: format!(
                    "tenant `{}`'s schema `{schema}` is not a distributed schema with \
                     tables: run `tenant distribute {}` first",
                    tenant.name, tenant.name
                ),
            })?;
        if &from == to {
            return Err(Error::Citus {
                what: "`tenant move`",
                reason: format!("tenant `{}` already lives on {to}", tenant.name),
            });
        }
        let mode = choose(conn, mode, &[&from])?;
        diesel::sql_query(
            "SELECT pg_catalog.citus_schema_move($1::text::regnamespace, $2, $3, \
             shard_transfer_mode := $4::citus.shard_transfer_mode)",
        )
        .bind::<Text, _>(schema)
        .bind::<Text, _>(&to.host)
        .bind::<Integer, _>(i32::from(to.port))
        .bind::<Text, _>(mode.citus_name())
        .execute(conn)?;
        Ok(moved(&tenant, from, to.clone(), mode))
    })
}

/// See [`SyncRouter::rebalance`].
pub(crate) fn rebalance(
    pool: &TenantPool,
    mode: Option<TransferMode>,
    dry_run: bool,
) -> Result<Vec<TenantMove>> {
    pool.with_public(|conn| {
        crate::pool::citus::require(conn, "`tenant rebalance`")?;
        let tenants = super::provision::schema_tenants(TenantRegistry::list(conn)?);
        let names: Vec<&str> = tenants.iter().map(|t| t.schema_name.as_str()).collect();
        let before = nodes_of(conn, &names)?;
        let sources: Vec<&CitusNode> = before.values().collect();
        let mode = choose(conn, mode, &sources)?;
        let after = if dry_run {
            super::placement::planned(conn, &names)?
        } else {
            diesel::sql_query(
                "SELECT pg_catalog.rebalance_table_shards( \
                 shard_transfer_mode := $1::citus.shard_transfer_mode)",
            )
            .bind::<Text, _>(mode.citus_name())
            .execute(conn)?;
            nodes_of(conn, &names)?
        };
        Ok(tenants
            .iter()
            .filter_map(|t| {
                let schema = t.schema_name.as_str();
                let (from, to) = (before.get(schema)?, after.get(schema)?);
                (from != to).then(|| moved(t, from.clone(), to.clone(), mode))
            })
            .collect())
    })
}

fn moved(tenant: &Tenant, from: CitusNode, to: CitusNode, mode: TransferMode) -> TenantMove {
    TenantMove {
        tenant: tenant.name.clone(),
        schema: tenant.schema_name.to_string(),
        from,
        to,
        mode,
    }
}

//! Where each tenant lives on a Citus cluster: its node and its size.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pool::TenantPool;
use crate::registry::{Tenant, TenantRegistry};

/// A Citus node, as `pg_dist_node` names it: host and port.
///
/// ```
/// use diesel_tenancy::CitusNode;
///
/// let node: CitusNode = "10.0.0.2:5432".parse().unwrap();
/// assert_eq!((node.host.as_str(), node.port), ("10.0.0.2", 5432));
/// assert_eq!(node.to_string(), "10.0.0.2:5432");
/// assert!("worker-1".parse::<CitusNode>().is_err()); // the port is required
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CitusNode {
    /// Host name or address, as registered with `citus_add_node`.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for CitusNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for CitusNode {
    type Err = Error;

    /// `HOST:PORT`, or `[V6-ADDRESS]:PORT`.
    fn from_str(text: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Config(format!("invalid node `{text}`: {reason}"));
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| bad("expected HOST:PORT"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("expected HOST:PORT"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
        Ok(CitusNode {
            host: host.to_owned(),
            port,
        })
    }
}

/// Where one tenant lives, from [`SyncRouter::placement`](crate::SyncRouter::placement).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TenantPlacement {
    /// The tenant.
    pub tenant: Tenant,
    /// Whether its schema is a Citus distributed schema. When false its tables live on
    /// the coordinator (see [`CitusStatus`](crate::CitusStatus)).
    pub distributed: bool,
    /// The node holding its tables: a worker for a distributed schema, `None` for one
    /// that is not distributed, or that has no table yet, or whose schema is missing.
    pub node: Option<CitusNode>,
    /// Bytes its tables (with indexes and TOAST) take on that node.
    pub size_bytes: i64,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = Bool)]
    distributed: bool,
    #[diesel(sql_type = Nullable<Text>)]
    host: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    port: Option<i32>,
    #[diesel(sql_type = BigInt)]
    size_bytes: i64,
}

/// Node and size of each schema in `schemas` that exists. One query: the sizes of
/// distributed schemas come from the workers (`citus_shards`, one call per worker).
fn rows(conn: &mut PgConnection, schemas: &[&str]) -> Result<Vec<Row>> {
    Ok(diesel::sql_query(
        "WITH placed AS ( \
           SELECT d.schemaid, s.nodename, s.nodeport, sum(s.shard_size)::int8 AS size_bytes \
           FROM pg_catalog.pg_dist_schema d \
           JOIN pg_catalog.citus_shards s ON s.colocation_id = d.colocationid \
           GROUP BY d.schemaid, s.nodename, s.nodeport) \
         SELECT n.nspname::text AS schema_name, d.schemaid IS NOT NULL AS distributed, \
                p.nodename::text AS host, p.nodeport::int4 AS port, \
                CASE WHEN d.schemaid IS NOT NULL THEN COALESCE(p.size_bytes, 0) \
                  ELSE COALESCE((SELECT sum(pg_catalog.pg_total_relation_size(c.oid))::int8 \
                    FROM pg_catalog.pg_class c \
                    WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'm', 'p')), 0) \
                END AS size_bytes \
         FROM pg_catalog.pg_namespace n \
         LEFT JOIN pg_catalog.pg_dist_schema d ON d.schemaid = n.oid \
         LEFT JOIN placed p ON p.schemaid = n.oid \
         WHERE n.nspname = ANY($1)",
    )
    .bind::<Array<Text>, _>(schemas)
    .load::<Row>(conn)?)
}

/// See [`SyncRouter::placement`](crate::SyncRouter::placement).
pub(crate) fn placement(pool: &TenantPool) -> Result<Vec<TenantPlacement>> {
    pool.with_public(|conn| {
        crate::pool::citus::require(conn, "`tenant placement`")?;
        let tenants = super::provision::schema_tenants(TenantRegistry::list(conn)?);
        let names: Vec<&str> = tenants.iter().map(|t| t.schema_name.as_str()).collect();
        let rows = rows(conn, &names)?;
        Ok(tenants
            .into_iter()
            .map(|tenant| {
                let row = rows
                    .iter()
                    .find(|r| r.schema_name == tenant.schema_name.as_str());
                TenantPlacement {
                    distributed: row.is_some_and(|r| r.distributed),
                    node: row.and_then(node_of),
                    size_bytes: row.map_or(0, |r| r.size_bytes),
                    tenant,
                }
            })
            .collect())
    })
}

fn node_of(row: &Row) -> Option<CitusNode> {
    let port = u16::try_from(row.port?).ok()?;
    Some(CitusNode {
        host: row.host.clone()?,
        port,
    })
}

#[derive(QueryableByName)]
struct NodeRow {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = Text)]
    host: String,
    #[diesel(sql_type = Integer)]
    port: i32,
}

/// The node of each distributed schema among `schemas` that has tables. Reads the
/// coordinator's metadata only (no shard sizes, no worker round trip).
pub(crate) fn nodes_of(
    conn: &mut PgConnection,
    schemas: &[&str],
) -> Result<HashMap<String, CitusNode>> {
    Ok(diesel::sql_query(
        "SELECT DISTINCT ON (n.nspname) n.nspname::text AS schema_name, \
                nd.nodename::text AS host, nd.nodeport::int4 AS port \
         FROM pg_catalog.pg_namespace n \
         JOIN pg_catalog.pg_dist_schema d ON d.schemaid = n.oid \
         JOIN pg_catalog.pg_dist_partition p ON p.colocationid = d.colocationid \
         JOIN pg_catalog.pg_dist_shard s ON s.logicalrelid = p.logicalrelid \
         JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = s.shardid \
         JOIN pg_catalog.pg_dist_node nd ON nd.groupid = pl.groupid AND nd.noderole = 'primary' \
         WHERE n.nspname = ANY($1) ORDER BY n.nspname",
    )
    .bind::<Array<Text>, _>(schemas)
    .load::<NodeRow>(conn)?
    .into_iter()
    .filter_map(|r| {
        let port = u16::try_from(r.port).ok()?;
        Some((r.schema_name, CitusNode { host: r.host, port }))
    })
    .collect())
}

/// The node of each tenant schema among `schemas` once the rebalancer's current plan
/// (`get_rebalance_table_shards_plan`) is carried out; nothing moves.
pub(crate) fn planned(
    conn: &mut PgConnection,
    schemas: &[&str],
) -> Result<HashMap<String, CitusNode>> {
    let mut nodes = nodes_of(conn, schemas)?;
    let moves = diesel::sql_query(
        "SELECT DISTINCT n.nspname::text AS schema_name, \
                plan.targetname::text AS host, plan.targetport::int4 AS port \
         FROM pg_catalog.get_rebalance_table_shards_plan() plan \
         JOIN pg_catalog.pg_class c ON c.oid = plan.table_name \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
    )
    .load::<NodeRow>(conn)?;
    for m in moves {
        if let (Some(node), Ok(port)) = (nodes.get_mut(&m.schema_name), u16::try_from(m.port)) {
            *node = CitusNode { host: m.host, port };
        }
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_parse_and_print_host_and_port() {
        let v4: CitusNode = "127.0.0.1:9701".parse().unwrap();
        assert_eq!(v4.to_string(), "127.0.0.1:9701");
        let v6: CitusNode = "[::1]:9702".parse().unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9702));
        assert_eq!(v6.to_string(), "[::1]:9702");
        for bad in [
            "",
            "host",
            ":5432",
            "host:",
            "host:0",
            "host:65536",
            "host:x",
            "a b:1",
        ] {
            assert!(bad.parse::<CitusNode>().is_err(), "{bad:?}");
        }
    }
}

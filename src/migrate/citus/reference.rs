//! Shared tables as Citus reference tables (opt-in): copied to every node, so a tenant
//! query that joins one runs on the tenant's worker instead of pulling rows to the
//! coordinator.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};

use crate::error::{Error, Result};
use crate::pool::lock;
use crate::pool::TenantPool;

#[derive(QueryableByName)]
struct Candidate {
    #[diesel(sql_type = Text)]
    table_name: String,
    /// Another table of `public` this one has a foreign key to.
    #[diesel(sql_type = Nullable<Text>)]
    references: Option<String>,
}

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = Bool)]
    answer: bool,
}

/// The registry's change-notification trigger function for a Citus database. Citus runs
/// a reference table's triggers on every copy of it, each inside the distributed
/// transaction; a `NOTIFY` on a worker would make that transaction fail to prepare
/// (PostgreSQL cannot `PREPARE TRANSACTION` after `NOTIFY`), and nobody listens there.
/// Only the coordinator's copy notifies, in the coordinator's own transaction, which is
/// where the registry cache listens.
const COORDINATOR_NOTIFY: &str = "\
CREATE OR REPLACE FUNCTION public.diesel_tenancy_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_catalog.citus_is_coordinator() THEN
        PERFORM pg_catalog.pg_notify('diesel_tenancy_registry', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END
$$";

/// Tables of `public` that are not reference tables yet (Diesel's tracking table aside),
/// each with the other tables of `public` it has foreign keys to.
fn candidates(conn: &mut PgConnection) -> Result<Vec<Candidate>> {
    Ok(diesel::sql_query(
        "SELECT c.relname::text AS table_name, r.relname::text AS references \
         FROM pg_catalog.pg_class c \
         LEFT JOIN pg_catalog.pg_constraint k ON k.conrelid = c.oid AND k.contype = 'f' \
         LEFT JOIN pg_catalog.pg_class r ON r.oid = k.confrelid \
           AND r.relnamespace = c.relnamespace AND r.oid <> c.oid \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') \
           AND NOT c.relispartition AND c.relname <> '__diesel_schema_migrations' \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d \
                           WHERE d.logicalrelid = c.oid AND d.partmethod = 'n' \
                             AND d.repmodel = 't') \
         ORDER BY c.relname",
    )
    .load::<Candidate>(conn)?)
}

/// `candidates` ordered so that every table comes after the tables it references
/// (Citus converts a referenced table first). A cycle keeps its input order.
pub(crate) fn ordered(candidates: &[(String, Option<String>)]) -> Vec<String> {
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in candidates {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let needs = |name: &str, done: &[String]| {
        candidates.iter().any(|(n, r)| {
            n == name
                && r.as_deref()
                    .is_some_and(|r| names.contains(&r) && !done.iter().any(|d| d == r))
        })
    };
    let mut done: Vec<String> = Vec::new();
    while done.len() < names.len() {
        let next = names
            .iter()
            .find(|n| !done.iter().any(|d| d == *n) && !needs(n, &done))
            .or_else(|| names.iter().find(|n| !done.iter().any(|d| d == *n)));
        match next {
            Some(n) => done.push((*n).to_owned()),
            None => break,
        }
    }
    done
}

/// On a Citus database, makes every table of `public` (but Diesel's tracking table) a
/// reference table, inside the caller's transaction, and returns the tables it
/// converted; on plain PostgreSQL does nothing. Fails, converting nothing, when the
/// coordinator would hold no copy of the registry (so its change notifications would
/// never be sent).
pub(crate) fn reference_shared_tables(conn: &mut PgConnection) -> Result<Vec<String>> {
    if !crate::pool::citus::installed(conn)? {
        return Ok(Vec::new());
    }
    let found: Vec<(String, Option<String>)> = candidates(conn)?
        .into_iter()
        .map(|c| (c.table_name, c.references))
        .collect();
    let tables = ordered(&found);
    if tables.is_empty() {
        return Ok(tables);
    }
    // The registry's tables carry the notification trigger, which Citus refuses on a
    // distributed table unless told that the trigger is safe: it is, once it notifies
    // from the coordinator only.
    conn.batch_execute("SET LOCAL citus.enable_unsafe_triggers TO on")?;
    if crate::sql::table_exists(conn, "public.tenants")? {
        conn.batch_execute(COORDINATOR_NOTIFY)?;
    }
    for table in &tables {
        diesel::sql_query("SELECT pg_catalog.create_reference_table($1::text::regclass)")
            .bind::<Text, _>(format!("public.{}", crate::schema_name::quote_ident(table)))
            .execute(conn)?;
    }
    let on_coordinator = diesel::sql_query(
        "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d \
           WHERE d.logicalrelid = pg_catalog.to_regclass('public.tenants') \
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_shard s \
             JOIN pg_catalog.pg_dist_placement p ON p.shardid = s.shardid \
             WHERE s.logicalrelid = d.logicalrelid AND p.groupid = 0)) AS answer",
    )
    .get_result::<Answer>(conn)?;
    if !on_coordinator.answer {
        return Err(Error::Citus {
            what: "reference tables",
            reason: "the coordinator holds no copy of public.tenants, so registry changes \
                     would never notify the processes that cache it: add the coordinator \
                     to the cluster's metadata first \
                     (SELECT citus_set_coordinator_host('<host>', <port>))"
                .into(),
        });
    }
    Ok(tables)
}

/// See [`SyncRouter::make_reference_tables`].
pub(crate) fn make_reference_tables(pool: &TenantPool) -> Result<Vec<String>> {
    pool.with_public(|conn| {
        crate::pool::citus::require(conn, "reference tables")?;
        conn.transaction(|conn| {
            lock(conn, "public")?;
            reference_shared_tables(conn)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::ordered;

    fn c(name: &str, references: Option<&str>) -> (String, Option<String>) {
        (name.to_owned(), references.map(str::to_owned))
    }

    #[test]
    fn referenced_tables_come_first() {
        let found = [
            c("domains", Some("tenants")),
            c("plans", None),
            c("tenant_spares", None),
            c("tenants", None),
        ];
        let order = ordered(&found);
        let at = |n: &str| order.iter().position(|t| t == n).unwrap();
        assert_eq!(order.len(), 4);
        assert!(at("tenants") < at("domains"), "{order:?}");
    }

    #[test]
    fn chains_and_cycles_keep_every_table_once() {
        let chain = [c("a", Some("b")), c("b", Some("c")), c("c", None)];
        assert_eq!(ordered(&chain), ["c", "b", "a"]);
        let cycle = [c("x", Some("y")), c("y", Some("x"))];
        assert_eq!(ordered(&cycle), ["x", "y"]);
        let two_refs = [
            c("a", Some("b")),
            c("a", Some("c")),
            c("b", None),
            c("c", None),
        ];
        assert_eq!(ordered(&two_refs), ["b", "c", "a"]);
    }
}

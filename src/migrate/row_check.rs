//! What keeps row tenants apart, checked: every relation of the row schema must be a
//! table whose rows row-level security filters by tenant, for its owner too. Run where
//! the row schema is migrated (a failure rolls the migration back) and by status.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Text};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pool::{SENTINEL_TABLE as SENTINEL, TRACKING_TABLE};
use crate::schema_name::{quote_ident, SchemaName};

/// The policy that shows a row tenant its own rows.
const TENANT_POLICY: &str = "diesel_tenancy_tenant";

/// The policy that shows the table's owner every row.
const OWNER_POLICY: &str = "diesel_tenancy_owner";

/// A relation of the row schema whose rows row-level security does not keep apart by
/// tenant (from [`MigrationStatus::unprotected_row_tables`](crate::MigrationStatus::unprotected_row_tables)).
///
/// It serializes as `{"table", "problem", "fix"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UnprotectedTable {
    /// The relation's name in the row schema.
    pub table: String,
    /// What is missing or wrong.
    pub problem: String,
    /// What the migration that creates it should do.
    pub fix: String,
}

impl std::fmt::Display for UnprotectedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}; fix: {}", self.table, self.problem, self.fix)
    }
}

/// One relation of the row schema, as the catalog describes it.
#[derive(QueryableByName, Debug, Default)]
struct Relation {
    #[diesel(sql_type = Text)]
    name: String,
    /// `pg_class.relkind`.
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Bool)]
    owned_by_current_user: bool,
    #[diesel(sql_type = Bool)]
    has_tenant_id: bool,
    #[diesel(sql_type = Bool)]
    row_security: bool,
    #[diesel(sql_type = Bool)]
    forced: bool,
    /// The tenant policy exists, is permissive, for every command, to everyone, and
    /// filters as the sentinel's does.
    #[diesel(sql_type = Bool)]
    tenant_policy: bool,
    /// The owner policy, if any, is permissive and names the table's owner only.
    #[diesel(sql_type = Bool)]
    owner_policy_ok: bool,
    /// Other permissive policies (each widens what a tenant sees).
    #[diesel(sql_type = Array<Text>)]
    other_permissive: Vec<String>,
    /// A view that checks permissions as the querying role (`security_invoker`).
    #[diesel(sql_type = Bool)]
    security_invoker: bool,
}

/// The relations of the row schema but Diesel's tracking table, in one query. The
/// sentinel's tenant policy is the reference the others are compared with.
const RELATIONS: &str = "\
WITH s AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1), \
ref AS (SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual, \
               pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS checks \
        FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid \
        WHERE c.relnamespace = (SELECT oid FROM s) AND c.relname = $2 AND p.polname = $3) \
SELECT c.relname::text AS name, c.relkind::text AS kind, \
  c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER) \
    AS owned_by_current_user, \
  EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid \
          AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant_id, \
  c.relrowsecurity AS row_security, c.relforcerowsecurity AS forced, \
  EXISTS (SELECT 1 FROM pg_catalog.pg_policy p, ref WHERE p.polrelid = c.oid \
          AND p.polname = $3 AND p.polpermissive AND p.polcmd = '*' \
          AND p.polroles = '{0}'::pg_catalog.oid[] \
          AND pg_catalog.pg_get_expr(p.polqual, p.polrelid) = ref.qual \
          AND pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) = ref.checks) \
    AS tenant_policy, \
  NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid \
          AND p.polname = $4 AND NOT (p.polpermissive \
          AND p.polroles = ARRAY[c.relowner]::pg_catalog.oid[])) AS owner_policy_ok, \
  ARRAY(SELECT p.polname::text FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid \
        AND p.polpermissive AND p.polname NOT IN ($3, $4) ORDER BY 1) AS other_permissive, \
  EXISTS (SELECT 1 FROM pg_catalog.unnest(c.reloptions) o \
          WHERE pg_catalog.lower(o) IN ('security_invoker=true', 'security_invoker=on', \
                'security_invoker=1', 'security_invoker=yes')) AS security_invoker \
FROM pg_catalog.pg_class c \
WHERE c.relnamespace = (SELECT oid FROM s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
  AND c.relname <> $5 \
ORDER BY c.relname";

/// The relations of row schema `schema` that row-level security does not keep apart by
/// tenant (empty when the schema does not exist).
pub(crate) fn unprotected_tables(
    conn: &mut PgConnection,
    schema: &SchemaName,
) -> Result<Vec<UnprotectedTable>> {
    let relations: Vec<Relation> = diesel::sql_query(RELATIONS)
        .bind::<Text, _>(schema.as_str())
        .bind::<Text, _>(SENTINEL)
        .bind::<Text, _>(TENANT_POLICY)
        .bind::<Text, _>(OWNER_POLICY)
        .bind::<Text, _>(TRACKING_TABLE)
        .load(conn)?;
    Ok(relations.iter().filter_map(problem).collect())
}

/// Fails with [`Error::RowSecurity`], naming each table and its fix, unless every
/// relation of row schema `schema` is protected.
pub(crate) fn require_protected(conn: &mut PgConnection, schema: &SchemaName) -> Result<()> {
    let unprotected = unprotected_tables(conn, schema)?;
    if unprotected.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unprotected.iter().map(ToString::to_string).collect();
    Err(Error::RowSecurity {
        reason: format!(
            "in row schema `{schema}`, {} relation(s) would show one tenant's rows to \
             another: {}",
            list.len(),
            list.join("; ")
        ),
    })
}

/// What is wrong with `r`, if anything, and the fix.
fn problem(r: &Relation) -> Option<UnprotectedTable> {
    let helper = format!(
        "call `SELECT public.diesel_tenancy_row_table('{}');` in the migration that creates it",
        regclass_text(&r.name)
    );
    let (problem, fix) = match r.kind.as_str() {
        "v" if r.security_invoker => return None,
        "v" => (
            "a view that reads its tables as its owner, who sees every tenant's rows".to_owned(),
            "create it `WITH (security_invoker = true)`".to_owned(),
        ),
        "m" | "f" => (
            "a materialized view or foreign table, which row-level security cannot filter"
                .to_owned(),
            "keep it out of the tenant migrations (or in `public`)".to_owned(),
        ),
        _ => (table_problem(r)?, helper),
    };
    Some(UnprotectedTable {
        table: r.name.clone(),
        problem,
        fix,
    })
}

/// `name` as the text of a `regclass` literal: as it is when it needs no quoting, else
/// a quoted identifier; single quotes doubled for the SQL string.
fn regclass_text(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let ident = if plain {
        name.to_owned()
    } else {
        quote_ident(name)
    };
    ident.replace('\'', "''")
}

/// What a table lacks, in the order a migration would add it.
fn table_problem(r: &Relation) -> Option<String> {
    let problem = if !r.has_tenant_id {
        "no `tenant_id` column".to_owned()
    } else if !r.row_security || !r.forced {
        "row-level security is not enabled and forced".to_owned()
    } else if !r.tenant_policy {
        format!("no `{TENANT_POLICY}` policy filtering by the tenant setting")
    } else if !r.owner_policy_ok {
        format!("its `{OWNER_POLICY}` policy names other roles than the table's owner")
    } else if !r.other_permissive.is_empty() {
        format!(
            "other permissive policies ({}) widen what a tenant sees",
            r.other_permissive.join(", ")
        )
    } else if !r.owned_by_current_user {
        "it is owned by another role than the one that migrates the row schema".to_owned()
    } else {
        return None;
    };
    Some(problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(name: &str) -> Relation {
        Relation {
            name: name.into(),
            kind: "r".into(),
            owned_by_current_user: true,
            has_tenant_id: true,
            row_security: true,
            forced: true,
            tenant_policy: true,
            owner_policy_ok: true,
            ..Relation::default()
        }
    }

    #[test]
    fn a_protected_table_passes() {
        assert_eq!(problem(&protected("hotels")), None);
    }

    #[test]
    fn each_missing_protection_is_named_with_the_helper_as_fix() {
        let cases: Vec<(Relation, &str)> = vec![
            (
                Relation {
                    has_tenant_id: false,
                    ..protected("a")
                },
                "no `tenant_id` column",
            ),
            (
                Relation {
                    forced: false,
                    ..protected("a")
                },
                "not enabled and forced",
            ),
            (
                Relation {
                    tenant_policy: false,
                    ..protected("a")
                },
                "no `diesel_tenancy_tenant` policy",
            ),
            (
                Relation {
                    other_permissive: vec!["everyone".into()],
                    ..protected("a")
                },
                "(everyone) widen",
            ),
            (
                Relation {
                    owner_policy_ok: false,
                    ..protected("a")
                },
                "other roles than the table's owner",
            ),
        ];
        for (relation, expected) in cases {
            let found = problem(&relation).expect("a problem");
            assert!(found.problem.contains(expected), "{found}");
            assert_eq!(
                found.fix,
                "call `SELECT public.diesel_tenancy_row_table('a');` in the migration that \
                 creates it"
            );
        }
    }

    #[test]
    fn table_names_are_quoted_only_when_needed() {
        assert_eq!(regclass_text("hotels"), "hotels");
        assert_eq!(regclass_text("Hotels"), "\"Hotels\"");
        assert_eq!(regclass_text("o'brien"), "\"o''brien\"");
    }

    #[test]
    fn views_must_run_as_the_caller_and_materialized_views_are_refused() {
        let view = Relation {
            kind: "v".into(),
            ..Relation::default()
        };
        assert!(problem(&view).unwrap().fix.contains("security_invoker"));
        let invoker = Relation {
            security_invoker: true,
            ..view
        };
        assert_eq!(problem(&invoker), None);
        let matview = Relation {
            kind: "m".into(),
            ..protected("m")
        };
        assert!(problem(&matview).is_some());
    }
}

//! Small catalog questions the crate asks PostgreSQL, with their text bound, never spliced.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use crate::error::Result;

#[derive(QueryableByName)]
struct Answer {
    #[diesel(sql_type = Bool)]
    answer: bool,
}

/// Runs `sql`, a query of one boolean column named `answer` with one text parameter `$1`.
fn ask(conn: &mut PgConnection, sql: &str, param: &str) -> Result<bool> {
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(param)
        .get_result::<Answer>(conn)?
        .answer)
}

/// Whether schema `name` exists.
pub(crate) fn schema_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
    ask(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1) AS answer",
        name,
    )
}

/// Whether database `name` exists.
pub(crate) fn database_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
    ask(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1) AS answer",
        name,
    )
}

/// Whether the relation `qualified` (e.g. `public.tenants`) exists.
pub(crate) fn table_exists(conn: &mut PgConnection, qualified: &str) -> Result<bool> {
    ask(
        conn,
        "SELECT to_regclass($1) IS NOT NULL AS answer",
        qualified,
    )
}

//! The advisory lock of a schema: the router's creation, deletion and migration of a
//! schema take it exclusively (for the transaction), and a `TransactionLocal` checkout
//! of a pinned route takes it shared, so the two never overlap.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};

use crate::error::Result;

/// First key of every advisory lock this crate takes (ASCII `tent`).
const LOCK_CLASS: i32 = 0x7465_6e74;

/// Takes the transaction-scoped exclusive advisory lock named `key` (a schema name, or
/// another name that cannot be one).
pub(crate) fn lock(conn: &mut PgConnection, key: &str) -> Result<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Text, _>(key)
        .execute(conn)?;
    Ok(())
}

/// The statement that takes `schema`'s lock shared until the transaction ends, for the
/// checkout message (`schema` is a validated schema name: safe in a literal).
pub(super) fn lock_shared_sql(schema: &str) -> String {
    format!(
        "SELECT pg_catalog.pg_advisory_xact_lock_shared({LOCK_CLASS}, pg_catalog.hashtext('{schema}')); "
    )
}

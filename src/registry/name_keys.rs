//! Stored tenant-name keys against the crate's rule: what `migrate --check` reports and
//! `migrate` re-keys, never merging two tenants.
//!
//! The key stored in `public.tenants.name_key` was computed by whichever release of the
//! crate registered the tenant. When the rule changes (this release pins it to Unicode
//! 15.0 tables; the previous one followed Rust's own tables), some stored keys differ
//! from what the rule computes now, and two names may become equal. A difference is fixed
//! by `migrate`; two names that become equal make `migrate` fail, naming them, until all
//! but one are renamed.

use std::collections::BTreeMap;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::tenants;
use super::tenant_name::{tenant_name_key, validate_tenant_name};
use crate::error::{shorten, Error, Result, SchemaRef};

/// How the registry's stored name keys compare with the rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NameKeys {
    /// Tenants whose stored key is not the one the rule computes; `migrate` re-keys them.
    pub stale: Vec<String>,
    /// Tenants whose name the rule refuses today (e.g. a character assigned after Unicode
    /// 15.0, an invisible one): still served by their key, but worth renaming.
    pub refused: Vec<String>,
    /// Groups of tenants whose names the rule makes equal: `migrate` refuses to run until
    /// all but one of each group are renamed.
    pub collisions: Vec<Vec<String>>,
}

impl NameKeys {
    /// Whether `migrate` would change or refuse something.
    pub fn needs_work(&self) -> bool {
        !self.stale.is_empty() || !self.collisions.is_empty()
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    name_key: Option<String>,
}

/// Every tenant's id, name and stored key. Sent unprepared: it runs in the migration
/// transaction right after the key column's type (collation) may have changed, where a
/// cached statement would fail with "cached plan must not change result type".
fn rows(conn: &mut PgConnection) -> Result<Vec<(i64, String, Option<String>)>> {
    let rows: Vec<Row> =
        diesel::sql_query("SELECT id, name, name_key FROM public.tenants ORDER BY id")
            .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.name, r.name_key))
        .collect())
}

/// Compares every stored key with the rule.
pub(crate) fn check(conn: &mut PgConnection) -> Result<NameKeys> {
    let rows = rows(conn)?;
    let mut report = NameKeys::default();
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, name, stored) in &rows {
        let key = tenant_name_key(name).into_owned();
        if stored.as_deref() != Some(key.as_str()) {
            report.stale.push(name.clone());
        }
        if validate_tenant_name(name).is_err() {
            report.refused.push(name.clone());
        }
        by_key.entry(key).or_default().push(name.clone());
    }
    report.collisions = by_key
        .into_values()
        .filter(|names| names.len() > 1)
        .collect();
    Ok(report)
}

/// [`check`], or nothing to report on a registry that has no `name_key` column yet
/// (its shared migrations are pending).
pub(crate) fn check_if_present(conn: &mut PgConnection) -> Result<NameKeys> {
    #[derive(QueryableByName)]
    struct Present {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        present: bool,
    }
    let column: Present = diesel::sql_query(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute \
         WHERE attrelid = pg_catalog.to_regclass('public.tenants') \
         AND attname = 'name_key' AND NOT attisdropped) AS present",
    )
    .get_result(conn)?;
    if column.present {
        check(conn)
    } else {
        Ok(NameKeys::default())
    }
}

/// Re-keys the stale rows, in the caller's transaction; fails, changing nothing, when the
/// rule makes two names equal.
pub(crate) fn rekey(conn: &mut PgConnection) -> Result<usize> {
    let report = check(conn)?;
    if let Some(names) = report.collisions.first() {
        let listed: Vec<String> = names.iter().map(|n| format!("`{}`", shorten(n))).collect();
        return Err(Error::Migration {
            place: SchemaRef::Public,
            source: format!(
                "tenants {} are the same name under the crate's case-insensitive rule \
                 (diesel_tenancy::tenant_name_key, Unicode {}); rename all but one (e.g. \
                 `tenant rename`) and migrate again",
                listed.join(", "),
                super::tenant_name::UNICODE_VERSION
            )
            .into(),
        });
    }
    let stale: Vec<(i64, String)> = rows(conn)?
        .into_iter()
        .filter(|(_, name, stored)| stored.as_deref() != Some(&*tenant_name_key(name)))
        .map(|(id, name, _)| (id, name))
        .collect();
    // Two steps, so that a key moving from one row to another never meets itself in the
    // unique index: first a placeholder no name can have (U+FFFF is refused), then the key.
    for (id, _) in &stale {
        diesel::update(tenants::table.find(id))
            .set(tenants::name_key.eq(format!("\u{FFFF}rekey\u{FFFF}{id}")))
            .execute(conn)?;
    }
    for (id, name) in &stale {
        diesel::update(tenants::table.find(id))
            .set(tenants::name_key.eq(&*tenant_name_key(name)))
            .execute(conn)?;
    }
    if !stale.is_empty() {
        log::info!(
            "diesel-tenancy: re-keyed {} tenant name(s) to the current name rule",
            stale.len()
        );
    }
    Ok(stale.len())
}

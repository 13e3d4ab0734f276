//! Template databases: the shared set and spare tenant schemas built once per test
//! executable and migration set, then copied (`CREATE DATABASE … TEMPLATE`) into each
//! test database instead of migrating it.
//!
//! A template is named `dt_tpl_<path>_<build>_<sets>`: hashes of the test executable's
//! path, of its size and modification time (the embedded migrations are compiled into
//! it, so rebuilding after a migration changed gives a new name), and of the shared and
//! tenant versions, the public-tenant option and the number of spares. It is built under
//! a temporary name and renamed when complete, under an advisory lock, so parallel tests
//! and processes build it once and never copy a half-built one. Templates of older
//! builds of the same executable are dropped when a new one is built.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};

use crate::database_url::with_database;
use crate::error::{Error, Result};
use crate::migrate::SyncRouter;
use crate::pool::TenantPoolBuilder;
use crate::schema_name::quote_ident;

/// Every template database's name starts with this.
pub const TEMPLATE_PREFIX: &str = "dt_tpl_";

/// First key of the advisory lock held while a template is built (ASCII `tmpl`).
const LOCK_CLASS: i32 = 0x746d_706c;

/// Templates this process has seen complete.
static READY: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn hash32(value: impl Hash) -> u32 {
    // SipHash with fixed keys: the same value gives the same name in every process of
    // one build, which is all a template name must survive.
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish() as u32
}

/// The test executable's path, and what changes when it is rebuilt.
fn executable() -> Result<(String, (u64, u128))> {
    let unknown = |e: std::io::Error| {
        Error::Config(format!(
            "cannot identify the test executable, which keys template databases: {e}"
        ))
    };
    let exe = std::env::current_exe().map_err(unknown)?;
    let meta = std::fs::metadata(&exe).map_err(unknown)?;
    let modified = meta
        .modified()
        .map_err(unknown)?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok((exe.display().to_string(), (meta.len(), modified)))
}

/// `(prefix of this executable's templates, prefix of this build's, the template's name)`.
pub(super) fn name_for(router: &SyncRouter, spares: usize) -> Result<(String, String, String)> {
    let (path, build) = executable()?;
    let shared = router.shared_versions()?;
    let sets = (
        shared,
        router.tenant_versions()?,
        router.is_public_tenant(),
        spares,
    );
    let of_path = format!("{TEMPLATE_PREFIX}{:08x}_", hash32(path));
    let of_build = format!("{of_path}{:08x}_", hash32(build));
    let name = format!("{of_build}{:08x}", hash32(sets));
    Ok((of_path, of_build, name))
}

/// Makes sure the template `name` exists on the server `server_url` names, building it
/// with `router`'s sets (through a pool made by `pool`) and `spares` spare schemas if
/// it does not.
pub(super) fn ensure(
    server_url: &str,
    names: &(String, String, String),
    router: &SyncRouter,
    spares: usize,
    pool: &TenantPoolBuilder,
) -> Result<()> {
    let (of_path, of_build, name) = names;
    if READY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(name)
    {
        return Ok(());
    }
    let mut admin = PgConnection::establish(&with_database(server_url, "postgres")?)?;
    // A session lock: released by the unlock below or when `admin` closes.
    diesel::sql_query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Text, _>(name)
        .execute(&mut admin)?;
    let built = if crate::sql::database_exists(&mut admin, name)? {
        Ok(())
    } else {
        drop_older_builds(&mut admin, of_path, of_build);
        build(&mut admin, server_url, name, router, spares, pool)
    };
    let _ = diesel::sql_query("SELECT pg_advisory_unlock($1, hashtext($2))")
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Text, _>(name)
        .execute(&mut admin);
    built?;
    READY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(name.clone());
    Ok(())
}

/// Builds the template under a temporary name and renames it once complete.
fn build(
    admin: &mut PgConnection,
    server_url: &str,
    name: &str,
    router: &SyncRouter,
    spares: usize,
    pool: &TenantPoolBuilder,
) -> Result<()> {
    let building = format!("{name}_b{}", std::process::id());
    let quoted = quote_ident(&building);
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {quoted}"))?;
    let migrated = pool
        .clone()
        .build(&with_database(server_url, &building)?)
        .and_then(|pool| {
            // Dropped at the end of this closure: its connections close before the rename.
            let router = router.with_pool(pool);
            router.migrate_shared()?;
            router.prepare_spares(spares).map(drop)
        });
    let renamed = migrated.and_then(|()| {
        // PostgreSQL waits (up to 5 s) for the closed connections' backends to exit.
        admin.batch_execute(&format!(
            "ALTER DATABASE {quoted} RENAME TO {}",
            quote_ident(name)
        ))?;
        Ok(())
    });
    if renamed.is_err() {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"));
    }
    renamed
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Drops the templates (and leftover half-built ones) of earlier builds of this
/// executable. One still in use by an older process stays (the drop fails).
fn drop_older_builds(admin: &mut PgConnection, of_path: &str, of_build: &str) {
    let older: Vec<Named> = diesel::sql_query(
        "SELECT datname::text AS datname FROM pg_database \
         WHERE starts_with(datname, $1) AND NOT starts_with(datname, $2)",
    )
    .bind::<Text, _>(of_path)
    .bind::<Text, _>(of_build)
    .load(admin)
    .unwrap_or_default();
    for db in older {
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {}",
            quote_ident(&db.datname)
        ));
    }
}

/// Drops every template database ([`TEMPLATE_PREFIX`]`…`) on the server `server_url`
/// names, e.g. at the end of a CI job; returns how many. Test databases being copied
/// from one at that moment fail to be created.
pub fn drop_templates(server_url: &str) -> Result<usize> {
    let mut admin = PgConnection::establish(&with_database(server_url, "postgres")?)?;
    let all: Vec<Named> = diesel::sql_query(
        "SELECT datname::text AS datname FROM pg_database WHERE starts_with(datname, $1)",
    )
    .bind::<Text, _>(TEMPLATE_PREFIX)
    .load(&mut admin)?;
    for db in &all {
        admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&db.datname)
        ))?;
    }
    READY.lock().unwrap_or_else(PoisonError::into_inner).clear();
    Ok(all.len())
}

//! BENCHMARK (issue 17, row mode) — not an example to build on.
//!
//! What row mode changes at scale, on this machine, against schema mode in the same run:
//!
//! 1. creating `ROWS` row tenants with `SyncRouter::create_row_tenants` (one batch);
//! 2. one hotel each, written as the owner in `Scope::AllRows`;
//! 3. one new tenant migration (a column with a default and an index) applied to every
//!    row tenant: `migrate_all`, which migrates the row schema once;
//! 4. the same for `SCHEMAS` schema tenants: creating them one by one
//!    (`create_tenant`), then the same migration (`migrate_all`, `JOBS` at a time).
//!
//! It makes its own plain login role (row security never binds a superuser) and
//! database, and drops both at the end. `bench/rows.sh` runs it.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1/postgres?sslmode=disable ROWS=100000 \
//!     SCHEMAS=1000 cargo run --release --features testing --example bench_rows
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::FileBasedMigrations;
use diesel_tenancy::{MigrateOptions, NewTenant, SyncRouter, TenantMode, TenantPool};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The hotel tenant set plus one more migration, in a directory of its own.
fn migrations_with_extra(dir: &Path) -> std::io::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations_tenant");
    for entry in std::fs::read_dir(&root)? {
        let entry = entry?;
        let to = dir.join(entry.file_name());
        std::fs::create_dir_all(&to)?;
        for file in std::fs::read_dir(entry.path())? {
            let file = file?;
            std::fs::copy(file.path(), to.join(file.file_name()))?;
        }
    }
    let extra = dir.join("2099-01-01-000001_hotel_stars");
    std::fs::create_dir_all(&extra)?;
    std::fs::write(
        extra.join("up.sql"),
        "ALTER TABLE hotels ADD COLUMN stars INT NOT NULL DEFAULT 0;\n\
         CREATE INDEX hotels_stars_idx ON hotels (stars);\n",
    )?;
    std::fs::write(
        extra.join("down.sql"),
        "DROP INDEX hotels_stars_idx; ALTER TABLE hotels DROP COLUMN stars;\n",
    )?;
    Ok(dir.to_path_buf())
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1/postgres?sslmode=disable".into());
    let rows = env_or("ROWS", 100_000);
    let schemas = env_or("SCHEMAS", 1_000);
    let jobs = env_or("JOBS", 2);
    let db = format!("dtbench_rows_{}", std::process::id());
    let role = format!("{db}_app");
    let mut admin = PgConnection::establish(&admin_url)?;
    admin.batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN CREATEROLE"))?;
    admin.batch_execute(&format!("CREATE DATABASE \"{db}\" OWNER \"{role}\""))?;
    let url = diesel_tenancy::testing::with_database(&admin_url, &db)?.replacen(
        "://postgres@",
        &format!("://{role}@"),
        1,
    );
    let result = run(&url, rows, schemas, jobs);
    diesel_tenancy::database::drop_database(&diesel_tenancy::testing::with_database(
        &admin_url, &db,
    )?)?;
    admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))?;
    result
}

fn run(
    url: &str,
    rows: usize,
    schemas: usize,
    jobs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("dtbench_rows_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let extra = migrations_with_extra(&dir)?;
    let pool = TenantPool::builder()
        .max_size(jobs as u32 + 1)
        .row_tenants(true)
        .build(url)?;
    let tenant_set = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations_tenant");
    let router = SyncRouter::new(pool.clone(), FileBasedMigrations::from_path(&tenant_set)?);
    router.migrate_shared()?;

    // Row tenants.
    let new: Vec<NewTenant> = (0..rows)
        .map(|i| NewTenant::named(format!("r{i:06}")).mode(TenantMode::Rows))
        .collect();
    let started = Instant::now();
    router.create_row_tenants(&new)?;
    let create_rows = started.elapsed();
    let started = Instant::now();
    pool.with_scope(diesel_tenancy::Scope::AllRows, |conn| {
        conn.batch_execute(
            "INSERT INTO hotels (tenant_id, name, location, description) \
             SELECT id, name, 'somewhere', 'nice' FROM public.tenants WHERE mode = 'rows'",
        )
        .map_err(diesel_tenancy::Error::Query)
    })?;
    let fill_rows = started.elapsed();
    // What every instance does on each registry change: load the whole registry.
    let started = Instant::now();
    let cache = diesel_tenancy::RegistryCache::start(url)?;
    let first_load = started.elapsed();
    let started = Instant::now();
    pool.with_public(|conn| cache.reload_from(conn))?;
    let reload = started.elapsed();
    let loaded = cache.snapshot();
    drop(cache);
    let with_extra = SyncRouter::new(pool.clone(), FileBasedMigrations::from_path(&extra)?);
    let options = MigrateOptions {
        jobs,
        ..MigrateOptions::default()
    };
    let started = Instant::now();
    let report = with_extra.migrate_all(&options)?;
    let migrate_rows = started.elapsed();
    println!(
        "row mode, {rows} tenants: create {} ({:.1} µs per tenant), one hotel each {}, \
         one migration for all {} ({} unit(s) migrated); the registry cache: first load {} \
         (listener included), a reload through the pool {} ({} tenants)",
        secs(create_rows),
        create_rows.as_secs_f64() * 1e6 / rows as f64,
        secs(fill_rows),
        secs(migrate_rows),
        report.tenants.len(),
        secs(first_load),
        secs(reload),
        loaded.tenants().len()
    );

    // Schema tenants, the same work.
    let started = Instant::now();
    for i in 0..schemas {
        router.create_tenant(&NewTenant::named(format!("s{i:05}")))?;
    }
    let create_schemas = started.elapsed();
    let started = Instant::now();
    // The row schema is up to date by now: only the schema tenants have work.
    let report = with_extra.migrate_all(&options)?;
    let migrate_schemas = started.elapsed();
    println!(
        "schema mode, {schemas} tenants: create {} ({:.1} ms per tenant), one migration for \
         all {} ({} schemas migrated, {jobs} at a time)",
        secs(create_schemas),
        create_schemas.as_secs_f64() * 1e3 / schemas as f64,
        secs(migrate_schemas),
        report.tenants.len()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

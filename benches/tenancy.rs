//! Library benchmarks P2–P8 (see BENCHMARKS.md). Run all, or some, with:
//!
//! ```sh
//! cargo bench --bench tenancy            # p2 p2r p3 p4 p5 p6 p8, 10,000 tenants
//! cargo bench --bench tenancy -- p4 p8   # a subset
//! BENCH_TENANTS=2000 cargo bench --bench tenancy
//! ```
//!
//! `p2` and `p3` are the pool-level forms of the HTTP targets (no Rocket, no HTTP):
//! 16 threads, each checking out a connection and loading a tenant's hotels, for
//! `BENCH_SECONDS` (5) per run, `BENCH_ROUNDS` (3) rounds alternating the sides.
//! `p2r` is the cost of tenant roles there: one tenant, `TenantPool` with roles against
//! without. `p4` measures creation without tenant roles, then with them.
//!
//! Each run works in its own database (`dt_bench_<pid>`), dropped at the end. It prints
//! one line per measurement; nothing here asserts a time.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::database::{create_database_if_missing, drop_database};
use diesel_tenancy::testing::with_database;
use diesel_tenancy::{
    Error, MigrateOptions, NewTenant, SchemaName, SyncRouter, TenantPool, TenantRoles,
};

const TENANT: EmbeddedMigrations = embed_migrations!("migrations_tenant");
const TENANT_V2: EmbeddedMigrations = embed_migrations!("tests/fixtures/tenant_v2");

diesel::table! {
    hotels (id) {
        id -> BigInt,
        name -> Varchar,
    }
}

struct BenchDb {
    url: String,
}

impl BenchDb {
    fn new(tag: &str) -> BenchDb {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into());
        let url = with_database(&base, &format!("dt_bench_{tag}_{}", std::process::id()))
            .expect("DATABASE_URL names a database");
        let _ = drop_database(&url);
        create_database_if_missing(&url).expect("create bench database");
        BenchDb { url }
    }

    fn router(&self, size: u32) -> SyncRouter {
        self.router_with(size, None)
    }

    fn router_with(&self, size: u32, roles: Option<TenantRoles>) -> SyncRouter {
        let builder = TenantPool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(60));
        let pool = match roles {
            Some(roles) => builder.tenant_roles(roles),
            None => builder,
        }
        .build(&self.url)
        .expect("pool");
        let router = SyncRouter::new(pool, TENANT);
        router.migrate_shared().expect("shared set");
        router
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        let _ = drop_database(&self.url);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Creates `n` tenants `t00000`… on `threads` threads; returns the wall time.
fn create_many(router: &SyncRouter, n: usize, threads: usize) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in (t..n).step_by(threads) {
                    router
                        .create_tenant(&NewTenant::named(format!("t{i:05}")))
                        .expect("create tenant");
                }
            });
        }
    });
    started.elapsed()
}

/// Median time to create one tenant, over `n` creations named `{prefix}{i}`.
fn create_median(router: &SyncRouter, prefix: &str, n: usize) -> Duration {
    median(
        (0..n)
            .map(|i| {
                let t0 = Instant::now();
                router
                    .create_tenant(&NewTenant::named(format!("{prefix}{i}")))
                    .expect("create");
                t0.elapsed()
            })
            .collect(),
    )
}

/// P4 without tenant roles, or with them (`roles`: each creation also makes and
/// grants the tenant's role).
fn p4(roles: bool) {
    let (db, label) = if roles {
        (BenchDb::new("p4r"), "P4 (tenant roles)")
    } else {
        (BenchDb::new("p4"), "P4")
    };
    let router = db.router_with(2, roles.then(TenantRoles::new));
    let cold = create_median(&router, "warm", 50);
    println!(
        "{label} create one tenant, cold (schema + tenant set), median of 50: {}",
        ms(cold)
    );
    let total = create_many(&router, 1000, 1);
    println!(
        "{label} 1,000 tenants in a row, cold (one thread): {:.2} s",
        total.as_secs_f64()
    );

    let t0 = Instant::now();
    router.prepare_spares(1050).expect("spares");
    println!(
        "{label} prepare 1,050 spare schemas ahead: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let spare = create_median(&router, "spare", 50);
    println!(
        "{label} create one tenant from a spare schema, median of 50: {}",
        ms(spare)
    );
    let t0 = Instant::now();
    for i in 0..1000 {
        router
            .create_tenant(&NewTenant::named(format!("s{i:05}")))
            .expect("create");
    }
    println!(
        "{label} 1,000 tenants in a row from spares (one thread): {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}

/// P2 with tenant roles at the pool level: one tenant, `TenantPool` with roles (each
/// checkout also resets, sets and proves the role) against the same pool without.
fn p2_roles() {
    let secs = env_or("BENCH_SECONDS", 5);
    let rounds = env_or("BENCH_ROUNDS", 3);
    let db = BenchDb::new("p2r");
    let router = db.router_with(10, Some(TenantRoles::new()));
    let one = router
        .create_tenant(&NewTenant::named("p0001"))
        .expect("create tenant")
        .schema_name;
    router
        .pool()
        .with_tenant(&one, |c| {
            c.batch_execute(
                "INSERT INTO hotels (name, location, description) VALUES ('p0001', 'x', 'y')",
            )
            .map_err(Error::from)
        })
        .expect("seed hotel");
    let pool = |roles: bool| {
        let builder = TenantPool::builder().max_size(10);
        if roles {
            builder.tenant_roles(TenantRoles::new())
        } else {
            builder
        }
        .build(&db.url)
        .expect("pool")
    };
    let (with_roles, without) = (pool(true), pool(false));
    let run = |pool: &TenantPool| {
        rate(secs, |_, _| {
            let rows = pool
                .with_tenant(&one, |c| load_hotels(c).map_err(Error::from))
                .expect("load");
            assert_eq!(rows.len(), 1);
        })
    };
    let _ = (run(&with_roles), run(&without));
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (r, n) = if round % 2 == 0 {
            let r = run(&with_roles);
            (r, run(&without))
        } else {
            let n = run(&without);
            (run(&with_roles), n)
        };
        println!(
            "P2 roles round {}: TenantPool with tenant roles {r:.0} ops/s, without {n:.0} ops/s",
            round + 1
        );
        ratios.push(r / n);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "P2 pool level, one tenant, with tenant roles ÷ without (16 threads, pool of 10), \
         median of {rounds}: {:.3}",
        ratios[ratios.len() / 2]
    );
}

/// Threads that check out and query at once in `p2`/`p3` (wrk's 16 connections).
const LOAD_THREADS: usize = 16;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Operations per second of `op(thread, i)` run by [`LOAD_THREADS`] threads for `secs`.
fn rate(secs: u64, op: impl Fn(usize, usize) + Sync) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let done: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..LOAD_THREADS)
            .map(|t| {
                let op = &op;
                s.spawn(move || {
                    let mut i = 0;
                    while Instant::now() < deadline {
                        op(t, i);
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load thread"))
            .sum()
    });
    done as f64 / started.elapsed().as_secs_f64()
}

/// Sets a fixed `search_path` once per physical connection: the plain-pool baseline.
#[derive(Debug)]
struct FixedPath;

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for FixedPath {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute("SET search_path TO \"p0001\"")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

fn load_hotels(conn: &mut PgConnection) -> QueryResult<Vec<(i64, String)>> {
    hotels::table
        .order(hotels::id)
        .select((hotels::id, hotels::name))
        .load(conn)
}

/// P2 and P3 at the pool level: a plain r2d2 pool with a fixed path, `TenantPool` with
/// one tenant, `TenantPool` with a uniformly random tenant out of `tenants`.
fn p2_p3(want_p2: bool, want_p3: bool) {
    let tenants = env_or("BENCH_P3_TENANTS", 1000) as usize;
    let secs = env_or("BENCH_SECONDS", 5);
    let rounds = env_or("BENCH_ROUNDS", 3);
    let db = BenchDb::new("p23");
    let router = db.router(10);
    router.prepare_spares(tenants).expect("spares");
    let schemas: Vec<SchemaName> = (1..=tenants)
        .map(|i| {
            let t = router
                .create_tenant(&NewTenant::named(format!("p{i:04}")))
                .expect("create tenant");
            router
                .pool()
                .with_tenant(&t.schema_name, |c| {
                    c.batch_execute(&format!(
                        "INSERT INTO hotels (name, location, description) \
                         VALUES ('{0}', '{0}', 'bench hotel {0}')",
                        t.schema_name
                    ))
                    .map_err(Error::from)
                })
                .expect("seed hotel");
            t.schema_name
        })
        .collect();
    let one = &schemas[0];
    let tenant_pool = TenantPool::builder()
        .max_size(10)
        .build(&db.url)
        .expect("tenant pool");
    let plain: Pool<ConnectionManager<PgConnection>> = Pool::builder()
        .max_size(10)
        .test_on_check_out(false)
        .connection_customizer(Box::new(FixedPath))
        .build(ConnectionManager::new(&db.url))
        .expect("plain pool");
    let baseline = || {
        rate(secs, |_, _| {
            let mut conn = plain.get().expect("checkout");
            assert_eq!(load_hotels(&mut conn).expect("load").len(), 1);
        })
    };
    let single = || {
        rate(secs, |_, _| {
            let rows = tenant_pool
                .with_tenant(one, |c| load_hotels(c).map_err(Error::from))
                .expect("load");
            assert_eq!(rows.len(), 1);
        })
    };
    let random = || {
        rate(secs, |t, i| {
            // A cheap, well-spread pseudo-random tenant per operation.
            let k = (t as u64 * 0x9E37_79B9 + i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
            let schema = &schemas[(k >> 33) as usize % schemas.len()];
            let rows = tenant_pool
                .with_tenant(schema, |c| load_hotels(c).map_err(Error::from))
                .expect("load");
            assert_eq!(rows.first().map(|r| r.1.as_str()), Some(schema.as_str()));
        })
    };
    // Warm every side once (statements prepared, caches filled), then alternate.
    let _ = (baseline(), single(), if want_p3 { random() } else { 0.0 });
    let (mut p2, mut p3) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (b, o) = if round % 2 == 0 {
            let b = baseline();
            (b, single())
        } else {
            let o = single();
            (baseline(), o)
        };
        let r = if want_p3 { random() } else { 0.0 };
        println!(
            "P2/P3 round {}: plain r2d2 {b:.0} ops/s, TenantPool one tenant {o:.0} ops/s, \
             random of {tenants} {r:.0} ops/s",
            round + 1
        );
        p2.push(o / b);
        p3.push(r / o);
    }
    let median_of = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    if want_p2 {
        println!(
            "P2 pool level, one tenant ÷ plain r2d2 pool (16 threads, pool of 10), median of {rounds}: {:.3}",
            median_of(p2)
        );
    }
    if want_p3 {
        println!(
            "P3 pool level, random of {tenants} ÷ one tenant (16 threads, pool of 10), median of {rounds}: {:.3}",
            median_of(p3)
        );
    }
}

fn p5_p6(router: &SyncRouter, tenants: usize) {
    let v2 = SyncRouter::new(router.pool().clone(), TENANT_V2);
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let status = v2.status().expect("status");
        runs.push(t0.elapsed());
        assert_eq!(status.tenants.len(), tenants);
    }
    println!(
        "P5 status()/--check across {tenants} tenants (v2 pending everywhere), median of 5: {}",
        ms(median(runs))
    );
    let jobs: usize = std::env::var("BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    {
        let t0 = Instant::now();
        let report = v2
            .migrate_all(&MigrateOptions {
                jobs,
                ..MigrateOptions::default()
            })
            .expect("migrate_all");
        println!(
            "P6 one new migration applied to {tenants} tenants, jobs {jobs}: {:.1} s ({} applied, {} failed)",
            t0.elapsed().as_secs_f64(),
            report.applied_count(),
            report.failures().count()
        );
    }
    let t0 = Instant::now();
    let status = v2.status().expect("status");
    println!(
        "P5 status() across {tenants} tenants, nothing pending: {} (pending: {})",
        ms(t0.elapsed()),
        status.has_pending()
    );
    let t0 = Instant::now();
    let report = v2
        .migrate_all(&MigrateOptions::default())
        .expect("no-op migrate");
    println!(
        "P5 no-op migrate_all across {tenants} tenants: {} ({} tenants touched)",
        ms(t0.elapsed()),
        report.tenants.len()
    );
}

/// Private memory (kB) of the pool's own backends, from /proc: holds every connection of
/// the pool at once and asks each for its backend pid.
fn backend_memory_kb(pool: &TenantPool) -> (usize, u64) {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let mut held = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..pool.max_size() {
        let mut conn = pool.public().expect("checkout");
        let pid: Pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result(&mut *conn)
            .expect("pid");
        pids.push(pid.pid);
        held.push(conn);
    }
    let private = pids
        .iter()
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("Private_"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum();
    (pids.len(), private)
}

fn p8(db: &BenchDb, tenants: usize) {
    let schemas: Vec<SchemaName> = (0..tenants)
        .map(|i| SchemaName::new(&format!("t{i:05}")).expect("schema"))
        .collect();
    let fresh = TenantPool::builder()
        .max_size(4)
        .min_idle(Some(4))
        .build(&db.url)
        .expect("pool");
    let (n, kb) = backend_memory_kb(&fresh);
    println!(
        "P8 reference: {n} fresh backends, {:.1} MB private memory",
        kb as f64 / 1024.0
    );
    drop(fresh);
    for (label, limit) in [
        ("no recycling", usize::MAX),
        ("recycle after 1,000 schemas", 1000),
        ("recycle after 2,000 schemas (default)", 2000),
    ] {
        let pool = TenantPool::builder()
            .max_size(4)
            .min_idle(Some(4))
            .max_schemas_per_connection(limit)
            .build(&db.url)
            .expect("pool");
        std::thread::scope(|s| {
            for t in 0..4 {
                let (pool, schemas) = (&pool, &schemas);
                s.spawn(move || {
                    for schema in schemas.iter().skip(t).step_by(4) {
                        pool.with_tenant(schema, |c| {
                            Ok::<_, Error>(hotels::table.select(hotels::id).load::<i64>(c)?)
                        })
                        .expect("touch tenant");
                    }
                });
            }
        });
        let (n, kb) = backend_memory_kb(&pool);
        println!(
            "P8 {tenants} tenants touched through a pool of 4, {label}: {n} backends, {:.1} MB private memory",
            kb as f64 / 1024.0
        );
        drop(pool);
        let mut admin = PgConnection::establish(&db.url).expect("admin");
        let _ = admin.batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |p: &str| args.is_empty() || args.iter().any(|a| a == p);
    let tenants: usize = std::env::var("BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    if want("p2") || want("p3") {
        p2_p3(want("p2"), want("p3"));
    }
    if want("p2r") {
        p2_roles();
    }
    if want("p4") {
        p4(false);
        p4(true);
    }
    if want("p5") || want("p6") || want("p8") {
        let db = BenchDb::new("many");
        let router = db.router(4);
        let made = create_many(&router, tenants, 4);
        println!(
            "setup: {tenants} tenants created on 4 threads in {:.1} s",
            made.as_secs_f64()
        );
        if want("p8") {
            p8(&db, tenants);
        }
        if want("p5") || want("p6") {
            p5_p6(&router, tenants);
        }
    }
}

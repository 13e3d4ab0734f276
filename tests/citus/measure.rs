//! Issue 16's measurement (not a test: an ignored trial, run by `bench/citus.sh`): on the
//! Citus cluster and on the plain PostgreSQL of the other tests, in the same run, for
//! each number of tenants in `CITUS_BENCH_SIZES` (default `100 1000`), each in a fresh
//! database: creating the tenants one by one, "anything pending?" (`status()`, with
//! nothing pending and with one migration pending everywhere), and that migration
//! applied to all (`migrate_all`, `CITUS_BENCH_JOBS` at a time, default 4). Prints one
//! line per figure and the Citus ÷ plain ratios; asserts nothing about time.

use std::time::{Duration, Instant};

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::{MigrateOptions, NewTenant, SyncRouter, TenantPool};

use crate::citus_support::CitusDb;
use crate::common::{TestDb, TENANT};

const TENANT_V2: EmbeddedMigrations = embed_migrations!("tests/fixtures/tenant_v2");

/// What one server did for one number of tenants.
#[derive(Debug, Clone, Copy)]
struct Figures {
    create_per_tenant: Duration,
    status_nothing_pending: Duration,
    status_all_pending: Duration,
    migrate_all: Duration,
}

/// Picks one figure.
type Pick = fn(&Figures) -> Duration;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn measure(url: &str, tenants: usize, jobs: usize) -> Figures {
    let pool = |size: u32| {
        TenantPool::builder()
            .max_size(size)
            .build(url)
            .expect("pool")
    };
    let v1 = SyncRouter::new(pool(jobs as u32 + 2), TENANT);
    v1.migrate_shared().expect("shared");
    let started = Instant::now();
    for i in 0..tenants {
        v1.create_tenant(&NewTenant::named(format!("t{i:05}")))
            .expect("create");
    }
    let create_per_tenant = started.elapsed() / tenants as u32;
    let timed = |router: &SyncRouter, pending: bool| {
        median(
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    let status = router.status().expect("status");
                    assert_eq!(status.has_pending(), pending);
                    t.elapsed()
                })
                .collect(),
        )
    };
    let status_nothing_pending = timed(&v1, false);
    let v2 = SyncRouter::new(pool(jobs as u32 + 2), TENANT_V2);
    let status_all_pending = timed(&v2, true);
    let t = Instant::now();
    let report = v2
        .migrate_all(&MigrateOptions {
            jobs,
            ..Default::default()
        })
        .expect("migrate all");
    let migrate_all = t.elapsed();
    assert_eq!(
        (report.applied_count(), report.failures().count()),
        (tenants, 0)
    );
    Figures {
        create_per_tenant,
        status_nothing_pending,
        status_all_pending,
        migrate_all,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn measure_citus_beside_plain_postgresql() {
    let sizes: Vec<usize> = std::env::var("CITUS_BENCH_SIZES")
        .unwrap_or_else(|_| "100 1000".into())
        .split_whitespace()
        .map(|s| s.parse().expect("a number of tenants"))
        .collect();
    let jobs: usize = std::env::var("CITUS_BENCH_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(4);
    for &tenants in &sizes {
        let plain = {
            let db = TestDb::new();
            measure(&db.url, tenants, jobs)
        };
        let citus = {
            let db = CitusDb::new();
            measure(&db.url, tenants, jobs)
        };
        let rows: [(&str, Pick); 4] = [
            ("create one tenant (mean)", |f| f.create_per_tenant),
            ("status(), nothing pending (median of 5)", |f| {
                f.status_nothing_pending
            }),
            (
                "status(), one migration pending everywhere (median of 5)",
                |f| f.status_all_pending,
            ),
            ("one new migration applied to all (migrate_all)", |f| {
                f.migrate_all
            }),
        ];
        for (what, get) in rows {
            let (p, c) = (get(&plain), get(&citus));
            println!(
                "MEASURE tenants={tenants} jobs={jobs} | {what} | plain {} | citus {} | citus/plain {:.1}",
                ms(p),
                ms(c),
                c.as_secs_f64() / p.as_secs_f64()
            );
        }
    }
}

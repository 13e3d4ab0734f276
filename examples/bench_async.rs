//! BENCHMARK (issue 20, the async face) — not an example to build on.
//!
//! Pool-level throughput of the async face on one tenant's two-row list, `TASKS`
//! concurrent tasks for `SECS` seconds each, in one run:
//!
//! 1. `floor`: a plain diesel-async connection per task, the query alone (no tenancy);
//! 2. `checkout+query`: `AsyncTenantPool::tenant`, then the query (two round trips);
//! 3. `checkout_with`: the query pipelined behind the checkout (one round trip);
//! 4. the same two on the sync `TenantPool` from `TASKS` threads, for comparison.
//!
//! Also the server CPU of the pool's backends per request (from `pg_stat_activity` pids
//! and `/proc/<pid>/stat`, the server on this machine). It makes its own database and
//! drops it at the end.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1/postgres?sslmode=disable TASKS=16 SECS=5 \
//!     cargo run --release --features async,testing --example bench_async
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_tenancy::diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_tenancy::testing::TestDatabase;
use diesel_tenancy::{NewTenant, SchemaName, Scope, SyncRouter, TenantPool};
use futures_util::FutureExt;

diesel::table! {
    hotels (id) {
        id -> BigInt,
        name -> Varchar,
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const TENANT: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations_tenant");

/// CPU ticks (utime + stime) of the database's backends.
fn backend_ticks(url: &str) -> u64 {
    let Ok(mut conn) = PgConnection::establish(url) else {
        return 0;
    };
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let pids: Vec<Pid> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid()",
        ),
        &mut conn,
    )
    .unwrap_or_default();
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).ok())
        .map(|stat| {
            let fields: Vec<&str> = stat
                .rsplit_once(") ")
                .map(|(_, rest)| rest.split(' ').collect())
                .unwrap_or_default();
            fields
                .get(11)
                .and_then(|u| u.parse::<u64>().ok())
                .unwrap_or(0)
                + fields
                    .get(12)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
        })
        .sum()
}

fn report(name: &str, n: u64, secs: f64, ticks: u64) {
    let ticks_per_sec = 100.0;
    println!(
        "{name:<28} {:>9.0} req/s   PG backends {:>6.1} us/req",
        n as f64 / secs,
        ticks as f64 / ticks_per_sec * 1e6 / n.max(1) as f64
    );
}

async fn list(conn: &mut AsyncPgConnection) -> Vec<(i64, String)> {
    hotels::table
        .order(hotels::id)
        .select((hotels::id, hotels::name))
        .load(conn)
        .await
        .expect("list")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tasks = env_or("TASKS", 16);
    let secs = env_or("SECS", 5);
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1/postgres?sslmode=disable".into());
    let db = TestDatabase::create(&server).expect("a throwaway database");
    let url = db.url().to_owned();
    let schema = {
        let router = SyncRouter::new(
            TenantPool::builder().max_size(2).build(&url).expect("pool"),
            TENANT,
        );
        router.migrate_shared().expect("shared set");
        let t = router
            .create_tenant(&NewTenant::named("demo1"))
            .expect("tenant");
        let mut conn = router.pool().tenant(&t.schema_name).expect("checkout");
        diesel::RunQueryDsl::execute(
            diesel::sql_query(
                "INSERT INTO hotels (name, location, description) VALUES \
                 ('Grand', 'x', 'y'), ('Plaza', 'x', 'y')",
            ),
            &mut *conn,
        )
        .expect("seed");
        t.schema_name
    };
    let window = Duration::from_secs(secs);

    // 1. The floor: the query alone on plain connections.
    let run = |name: &'static str, kind: u8, pool: Option<diesel_tenancy::AsyncTenantPool>| {
        let url = url.clone();
        let schema: SchemaName = schema.clone();
        async move {
            let done = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let mut handles = Vec::new();
            let before = backend_ticks(&url);
            let start = Instant::now();
            for _ in 0..tasks {
                let (done, stop, url, schema, pool) = (
                    done.clone(),
                    stop.clone(),
                    url.clone(),
                    schema.clone(),
                    pool.clone(),
                );
                handles.push(tokio::spawn(async move {
                    let mut plain = if kind == 0 {
                        let mut c = AsyncPgConnection::establish(&url).await.expect("connect");
                        diesel::sql_query(format!("SET search_path TO {schema}"))
                            .execute(&mut c)
                            .await
                            .expect("path");
                        Some(c)
                    } else {
                        None
                    };
                    while !AtomicBool::load(&stop, Ordering::Relaxed) {
                        match (kind, &mut plain, &pool) {
                            (0, Some(c), _) => {
                                list(c).await;
                            }
                            (1, _, Some(pool)) => {
                                let mut conn = pool.tenant(&schema).await.expect("checkout");
                                list(&mut conn).await;
                            }
                            (_, _, Some(pool)) => {
                                let (_conn, rows) = pool
                                    .checkout_with(Scope::Tenant(schema.clone()), |mut c| {
                                        async move {
                                            hotels::table
                                                .order(hotels::id)
                                                .select((hotels::id, hotels::name))
                                                .load::<(i64, String)>(&mut c)
                                                .await
                                        }
                                        .boxed()
                                    })
                                    .await
                                    .expect("checkout_with");
                                rows.expect("list");
                            }
                            _ => unreachable!("a kind and its connection"),
                        }
                        AtomicU64::fetch_add(&done, 1, Ordering::Relaxed);
                    }
                }));
            }
            tokio::time::sleep(window).await;
            // While the connections are still open: a closed backend's CPU is gone.
            let ticks = backend_ticks(&url).saturating_sub(before);
            let n = AtomicU64::load(&done, Ordering::Relaxed);
            let elapsed = start.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            for h in handles {
                h.await.expect("task");
            }
            report(name, n, elapsed, ticks);
        }
    };
    run("floor (query alone)", 0, None).await;
    let pool = TenantPool::builder()
        .max_size(u32::try_from(tasks).unwrap_or(16))
        .build_async(&url)
        .await
        .expect("async pool");
    run("async checkout+query", 1, Some(pool.clone())).await;
    run("async checkout_with", 2, Some(pool.clone())).await;
    drop(pool);

    // 4. The sync pool from threads.
    let sync = TenantPool::builder()
        .max_size(u32::try_from(tasks).unwrap_or(16))
        .build(&url)
        .expect("sync pool");
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let before = backend_ticks(&url);
    let start = Instant::now();
    let threads: Vec<_> = (0..tasks)
        .map(|_| {
            let (sync, done, stop, schema) =
                (sync.clone(), done.clone(), stop.clone(), schema.clone());
            std::thread::spawn(move || {
                while !AtomicBool::load(&stop, Ordering::Relaxed) {
                    let mut conn = sync.tenant(&schema).expect("checkout");
                    let _: Vec<(i64, String)> = diesel::RunQueryDsl::load(
                        hotels::table
                            .order(hotels::id)
                            .select((hotels::id, hotels::name)),
                        &mut *conn,
                    )
                    .expect("list");
                    AtomicU64::fetch_add(&done, 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(window);
    let ticks = backend_ticks(&url).saturating_sub(before);
    let n = AtomicU64::load(&done, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("thread");
    }
    report("sync checkout+query", n, elapsed, ticks);
    drop(sync);
    drop(db);
}

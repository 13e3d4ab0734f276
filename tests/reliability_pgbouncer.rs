//! Behind PgBouncer in transaction pooling mode: `TransactionLocal` never leaks, `Session`
//! is detected and refused. Figures in `$CARGO_TARGET_TMPDIR/pgbouncer_report.txt`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::pgbouncer::PgBouncer;
use common::sentinel::{self, name_of};
use common::TestDb;
use diesel_tenancy::{Error, PoolMode, TenantPool};

const TENANTS: usize = 20;
const CLIENTS: usize = 8;
const PER_CLIENT: usize = 1_300;

#[test]
fn session_mode_behind_a_transaction_pooler_is_refused() {
    let db = TestDb::new();
    let bouncer = PgBouncer::start(&db.url, 2);
    let err = TenantPool::builder()
        .mode(PoolMode::Session)
        .statement_cache(false)
        .max_size(2)
        .build(&bouncer.url)
        .unwrap_err();
    assert!(matches!(err, Error::SessionModeBehindPooler), "{err}");
    // The same probe passes on a direct connection.
    TenantPool::builder().max_size(1).build(&db.url).unwrap();
}

#[test]
fn transaction_local_mode_never_leaks_behind_pgbouncer() {
    let db = TestDb::new();
    let scopes = sentinel::setup(db.pool(2), "bounce", TENANTS);
    let bouncer = PgBouncer::start(&db.url, 4);
    // PgBouncer 1.18 does not track named prepared statements in transaction mode:
    // Diesel's statement cache must be off (statements are then sent unnamed).
    let pool = TenantPool::builder()
        .mode(PoolMode::TransactionLocal)
        .statement_cache(false)
        .max_size(CLIENTS as u32)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(20))
        .build(&bouncer.url)
        .unwrap();
    let verified = AtomicU64::new(0);
    let wrong = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for client in 0..CLIENTS {
            let (pool, scopes) = (&pool, &scopes);
            let (verified, wrong, errors) = (&verified, &wrong, &errors);
            s.spawn(move || {
                for i in 0..PER_CLIENT {
                    let scope = &scopes[(i * 7 + client * 13) % scopes.len()];
                    let expected = name_of(scope);
                    match pool.with_scope(scope.clone(), |c| sentinel::check(c, &expected)) {
                        Ok(None) => verified.fetch_add(1, Ordering::Relaxed),
                        Ok(Some(w)) => {
                            eprintln!("LEAK: {w}");
                            wrong.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            eprintln!("error: {e}");
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
    });
    let report = format!(
        "pgbouncer transaction pooling, 4 server connections, {CLIENTS} clients, \
         {TENANTS} tenants + public, TransactionLocal, statement cache off\n\
         requests: {}\nverified: {}\nwrong-schema reads: {}\nerrors: {}\nelapsed: {:.1} s\n",
        CLIENTS * PER_CLIENT,
        verified.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    println!("{report}");
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pgbouncer_report.txt"),
        &report,
    );
    assert_eq!(wrong.load(Ordering::Relaxed), 0, "{report}");
    assert_eq!(errors.load(Ordering::Relaxed), 0, "{report}");
    assert_eq!(
        verified.load(Ordering::Relaxed),
        (CLIENTS * PER_CLIENT) as u64
    );
    drop(bouncer);
}

#[test]
fn transaction_local_mode_builds_behind_a_pgbouncer_with_one_server_connection() {
    let db = TestDb::new();
    let scopes = sentinel::setup(db.pool(2), "single", 2);
    let bouncer = PgBouncer::start(&db.url, 1);
    // The pooler probe must not ask this PgBouncer for two server connections at once.
    let pool = TenantPool::builder()
        .mode(PoolMode::TransactionLocal)
        .statement_cache(false)
        .max_size(2)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(10))
        .build(&bouncer.url)
        .unwrap();
    for scope in scopes.iter().cycle().take(6) {
        let expected = name_of(scope);
        let wrong = pool
            .with_scope(scope.clone(), |c| sentinel::check(c, &expected))
            .unwrap();
        assert_eq!(wrong, None);
    }
}

#[test]
fn tenant_roles_refuse_cross_tenant_sql_behind_pgbouncer() {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel_tenancy::{Scope, SyncRouter, TenantRoles};

    let db = TestDb::new();
    let scopes = sentinel::setup(db.pool(2), "role", 2);
    let direct = SyncRouter::new(
        TenantPool::builder()
            .max_size(1)
            .tenant_roles(TenantRoles::new())
            .build(&db.url)
            .unwrap(),
        common::TENANT,
    );
    assert_eq!(direct.sync_tenant_roles().unwrap().failures().count(), 0);
    // One server connection: every client transaction lands on the same backend, so a
    // role that outlived its transaction would show in the next one.
    let bouncer = PgBouncer::start(&db.url, 1);
    let pool = TenantPool::builder()
        .mode(PoolMode::TransactionLocal)
        .statement_cache(false)
        .max_size(3)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(10))
        .tenant_roles(TenantRoles::new())
        .build(&bouncer.url)
        .unwrap();
    let user = |c: &mut PgConnection| {
        diesel::dsl::sql::<diesel::sql_types::Text>("SELECT current_user::text").get_result(c)
    };
    for round in 0..3 {
        for scope in &scopes {
            let expected = name_of(scope);
            let other = if expected == "role00" {
                "role01"
            } else {
                "role00"
            };
            let (who, denied) = pool
                .with_scope(scope.clone(), |c| {
                    assert_eq!(sentinel::check(c, &expected)?, None);
                    let who: String = user(c)?;
                    let denied = c
                        .transaction(|c| {
                            c.batch_execute(&format!("SELECT * FROM {other}.sentinel"))
                        })
                        .err()
                        .map(|e| e.to_string());
                    if *scope != Scope::Public {
                        let written = c.transaction(|c| {
                            c.batch_execute(&format!(
                                "INSERT INTO {other}.sentinel VALUES ('{expected}')"
                            ))
                        });
                        let e = written.expect_err("a write into another tenant");
                        assert!(e.to_string().contains("permission denied"), "{e}");
                    }
                    Ok::<_, Error>((who, denied))
                })
                .unwrap_or_else(|e| panic!("round {round}, {expected}: {e}"));
            match scope.schema() {
                None => assert_eq!(who, "postgres"),
                Some(s) => {
                    assert_eq!(who, direct.tenant_role_name(s).unwrap());
                    let denied = denied.expect("another tenant's table was readable");
                    assert!(denied.contains("permission denied"), "{denied}");
                }
            }
        }
    }
    // Nothing was written where it does not belong.
    let mut conn = PgConnection::establish(&db.url).unwrap();
    for (table, foreign) in [("role00", "role01"), ("role01", "role00")] {
        let n: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "SELECT count(*) FROM {table}.sentinel WHERE name = '{foreign}'"
        ))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(n, 0, "{foreign} wrote into {table}");
    }
    drop(bouncer);
}

//! `SyncRouter::for_each_tenant`: work in every tenant's scope, each tenant one
//! transaction, on the real PostgreSQL.

mod common;
mod rocket_support;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_tenancy::{BatchOptions, Error, NewTenant, PoolMode, SyncRouter, TenantRun};
use rocket_support::{add_hotel, hotels};

/// A router over a fresh pool of `size` in `mode`, shared set applied.
fn router_in(db: &TestDb, mode: PoolMode, size: u32) -> SyncRouter {
    let pool = diesel_tenancy::TenantPool::builder()
        .max_size(size)
        .mode(mode)
        .build(&db.url)
        .unwrap();
    let router = SyncRouter::new(pool, common::TENANT);
    router.migrate_shared().unwrap();
    router
}

/// Tenants `names`, the i-th with i+1 hotels.
fn tenants(router: &SyncRouter, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let t = router.create_tenant(&NewTenant::named(*name)).unwrap();
        router
            .pool()
            .with_tenant(&t.schema_name, |c| {
                for h in 0..=i {
                    add_hotel(c, &format!("{name}-{h}"))?;
                }
                Ok::<_, Error>(())
            })
            .unwrap();
    }
}

fn count(conn: &mut PgConnection) -> QueryResult<i64> {
    hotels::table.count().get_result(conn)
}

fn counts(router: &SyncRouter) -> Vec<(String, i64)> {
    let report = router
        .for_each_tenant(&BatchOptions::default(), |c, _| Ok::<_, Error>(count(c)?))
        .unwrap();
    report
        .tenants
        .into_iter()
        .map(|r| (r.tenant, r.result.unwrap()))
        .collect()
}

fn current_schema(conn: &mut PgConnection) -> QueryResult<String> {
    diesel::dsl::sql::<Text>("SELECT current_schema()::text").get_result(conn)
}

#[test]
fn runs_in_every_tenants_scope_and_reports_by_name() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let db = TestDb::new();
        let router = router_in(&db, mode, 3);
        tenants(&router, &["Charlie", "alpha", "Bravo"]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let options = BatchOptions {
            jobs: 2,
            progress: Some(Arc::new({
                let seen = Arc::clone(&seen);
                move |run: &TenantRun<(String, i64)>| seen.lock().unwrap().push(run.tenant.clone())
            })),
            ..Default::default()
        };
        let report = router
            .for_each_tenant(&options, |c, tenant| {
                assert_eq!(current_schema(c)?, tenant.schema_name.as_str());
                Ok::<_, Error>((current_schema(c)?, count(c)?))
            })
            .unwrap();
        assert!(report.is_success(), "{mode:?}: {report:?}");
        let got: Vec<_> = report
            .tenants
            .iter()
            .map(|r| {
                (
                    r.tenant.as_str(),
                    r.schema.as_str(),
                    r.result.as_ref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("alpha", "alpha", &("alpha".to_owned(), 2)),
                ("Bravo", "bravo", &("bravo".to_owned(), 3)),
                ("Charlie", "charlie", &("charlie".to_owned(), 1)),
            ],
            "{mode:?}"
        );
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            ["Bravo", "Charlie", "alpha"],
            "{mode:?}: one call per tenant"
        );
    }
}

#[test]
fn only_and_skip_compare_names_like_the_registry() {
    let db = TestDb::new();
    let router = db.router(2);
    tenants(&router, &["Acme", "Globex", "Initech"]);
    let names = |options: &BatchOptions<TenantRun<()>>| -> Vec<String> {
        router
            .for_each_tenant(options, |_, _| Ok::<_, Error>(()))
            .unwrap()
            .tenants
            .into_iter()
            .map(|r| r.tenant)
            .collect()
    };
    let only = BatchOptions {
        only: vec![" ACME ".into(), "initech".into()],
        ..Default::default()
    };
    assert_eq!(names(&only), ["Acme", "Initech"]);
    let skip = BatchOptions {
        skip: vec!["GLOBEX".into()],
        ..Default::default()
    };
    assert_eq!(names(&skip), ["Acme", "Initech"]);

    let unknown = BatchOptions {
        only: vec!["nobody".into()],
        ..Default::default()
    };
    let err = router
        .for_each_tenant(&unknown, |_, _| Ok::<_, Error>(()))
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownTenant { ref name } if name == "nobody"),
        "{err}"
    );
}

#[test]
fn each_tenant_is_all_or_nothing_and_keep_going_decides_the_rest() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let db = TestDb::new();
        let router = router_in(&db, mode, 2);
        tenants(&router, &["a", "b", "c"]);
        // Adds a hotel everywhere, then fails in `b` after its insert.
        let work = |c: &mut PgConnection, t: &diesel_tenancy::Tenant| {
            add_hotel(c, "added")?;
            if t.name == "b" {
                return Err(Error::Config("b refuses".into()));
            }
            Ok(())
        };
        let stop = router
            .for_each_tenant(&BatchOptions::default(), work)
            .unwrap();
        assert_eq!(stop.tenants.len(), 2, "{mode:?}: stopped after b");
        assert_eq!(stop.not_run, 1);
        assert!(!stop.is_success());
        let failed: Vec<_> = stop.failures().map(|r| r.tenant.as_str()).collect();
        assert_eq!(failed, ["b"]);
        assert_eq!(
            counts(&router),
            [("a".into(), 2), ("b".into(), 2), ("c".into(), 3)],
            "{mode:?}: a committed, b rolled back whole, c never ran"
        );

        let on = BatchOptions {
            keep_going: true,
            ..Default::default()
        };
        let all = router.for_each_tenant(&on, work).unwrap();
        assert_eq!((all.tenants.len(), all.not_run), (3, 0));
        assert_eq!(
            counts(&router),
            [("a".into(), 3), ("b".into(), 2), ("c".into(), 4)],
            "{mode:?}"
        );
    }
}

#[test]
fn a_missing_schema_fails_that_tenant_only() {
    let db = TestDb::new();
    let router = db.router(2);
    tenants(&router, &["kept", "lost"]);
    router
        .pool()
        .with_public(|c| {
            c.batch_execute("DROP SCHEMA lost CASCADE")
                .map_err(Error::from)
        })
        .unwrap();
    let report = router
        .for_each_tenant(
            &BatchOptions {
                keep_going: true,
                ..Default::default()
            },
            |c, _| Ok::<_, Error>(count(c)?),
        )
        .unwrap();
    assert_eq!(report.tenants[0].tenant, "kept");
    assert_eq!(*report.tenants[0].result.as_ref().unwrap(), 1);
    let err = report.tenants[1].result.as_ref().unwrap_err();
    assert!(
        matches!(err, Error::SchemaMissing { schema } if schema == "lost"),
        "{err}"
    );
}

#[test]
fn work_that_ends_or_poisons_the_transaction_is_reported() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let db = TestDb::new();
        let router = router_in(&db, mode, 2);
        tenants(&router, &["t"]);
        // Swallows a failed statement: the transaction is aborted, so a COMMIT would
        // silently roll back. The crate must not report success.
        let swallowed = router
            .for_each_tenant(&BatchOptions::default(), |c, _| {
                add_hotel(c, "lost")?;
                let _ = c.batch_execute("SELECT 1/0");
                Ok::<_, Error>(())
            })
            .unwrap();
        let err = swallowed.tenants[0].result.as_ref().unwrap_err();
        assert!(
            matches!(err, Error::TransactionBroken { reason, .. } if reason.contains("aborted")),
            "{mode:?}: {err}"
        );
        assert_eq!(counts(&router), [("t".into(), 1)], "{mode:?}");

        // Ends the transaction with COMMIT (and with COMMIT; BEGIN, hidden from Diesel).
        for sql in ["COMMIT", "COMMIT; BEGIN"] {
            let ended = router
                .for_each_tenant(&BatchOptions::default(), |c, _| {
                    c.batch_execute(sql)?;
                    Ok::<_, Error>(())
                })
                .unwrap();
            let err = ended.tenants[0].result.as_ref().unwrap_err();
            if mode == PoolMode::Session || sql == "COMMIT" {
                assert!(
                    matches!(err, Error::TransactionBroken { reason, .. } if reason.contains("ended")),
                    "{mode:?} {sql}: {err}"
                );
            } else {
                // Diesel's savepoint went with the pool's transaction: its rollback fails
                // first, and that is the error reported (still a failure, never success).
                assert!(
                    err.to_string().contains("savepoint"),
                    "{mode:?} {sql}: {err}"
                );
            }
        }
        // The pool still works and hands out clean connections.
        assert_eq!(counts(&router), [("t".into(), 1)], "{mode:?}");
    }
}

#[test]
fn jobs_run_tenants_at_the_same_time() {
    let db = TestDb::new();
    let router = db.router(3);
    tenants(&router, &["one", "two"]);
    // Each tenant's work waits for the other's to start: only concurrent runs finish.
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Mutex::new(rx);
    let report = router
        .for_each_tenant(
            &BatchOptions {
                jobs: 2,
                ..Default::default()
            },
            |_, _| {
                tx.send(()).unwrap();
                rx.lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(20))
                    .map_err(|_| Error::Config("the other tenant never started".into()))
            },
        )
        .unwrap();
    assert!(report.is_success(), "{report:?}");
}

#[test]
fn the_callers_error_type_is_kept() {
    #[derive(Debug)]
    #[allow(dead_code)]
    enum AppError {
        Tenancy(Error),
        Db(diesel::result::Error),
        Rule(&'static str),
    }
    impl From<Error> for AppError {
        fn from(e: Error) -> Self {
            AppError::Tenancy(e)
        }
    }
    impl From<diesel::result::Error> for AppError {
        fn from(e: diesel::result::Error) -> Self {
            AppError::Db(e)
        }
    }
    let db = TestDb::new();
    let router = db.router(2);
    tenants(&router, &["x", "y"]);
    let report = router
        .for_each_tenant(
            &BatchOptions {
                keep_going: true,
                ..Default::default()
            },
            |c, t| {
                let n: i64 =
                    diesel::dsl::sql::<BigInt>("SELECT count(*) FROM hotels").get_result(c)?;
                if t.name == "y" {
                    return Err(AppError::Rule("no y"));
                }
                let _ = diesel::sql_query("SELECT * FROM nowhere")
                    .execute(c)
                    .map_err(AppError::from);
                Ok(n)
            },
        )
        .unwrap();
    // `x` swallowed a failed statement: the crate's check names it, as an AppError.
    assert!(matches!(
        report.tenants[0].result,
        Err(AppError::Tenancy(Error::TransactionBroken { .. }))
    ));
    assert!(matches!(
        report.tenants[1].result,
        Err(AppError::Rule("no y"))
    ));
}

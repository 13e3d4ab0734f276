//! Pool checkouts against the real PostgreSQL: tenants never see each other, a connection never carries
//! the previous scope (after rollbacks, panics or transactions left open), and `TransactionLocal`
//! commits only what the work returned `Ok` for.

mod common;

use common::hotels::{add_hotel, hotel_names, schema, whereami, Where};
use common::{TestDb, TENANT};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_tenancy::{Error, NewTenant, PoolMode, Scope, SyncRouter, TenantPool, TenantRegistry};

#[test]
fn tenants_never_see_each_other_and_ids_start_at_one() {
    let db = TestDb::new();
    let router = db.router(2);
    let demo1 = router.create_tenant(&NewTenant::named("demo1")).unwrap();
    let demo2 = router.create_tenant(&NewTenant::named("Demo2")).unwrap();
    assert_eq!(demo2.schema_name.as_str(), "demo2");
    let pool = router.pool();

    let mut c1 = pool.tenant(&demo1.schema_name).unwrap();
    assert_eq!(hotel_names(&mut c1).unwrap(), vec![]);
    assert_eq!(add_hotel(&mut c1, "A1"), 1);
    assert_eq!(add_hotel(&mut c1, "A2"), 2);
    drop(c1);
    let mut c2 = pool.tenant(&demo2.schema_name).unwrap();
    assert_eq!(hotel_names(&mut c2).unwrap(), vec![]);
    assert_eq!(add_hotel(&mut c2, "B1"), 1);
    drop(c2);

    let a = pool.with_tenant(&demo1.schema_name, hotel_names).unwrap();
    let b = pool.with_tenant(&demo2.schema_name, hotel_names).unwrap();
    assert_eq!(a, vec![(1, "A1".to_owned()), (2, "A2".to_owned())]);
    assert_eq!(b, vec![(1, "B1".to_owned())]);
}

#[test]
fn a_pool_of_one_never_carries_the_previous_scope() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let db = TestDb::new();
        let router = SyncRouter::new(
            TenantPool::builder()
                .max_size(1)
                .mode(mode)
                .build(&db.url)
                .unwrap(),
            TENANT,
        );
        router.migrate_shared().unwrap();
        let names = ["t_a", "t_b", "t_c"];
        for n in names {
            let t = router.create_tenant(&NewTenant::named(n)).unwrap();
            router
                .pool()
                .with_tenant(&t.schema_name, |c| {
                    add_hotel(c, n);
                    Ok::<_, Error>(())
                })
                .unwrap();
        }
        let pool = router.pool();
        let mut pids = std::collections::HashSet::new();
        for i in 0..60 {
            let scope = match i % 4 {
                3 => Scope::Public,
                k => Scope::Tenant(schema(names[k])),
            };
            let mut conn = pool.checkout(scope.clone()).unwrap();
            let here = whereami(&mut conn);
            pids.insert(here.pid);
            match &scope {
                Scope::Public => assert_eq!(here.schema, "public", "{mode:?} step {i}"),
                Scope::Tenant(s) | Scope::Pinned { schema: s, .. } => {
                    assert_eq!(here.schema, s.as_str(), "{mode:?} step {i}");
                    let rows = hotel_names(&mut conn).unwrap();
                    assert_eq!(rows, vec![(1, s.as_str().to_owned())], "{mode:?} step {i}");
                }
                other => unreachable!("no row scope here: {other:?}"),
            }
            conn.commit().unwrap();
        }
        assert_eq!(
            pids.len(),
            1,
            "{mode:?}: one healthy connection is reused throughout"
        );
    }
}

#[test]
fn rollback_and_savepoint_rollback_leave_no_wrong_cached_path() {
    let db = TestDb::new();
    let router = db.router(1);
    let a = router
        .create_tenant(&NewTenant::named("a"))
        .unwrap()
        .schema_name;
    let b = router
        .create_tenant(&NewTenant::named("b"))
        .unwrap()
        .schema_name;
    let pool = router.pool();

    // A SET inside a transaction that is rolled back: PostgreSQL restores the path.
    let mut conn = pool.tenant(&a).unwrap();
    let pid = whereami(&mut conn).pid;
    let _ = conn.transaction::<(), diesel::result::Error, _>(|c| {
        c.batch_execute("SET search_path TO \"b\"")?;
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert_eq!(whereami(&mut conn).schema, "a");
    drop(conn);

    // A SET committed after a savepoint rollback: the session now really points at `b`,
    // so the pool must not trust its cached "a".
    let mut conn = pool.tenant(&a).unwrap();
    conn.transaction::<(), diesel::result::Error, _>(|c| {
        c.batch_execute("SET search_path TO \"b\"")?;
        let _ = c.transaction::<(), _, _>(|c| {
            c.batch_execute("SET search_path TO public")?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(
        whereami(&mut conn).schema,
        "b",
        "the user's own SET did take effect"
    );
    drop(conn);
    let mut conn = pool.tenant(&a).unwrap();
    let here = whereami(&mut conn);
    assert_eq!(
        here,
        Where {
            schema: "a".into(),
            pid
        },
        "path reset, connection kept"
    );
    drop(conn);

    // A raw BEGIN left open: the connection is discarded, never reused mid-transaction.
    let mut conn = pool.tenant(&b).unwrap();
    conn.batch_execute("BEGIN; SET LOCAL search_path TO \"a\"")
        .unwrap();
    drop(conn);
    let mut conn = pool.tenant(&b).unwrap();
    let here = whereami(&mut conn);
    assert_eq!(here.schema, "b");
    assert_ne!(
        here.pid, pid,
        "the connection with an open transaction was replaced"
    );
    conn.batch_execute("ROLLBACK").unwrap();
    drop(conn);
    let mut conn = pool.tenant(&a).unwrap();
    assert_eq!(whereami(&mut conn).schema, "a");
}

#[test]
fn a_changed_scope_inside_an_open_transaction_is_refused() {
    let db = TestDb::new();
    let router = db.router(1);
    let a = router
        .create_tenant(&NewTenant::named("a"))
        .unwrap()
        .schema_name;
    let manager = TenantPool::builder().manager(&db.url).unwrap();
    let mut managed = r2d2::ManageConnection::connect(&manager).unwrap();
    managed
        .with_public(|c| c.batch_execute("BEGIN").map_err(Error::Query))
        .unwrap();
    // The raw `BEGIN` went past Diesel's transaction manager; the server proves it.
    let err = managed.with_tenant(&a, |_| Ok::<_, Error>(())).unwrap_err();
    assert!(
        matches!(&err, Error::UncleanSession { reason, .. } if reason.contains("transaction block")),
        "{err}"
    );
    assert!(r2d2::ManageConnection::has_broken(&manager, &mut managed));
}

#[test]
fn a_panic_while_checked_out_discards_the_connection() {
    let db = TestDb::new();
    let router = db.router(1);
    let a = router
        .create_tenant(&NewTenant::named("a"))
        .unwrap()
        .schema_name;
    let pool = router.pool().clone();
    let before = pool
        .with_tenant(&a, |c| Ok::<_, Error>(whereami(c).pid))
        .unwrap();
    let p = pool.clone();
    let s = a.clone();
    let panicked = std::thread::spawn(move || {
        p.with_tenant(&s, |c| -> Result<(), Error> {
            c.batch_execute("SET search_path TO public").unwrap();
            panic!("boom");
        })
    })
    .join();
    assert!(panicked.is_err());
    let after = pool
        .with_tenant(&a, |c| Ok::<_, Error>(whereami(c)))
        .unwrap();
    assert_eq!(after.schema, "a");
    assert_ne!(after.pid, before);
}

#[test]
fn a_missing_tenant_table_is_an_error_not_a_read_of_public() {
    let db = TestDb::new();
    let router = SyncRouter::new(db.pool(2), TENANT).public_tenant(true);
    router.migrate_shared().unwrap();
    let pool = router.pool();
    pool.with_public(|c| {
        add_hotel(c, "public hotel");
        Ok::<_, Error>(())
    })
    .unwrap();
    // A registered tenant whose schema exists but has no tables.
    let bare = schema("bare");
    pool.with_public(|c| {
        c.batch_execute("CREATE SCHEMA bare")?;
        TenantRegistry::create(c, "bare", &bare)
    })
    .unwrap();
    for s in [bare, schema("never_created")] {
        let err = pool.with_tenant(&s, hotel_names).unwrap_err();
        assert!(
            err.to_string()
                .contains("relation \"hotels\" does not exist"),
            "{err}"
        );
    }
    let public = pool.with_public(hotel_names).unwrap();
    assert_eq!(public, vec![(1, "public hotel".to_owned())]);
}

#[test]
fn transaction_local_mode_commits_on_ok_and_rolls_back_otherwise() {
    let db = TestDb::new();
    let router = SyncRouter::new(
        TenantPool::builder()
            .max_size(1)
            .mode(PoolMode::TransactionLocal)
            .build(&db.url)
            .unwrap(),
        TENANT,
    );
    router.migrate_shared().unwrap();
    let t = router
        .create_tenant(&NewTenant::named("tl"))
        .unwrap()
        .schema_name;
    let pool = router.pool();
    pool.with_tenant(&t, |c| Ok::<_, Error>(add_hotel(c, "kept")))
        .unwrap();
    let _ = pool.with_tenant(&t, |c| -> Result<(), Error> {
        add_hotel(c, "rolled back");
        Err(Error::Config("closure failed".into()))
    });
    let mut conn = pool.tenant(&t).unwrap();
    add_hotel(&mut conn, "dropped without commit");
    drop(conn);
    let rows = pool.with_tenant(&t, hotel_names).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["kept"]
    );
    // Outside the pool's transaction the session path is empty: nothing unqualified resolves.
    let mut conn = pool.tenant(&t).unwrap();
    conn.batch_execute("COMMIT").unwrap();
    assert!(hotel_names(&mut conn).is_err());
}

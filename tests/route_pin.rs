//! A route pinned to its schema's OID (`Scope::Pinned`), at the pool level: the checkout
//! proves the OID in its one round trip, in both modes; in `TransactionLocal` mode the
//! router's deletion of the schema waits for the checkout to end.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestDb;
use diesel::prelude::*;
use diesel_tenancy::{Error, NewTenant, PoolMode, SchemaName, Scope, SyncRouter, TenantPool};

#[derive(QueryableByName)]
struct Oid {
    #[diesel(sql_type = diesel::sql_types::Oid)]
    oid: u32,
}

fn oid_of(router: &SyncRouter, schema: &str) -> u32 {
    router
        .pool()
        .with_public(|c| {
            diesel::sql_query("SELECT oid FROM pg_namespace WHERE nspname = $1")
                .bind::<diesel::sql_types::Text, _>(schema)
                .get_result::<Oid>(c)
                .map_err(Error::from)
        })
        .unwrap()
        .oid
}

fn pool(db: &TestDb, mode: PoolMode) -> TenantPool {
    TenantPool::builder()
        .max_size(2)
        .min_idle(Some(0))
        .mode(mode)
        .connection_timeout(Duration::from_secs(5))
        .build(&db.url)
        .unwrap()
}

#[test]
fn a_schema_dropped_and_created_again_fails_the_pinned_checkout() {
    let db = TestDb::new();
    let router = db.router(2);
    router.create_tenant(&NewTenant::named("acme")).unwrap();
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let pinned = Scope::Pinned {
            schema: SchemaName::new("acme").unwrap(),
            oid: oid_of(&router, "acme"),
        };
        let pool = pool(&db, mode);
        pool.checkout(pinned.clone()).unwrap().commit().unwrap();
        router.delete_tenant("acme", true).unwrap();
        router.create_tenant(&NewTenant::named("acme")).unwrap();
        match pool.checkout(pinned.clone()) {
            Err(Error::StaleRoute { schema }) => assert_eq!(schema, "acme"),
            other => panic!("{mode:?}: {other:?}"),
        }
        // The same name with the new OID checks out; so does an unpinned scope.
        let fresh = Scope::Pinned {
            schema: SchemaName::new("acme").unwrap(),
            oid: oid_of(&router, "acme"),
        };
        pool.checkout(fresh).unwrap().commit().unwrap();
        pool.checkout(Scope::Tenant(SchemaName::new("acme").unwrap()))
            .unwrap()
            .commit()
            .unwrap();
        // A route to a schema that does not exist at all fails the same way.
        let gone = Scope::Pinned {
            schema: SchemaName::new("nobody").unwrap(),
            oid: 0,
        };
        assert!(matches!(pool.checkout(gone), Err(Error::StaleRoute { .. })));
    }
}

#[test]
fn in_transaction_local_mode_deleting_the_schema_waits_for_the_checkout() {
    let db = TestDb::new();
    let router = db.router(2);
    router.create_tenant(&NewTenant::named("acme")).unwrap();
    let pinned = Scope::Pinned {
        schema: SchemaName::new("acme").unwrap(),
        oid: oid_of(&router, "acme"),
    };
    let pool = pool(&db, PoolMode::TransactionLocal);
    let mut held = pool.checkout(pinned).unwrap();
    let (done, finished) = mpsc::channel();
    let deleter = router.clone();
    let thread = std::thread::spawn(move || {
        let result = deleter.delete_tenant("acme", true);
        let _ = done.send(result.is_ok());
    });
    // The deletion is queued behind the checkout's shared advisory lock: the server says
    // it waits on an advisory lock (no timing involved).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = router
            .pool()
            .with_public(|c| {
                diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                )
                .get_result(c)
                .map_err(Error::from)
            })
            .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the deletion never queued");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(finished.try_recv().is_err(), "the deletion did not wait");
    // The checkout still reads its own schema.
    let n: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM hotels")
        .get_result(&mut *held)
        .unwrap();
    assert_eq!(n, 0);
    held.commit().unwrap();
    assert!(
        finished.recv().unwrap(),
        "the deletion went through after the checkout"
    );
    thread.join().unwrap();
}

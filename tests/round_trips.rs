//! Statements sent per request, counted through the pool's instrumentation hook (P7):
//! every checkout costs exactly one round trip, the verified checkout (reset, path and
//! proof in one message), whether the tenant repeats or not; nothing else is added.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::TestDb;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::prelude::*;
use diesel_tenancy::{Error, NewTenant, PoolMode, SchemaName, TenantPool};

diesel::table! {
    hotels (id) {
        id -> BigInt,
        name -> Varchar,
    }
}

#[derive(Clone, Default)]
struct Counter {
    statements: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
}

struct Count(Counter);

impl Instrumentation for Count {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            self.0.statements.fetch_add(1, Ordering::SeqCst);
            self.0.log.lock().unwrap().push(query.to_string());
        }
    }
}

/// Statements sent by one request that lists a tenant's hotels.
fn request(pool: &TenantPool, schema: &SchemaName, counter: &Counter) -> usize {
    let before = counter.statements.load(Ordering::SeqCst);
    let rows = pool
        .with_tenant(schema, |c| {
            Ok::<_, Error>(
                hotels::table
                    .select((hotels::id, hotels::name))
                    .load::<(i64, String)>(c)?,
            )
        })
        .unwrap();
    assert!(rows.is_empty());
    counter.statements.load(Ordering::SeqCst) - before
}

fn setup(db: &TestDb, mode: PoolMode) -> (TenantPool, Counter, SchemaName, SchemaName) {
    let router = db.router(1);
    let a = router
        .create_tenant(&NewTenant::named("a"))
        .unwrap()
        .schema_name;
    let b = router
        .create_tenant(&NewTenant::named("b"))
        .unwrap()
        .schema_name;
    let counter = Counter::default();
    let c = counter.clone();
    let pool = TenantPool::builder()
        .mode(mode)
        .max_size(1)
        .instrumentation(move || Box::new(Count(c.clone())))
        .build(&db.url)
        .unwrap();
    (pool, counter, a, b)
}

#[test]
fn session_mode_sends_the_verified_checkout_and_the_query() {
    let db = TestDb::new();
    let (pool, counter, a, b) = setup(&db, PoolMode::Session);
    for schema in [&a, &a, &a, &b, &b, &a] {
        assert_eq!(request(&pool, schema, &counter), 2, "checkout + query");
    }
    let log = counter.log.lock().unwrap();
    let checkouts: Vec<_> = log
        .iter()
        .filter(|s| {
            s.starts_with("RESET ALL; DISCARD SEQUENCES; EXECUTE diesel_tenancy_checkout; ")
        })
        .collect();
    assert_eq!(checkouts.len(), 6, "{log:?}");
    assert!(
        checkouts[3].ends_with("SET search_path TO \"b\", pg_temp"),
        "{log:?}"
    );
}

#[test]
fn transaction_local_mode_folds_the_proof_into_begin() {
    let db = TestDb::new();
    let (pool, counter, a, b) = setup(&db, PoolMode::TransactionLocal);
    for schema in [&a, &a, &b, &a] {
        assert_eq!(
            request(&pool, schema, &counter),
            3,
            "BEGIN + reset + proof, query, COMMIT"
        );
    }
    let log = counter.log.lock().unwrap();
    assert!(
        log.iter().any(|s| s.starts_with("BEGIN; RESET ALL; DISCARD SEQUENCES; SET search_path TO ''; EXECUTE diesel_tenancy_checkout; SET LOCAL search_path TO \"a\", pg_temp")),
        "{log:?}"
    );
}

#[test]
fn tenant_roles_add_no_round_trip() {
    let db = TestDb::new();
    let (_, _, a, b) = setup(&db, PoolMode::Session);
    let router = diesel_tenancy::SyncRouter::new(
        TenantPool::builder()
            .max_size(1)
            .tenant_roles(diesel_tenancy::TenantRoles::new())
            .build(&db.url)
            .unwrap(),
        common::TENANT,
    );
    router.sync_tenant_roles().unwrap();
    let role_b = router.tenant_role_name(&b).unwrap();
    for (mode, per_request) in [(PoolMode::Session, 2), (PoolMode::TransactionLocal, 3)] {
        let counter = Counter::default();
        let c = counter.clone();
        let pool = TenantPool::builder()
            .mode(mode)
            .max_size(1)
            .tenant_roles(diesel_tenancy::TenantRoles::new())
            .instrumentation(move || Box::new(Count(c.clone())))
            .build(&db.url)
            .unwrap();
        for schema in [&a, &a, &b, &a] {
            assert_eq!(request(&pool, schema, &counter), per_request, "{mode:?}");
        }
        let log = counter.log.lock().unwrap();
        let set_local = if mode == PoolMode::Session {
            ""
        } else {
            "LOCAL "
        };
        let wanted = format!(
            "SET {set_local}search_path TO \"b\", pg_temp; SET {set_local}ROLE \"{role_b}\"; \
             EXECUTE diesel_tenancy_role"
        );
        assert!(
            log.iter()
                .any(|s| s.contains("RESET ALL; RESET ROLE; DISCARD SEQUENCES;")
                    && s.ends_with(&wanted)),
            "{mode:?}: {log:?}"
        );
    }
}

#[test]
fn row_tenants_add_no_round_trip() {
    let db = TestDb::new();
    let (_, url) = db.plain_owner();
    let router = diesel_tenancy::SyncRouter::new(
        TenantPool::builder()
            .max_size(1)
            .row_tenants(true)
            .build(&url)
            .unwrap(),
        common::TENANT,
    );
    router.migrate_shared().unwrap();
    let row = |name: &str| {
        router
            .create_tenant(&NewTenant::named(name).mode(diesel_tenancy::TenantMode::Rows))
            .unwrap()
            .id
    };
    let (a, b) = (row("a"), row("b"));
    let role = router.tenant_role_name(router.pool().row_schema()).unwrap();
    for (mode, per_request) in [(PoolMode::Session, 2), (PoolMode::TransactionLocal, 3)] {
        let counter = Counter::default();
        let c = counter.clone();
        let pool = TenantPool::builder()
            .mode(mode)
            .max_size(1)
            .row_tenants(true)
            .instrumentation(move || Box::new(Count(c.clone())))
            .build(&url)
            .unwrap();
        for tenant in [a, a, b, a] {
            let before = counter.statements.load(Ordering::SeqCst);
            let rows = pool
                .with_scope(diesel_tenancy::Scope::Rows { tenant }, |c| {
                    Ok::<_, Error>(
                        hotels::table
                            .select((hotels::id, hotels::name))
                            .load::<(i64, String)>(c)?,
                    )
                })
                .unwrap();
            assert!(rows.is_empty());
            let sent = counter.statements.load(Ordering::SeqCst) - before;
            assert_eq!(sent, per_request, "{mode:?}");
        }
        let log = counter.log.lock().unwrap();
        let set = if mode == PoolMode::Session {
            "SET "
        } else {
            "SET LOCAL "
        };
        let wanted = format!(
            "{set}diesel_tenancy.tenant TO '{b}'; EXECUTE diesel_tenancy_checkout; \
             EXECUTE diesel_tenancy_row_tenant; {set}search_path TO \"tenant_rows\", \
             pg_temp; {set}ROLE \"{role}\"; EXECUTE diesel_tenancy_row_role"
        );
        assert!(
            log.iter().any(|s| s.ends_with(&wanted)),
            "{mode:?}: {wanted} not in {log:?}"
        );
    }
}

//! The sync router's migrations: run twice they are a no-op, concurrent runs apply each once,
//! a failure leaves nothing half-made, spare schemas turn creation into a rename.

mod common;

use common::hotels::{add_hotel, exec, schema, schema_exists};
use common::TestDb;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::{DomainName, Error, MigrateOptions, NewTenant, SyncRouter, TenantRegistry};

const BROKEN: EmbeddedMigrations = embed_migrations!("tests/fixtures/broken_tenant");
const TENANT_V2: EmbeddedMigrations = embed_migrations!("tests/fixtures/tenant_v2");
const COLLIDING: EmbeddedMigrations = embed_migrations!("tests/fixtures/colliding");

#[test]
fn migrations_twice_are_a_noop_and_concurrent_runs_apply_each_once() {
    let db = TestDb::new();
    let v1 = db.router(2);
    assert!(
        v1.migrate_shared().unwrap().is_empty(),
        "second shared run applies nothing"
    );
    for i in 0..6 {
        v1.create_tenant(&NewTenant::named(format!("tenant{i}")))
            .unwrap();
    }
    let noop = v1.migrate_all(&MigrateOptions::default()).unwrap();
    assert_eq!((noop.tenants.len(), noop.up_to_date), (0, 6));

    let runs: Vec<_> = (0..2)
        .map(|_| {
            let router = SyncRouter::new(db.pool(3), TENANT_V2);
            std::thread::spawn(move || {
                let opts = MigrateOptions {
                    jobs: 3,
                    ..MigrateOptions::default()
                };
                router.migrate_all(&opts).unwrap()
            })
        })
        .collect();
    let reports: Vec<_> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    let applied: usize = reports.iter().map(|r| r.applied_count()).sum();
    assert_eq!(applied, 6, "each tenant got the new migration exactly once");
    assert!(reports.iter().all(|r| r.failures().count() == 0));

    let v2 = SyncRouter::new(db.pool(2), TENANT_V2);
    let status = v2.status().unwrap();
    assert!(!status.has_pending(), "{status:?}");
    let again = v2.migrate_all(&MigrateOptions::default()).unwrap();
    assert_eq!(again.applied_count(), 0);
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let recorded: N = v2
        .pool()
        .with_tenant(&schema("tenant3"), |c| {
            Ok::<_, Error>(
                diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
                    .get_result(c)?,
            )
        })
        .unwrap();
    // The hotel set's two migrations (`hotels`, its row-tenancy step) and v2's rating.
    assert_eq!(recorded.n, 3);
}

#[test]
fn provisioning_that_fails_halfway_leaves_nothing_behind() {
    let db = TestDb::new();
    let router = SyncRouter::new(db.pool(2), BROKEN);
    router.migrate_shared().unwrap();
    let err = router
        .create_tenant(&NewTenant {
            name: "Broken Co".into(),
            mode: None,
            schema_name: None,
            domains: vec![DomainName::new("broken.example.com").unwrap()],
        })
        .unwrap_err();
    assert!(matches!(err, Error::Migration { .. }), "{err}");
    assert!(
        err.to_string().contains("broken_co"),
        "names the tenant: {err}"
    );
    let pool = router.pool();
    let row = pool
        .with_public(|c| TenantRegistry::find_by_name(c, "broken co"))
        .unwrap();
    assert!(row.is_none());
    assert!(!schema_exists(pool, "broken_co"));
    let domains = pool.with_public(TenantRegistry::list_domains).unwrap();
    assert!(domains.is_empty());
}

#[test]
fn a_failing_tenant_is_rolled_back_whole_and_others_complete() {
    let db = TestDb::new();
    let v1 = db.router(2);
    for n in ["ok1", "bad", "ok2"] {
        v1.create_tenant(&NewTenant::named(n)).unwrap();
    }
    // Make `bad` fail the v2 migration: the column already exists with another type.
    v1.pool()
        .with_tenant(&schema("bad"), |c| {
            exec(c, "ALTER TABLE hotels ADD COLUMN rating TEXT")
        })
        .unwrap();
    let v2 = SyncRouter::new(db.pool(2), TENANT_V2);
    let report = v2
        .migrate_all(&MigrateOptions {
            keep_going: true,
            ..MigrateOptions::default()
        })
        .unwrap();
    let failed: Vec<_> = report.failures().map(|t| t.tenant.as_str()).collect();
    assert_eq!(failed, ["bad"]);
    assert_eq!(report.applied_count(), 2);
    let status = v2.status().unwrap();
    let pending: Vec<_> = status
        .tenants
        .iter()
        .filter(|t| !t.pending.is_empty())
        .map(|t| t.tenant.name.as_str())
        .collect();
    assert_eq!(pending, ["bad"]);

    // Fix it and re-run: it applies now.
    v1.pool()
        .with_tenant(&schema("bad"), |c| {
            exec(c, "ALTER TABLE hotels DROP COLUMN rating")
        })
        .unwrap();
    let report = v2.migrate_all(&MigrateOptions::default()).unwrap();
    assert_eq!(report.applied_count(), 1);
    assert!(!v2.status().unwrap().has_pending());
}

#[test]
fn public_tenant_refuses_colliding_versions() {
    let db = TestDb::new();
    let router = SyncRouter::new(db.pool(1), COLLIDING).public_tenant(true);
    let err = router.migrate_shared().unwrap_err();
    assert!(
        matches!(err, Error::MigrationVersionConflict { .. }),
        "{err}"
    );
    // Without the public tenant the sets use different tracking tables: fine.
    SyncRouter::new(db.pool(1), COLLIDING)
        .migrate_shared()
        .unwrap();
}

#[test]
fn spare_schemas_turn_creation_into_a_rename() {
    let db = TestDb::new();
    let router = db.router(2);
    assert_eq!(router.prepare_spares(2).unwrap(), 2);
    let status = router.status().unwrap();
    assert!(
        status.orphan_schemas.is_empty(),
        "spares are not orphans: {status:?}"
    );

    let first = router.create_tenant(&NewTenant::named("first")).unwrap();
    assert_eq!(router.spare_count().unwrap(), 1);
    // A creation that fails puts its claimed spare back (the transaction rolls back).
    assert!(router.create_tenant(&NewTenant::named("FIRST")).is_err());
    assert_eq!(router.spare_count().unwrap(), 1);

    // A spare built from an older tenant set is brought up to date when claimed.
    let v2 = SyncRouter::new(db.pool(2), TENANT_V2);
    let second = v2.create_tenant(&NewTenant::named("second")).unwrap();
    assert_eq!(v2.spare_count().unwrap(), 0);
    let third = v2.create_tenant(&NewTenant::named("third")).unwrap();

    let pool = router.pool();
    for t in [&first, &second, &third] {
        let id = pool
            .with_tenant(&t.schema_name, |c| Ok::<_, Error>(add_hotel(c, &t.name)))
            .unwrap();
        assert_eq!(id, 1, "{}: a fresh identity", t.name);
    }
    let status = v2.status().unwrap();
    let pending: Vec<_> = status
        .tenants
        .iter()
        .filter(|t| !t.pending.is_empty())
        .map(|t| t.tenant.name.clone())
        .collect();
    assert_eq!(
        pending,
        ["first"],
        "only the tenant created at v1 is behind v2"
    );
    assert!(status.orphan_schemas.is_empty());
}

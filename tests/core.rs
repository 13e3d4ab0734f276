//! The core crate against the real PostgreSQL: isolation, scoping, migrations, registry.

mod common;

use common::{TestDb, TENANT};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::{
    DomainName, Error, MigrateOptions, NewTenant, PoolMode, SchemaName, Scope, SyncRouter,
    TenantPool, TenantRegistry,
};

const BROKEN: EmbeddedMigrations = embed_migrations!("tests/fixtures/broken_tenant");
const TENANT_V2: EmbeddedMigrations = embed_migrations!("tests/fixtures/tenant_v2");
const COLLIDING: EmbeddedMigrations = embed_migrations!("tests/fixtures/colliding");

diesel::table! {
    hotels (id) {
        id -> BigInt,
        name -> Varchar,
        location -> Varchar,
        description -> Varchar,
        picture -> Nullable<Varchar>,
    }
}

fn add_hotel(conn: &mut PgConnection, name: &str) -> i64 {
    diesel::insert_into(hotels::table)
        .values((
            hotels::name.eq(name),
            hotels::location.eq("somewhere"),
            hotels::description.eq("nice"),
        ))
        .returning(hotels::id)
        .get_result(conn)
        .expect("insert hotel")
}

fn hotel_names(conn: &mut PgConnection) -> Result<Vec<(i64, String)>, Error> {
    Ok(hotels::table
        .order(hotels::id)
        .select((hotels::id, hotels::name))
        .load(conn)?)
}

/// Runs raw SQL inside a scope.
fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), Error> {
    Ok(conn.batch_execute(sql)?)
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Where {
    #[diesel(sql_type = Text)]
    schema: String,
    #[diesel(sql_type = Integer)]
    pid: i32,
}

fn whereami(conn: &mut PgConnection) -> Where {
    diesel::sql_query(
        "SELECT coalesce(current_schema(), '')::text AS schema, pg_backend_pid() AS pid",
    )
    .get_result(conn)
    .expect("whereami")
}

fn schema(name: &str) -> SchemaName {
    SchemaName::new(name).unwrap()
}

fn schema_exists(pool: &TenantPool, name: &str) -> bool {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    pool.with_public(|c| {
        let row: N = diesel::sql_query("SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1")
            .bind::<Text, _>(name)
            .get_result(c)?;
        Ok::<_, Error>(row.n == 1)
    })
    .unwrap()
}

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
    assert_eq!(recorded.n, 2);
}

#[test]
fn provisioning_that_fails_halfway_leaves_nothing_behind() {
    let db = TestDb::new();
    let router = SyncRouter::new(db.pool(2), BROKEN);
    router.migrate_shared().unwrap();
    let err = router
        .create_tenant(&NewTenant {
            name: "Broken Co".into(),
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
fn status_reports_orphans_both_ways() {
    let db = TestDb::new();
    let router = db.router(2);
    router.create_tenant(&NewTenant::named("kept")).unwrap();
    let gone = router.create_tenant(&NewTenant::named("gone")).unwrap();
    let pool = router.pool();
    pool.with_public(|c| exec(c, "DROP SCHEMA gone CASCADE"))
        .unwrap();
    router.delete_tenant("kept", false).unwrap();
    let status = router.status().unwrap();
    assert_eq!(status.orphan_schemas, ["kept"]);
    assert_eq!(status.tenants.len(), 1);
    assert!(status.tenants[0].schema_missing);
    assert_eq!(status.tenants[0].tenant, gone);
    let err = router.migrate_tenant(&gone.schema_name).unwrap_err();
    assert!(matches!(err, Error::SchemaMissing { .. }), "{err}");
}

#[test]
fn registry_operations() {
    let db = TestDb::new();
    let router = db.router(2);
    let acme = router
        .create_tenant(&NewTenant {
            name: "Acme".into(),
            schema_name: Some(schema("acme_corp")),
            domains: vec![
                DomainName::new("acme.example.com").unwrap(),
                DomainName::new("www.acme.example.com").unwrap(),
            ],
        })
        .unwrap();
    let pool = router.pool();
    pool.with_public(|c| {
        assert_eq!(TenantRegistry::get_by_name(c, " ACME ")?, acme);
        let by_domain =
            TenantRegistry::find_by_domain(c, &DomainName::from_host("ACME.example.com:8000")?)?;
        assert_eq!(by_domain.as_ref(), Some(&acme));
        let domains = TenantRegistry::domains_of(c, &acme)?;
        assert_eq!(domains.len(), 2);
        assert!(domains[0].is_primary && domains[0].domain == "acme.example.com");
        let www = DomainName::new("www.acme.example.com")?;
        TenantRegistry::set_primary(c, &www)?;
        let domains = TenantRegistry::domains_of(c, &acme)?;
        assert_eq!(domains.iter().filter(|d| d.is_primary).count(), 1);
        assert_eq!(domains[0].domain, "www.acme.example.com");
        assert!(matches!(
            TenantRegistry::add_domain(c, "acme", &DomainName::new("ACME.example.com")?, false),
            Err(Error::DomainExists { .. })
        ));
        TenantRegistry::remove_domain(c, &www)?;
        assert!(matches!(
            TenantRegistry::remove_domain(c, &www),
            Err(Error::UnknownDomain { .. })
        ));
        let renamed = TenantRegistry::rename(c, "acme", "Acme Inc")?;
        assert_eq!(renamed.schema_name, acme.schema_name);
        assert!(TenantRegistry::find_by_name(c, "acme")?.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(matches!(
        router.create_tenant(&NewTenant::named("ACME INC")),
        Err(Error::TenantExists { .. })
    ));
    // Two names that derive the same schema: the second is refused, never merged.
    router.create_tenant(&NewTenant::named("Beta!")).unwrap();
    let err = router
        .create_tenant(&NewTenant::named("beta?"))
        .unwrap_err();
    assert!(matches!(err, Error::SchemaExists { .. }), "{err}");
    // A stray schema with no registry row is not adopted either.
    pool.with_public(|c| exec(c, "CREATE SCHEMA stray"))
        .unwrap();
    let err = router
        .create_tenant(&NewTenant::named("Stray"))
        .unwrap_err();
    assert!(matches!(err, Error::SchemaExists { .. }), "{err}");
    assert!(matches!(
        router.create_tenant(&NewTenant::named("public")),
        Err(Error::InvalidTenantName { .. })
    ));

    let deleted = router.delete_tenant("acme inc", false).unwrap();
    assert!(
        schema_exists(pool, deleted.schema_name.as_str()),
        "kept by default"
    );
    router.delete_tenant("beta!", true).unwrap();
    assert!(!schema_exists(pool, "beta_"));
    assert!(matches!(
        router.delete_tenant("beta!", true),
        Err(Error::UnknownTenant { .. })
    ));
    let left = pool.with_public(TenantRegistry::list).unwrap();
    assert!(left.is_empty());
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

#[test]
fn status_on_a_fresh_database_says_everything_shared_is_pending() {
    let db = TestDb::new();
    let router = SyncRouter::new(db.pool(1), TENANT);
    let status = router.status().unwrap();
    assert_eq!(status.shared_pending.len(), 5, "{status:?}");
    assert!(status.tenants.is_empty() && status.has_pending());
    router.migrate_shared().unwrap();
    assert!(!router.status().unwrap().has_pending());
}

#[test]
fn status_counts_the_relation_files_of_tenant_schemas_against_the_server_file_limit() {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        max_files_per_process: String,
    }
    let db = TestDb::new();
    let router = db.router(2);
    assert_eq!(router.status().unwrap().max_files_per_process, None);
    router.create_tenant(&NewTenant::named("one")).unwrap();
    router.create_tenant(&NewTenant::named("two")).unwrap();
    let status = router.status().unwrap();
    // Per tenant: hotels, its primary key and identity sequence, Diesel's tracking
    // table and its primary key.
    assert_eq!(status.relation_files, 10, "{status:?}");
    let setting: Setting = router
        .pool()
        .with_public(|c| {
            diesel::sql_query("SHOW max_files_per_process")
                .get_result(c)
                .map_err(Error::from)
        })
        .unwrap();
    assert_eq!(
        status.max_files_per_process,
        Some(setting.max_files_per_process.parse().unwrap())
    );
    assert!(!status.file_limit_exceeded());
}

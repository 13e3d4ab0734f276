//! `SyncRouter::status`: pending migrations, orphans both ways, a fresh database, relation
//! files against the server's file limit.

mod common;

use common::hotels::exec;
use common::{TestDb, TENANT};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_tenancy::{Error, NewTenant, SchemaUnion, SyncRouter};

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
fn status_on_a_fresh_database_says_everything_shared_is_pending() {
    let db = TestDb::new();
    let router = SyncRouter::new(db.pool(1), TENANT);
    let status = router.status().unwrap();
    assert_eq!(status.shared_pending.len(), 6, "{status:?}");
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

/// `SchemaUnion` (which status uses for the tracking tables) reads a table in every
/// schema that has it, and leaves out a schema whose table is gone instead of failing.
#[test]
fn a_schema_union_reads_the_schemas_that_have_the_table() {
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Count {
        #[diesel(sql_type = Text)]
        schema_name: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let db = TestDb::new();
    let router = db.router(2);
    let schemas: Vec<_> = ["one", "two", "three"]
        .iter()
        .map(|n| {
            router
                .create_tenant(&NewTenant::named(*n))
                .unwrap()
                .schema_name
        })
        .collect();
    let pool = router.pool();
    pool.with_tenant(&schemas[0], |c| {
        exec(
            c,
            "INSERT INTO hotels (name, location, description) VALUES ('a', 'b', 'c')",
        )
    })
    .unwrap();
    pool.with_public(|c| exec(c, "DROP TABLE two.hotels"))
        .unwrap();
    let counts: Vec<Count> = pool
        .with_public(|c| SchemaUnion::new("hotels", "count(*) AS n").load(c, &schemas))
        .unwrap();
    let mut counts: Vec<(String, i64)> = counts.into_iter().map(|c| (c.schema_name, c.n)).collect();
    counts.sort();
    assert_eq!(counts, [("one".to_owned(), 1), ("three".to_owned(), 0)]);
}

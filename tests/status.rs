//! `SyncRouter::status`: pending migrations, orphans both ways, a fresh database, relation
//! files against the server's file limit.

mod common;

use common::hotels::exec;
use common::{TestDb, TENANT};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_tenancy::{Error, NewTenant, SyncRouter};

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

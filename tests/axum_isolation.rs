//! The axum face keeps tenants apart: each tenant's rows in its own schema (ids from 1
//! in each), row tenants' rows by row security, and a route made stale by a deleted
//! tenant is decided again, never served from whoever owns the name now.

mod axum_support;
mod common;

use axum::http::StatusCode;
use axum_support::*;
use diesel_tenancy::testing::TestTenancy;
use diesel_tenancy::{NewTenant, PoolMode, SyncRouter, TenantMode, TenantPool};

#[tokio::test]
async fn two_tenants_never_see_each_others_rows_in_either_mode() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let test = TestTenancy::new(common::TENANT);
        test.create_tenant("acme");
        test.create_tenant("globex");
        let app = app(&start(test.router(), async_pool().mode(mode), test.url()).await);
        let acme = [("Tenant-Header", "acme")];
        let globex = [("Tenant-Header", "globex")];
        assert_eq!(send(&app, "POST", "/hotels/a1", &acme).await, ok("1"));
        assert_eq!(send(&app, "POST", "/hotels/a2", &acme).await, ok("2"));
        assert_eq!(send(&app, "POST", "/hotels/g1", &globex).await, ok("1"));
        assert_eq!(get_as(&app, "/hotels", "acme").await, ok(r#"["a1","a2"]"#));
        assert_eq!(get_as(&app, "/hotels", "globex").await, ok(r#"["g1"]"#));
        assert_eq!(get_as(&app, "/schema", "acme").await, ok("acme"));
        assert_eq!(get_as(&app, "/schema", "globex").await, ok("globex"));
    }
}

#[tokio::test]
async fn a_tenant_deleted_after_the_decision_is_400_and_one_made_again_starts_empty() {
    let test = TestTenancy::new(common::TENANT);
    test.create_tenant("acme");
    test.create_tenant("globex");
    let tenancy = start(test.router(), async_pool(), test.url()).await;
    let app = app(&tenancy);
    let acme = [("Tenant-Header", "acme")];
    assert_eq!(send(&app, "POST", "/hotels/old", &acme).await, ok("1"));
    // Deleted and created again between the decision and the checkout: the checkout
    // refuses the old route, the request is decided again, and reads the new schema.
    assert_eq!(get_as(&app, "/stale/recreate", "acme").await, ok("[]"));
    // The same through the pipelined checkout: `first` runs again on the new route.
    assert_eq!(send(&app, "POST", "/hotels/older", &acme).await, ok("1"));
    assert_eq!(
        get_as(&app, "/stale/recreate-pipelined", "acme").await,
        ok("[]")
    );
    // Deleted for good: 400, as for a tenant never registered.
    assert_eq!(
        get_as(&app, "/stale/delete", "acme").await,
        tenant_not_found()
    );
    assert_eq!(get_as(&app, "/hotels", "acme").await, tenant_not_found());
    assert_eq!(get_as(&app, "/schema", "globex").await, ok("globex"));
}

#[tokio::test]
async fn row_tenants_see_only_their_rows() {
    let db = common::TestDb::new();
    let (_owner, url) = db.plain_owner();
    let rows = || {
        TenantPool::builder()
            .max_size(2)
            .connection_timeout(std::time::Duration::from_secs(5))
            .row_tenants(true)
    };
    let router = SyncRouter::new(rows().build(&url).expect("a pool"), common::TENANT);
    router.migrate_shared().expect("the shared set");
    for name in ["a", "b"] {
        router
            .create_tenant(&NewTenant::named(name).mode(TenantMode::Rows))
            .expect("a row tenant");
    }
    router
        .create_tenant(&NewTenant::named("s"))
        .expect("a schema tenant");
    let app = app(&start(&router, rows(), &url).await);
    let a = [("Tenant-Header", "a")];
    let b = [("Tenant-Header", "b")];
    let s = [("Tenant-Header", "s")];
    assert_eq!(send(&app, "POST", "/hotels/a1", &a).await.0, StatusCode::OK);
    assert_eq!(send(&app, "POST", "/hotels/b1", &b).await.0, StatusCode::OK);
    assert_eq!(send(&app, "POST", "/hotels/s1", &s).await, ok("1"));
    assert_eq!(get_as(&app, "/hotels", "a").await, ok(r#"["a1"]"#));
    assert_eq!(get_as(&app, "/hotels", "b").await, ok(r#"["b1"]"#));
    assert_eq!(get_as(&app, "/hotels", "s").await, ok(r#"["s1"]"#));
    let whoami = get_as(&app, "/whoami", "a").await.1;
    assert!(whoami.contains(r#""mode":"rows""#), "{whoami}");
}

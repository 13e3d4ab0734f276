//! `AsyncTenantDb` routes: a route proved stale is decided again (a tenant deleted and
//! created again serves its new rows, a deleted one is 400), row tenants are served and
//! kept apart, and launch aborts when the async pool or the fairing is missing.

mod common;
mod rocket_async_support;

use common::hotels::add_hotel;
use common::{TestDb, TENANT};
use diesel_tenancy::rocket::Tenancy;
use diesel_tenancy::testing::{AsyncTenantClient, TestTenancy};
use diesel_tenancy::{NewTenant, SyncRouter, TenantMode, TenantPool};
use rocket::error::ErrorKind;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket_async_support::{app, async_routes, base_figment, fairing, figment, NOT_FOUND};

async fn body(response: rocket::local::asynchronous::LocalResponse<'_>) -> (Status, String) {
    (
        response.status(),
        response.into_string().await.unwrap_or_default(),
    )
}

fn add(tenancy: &TestTenancy, tenant: &str, hotel: &str) {
    let schema = diesel_tenancy::SchemaName::new(tenant).unwrap();
    let mut conn = tenancy.pool().tenant(&schema).unwrap();
    add_hotel(&mut conn, hotel);
    conn.commit().unwrap();
}

#[rocket::async_test]
async fn a_stale_route_is_decided_again_once() {
    for mode in ["session", "transaction_local"] {
        let tenancy = TestTenancy::new(TENANT);
        tenancy.create_tenant("acme");
        add(&tenancy, "acme", "old");
        // A registry that stays fresh for an hour without its change feed: the app keeps
        // routing `acme` to the schema it first saw.
        let figment = figment(tenancy.url(), mode).merge(("tenancy.max_registry_age", 3600.0));
        let client = Client::tracked(app(figment, fairing())).await.unwrap();
        let acme = AsyncTenantClient::header(&client, "acme").await;
        let list = || async { body(acme.get("/hotels").dispatch().await).await };
        assert_eq!(
            list().await,
            (Status::Ok, r#"[[1,"old"]]"#.into()),
            "{mode}"
        );
        let cache = client.rocket().state::<Tenancy>().unwrap().cache();
        cache.stop();

        // Deleted and created again on the same schema name: the pinned checkout proves the
        // route stale, the registry is reloaded, and the new tenant's rows are served.
        tenancy.router().delete_tenant("acme", true).unwrap();
        tenancy.create_tenant("acme");
        add(&tenancy, "acme", "new");
        let before = cache.generation();
        assert_eq!(
            list().await,
            (Status::Ok, r#"[[1,"new"]]"#.into()),
            "{mode}"
        );
        assert_eq!(cache.generation(), before + 1, "{mode}: one reload");
        // The pipelined checkout is decided again the same way.
        tenancy.router().delete_tenant("acme", true).unwrap();
        tenancy.create_tenant("acme");
        let schema = body(acme.get("/schema").dispatch().await).await;
        assert_eq!(schema, (Status::Ok, "acme".into()), "{mode}");
        assert_eq!(cache.generation(), before + 2, "{mode}: one more reload");

        // Deleted for good: 400, never another tenant's rows.
        tenancy.router().delete_tenant("acme", true).unwrap();
        for request in [
            acme.get("/hotels"),
            acme.post("/hotels/x"),
            acme.get("/schema"),
        ] {
            let got = body(request.dispatch().await).await;
            assert_eq!(got, (Status::BadRequest, NOT_FOUND.into()), "{mode}");
        }
    }
}

#[rocket::async_test]
async fn a_missing_relation_is_decided_again() {
    let tenancy = TestTenancy::new(TENANT);
    tenancy.create_tenant("acme");
    // Session mode: a checkout holds no lock on its schema after it, so the tenant can
    // go between the checkout and the query.
    let client = Client::tracked(app(figment(tenancy.url(), "session"), fairing()))
        .await
        .unwrap();
    let acme = AsyncTenantClient::header(&client, "acme").await;
    // The handler deletes its own tenant, then its query misses the schema: the tenant
    // is gone, so 400, as if the request had come a moment later.
    let got = body(acme.get("/hotels/deleted-meanwhile").dispatch().await).await;
    assert_eq!(got, (Status::BadRequest, NOT_FOUND.into()));

    // A table the application dropped itself, the tenant still there: its own error.
    tenancy.create_tenant("globex");
    let globex = AsyncTenantClient::header(&client, "globex").await;
    let schema = diesel_tenancy::SchemaName::new("globex").unwrap();
    let mut conn = tenancy.pool().tenant(&schema).unwrap();
    diesel::connection::SimpleConnection::batch_execute(&mut *conn, "DROP TABLE hotels").unwrap();
    conn.commit().unwrap();
    let (status, _) = body(globex.get("/hotels/dropped-table").dispatch().await).await;
    assert_eq!(status, Status::InternalServerError);
}

#[rocket::async_test]
async fn row_tenants_are_served_and_kept_apart() {
    let db = TestDb::new();
    let (_, app_url) = db.plain_owner();
    let pool = TenantPool::builder()
        .max_size(2)
        .row_tenants(true)
        .build(&app_url)
        .unwrap();
    let router = SyncRouter::new(pool, TENANT);
    router.migrate_shared().expect("shared set and row schema");
    for name in ["a", "b"] {
        let t = router
            .create_tenant(&NewTenant::named(name).mode(TenantMode::Rows))
            .unwrap();
        let mut conn = router.pool().row_tenant(t.id).unwrap();
        add_hotel(&mut conn, &format!("{name}-hotel"));
        conn.commit().unwrap();
    }
    for mode in ["session", "transaction_local"] {
        let figment = figment(&app_url, mode).merge(("tenancy.tenant_mode", "rows"));
        let client = Client::tracked(app(figment, fairing())).await.unwrap();
        let a = AsyncTenantClient::header(&client, "a").await;
        let b = AsyncTenantClient::header(&client, "b").await;
        let (status, _) = body(a.post(format!("/hotels/a-{mode}")).dispatch().await).await;
        assert_eq!(status, Status::Ok, "{mode}");
        let (status, a_rows) = body(a.get("/hotels").dispatch().await).await;
        assert_eq!(status, Status::Ok, "{mode}");
        assert!(a_rows.contains("a-hotel") && a_rows.contains(&format!("a-{mode}")));
        let (status, b_rows) = body(b.get("/hotels").dispatch().await).await;
        assert_eq!(status, Status::Ok, "{mode}");
        assert!(b_rows.contains("b-hotel"), "{mode}: {b_rows}");
        assert!(!b_rows.contains("a-"), "{mode}: b sees a's rows: {b_rows}");
        let unknown = client
            .get("/hotels")
            .header(Header::new("Tenant-Header", "c"));
        let got = body(unknown.dispatch().await).await;
        assert_eq!(got, (Status::BadRequest, NOT_FOUND.into()), "{mode}");
    }
}

fn sentinel_names(error: &rocket::Error) -> Vec<&'static str> {
    match error.kind() {
        ErrorKind::SentinelAborts(sentries) => sentries.iter().map(|s| s.type_name).collect(),
        other => panic!("expected a sentinel abort, got {other:?}"),
    }
}

#[rocket::async_test]
async fn launch_aborts_without_the_async_pool_or_the_fairing() {
    let tenancy = TestTenancy::new(TENANT);
    let off = figment(tenancy.url(), "session").merge(("tenancy.async_pool", false));
    let Err(error) = Client::tracked(app(off, fairing().async_pool(true))).await else {
        panic!("launch must abort without the async pool: the configuration wins");
    };
    let names = sentinel_names(&error);
    assert!(
        names.iter().any(|n| n.ends_with("AsyncTenantDb")),
        "{names:?}"
    );

    let Err(error) = Client::tracked(app(base_figment(tenancy.url(), "session"), fairing())).await
    else {
        panic!("launch must abort: the async pool is off by default");
    };
    assert!(sentinel_names(&error)
        .iter()
        .any(|n| n.ends_with("AsyncTenantDb")));

    let bare = rocket::custom(figment(tenancy.url(), "session")).mount("/", async_routes());
    let Err(error) = Client::tracked(bare).await else {
        panic!("launch must abort without the fairing");
    };
    assert!(sentinel_names(&error)
        .iter()
        .any(|n| n.ends_with("AsyncTenantDb")));

    // The builder option turns it on where the configuration says nothing.
    let on = fairing().async_pool(true);
    let client = Client::tracked(app(base_figment(tenancy.url(), "session"), on))
        .await
        .expect("it launches");
    let state = client.rocket().state::<Tenancy>().unwrap();
    assert!(state.async_pool().is_ok());
}

#[derive(diesel::QueryableByName)]
struct Backends {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Backends of the test database other than `conn`'s own.
fn other_backends(conn: &mut diesel::PgConnection) -> i64 {
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .get_result::<Backends>(conn)
    .unwrap()
    .n
}

/// A real server on a loopback port: after shutdown the async pool is let go of with the
/// sync one, and no backend of the service is left.
#[test]
fn a_served_instance_closes_its_async_pool_at_shutdown() {
    use diesel::Connection;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let tenancy = TestTenancy::new(TENANT);
    tenancy.create_tenant("demo1");
    let mut admin = diesel::PgConnection::establish(tenancy.url()).unwrap();
    // The test's own pool's backends, there before the service and after it.
    let before = other_backends(&mut admin);
    let figment = figment(tenancy.url(), "session")
        .merge(("port", 0))
        .merge(("address", "127.0.0.1"));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let rocket =
        app(figment, fairing()).attach(rocket::fairing::AdHoc::on_liftoff("port", move |r| {
            Box::pin(async move {
                let _ = port_tx.send((r.config().port, r.shutdown()));
            })
        }));
    let server = std::thread::spawn(move || rocket::execute(rocket.launch()).map_err(Box::new));
    let (port, shutdown) = port_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /hotels HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTenant-Header: demo1\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("[]"), "{response}");

    shutdown.notify();
    let stopped = server.join().unwrap().unwrap();
    let state = stopped.state::<Tenancy>().unwrap();
    // Rocket 0.5 may return from `launch()` before its shutdown fairings ran; the
    // fairing's watcher then releases everything shortly after.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let released = state.async_pool().is_err_and(|e| e.is_unavailable());
        if released && other_backends(&mut admin) == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the async pool was not let go of"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

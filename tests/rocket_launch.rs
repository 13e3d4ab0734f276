//! Launch-time behaviour: the Sentinel abort without the fairing, a failing setup aborts
//! the launch, and shutdown stops the listener and lets go of the pool.

mod common;
mod rocket_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestDb;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::rocket::Tenancy;
use diesel_tenancy::NewTenant;
use rocket::error::ErrorKind;
use rocket::fairing::AdHoc;
use rocket::local::blocking::Client;
use rocket::{get, routes};
use rocket_support::*;

const BROKEN: EmbeddedMigrations = embed_migrations!("tests/fixtures/broken_tenant");

#[get("/db")]
fn uses_db(_db: diesel_tenancy::rocket::TenantDb) {}

#[get("/public")]
fn uses_public(_db: diesel_tenancy::rocket::PublicDb) {}

#[get("/tenant")]
fn uses_tenant(_t: Option<diesel_tenancy::rocket::CurrentTenant>) {}

#[test]
fn launching_the_guards_without_the_fairing_aborts() {
    let rocket = rocket::custom(figment("postgres://unused/none"))
        .mount("/", routes![uses_db, uses_public, uses_tenant]);
    let Err(error) = Client::tracked(rocket) else {
        panic!("launch must abort");
    };
    match error.kind() {
        ErrorKind::SentinelAborts(sentries) => {
            let names: Vec<&str> = sentries.iter().map(|s| s.type_name).collect();
            assert!(names.iter().any(|n| n.ends_with("TenantDb")), "{names:?}");
            assert!(names.iter().any(|n| n.ends_with("PublicDb")), "{names:?}");
            assert!(
                names.iter().any(|n| n.ends_with("CurrentTenant>")),
                "{names:?}"
            );
        }
        other => panic!("expected a sentinel abort, got {other:?}"),
    }
}

fn failed_fairing(rocket: rocket::Rocket<rocket::Build>) {
    let Err(error) = Client::tracked(rocket) else {
        panic!("launch must abort");
    };
    match error.kind() {
        ErrorKind::FailedFairings(failed) => {
            assert!(
                failed.iter().any(|f| f.name == "diesel-tenancy"),
                "{failed:?}"
            )
        }
        other => panic!("expected a failed fairing, got {other:?}"),
    }
}

#[test]
fn missing_or_bad_configuration_aborts_the_launch() {
    let db = TestDb::new();
    let no_url = rocket::custom(figment(&db.url).merge(("databases.hotel", ())));
    failed_fairing(no_url.attach(fairing()));
    let typo = figment(&db.url).merge(("tenancy.headr", "X"));
    failed_fairing(app(typo, fairing()));
    let missing_db = common::base_url().replace("/test?", "/dt_no_such_database?");
    failed_fairing(app(figment(&missing_db), fairing()));
}

#[test]
fn a_failing_tenant_migration_aborts_the_launch_unless_tenant_migrations_are_off() {
    let db = TestDb::new();
    db.router(1)
        .create_tenant(&NewTenant::named("demo1"))
        .unwrap();
    failed_fairing(app(
        figment(&db.url),
        diesel_tenancy::rocket::TenancyFairing::new("hotel", BROKEN),
    ));
    let off = diesel_tenancy::rocket::TenancyFairing::new("hotel", BROKEN).migrate_tenants(false);
    let client = Client::tracked(app(figment(&db.url), off)).unwrap();
    assert_eq!(get_as(&client, "/hotels", "demo1").1, "[]");
}

/// A real server on a loopback port: shutdown stops the listener and drops the pool, and
/// a header that is not UTF-8 (which Rocket drops before routing) is a 400, not a 500.
#[test]
fn a_served_instance_shuts_down_cleanly() {
    let db = TestDb::new();
    db.router(1)
        .create_tenant(&NewTenant::named("demo1"))
        .unwrap();
    let figment = figment(&db.url)
        .merge(("port", 0))
        .merge(("address", "127.0.0.1"));
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let rocket = app(figment, fairing()).attach(AdHoc::on_liftoff("port", move |r| {
        Box::pin(async move {
            let _ = port_tx.send((r.config().port, r.shutdown()));
        })
    }));
    let server = std::thread::spawn(move || rocket::execute(rocket.launch()).map_err(Box::new));
    let (port, shutdown) = port_rx.recv_timeout(Duration::from_secs(30)).unwrap();

    let raw = |header: &[u8]| -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request =
            b"GET /hotels HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_vec();
        request.extend_from_slice(header);
        request.extend_from_slice(b"\r\n");
        stream.write_all(&request).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let good = raw(b"Tenant-Header: demo1\r\n");
    assert!(good.starts_with("HTTP/1.1 200"), "{good}");
    let not_utf8 = raw(b"Tenant-Header: d\xffmo1\r\n");
    assert!(not_utf8.starts_with("HTTP/1.1 400"), "{not_utf8}");
    assert!(not_utf8.ends_with(NOT_FOUND_BODY), "{not_utf8}");

    shutdown.notify();
    let stopped = server.join().unwrap().unwrap();
    let tenancy = stopped.state::<Tenancy>().unwrap();
    // Rocket 0.5 sometimes returns from `launch()` without running shutdown fairings;
    // the fairing's shutdown watcher then releases everything shortly after.
    assert!(eventually(Duration::from_secs(5), || {
        !tenancy.cache().is_listening() && tenancy.router().is_err_and(|e| e.is_unavailable())
    }));
    // The pool and the listener's connection are closed: no backend of ours is left.
    let mut admin = PgConnection::establish(&db.url).unwrap();
    assert!(eventually(Duration::from_secs(5), || other_backends(
        &mut admin
    ) == 0));
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn other_backends(conn: &mut PgConnection) -> i64 {
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .get_result::<Count>(conn)
    .unwrap()
    .n
}

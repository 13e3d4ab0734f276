//! The registry cache across processes: two Rocket instances on one database see each
//! other's tenant changes within a second, and a listener that loses its connection
//! reconnects and reloads.

mod common;
mod rocket_support;

use std::time::Duration;

use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_tenancy::{DomainName, NewTenant, TenantRegistry};
use rocket::http::Status;
use rocket::local::blocking::Client;
use rocket_support::*;

/// The bound for a change to reach another process.
const WITHIN: Duration = Duration::from_secs(1);

fn resolves(client: &Client, tenant: &str) -> bool {
    get_as(client, "/whoami", tenant).0 == Status::Ok
}

#[test]
fn a_tenant_created_or_deleted_in_one_instance_resolves_or_stops_in_the_other() {
    let db = TestDb::new();
    let a = client(&db.url);
    let b = client(&db.url);
    assert!(!resolves(&b, "late"));

    // Created through instance A's router, which does not touch B's cache.
    let router = tenancy(&a).router().unwrap();
    router.create_tenant(&NewTenant::named("late")).unwrap();
    assert!(
        eventually(WITHIN, || resolves(&b, "late")),
        "B saw the new tenant"
    );
    assert!(eventually(WITHIN, || resolves(&a, "late")), "A saw it too");

    // A domain added in A is matched by host in B.
    router
        .pool()
        .with_public(|c| {
            TenantRegistry::add_domain(c, "late", &DomainName::new("late.example.com")?, true)
        })
        .unwrap();
    assert!(eventually(WITHIN, || {
        get_with(&b, "/whoami", Some(("Host", "late.example.com"))).0 == Status::Ok
    }));

    router.delete_tenant("late", true).unwrap();
    assert!(
        eventually(WITHIN, || !resolves(&b, "late")),
        "B forgot the tenant"
    );
    assert_eq!(
        get_as(&b, "/hotels", "late"),
        (Status::BadRequest, NOT_FOUND_BODY.into())
    );
    assert_eq!(
        get_with(&b, "/whoami", Some(("Host", "late.example.com"))).0,
        Status::BadRequest
    );
}

#[test]
fn a_tenant_created_in_process_resolves_at_once_through_tenancy() {
    let db = TestDb::new();
    let a = client(&db.url);
    let created = rocket::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(tenancy(&a).create_tenant(NewTenant::named("Now")))
        .unwrap();
    assert_eq!(created.schema_name.as_str(), "now");
    // `create_tenant` waited for the reload: no polling needed.
    assert!(resolves(&a, "now"));
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = BigInt)]
    pid: i64,
}

/// Backends of this database's registry listeners.
fn listener_pids(conn: &mut PgConnection) -> Vec<i64> {
    diesel::sql_query(
        "SELECT pid::int8 AS pid FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind::<Text, _>("diesel_tenancy_listener")
    .load::<Pid>(conn)
    .unwrap()
    .into_iter()
    .map(|p| p.pid)
    .collect()
}

#[test]
fn a_listener_that_loses_its_connection_reconnects_and_reloads() {
    let db = TestDb::new();
    let b = client(&db.url);
    let mut admin = PgConnection::establish(&db.url).unwrap();
    let before = listener_pids(&mut admin);
    assert_eq!(before.len(), 1, "one listener connection per instance");
    admin
        .batch_execute(&format!("SELECT pg_terminate_backend({})", before[0]))
        .unwrap();
    // A change made while the listener is down or reconnecting is not lost: the
    // reconnect reloads everything.
    let router = db.router(1);
    router
        .create_tenant(&NewTenant::named("after_loss"))
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || resolves(
        &b,
        "after_loss"
    )));
    assert!(eventually(Duration::from_secs(10), || tenancy(&b)
        .cache()
        .is_listening()));
    let after = listener_pids(&mut admin);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    // And it listens again on the new connection.
    router.delete_tenant("after_loss", true).unwrap();
    assert!(eventually(WITHIN, || !resolves(&b, "after_loss")));
}

#[test]
fn dropping_the_instance_stops_the_listener_and_closes_its_connection() {
    let db = TestDb::new();
    let mut admin = PgConnection::establish(&db.url).unwrap();
    let client = client(&db.url);
    assert_eq!(listener_pids(&mut admin).len(), 1);
    drop(client);
    // The listener thread was joined on drop, so its connection is already closed or
    // closing on the server side.
    assert!(eventually(Duration::from_secs(5), || listener_pids(
        &mut admin
    )
    .is_empty()));
}

//! The `testing` feature's helpers on the real PostgreSQL: throwaway databases (also
//! dropped after a panic), tenants in one call, tenant-aware Rocket clients.

mod common;
mod rocket_support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::TENANT;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_tenancy::testing::{
    database_name, server_url, with_database, AsyncTenantClient, TenantClient, TestDatabase,
    TestTenancy, NAME_PREFIX, TEMPLATE_PREFIX,
};
use diesel_tenancy::{DomainName, Error, NewTenant, TenantHooks, TenantRegistry};
use rocket::http::Status;
use rocket::local::blocking::Client;

/// The oid of the database `name` on the test server, if it exists.
fn database_oid(name: &str) -> Option<i64> {
    let mut admin = PgConnection::establish(&with_database(&server_url(), "postgres").unwrap())
        .expect("a maintenance connection");
    diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "SELECT oid::int8 FROM pg_database WHERE datname = ",
    )
    .bind::<Text, _>(name)
    .get_result(&mut admin)
    .optional()
    .unwrap()
}

/// Whether the database `name` exists on the test server.
fn exists(name: &str) -> bool {
    database_oid(name).is_some()
}

#[test]
fn a_test_database_is_its_own_and_goes_when_dropped() {
    let a = TestDatabase::new();
    let b = TestDatabase::new();
    assert_ne!(a.name(), b.name());
    assert!(a.name().starts_with(NAME_PREFIX));
    assert_eq!(database_name(a.url()).unwrap(), a.name());
    assert!(exists(a.name()) && exists(b.name()));
    let pool = a.pool();
    let tables: i64 = pool
        .with_public(|c| {
            Ok::<_, Error>(
                diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                )
                .get_result(c)?,
            )
        })
        .unwrap();
    assert_eq!(tables, 0, "empty");
    let name = a.name().to_owned();
    // Dropped while the pool still holds a connection: WITH (FORCE) closes it.
    drop(a);
    assert!(!exists(&name));
    drop(pool);
}

#[test]
fn a_test_database_is_dropped_when_its_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let tenancy = TestTenancy::new(TENANT);
        let _conn = tenancy.pool().public().unwrap();
        tx.send(tenancy.database().name().to_owned()).unwrap();
        panic!("the test failed");
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let name = rx.recv().unwrap();
    assert!(!exists(&name), "{name} was dropped during unwinding");
}

#[test]
fn a_reserved_database_is_dropped_if_the_code_under_test_made_it() {
    let reserved = TestDatabase::reserve(&server_url()).unwrap();
    let name = reserved.name().to_owned();
    assert!(!exists(&name));
    diesel_tenancy::database::create_database_if_missing(reserved.url()).unwrap();
    assert!(exists(&name));
    drop(reserved);
    assert!(!exists(&name));
    // Never created: dropping is a no-op.
    drop(TestDatabase::reserve(&server_url()).unwrap());
}

#[test]
fn no_server_is_a_clear_message() {
    let dead = "postgres://postgres:secret@127.0.0.1:1/postgres?sslmode=disable";
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        TestTenancy::builder(TENANT).server_url(dead).start()
    }))
    .unwrap_err();
    let message = panicked
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message
            .starts_with("no PostgreSQL to test against at postgres://postgres:***@127.0.0.1:1/"),
        "{message}"
    );
    assert!(message.contains("set DATABASE_URL"), "{message}");
    assert!(!message.contains("secret"), "{message}");
    assert!(matches!(
        TestDatabase::create(dead),
        Err(Error::Connection(_))
    ));
}

#[test]
fn a_tenant_in_one_call_with_the_applications_router() {
    let tenancy = TestTenancy::builder(TENANT)
        .router(|router| {
            router.hooks(TenantHooks::new().after_create(|conn, _| {
                diesel::sql_query(
                    "INSERT INTO hotels (name, location, description) VALUES ('Seed', 'x', 'y')",
                )
                .execute(conn)?;
                Ok(())
            }))
        })
        .pool(diesel_tenancy::TenantPool::builder().max_size(2))
        .build()
        .unwrap();
    let acme = tenancy.create_tenant("Acme");
    assert_eq!(acme.schema_name.as_str(), "acme");
    let seeded: Vec<String> = tenancy
        .pool()
        .with_tenant(&acme.schema_name, |c| {
            Ok::<_, Error>(
                rocket_support::hotels::table
                    .select(rocket_support::hotels::name)
                    .load(c)?,
            )
        })
        .unwrap();
    assert_eq!(seeded, ["Seed"], "the router's hook ran");
    let with_domain = tenancy.create_tenant_with(&NewTenant {
        domains: vec![DomainName::new("globex.test").unwrap()],
        ..NewTenant::named("Globex")
    });
    let domains = tenancy
        .pool()
        .with_public(|c| TenantRegistry::domains_of(c, &with_domain))
        .unwrap();
    assert_eq!(domains[0].domain, "globex.test");

    let taken = catch_unwind(AssertUnwindSafe(|| tenancy.create_tenant("ACME"))).unwrap_err();
    let message = taken.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.starts_with("could not create test tenant `ACME`: "),
        "{message}"
    );
}

fn client(tenancy: &TestTenancy) -> Client {
    let figment = tenancy.figment("hotel").merge(("log_level", "critical"));
    Client::tracked(rocket_support::app(figment, rocket_support::fairing())).expect("launch")
}

#[test]
fn tenant_clients_name_their_tenant_by_header_or_host() {
    let tenancy = TestTenancy::new(TENANT);
    tenancy.create_tenant("acme");
    let client = client(&tenancy);
    // Created after launch, through another pool: the client reloads the app's cache.
    tenancy.create_tenant_with(&NewTenant {
        domains: vec![DomainName::new("globex.test").unwrap()],
        ..NewTenant::named("globex")
    });
    let acme = TenantClient::header(&client, "acme");
    let globex = TenantClient::host(&client, "globex.test");
    assert_eq!(acme.carries().name(), "Tenant-Header");
    assert_eq!(acme.carries().value(), "acme");
    assert_eq!(globex.carries().name(), "Host");

    let added = acme.post("/hotels/Ritz").dispatch();
    assert_eq!(added.status(), Status::Ok);
    let acme_hotels = acme.get("/hotels").dispatch().into_string().unwrap();
    let globex_hotels = globex.get("/hotels").dispatch().into_string().unwrap();
    assert_eq!(
        (acme_hotels.as_str(), globex_hotels.as_str()),
        (r#"["Ritz"]"#, "[]")
    );
    assert_eq!(
        globex.get("/schema").dispatch().into_string().unwrap(),
        "globex"
    );
    let anonymous = acme.client().get("/hotels").dispatch();
    assert_eq!(anonymous.status(), Status::BadRequest, "no tenant named");
}

#[test]
fn a_tenant_client_follows_the_applications_resolution_settings() {
    let tenancy = TestTenancy::new(TENANT);
    tenancy.create_tenant("acme");
    let figment = tenancy
        .figment("hotel")
        .merge(("log_level", "critical"))
        .merge(("tenancy.header", "X-Tenant"))
        .merge(("tenancy.host", false));
    let client = Client::tracked(rocket_support::app(figment, rocket_support::fairing())).unwrap();
    let acme = TenantClient::header(&client, "acme");
    assert_eq!(acme.carries().name(), "X-Tenant");
    assert_eq!(
        acme.get("/schema").dispatch().into_string().unwrap(),
        "acme"
    );
    let host = catch_unwind(AssertUnwindSafe(|| {
        TenantClient::host(&client, "acme.test")
    }))
    .unwrap_err();
    let message = host.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("does not resolve tenants by host"),
        "{message}"
    );
}

#[rocket::async_test]
async fn the_async_client_too() {
    let tenancy = TestTenancy::new(TENANT);
    tenancy.create_tenant("acme");
    let figment = tenancy.figment("hotel").merge(("log_level", "critical"));
    let client = rocket::local::asynchronous::Client::tracked(rocket_support::app(
        figment,
        rocket_support::fairing(),
    ))
    .await
    .unwrap();
    tenancy.create_tenant("late");
    let late = AsyncTenantClient::header(&client, "late").await;
    let response = late.get("/schema").dispatch().await;
    assert_eq!(response.into_string().await.unwrap(), "late");
}

/// Drops the named template databases when dropped, also after a panic.
struct Templates(Vec<String>);

impl Drop for Templates {
    fn drop(&mut self) {
        for name in &self.0 {
            let url = with_database(&server_url(), name).unwrap();
            if let Err(e) = diesel_tenancy::database::drop_database(&url) {
                eprintln!("could not drop template {name}: {e}");
            }
        }
    }
}

#[test]
fn a_template_is_built_once_and_copied_with_its_spares() {
    let mut made = Templates(Vec::new());
    let build = || TestTenancy::builder(TENANT).template(2).build().unwrap();
    let first = build();
    let name = first.template().unwrap().to_owned();
    made.0.push(name.clone());
    assert!(name.starts_with(TEMPLATE_PREFIX), "{name}");
    let built = database_oid(&name).expect("the template exists");
    assert_eq!(first.router().spare_count().unwrap(), 2);
    let a = first.create_tenant("a");
    assert_eq!(
        first.router().spare_count().unwrap(),
        1,
        "a spare was claimed"
    );
    first
        .pool()
        .with_tenant(&a.schema_name, |c| {
            rocket_support::hotels::table
                .count()
                .get_result::<i64>(c)
                .map_err(Error::from)
        })
        .expect("the claimed spare holds the tenant set");

    let second = build();
    assert_eq!(second.template(), Some(name.as_str()));
    assert_eq!(database_oid(&name), Some(built), "copied, not built again");
    assert_eq!(
        second.router().spare_count().unwrap(),
        2,
        "each copy has its own spares"
    );
    second.create_tenant("a");

    // Another migration set is another template.
    let public = TestTenancy::builder(TENANT)
        .router(|r| r.public_tenant(true))
        .template(1)
        .build()
        .unwrap();
    made.0.push(public.template().unwrap().to_owned());
    assert_ne!(public.template(), Some(name.as_str()));
    assert_eq!(public.router().spare_count().unwrap(), 1);
}

/// What a test's setup costs: a test tenancy and two tenants, with and without a
/// template (two spares), for the one-table hotel set and a 20-table set. A
/// measurement, not a check:
/// `cargo test --all-features --test testing -- --ignored --nocapture setup_cost`.
#[test]
#[ignore]
fn setup_cost() {
    const WIDE: diesel_migrations::EmbeddedMigrations =
        diesel_migrations::embed_migrations!("tests/fixtures/wide_tenant");
    let mut made = Templates(Vec::new());
    let runs = 10;
    for (set, wide) in [("hotel (1 table)", false), ("wide (20 tables)", true)] {
        for template in [false, true] {
            let mut setup = std::time::Duration::ZERO;
            let mut tenants = std::time::Duration::ZERO;
            let mut total = std::time::Duration::ZERO;
            for i in 0..=runs {
                let t0 = std::time::Instant::now();
                let mut builder = match wide {
                    false => TestTenancy::builder(TENANT),
                    true => TestTenancy::builder(WIDE),
                };
                if template {
                    builder = builder.template(2);
                }
                let tenancy = builder.build().unwrap();
                let t1 = std::time::Instant::now();
                tenancy.create_tenant("a");
                tenancy.create_tenant("b");
                let t2 = std::time::Instant::now();
                if let Some(name) = tenancy.template() {
                    if !made.0.iter().any(|n| n == name) {
                        made.0.push(name.to_owned());
                    }
                }
                drop(tenancy);
                if i > 0 {
                    // The first run builds the template (or warms up): not counted.
                    setup += t1 - t0;
                    tenants += t2 - t1;
                    total += t0.elapsed();
                }
            }
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / runs as f64;
            eprintln!(
                "{set}, template={template}: setup {:.1} ms, two tenants {:.1} ms, \
                 with the drop {:.1} ms per test ({runs} runs)",
                ms(setup),
                ms(tenants),
                ms(total),
            );
        }
    }
}

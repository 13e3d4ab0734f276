//! Test helpers for applications (feature `testing`), as django-tenants' `TenantTestCase`
//! and `TenantClient`.
//!
//! - [`TestDatabase`]: an empty database of its own per test, dropped when the value
//!   drops, also when the test panics.
//! - [`TestTenancy`]: a test database with the shared set applied and a [`SyncRouter`]
//!   over it; [`create_tenant`](TestTenancy::create_tenant) makes a tenant in one call
//!   (schema, tenant migrations, the application's hooks).
//! - With the `rocket` feature, [`TenantClient`] and [`AsyncTenantClient`]: views of a
//!   `rocket::local` client whose requests name a tenant, by the tenant header or by
//!   `Host`; and [`TestTenancy::figment`] to point the application at the test database.
//!
//! ```toml
//! [dev-dependencies]
//! diesel-tenancy = { version = "0.1", features = ["rocket", "testing"] }
//! ```
//!
//! ```no_run
//! use diesel::prelude::*;
//! use diesel_migrations::{embed_migrations, EmbeddedMigrations};
//! use diesel_tenancy::rocket::{ApiError, TenancyFairing, TenantDb};
//! use diesel_tenancy::testing::{TenantClient, TestTenancy};
//! use rocket::local::blocking::Client;
//! use rocket::{get, routes};
//!
//! const TENANT: EmbeddedMigrations = embed_migrations!("migrations_tenant");
//!
//! #[get("/schema")]
//! async fn schema(db: TenantDb) -> Result<String, ApiError> {
//!     db.run(|c| Ok(diesel::dsl::sql::<diesel::sql_types::Text>("SELECT current_schema()::text")
//!         .get_result(c)?))
//!         .await
//! }
//!
//! fn app(figment: rocket::figment::Figment) -> rocket::Rocket<rocket::Build> {
//!     rocket::custom(figment)
//!         .attach(TenancyFairing::new("app", TENANT))
//!         .mount("/", routes![schema])
//! }
//!
//! // A test (`#[test]`) in the application's `tests/`:
//! fn each_tenant_gets_its_own_schema() {
//!     let tenancy = TestTenancy::new(TENANT);           // dropped at the end, or on panic
//!     tenancy.create_tenant("acme");
//!     tenancy.create_tenant("globex");
//!     let client = Client::tracked(app(tenancy.figment("app"))).unwrap();
//!     let acme = TenantClient::header(&client, "acme"); // Tenant-Header: acme
//!     let globex = TenantClient::header(&client, "globex");
//!     assert_eq!(acme.get("/schema").dispatch().into_string().unwrap(), "acme");
//!     assert_eq!(globex.get("/schema").dispatch().into_string().unwrap(), "globex");
//! }
//! # fn main() { each_tenant_gets_its_own_schema() }
//! ```
//!
//! # The server
//!
//! Databases are created on the server `DATABASE_URL` names (only its host, port, user,
//! password and parameters are used: the database it names is never touched), or on
//! [`DEFAULT_SERVER_URL`], `postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable`.
//! The user must be allowed to create databases. When no server answers, the helpers
//! panic with a message saying where they looked and how to point them elsewhere.
//!
//! # Parallel tests
//!
//! `cargo test` runs tests in parallel: each test gets its own database, named
//! `dt_test_<pid>_<counter>_<random>`, so tests, test binaries and machines sharing one
//! server never collide, and schemas (tenant names) can repeat from test to test.
//! Cluster-wide objects a test creates itself (roles) are the test's to name uniquely
//! and drop.
//!
//! # Cost
//!
//! Measured on the project's test machine (PostgreSQL 15 on loopback, `fsync` on, 2
//! cores): a test tenancy with two tenants of the one-table hotel set costs 0.1–0.2 s
//! with the drop (creating the database ~35 ms, the shared set ~30 ms including the
//! pool, ~5–10 ms per tenant, the drop ~15 ms; more under load). Creating tables is what
//! costs, so a larger migration set costs more per test.
//! [`TestTenancyBuilder::template`] builds the shared set and spare tenant schemas once
//! per test executable and copies them: each test then pays a database copy instead of
//! the shared migrations, and its first tenants are a rename
//! (`cargo test --all-features --test testing -- --ignored --nocapture setup_cost`
//! prints both; figures in BENCHMARKS.md).
//!
//! # Leftovers
//!
//! A test process that is killed (or a test profile built with `panic = "abort"`) cannot
//! drop its databases. They are the ones named [`NAME_PREFIX`]`…`; list them with
//! `psql -c "SELECT datname FROM pg_database WHERE datname LIKE 'dt\_test\_%'"`.
//!
//! [`SyncRouter`]: crate::SyncRouter
//! [`SyncRouter::prepare_spares`]: crate::SyncRouter::prepare_spares

#[cfg(feature = "rocket")]
mod client;
mod database;
mod template;
mod tenancy;

pub use database::{server_url, TestDatabase, DEFAULT_SERVER_URL, NAME_PREFIX};

/// URL helpers for tests that name databases on the test server: the database a
/// `postgres://` URL names, and the same URL naming another database.
pub use crate::database_url::{database_name, with_database};
pub use template::{drop_templates, TEMPLATE_PREFIX};
pub use tenancy::{TestTenancy, TestTenancyBuilder};

#[cfg(feature = "rocket")]
#[cfg_attr(docsrs, doc(cfg(feature = "rocket")))]
pub use client::{AsyncTenantClient, TenantClient};

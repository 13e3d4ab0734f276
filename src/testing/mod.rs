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
//! Measured on the project's test machine (PostgreSQL 15 on loopback, `fsync` on): creating
//! the database takes about 35 ms, applying the crate's shared set about 30 ms
//! (including building the pool), each tenant of a one-table tenant set about 5 ms, and
//! dropping the database about 15 ms: under 0.1 s per test. A larger tenant set costs
//! more per tenant (creating tables is what costs); spare schemas
//! ([`SyncRouter::prepare_spares`]) do not help within one test, since they are built the
//! same way.
//!
//! # Leftovers
//!
//! A test process that is killed (or a test profile built with `panic = "abort"`) cannot
//! drop its databases. They are the ones named [`NAME_PREFIX`]`…`; list them with
//! `psql -c "SELECT datname FROM pg_database WHERE datname LIKE 'dt\_test\_%'"`.
//!
//! [`SyncRouter`]: crate::SyncRouter
//! [`SyncRouter::prepare_spares`]: crate::SyncRouter::prepare_spares

mod database;
mod tenancy;

pub use database::{server_url, TestDatabase, DEFAULT_SERVER_URL, NAME_PREFIX};
pub use tenancy::{TestTenancy, TestTenancyBuilder};

#[cfg(feature = "rocket")]
#[cfg_attr(docsrs, doc(cfg(feature = "rocket")))]
pub use crate::rocket::test_client::{AsyncTenantClient, TenantClient};

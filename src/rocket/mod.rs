//! Rocket integration (feature `rocket`): a fairing, request guards that resolve the
//! tenant per request, JSON catchers, and `rocket_sync_db_pools` interop.
//!
//! # Rocket Quickstart
//!
//! 1. Turn the feature on. Rocket's macros expand to `::rocket::…` paths, so the app
//!    depends on `rocket` too (the same 0.5 release; `diesel_tenancy::rocket::rocket`
//!    re-exports the one this crate uses):
//!
//!    ```toml
//!    [dependencies]
//!    diesel-tenancy = { version = "0.1", features = ["rocket"] }
//!    rocket = { version = "0.5.2", features = ["json"] }
//!    diesel = { version = "2.3", features = ["postgres"] }
//!    diesel_migrations = "2.3"
//!    ```
//!
//! 2. Configure the database and, if the defaults do not suit, the tenancy. Every key
//!    but `url` is optional; the values shown are the defaults.
//!
//!    ```toml
//!    [default.databases.hotel]
//!    url = "postgres://postgres@127.0.0.1/hotel"
//!    pool_size = 10          # connections
//!    timeout = 5             # seconds a request waits for a connection, then 503
//!    mode = "session"        # or "transaction_local" behind PgBouncer's transaction pooling
//!
//!    [default.tenancy]
//!    header = "Tenant-Header"  # the tenant header's name; false turns the rule off
//!    host = true               # match the Host against registered domains
//!    path_prefix = false       # "t" (or true) reads /t/<tenant>/… and strips it
//!    migrate_tenants = true    # apply pending tenant migrations at launch
//!    migrate_jobs = 1          # tenants migrated at once at launch
//!    public_tenant = false     # public holds the tenant tables; tenant routes accept `public`
//!    trusted_proxies = []      # proxies whose Forwarded host= / X-Forwarded-Host are read
//!    max_registry_age = 5      # seconds: no request is resolved from older registry data
//!    tenant_roles = false      # every tenant request runs as its tenant's database role
//!                              # (TenantRoles::new(); see TenantPoolBuilder::tenant_roles)
//!    ```
//!
//!    Environment variables override the file, as everywhere in Rocket:
//!    `ROCKET_DATABASES='{hotel={url="postgres://…"}}'`,
//!    `ROCKET_TENANCY='{public_tenant=true}'`. Code can set the same options as defaults
//!    with [`TenancyFairing`]'s builder methods; configuration wins over code.
//!
//! 3. Attach the fairing with the tenant migrations, mount routes that use the guards,
//!    and register the JSON catchers:
//!
//!    ```rust,no_run
//!    use diesel::prelude::*;
//!    use diesel_migrations::{embed_migrations, EmbeddedMigrations};
//!    use diesel_tenancy::rocket::{catchers, ApiError, CurrentTenant, PublicDb, TenancyFairing, TenantDb};
//!    use diesel_tenancy::TenantRegistry;
//!    use rocket::serde::json::Json;
//!    use rocket::{get, routes};
//!
//!    const TENANT_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations_tenant");
//!
//!    diesel::table! {
//!        hotels (id) {
//!            id -> BigInt,
//!            name -> Varchar,
//!        }
//!    }
//!
//!    /// Runs in the request's tenant schema: `hotels` is that tenant's table.
//!    #[get("/hotels")]
//!    async fn list(db: TenantDb) -> Result<Json<Vec<String>>, ApiError> {
//!        db.run(|conn| Ok(hotels::table.select(hotels::name).load(conn)?))
//!            .await
//!            .map(Json)
//!    }
//!
//!    /// The resolved tenant: `{"id":1,"name":"demo1","schema":"demo1"}`.
//!    #[get("/tenant")]
//!    fn whoami(tenant: CurrentTenant) -> Json<CurrentTenant> {
//!        Json(tenant)
//!    }
//!
//!    /// Runs in `public`, whatever tenant the request names.
//!    #[get("/tenants")]
//!    async fn tenants(db: PublicDb) -> Result<Json<Vec<String>>, ApiError> {
//!        db.run(|conn| Ok(TenantRegistry::list(conn)?.into_iter().map(|t| t.name).collect()))
//!            .await
//!            .map(Json)
//!    }
//!
//!    #[rocket::main]
//!    async fn main() -> Result<(), rocket::Error> {
//!        rocket::build()
//!            .attach(TenancyFairing::new("hotel", TENANT_MIGRATIONS))
//!            .mount("/", routes![list, whoami, tenants])
//!            .register("/", catchers())
//!            .launch()
//!            .await?;
//!        Ok(())
//!    }
//!    ```
//!
//! 4. Call it: `curl -H 'Tenant-Header: demo1' localhost:8000/hotels`, or register a
//!    domain for the tenant and call `http://demo1.example.com/hotels`.
//!
//! # Resolution
//!
//! Each request is resolved once, from memory ([`RegistryCache`](crate::RegistryCache),
//! kept fresh across processes with LISTEN/NOTIFY), by these rules in order: the tenant
//! header, the host, the path prefix (off by default), then custom
//! [`TenantResolver`](crate::resolve::TenantResolver)s added with
//! [`TenancyFairing::resolver`]. The first rule that names a tenant decides; an
//! unregistered host names nothing, so the next rule is tried. A request that could be
//! read two ways (a repeated tenant header or `Host`, a `Host` with user info or a bad
//! port) is 400 whichever rule decides; the host is a trusted proxy's forwarded host,
//! else the target's authority, else `Host` (see [`resolve`](crate::resolve)).
//!
//! No request is resolved from registry data older than `max_registry_age`: past it the
//! registry is reloaded through the pool, else the answer is 503
//! `{"detail":"Tenant registry unavailable, try again later"}`. A tenant's route is pinned
//! to its schema's OID, which every checkout proves, so a tenant deleted (or deleted and
//! created again on its schema name) a moment ago is 400 "Tenant not found", never
//! another tenant's rows ([`TenantDb::run`]).
//!
//! | request | [`CurrentTenant`] / [`TenantDb`] | [`PublicDb`] |
//! |---|---|---|
//! | a registered tenant (any case, trimmed) | that tenant | `public` |
//! | `public` (any case) | 400 `Tenant not found`; `public` with the public-tenant option | `public` |
//! | nothing, or an unknown tenant | 400 `{"detail":"Tenant not found"}` | `public` |
//! | a malformed header (control characters, over 255 bytes, sent more than once), two `Host`s, a `Host` with user info or a bad port | 400 with a `detail` | `public` |
//! | registry data older than its bound and no reload through the pool | 503 `Tenant registry unavailable, try again later` | `public` |
//! | no connection within `timeout`, database down | 503 from `run` | 503 from `run` |
//!
//! Header values that are not UTF-8 never reach the guards: Rocket drops such headers
//! (with a warning) before routing, so the request names no tenant by header.
//!
//! # Errors as JSON
//!
//! Guards fail with an [`ApiError`]; register [`catchers()`] so that the response body
//! is `{"detail": …}` with the guard's detail. Return `Result<_, ApiError>` from
//! handlers: `From` maps a pool timeout or a lost database to 503, a client mistake to
//! 4xx, and only the rest to 500.
//!
//! # `rocket_sync_db_pools`
//!
//! [`ManagedConnection`](crate::ManagedConnection) implements `Poolable`, reading
//! `databases.<name>.url`, `pool_size`, `timeout` and `mode`. Its connections expose a
//! `PgConnection` only inside a scope, so such a pool hands out no unscoped connection:
//!
//! ```rust,no_run
//! use diesel::prelude::*;
//! use diesel_tenancy::rocket::{ApiError, CurrentTenant};
//! use diesel_tenancy::ManagedConnection;
//! use rocket::get;
//! use rocket_sync_db_pools::database;
//!
//! #[database("hotel")]
//! struct Db(ManagedConnection);
//!
//! #[get("/count")]
//! async fn count(db: Db, tenant: CurrentTenant) -> Result<String, ApiError> {
//!     let scope = tenant.scope().clone();
//!     let n = db
//!         .run(move |c| {
//!             c.with_scope(&scope, |conn| {
//!                 let count = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM hotels");
//!                 Ok::<i64, ApiError>(count.get_result(conn)?)
//!             })
//!         })
//!         .await?;
//!     Ok(n.to_string())
//! }
//! # fn main() {}
//! ```
//!
//! # Async handlers (feature `rocket-async`)
//!
//! With `tenancy.async_pool = true` (or [`TenancyFairing::async_pool`]) the fairing also
//! builds an [`AsyncTenantPool`](crate::AsyncTenantPool), with the pool settings above
//! and connections of its own. `AsyncTenantDb` checks out from it in the request's
//! decided scope, so the handler awaits diesel-async queries on its own task (no
//! blocking-pool handoff); it fails like [`TenantDb`], and re-decides a stale route the
//! same way. [`TenantDb`] and [`PublicDb`] keep working beside it.
//!
#![cfg_attr(not(feature = "rocket-async"), doc = "```rust,ignore")]
#![cfg_attr(feature = "rocket-async", doc = "```rust,no_run")]
//! use diesel::prelude::*;
//! use diesel_migrations::{embed_migrations, EmbeddedMigrations};
//! use diesel_tenancy::diesel_async::RunQueryDsl;
//! use diesel_tenancy::rocket::{catchers, ApiError, AsyncTenantDb, TenancyFairing};
//! use rocket::futures::FutureExt;
//! use rocket::serde::json::Json;
//! use rocket::{get, post, routes};
//!
//! const TENANT_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations_tenant");
//!
//! diesel::table! {
//!     hotels (id) {
//!         id -> BigInt,
//!         name -> Varchar,
//!     }
//! }
//!
//! /// The handler's own connection: commit it, or in `TransactionLocal` mode its work
//! /// is rolled back when it drops.
//! #[get("/hotels")]
//! async fn list(db: AsyncTenantDb) -> Result<Json<Vec<String>>, ApiError> {
//!     let mut conn = db.connection().await?;
//!     let names = hotels::table.select(hotels::name).load(&mut conn).await?;
//!     conn.commit().await?;
//!     Ok(Json(names))
//! }
//!
//! /// `run`: committed when the closure returns `Ok`, rolled back otherwise.
//! #[post("/hotels/<name>")]
//! async fn add(db: AsyncTenantDb, name: String) -> Result<Json<i64>, ApiError> {
//!     db.run(|conn| {
//!         async move {
//!             let id = diesel::insert_into(hotels::table)
//!                 .values(hotels::name.eq(name))
//!                 .returning(hotels::id)
//!                 .get_result(conn)
//!                 .await?;
//!             Ok(Json(id))
//!         }
//!         .boxed()
//!     })
//!     .await
//! }
//!
//! #[rocket::main]
//! async fn main() -> Result<(), rocket::Error> {
//!     rocket::build()
//!         .attach(TenancyFairing::new("hotel", TENANT_MIGRATIONS).async_pool(true))
//!         .mount("/", routes![list, add])
//!         .register("/", catchers())
//!         .launch()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! Launching a route that uses [`CurrentTenant`], [`TenantDb`] or [`PublicDb`] without the
//! fairing aborts with an error naming the missing fairing (the guards are `Sentinel`s);
//! `AsyncTenantDb` also aborts the launch when the async pool is off.

mod api_error;
#[cfg(feature = "rocket-async")]
mod async_db;
mod config;
mod fairing;
mod guards;
mod state;
mod sync_db_pools;

pub use api_error::{catchers, ApiError, TENANT_NOT_FOUND};
#[cfg(feature = "rocket-async")]
#[cfg_attr(docsrs, doc(cfg(feature = "rocket-async")))]
pub use async_db::AsyncTenantDb;
pub use fairing::TenancyFairing;
pub use guards::{CurrentTenant, PublicDb, TenantDb};
pub use state::Tenancy;

pub use ::rocket;
pub use ::rocket_sync_db_pools;

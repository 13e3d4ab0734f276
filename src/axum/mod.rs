//! axum integration (feature `axum`): a tower layer that resolves the tenant of every
//! request, and extractors for the tenant and its connections from the async pool.
//!
//! The layer decides a request exactly as the [Rocket face](crate::rocket) does (the
//! same [`ResolverChain`](crate::resolve::ResolverChain), registry cache, route pinning
//! and errors): the same requests get the same tenant, the same 400
//! `{"detail":"Tenant not found"}` and the same 503s.
//!
//! # axum Quickstart
//!
//! 1. Turn the feature on:
//!
//!    ```toml
//!    [dependencies]
//!    diesel-tenancy = { version = "0.1", features = ["axum"] }
//!    axum = "0.8"
//!    tokio = { version = "1", features = ["full"] }
//!    diesel = { version = "2.3", features = ["postgres"] }
//!    diesel_migrations = "2.3"
//!    ```
//!
//! 2. Build the sync router (migrations, tenant admin and registry reloads; a small pool
//!    will do) and the async pool, start the [`Tenancy`], add its layer, and use the
//!    extractors:
//!
//!    ```rust,no_run
//!    use axum::routing::get;
//!    use axum::{Json, Router};
//!    use diesel::prelude::*;
//!    use diesel_async::RunQueryDsl;
//!    use diesel_migrations::{embed_migrations, EmbeddedMigrations};
//!    use diesel_tenancy::axum::{ApiError, PublicDb, Tenancy, TenantConn};
//!    use diesel_tenancy::diesel_async;
//!    use diesel_tenancy::resolve::CurrentTenant;
//!    use diesel_tenancy::{SyncRouter, TenantPool, TenantRegistry};
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
//!    async fn list(mut conn: TenantConn) -> Result<Json<Vec<String>>, ApiError> {
//!        let names = hotels::table.select(hotels::name).load(&mut **conn).await?;
//!        Ok(Json(names))
//!    }
//!
//!    /// The resolved tenant: `{"id":1,"name":"demo1","schema":"demo1","mode":"schema"}`.
//!    async fn whoami(tenant: CurrentTenant) -> Json<CurrentTenant> {
//!        Json(tenant)
//!    }
//!
//!    /// Runs in `public`, whatever tenant the request names.
//!    async fn tenants(db: PublicDb) -> Result<Json<Vec<String>>, ApiError> {
//!        let mut conn = db.checkout().await?;
//!        let names = diesel_tenancy::schema::tenants::table
//!            .select(diesel_tenancy::schema::tenants::name)
//!            .load(&mut *conn)
//!            .await?;
//!        Ok(Json(names))
//!    }
//!
//!    #[tokio::main]
//!    async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!        let url = "postgres://postgres@127.0.0.1/hotel";
//!        let sync = TenantPool::builder().max_size(2).build(url)?;
//!        let router = SyncRouter::new(sync, TENANT_MIGRATIONS);
//!        let pool = TenantPool::builder().build_async(url).await?;
//!        // Applies the shared and pending tenant migrations, starts the registry cache.
//!        let tenancy = Tenancy::builder(router, pool).start(url).await?;
//!        let app = Router::new()
//!            .route("/hotels", get(list))
//!            .route("/tenant", get(whoami))
//!            .route("/tenants", get(tenants))
//!            .layer(tenancy.layer());
//!        let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//!        axum::serve(listener, app).await?;
//!        Ok(())
//!    }
//!    ```
//!
//! 3. Call it: `curl -H 'Tenant-Header: demo1' localhost:8000/hotels`, or register a
//!    domain for the tenant and call `http://demo1.example.com/hotels`.
//!
//! # What each extractor answers
//!
//! | request | [`CurrentTenant`], [`TenantDb`], [`TenantConn`] | [`PublicDb`] |
//! |---|---|---|
//! | a registered tenant (any case, trimmed) | that tenant | `public` |
//! | `public` (any case) | 400 `Tenant not found`; `public` with the public-tenant option | `public` |
//! | nothing, or an unknown tenant | 400 `{"detail":"Tenant not found"}` | `public` |
//! | a malformed tenant header (control characters, not UTF-8, over 255 bytes, sent more than once), two `Host`s, a `Host` with user info or a bad port | 400 with a `detail` | `public` |
//! | registry data older than its bound and no reload through the pool | 503 `Tenant registry unavailable, try again later` | `public` |
//! | no connection in time, database down | 503 from the checkout | 503 from the checkout |
//!
//! A request that resolved to no tenant gets no [`TenantDb`] and no [`TenantConn`]: there
//! is no default scope. `Option<CurrentTenant>` is `None` where `CurrentTenant` would
//! reject. Return `Result<_, ApiError>` from handlers: `From` maps the crate's errors to
//! the same statuses and details as the Rocket face.
//!
//! A tenant's route is pinned to its schema's OID, which every checkout proves: a tenant
//! deleted (or deleted and created again on its schema name) a moment ago is 400
//! `Tenant not found`, never another tenant's rows.
//!
//! Unlike the Rocket face, a path prefix is not stripped by the layer: nest the routes
//! under it (`Router::new().nest("/t/{tenant}", api)`) with
//! [`ResolverChain::path_prefix`](crate::resolve::ResolverChain::path_prefix) in the chain.
//! The host rule reads trusted proxies' forwarded hosts only when the server records
//! peers (`into_make_service_with_connect_info::<SocketAddr>()`).

mod api_error;
mod current_tenant;
mod decision;
mod layer;
mod public_db;
mod tenancy;
mod tenant_conn;
mod tenant_db;

pub use api_error::ApiError;
pub use layer::{TenancyLayer, TenancyService};
pub use public_db::PublicDb;
pub use tenancy::{Tenancy, TenancyBuilder};
pub use tenant_conn::TenantConn;
pub use tenant_db::TenantDb;

pub use crate::resolve::CurrentTenant;
pub use crate::resolve::TENANT_NOT_FOUND;

pub use ::axum;

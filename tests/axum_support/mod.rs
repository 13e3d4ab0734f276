//! A small axum app over the hotel tenant set, shared by the `axum_*` tests, and a
//! `oneshot` request helper.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use diesel_tenancy::axum::{
    ApiError, CurrentTenant, PublicDb, Tenancy, TenancyBuilder, TenantConn, TenantDb,
};
use diesel_tenancy::diesel_async;
use diesel_tenancy::{Error, NewTenant, SyncRouter, TenantPool, TenantPoolBuilder};
use futures_util::FutureExt;
use tower::ServiceExt;

pub use crate::common::hotels::hotels;

/// The body of every 400 for a request with no (known) tenant.
pub const NOT_FOUND_BODY: &str = r#"{"detail":"Tenant not found"}"#;

async fn list(mut conn: TenantConn) -> Result<Json<Vec<String>>, ApiError> {
    let names = hotels::table
        .order(hotels::id)
        .select(hotels::name)
        .load(&mut **conn)
        .await?;
    Ok(Json(names))
}

async fn add(db: TenantDb, Path(name): Path<String>) -> Result<Json<i64>, ApiError> {
    let mut conn = db.checkout().await?;
    let id = diesel::insert_into(hotels::table)
        .values((
            hotels::name.eq(name),
            hotels::location.eq("here"),
            hotels::description.eq("nice"),
        ))
        .returning(hotels::id)
        .get_result(&mut *conn)
        .await?;
    conn.commit().await?;
    Ok(Json(id))
}

async fn whoami(tenant: CurrentTenant) -> Json<CurrentTenant> {
    Json(tenant)
}

/// The connection's schema, read by the query pipelined with the checkout.
async fn schema(db: TenantDb) -> Result<String, ApiError> {
    let (_conn, schema) = db
        .checkout_with(|conn| {
            async move {
                let mut conn = conn;
                diesel::dsl::sql::<diesel::sql_types::Text>("SELECT current_schema()::text")
                    .get_result::<String>(&mut conn)
                    .await
            }
            .boxed()
        })
        .await?;
    Ok(schema?)
}

async fn tenants(db: PublicDb) -> Result<Json<Vec<String>>, ApiError> {
    use diesel_tenancy::schema::tenants;
    let mut conn = db.checkout().await?;
    let names = tenants::table
        .order(tenants::name)
        .select(tenants::name)
        .load(&mut *conn)
        .await?;
    Ok(Json(names))
}

async fn maybe(tenant: Option<CurrentTenant>) -> String {
    tenant.map_or_else(|| "none".to_owned(), |t| t.name().to_owned())
}

/// Decides the request, then deletes its tenant (and with `recreate…` creates it again,
/// empty, on the same schema name) before checking out (with `…-pipelined` through
/// `checkout_with`): the route is stale.
async fn stale(
    db: TenantDb,
    tenancy: Tenancy,
    Path(then): Path<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    let recreate = then.starts_with("recreate");
    let router = tenancy.router().clone();
    let name = db.tenant().name().to_owned();
    tokio::task::spawn_blocking(move || {
        router.delete_tenant(&name, true)?;
        if recreate {
            router.create_tenant(&NewTenant::named(name))?;
        }
        Ok::<(), Error>(())
    })
    .await
    .expect("no panic")?;
    let mut conn = db.checkout().await?;
    let names = hotels::table.select(hotels::name).load(&mut *conn).await?;
    Ok(Json(names))
}

/// The routes, without the layer.
pub fn routes() -> Router {
    Router::new()
        .route("/hotels", get(list))
        .route("/hotels/{name}", post(add))
        .route("/whoami", get(whoami))
        .route("/schema", get(schema))
        .route("/tenants", get(tenants))
        .route("/maybe", get(maybe))
        .route("/stale/{then}", get(stale))
}

/// The app: the routes behind the tenancy layer.
pub fn app(tenancy: &Tenancy) -> Router {
    routes().layer(tenancy.layer())
}

/// The async pool of the tests.
pub fn async_pool() -> TenantPoolBuilder {
    TenantPool::builder()
        .max_size(2)
        .connection_timeout(std::time::Duration::from_secs(5))
}

/// Starts the tenancy of `router`'s database (`url`), with `pool` as the async pool.
pub async fn start(router: &SyncRouter, pool: TenantPoolBuilder, url: &str) -> Tenancy {
    start_with(router, pool, url, |b| b).await
}

/// [`start`], with the builder adjusted.
pub async fn start_with(
    router: &SyncRouter,
    pool: TenantPoolBuilder,
    url: &str,
    adjust: impl FnOnce(TenancyBuilder) -> TenancyBuilder,
) -> Tenancy {
    let pool = pool.build_async(url).await.expect("the async pool");
    adjust(Tenancy::builder(router.clone(), pool))
        .start(url)
        .await
        .expect("the tenancy starts")
}

/// Sends `method path` with the headers; returns the status and the body.
pub async fn send(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("a request"))
        .await
        .expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    (status, String::from_utf8(body.to_vec()).expect("UTF-8"))
}

/// GET `path` with `Tenant-Header: tenant`.
pub async fn get_as(app: &Router, path: &str, tenant: &str) -> (StatusCode, String) {
    send(app, "GET", path, &[("Tenant-Header", tenant)]).await
}

/// 200 with `body`.
pub fn ok(body: &str) -> (StatusCode, String) {
    (StatusCode::OK, body.to_owned())
}

/// 400 `{"detail":"Tenant not found"}`.
pub fn tenant_not_found() -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, NOT_FOUND_BODY.to_owned())
}

//! The admin API on the axum face (`HOTEL_ADMIN_TOKEN`): the Rocket face's routes and
//! answers, the registry work on the sync router off the async threads.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use diesel_tenancy::axum::Tenancy;
use diesel_tenancy::diesel::PgConnection;
use diesel_tenancy::{DomainName, TenantMode, TenantRegistry};
use serde_json::{json, Value};

use super::body;
use super::problem::not_found;
use crate::admin::{
    add_domain_row, authorize, described, drop_schema_flag, new_domain, new_tenant,
    not_found_on_miss, refuse_rows,
};
use crate::problem::Problem;

/// The admin token, the routes' state.
#[derive(Clone)]
struct Token(Arc<str>);

/// The admin routes, each behind the token.
pub fn routes(token: String) -> Router {
    let tenants = || get(list_tenants).post(create_tenant).fallback(not_found);
    let tenant = || get(get_tenant).delete(delete_tenant).fallback(not_found);
    let domains = || post(add_domain).fallback(not_found);
    let domain = || delete(remove_domain).fallback(not_found);
    Router::new()
        .route("/tenants", tenants())
        .route("/tenants/", tenants())
        .route("/tenants/{name}", tenant())
        .route("/tenants/{name}/", tenant())
        .route("/tenants/{name}/domains", domains())
        .route("/tenants/{name}/domains/", domains())
        .route("/domains/{domain}", domain())
        .route("/domains/{domain}/", domain())
        .with_state(Token(token.into()))
}

/// A request that presented the admin token.
struct Admin;

impl FromRequestParts<Token> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, token: &Token) -> Result<Admin, Problem> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        authorize(presented, &token.0).map(|()| Admin)
    }
}

/// Runs registry work on the router's (sync) pool in `public`, on a blocking thread.
async fn in_public<T: Send + 'static>(
    tenancy: &Tenancy,
    f: impl FnOnce(&mut PgConnection) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let pool = tenancy.router().pool().clone();
    tokio::task::spawn_blocking(move || pool.with_public(f))
        .await
        .map_err(|e| Problem::internal("admin task", &e))?
}

/// 201 with `Location` and the JSON body.
fn created(location: String, value: Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(value),
    )
        .into_response()
}

async fn create_tenant(
    admin: Result<Admin, Problem>,
    tenancy: Tenancy,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let body = body::object(&headers, body).await;
    admin?;
    let new = new_tenant(&body?)?;
    if new.mode == Some(TenantMode::Rows) && !tenancy.pool().has_row_tenants() {
        return Err(refuse_rows());
    }
    // Through `Tenancy`, so the new tenant resolves here as soon as this returns.
    let tenant = tenancy.create_tenant(new).await?;
    let value = in_public(&tenancy, move |conn| described(conn, tenant)).await?;
    let location = format!("/tenants/{}", value["name"].as_str().unwrap_or_default());
    Ok(created(location, value))
}

async fn list_tenants(
    admin: Result<Admin, Problem>,
    tenancy: Tenancy,
) -> Result<Json<Value>, Problem> {
    admin?;
    in_public(&tenancy, |conn| {
        Ok(Json(json!(TenantRegistry::list_with_domains(conn)?)))
    })
    .await
}

async fn get_tenant(
    admin: Result<Admin, Problem>,
    tenancy: Tenancy,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    admin?;
    in_public(&tenancy, move |conn| {
        let tenant = TenantRegistry::find_by_name(conn, &name)?.ok_or_else(Problem::not_found)?;
        described(conn, tenant).map(Json)
    })
    .await
}

#[derive(serde::Deserialize)]
struct DropSchema {
    drop_schema: Option<String>,
}

async fn delete_tenant(
    admin: Result<Admin, Problem>,
    tenancy: Tenancy,
    Path(name): Path<String>,
    Query(query): Query<DropSchema>,
) -> Result<StatusCode, Problem> {
    admin?;
    let drop_schema = drop_schema_flag(query.drop_schema.as_deref())?;
    tenancy
        .delete_tenant(name, drop_schema)
        .await
        .map_err(not_found_on_miss)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_domain(
    admin: Result<Admin, Problem>,
    tenancy: Tenancy,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let body = body::object(&headers, body).await;
    admin?;
    let (domain, primary) = new_domain(&body?)?;
    let value = in_public(&tenancy, move |conn| {
        add_domain_row(conn, &name, &domain, primary)
    })
    .await?;
    refresh(&tenancy).await;
    let location = format!("/domains/{}", value["domain"].as_str().unwrap_or_default());
    Ok(created(location, value))
}

async fn remove_domain(
    admin: Result<Admin, Problem>,
    tenancy: Tenancy,
    Path(domain): Path<String>,
) -> Result<StatusCode, Problem> {
    admin?;
    let domain = DomainName::new(&domain).map_err(|_| Problem::not_found())?;
    in_public(&tenancy, move |conn| {
        TenantRegistry::remove_domain(conn, &domain).map_err(not_found_on_miss)
    })
    .await?;
    refresh(&tenancy).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Reloads this process's registry cache after a domain change; a failure only delays
/// it, so it is logged.
async fn refresh(tenancy: &Tenancy) {
    if let Err(e) = tenancy.refresh().await {
        log::warn!("registry cache refresh after a domain change: {e}");
    }
}

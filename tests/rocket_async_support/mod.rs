//! A small Rocket app whose handlers await their queries on `AsyncTenantDb`, shared by
//! the `rocket_async_*` tests.
#![allow(dead_code)]

use diesel::prelude::*;
use diesel_tenancy::diesel_async::RunQueryDsl;
use diesel_tenancy::rocket::{catchers, ApiError, AsyncTenantDb, Tenancy, TenancyFairing};
use rocket::figment::Figment;
use rocket::futures::FutureExt;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Build, Rocket, Route, State};

use crate::common::hotels::hotels;
use crate::common::TENANT;

/// The tenant's hotels, `[id, name]` in id order (through `run`).
#[get("/hotels")]
async fn list(db: AsyncTenantDb) -> Result<Json<Vec<(i64, String)>>, ApiError> {
    db.run(|conn| {
        async move {
            let rows = hotels::table
                .order(hotels::id)
                .select((hotels::id, hotels::name))
                .load(conn)
                .await?;
            Ok::<_, ApiError>(rows)
        }
        .boxed()
    })
    .await
    .map(Json)
}

/// Deletes the request's own tenant (and its schema) after the checkout, then lists its
/// hotels on the same connection: the query meets a schema that is gone.
#[get("/hotels/deleted-meanwhile")]
async fn deleted_meanwhile(
    db: AsyncTenantDb,
    tenancy: &State<Tenancy>,
) -> Result<Json<Vec<(i64, String)>>, ApiError> {
    let name = db.tenant().name().to_owned();
    let router = tenancy.router()?;
    db.run(|conn| {
        async move {
            let deleted =
                rocket::tokio::task::spawn_blocking(move || router.delete_tenant(&name, true));
            deleted
                .await
                .map_err(|_| ApiError::new(rocket::http::Status::InternalServerError, "join"))??;
            let rows = hotels::table
                .select((hotels::id, hotels::name))
                .load(conn)
                .await?;
            Ok::<_, ApiError>(rows)
        }
        .boxed()
    })
    .await
    .map(Json)
}

/// Lists the hotels of a table the test dropped by hand: the application's own error.
#[get("/hotels/dropped-table")]
async fn dropped_table(db: AsyncTenantDb) -> Result<Json<Vec<(i64, String)>>, ApiError> {
    db.run(|conn| {
        async move {
            let rows = hotels::table
                .select((hotels::id, hotels::name))
                .load(conn)
                .await?;
            Ok::<_, ApiError>(rows)
        }
        .boxed()
    })
    .await
    .map(Json)
}

/// Adds a hotel on a connection of the handler's own, committed; answers its id.
#[post("/hotels/<name>")]
async fn add(db: AsyncTenantDb, name: &str) -> Result<Json<i64>, ApiError> {
    let mut conn = db.connection().await?;
    let id = insert(&mut conn, name).await?;
    conn.commit().await?;
    Ok(Json(id))
}

/// Adds a hotel and drops the connection without committing.
#[post("/hotels/<name>/uncommitted")]
async fn add_uncommitted(db: AsyncTenantDb, name: &str) -> Result<Json<i64>, ApiError> {
    let mut conn = db.connection().await?;
    Ok(Json(insert(&mut conn, name).await?))
}

async fn insert(
    conn: &mut diesel_tenancy::diesel_async::AsyncPgConnection,
    name: &str,
) -> QueryResult<i64> {
    diesel::insert_into(hotels::table)
        .values((
            hotels::name.eq(name),
            hotels::location.eq("here"),
            hotels::description.eq("nice"),
        ))
        .returning(hotels::id)
        .get_result(conn)
        .await
}

/// The connection's schema, read by the first query of a pipelined checkout.
#[get("/schema")]
async fn schema(db: AsyncTenantDb) -> Result<String, ApiError> {
    let (conn, schema) = db
        .connection_with(|mut conn| {
            async move {
                diesel::dsl::sql::<diesel::sql_types::Text>("SELECT current_schema()::text")
                    .get_result(&mut conn)
                    .await
            }
            .boxed()
        })
        .await?;
    let schema = schema?;
    conn.commit().await?;
    Ok(schema)
}

/// Rocket's debug defaults, quiet, with `databases.hotel` on `url` in pool mode `mode`.
pub fn base_figment(url: &str, mode: &str) -> Figment {
    Figment::from(rocket::Config::debug_default())
        .merge(("log_level", "critical"))
        .merge(("cli_colors", false))
        .merge(("databases.hotel.url", url))
        .merge(("databases.hotel.pool_size", 2))
        .merge(("databases.hotel.mode", mode))
}

/// [`base_figment`] with the async pool on.
pub fn figment(url: &str, mode: &str) -> Figment {
    base_figment(url, mode).merge(("tenancy.async_pool", true))
}

/// The fairing over the hotel tenant set.
pub fn fairing() -> TenancyFairing {
    TenancyFairing::new("hotel", TENANT)
}

/// The routes on `AsyncTenantDb`.
pub fn async_routes() -> Vec<Route> {
    routes![
        list,
        add,
        add_uncommitted,
        schema,
        deleted_meanwhile,
        dropped_table
    ]
}

/// The test app: the async routes, the JSON catchers.
pub fn app(figment: Figment, fairing: TenancyFairing) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(fairing)
        .mount("/", async_routes())
        .register("/", catchers())
}

/// The JSON body of the 400 for an unknown tenant.
pub const NOT_FOUND: &str = r#"{"detail":"Tenant not found"}"#;

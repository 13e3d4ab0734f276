//! BENCHMARK BASELINE (issue 6, target P2) — not an example to build on.
//!
//! The hotel service's `GET /hotels/` handler without the tenancy layer: Rocket, a plain
//! r2d2 pool of `diesel::r2d2::ConnectionManager<PgConnection>` whose connections get a
//! fixed `search_path` once per physical connection (`CustomizeConnection::on_acquire`),
//! and no tenant lookup (the `Tenant-Header` is ignored). `bench/http.sh` runs it beside
//! the hotel service and compares requests/s.
//!
//! Everything else is kept as the hotel service has it, so the tenancy layer is the only
//! difference: Rocket's configuration from the same figment (`ROCKET_PORT`,
//! `ROCKET_WORKERS`, `ROCKET_LOG_LEVEL`, ...), the same JSON body
//! (`[{"id","name","location","description","picture"}]` ordered by id), the query run on
//! Rocket's blocking pool, and the pool settings `TenantPool` and `TenancyFairing` default
//! to: 10 connections (`databases.hotel.pool_size` overrides it in both), a 5 s checkout
//! timeout, no test on checkout, Diesel's statement cache on.
//!
//! ```text
//! DATABASE_URL=postgres://127.0.0.1/hotel BENCH_SCHEMA=demo1 ROCKET_PORT=8100 \
//!     cargo run --release --example bench_baseline
//! ```

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, routes, State};
use serde::Serialize;

diesel::table! {
    hotels (id) {
        id -> BigInt,
        name -> Varchar,
        location -> Varchar,
        description -> Varchar,
        picture -> Nullable<Varchar>,
    }
}

/// A hotel as the hotel service's list shows it.
#[derive(Queryable, Selectable, Serialize)]
#[diesel(table_name = hotels, check_for_backend(diesel::pg::Pg))]
struct Hotel {
    id: i64,
    name: String,
    location: String,
    description: String,
    /// Shown as a URL path, as the hotel service does.
    #[serde(serialize_with = "picture_url")]
    picture: Option<String>,
}

fn picture_url<S: serde::Serializer>(p: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(rel) => s.serialize_some(&format!("/media/{rel}")),
        None => s.serialize_none(),
    }
}

type PgPool = Pool<ConnectionManager<PgConnection>>;

/// Sets the fixed `search_path` once, when r2d2 opens a physical connection.
#[derive(Debug)]
struct FixedSearchPath(String);

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for FixedSearchPath {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!("SET search_path TO {}", self.0))
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[get("/hotels")]
async fn list(pool: &State<PgPool>) -> Result<Json<Vec<Hotel>>, Status> {
    let pool = pool.inner().clone();
    rocket::tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|_| Status::ServiceUnavailable)?;
        hotels::table
            .order(hotels::id)
            .select(Hotel::as_select())
            .load(&mut conn)
            .map_err(|_| Status::InternalServerError)
    })
    .await
    .map_err(|_| Status::InternalServerError)?
    .map(Json)
}

/// `"name"` for a plain lowercase schema name; anything else is refused.
fn quoted_schema(name: &str) -> Result<String, String> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        Ok(format!("\"{name}\""))
    } else {
        Err(format!(
            "BENCH_SCHEMA {name:?} is not a plain lowercase schema name"
        ))
    }
}

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let figment = rocket::Config::figment();
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => figment
            .extract_inner::<String>("databases.hotel.url")
            .map_err(|_| "set DATABASE_URL")?,
    };
    let schema = std::env::var("BENCH_SCHEMA").unwrap_or_else(|_| "public".into());
    let pool_size = figment
        .extract_inner::<u32>("databases.hotel.pool_size")
        .unwrap_or(10);
    let pool = Pool::builder()
        .max_size(pool_size)
        .connection_timeout(Duration::from_secs(5))
        .max_lifetime(Some(Duration::from_secs(30 * 60)))
        .idle_timeout(Some(Duration::from_secs(10 * 60)))
        .test_on_check_out(false)
        .connection_customizer(Box::new(FixedSearchPath(quoted_schema(&schema)?)))
        .build(ConnectionManager::<PgConnection>::new(url))?;
    rocket::custom(figment)
        .manage(pool)
        .mount("/", routes![list])
        .launch()
        .await?;
    Ok(())
}

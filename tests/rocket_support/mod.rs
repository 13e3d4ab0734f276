//! A small Rocket app over the hotel tenant set, shared by the `rocket_*` tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_tenancy::rocket::Tenancy;
use diesel_tenancy::rocket::{
    catchers, ApiError, CurrentTenant, PublicDb, TenancyFairing, TenantDb,
};
use diesel_tenancy::{DomainName, NewTenant, SyncRouter, TenantRegistry};
use rocket::figment::Figment;
use rocket::http::{Header, Status};
use rocket::local::blocking::Client;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Build, Rocket};

pub use crate::common::hotels::hotels;
use crate::common::TENANT;

#[get("/hotels")]
async fn list(db: TenantDb) -> Result<Json<Vec<String>>, ApiError> {
    db.run(|conn| {
        Ok(hotels::table
            .order(hotels::id)
            .select(hotels::name)
            .load(conn)?)
    })
    .await
    .map(Json)
}

#[post("/hotels/<name>")]
async fn add(db: TenantDb, name: String) -> Result<Json<i64>, ApiError> {
    db.run(move |conn| {
        Ok(diesel::insert_into(hotels::table)
            .values((
                hotels::name.eq(name),
                hotels::location.eq("here"),
                hotels::description.eq("nice"),
            ))
            .returning(hotels::id)
            .get_result(conn)?)
    })
    .await
    .map(Json)
}

#[get("/whoami")]
fn whoami(tenant: CurrentTenant) -> Json<CurrentTenant> {
    Json(tenant)
}

#[get("/schema")]
async fn schema(db: TenantDb) -> Result<String, ApiError> {
    db.run(|conn| {
        Ok(
            diesel::dsl::sql::<diesel::sql_types::Text>("SELECT current_schema()::text")
                .get_result(conn)?,
        )
    })
    .await
}

#[get("/tenants")]
async fn tenants(db: PublicDb) -> Result<Json<Vec<String>>, ApiError> {
    db.run(|conn| {
        let mut names: Vec<String> = TenantRegistry::list(conn)?
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.sort();
        Ok(names)
    })
    .await
    .map(Json)
}

#[get("/maybe")]
fn maybe(tenant: Option<CurrentTenant>) -> String {
    tenant.map_or_else(|| "none".to_owned(), |t| t.name().to_owned())
}

/// Rocket's debug defaults, quiet, with `databases.hotel.url` set.
pub fn figment(url: &str) -> Figment {
    Figment::from(rocket::Config::debug_default())
        .merge(("log_level", "critical"))
        .merge(("cli_colors", false))
        .merge(("databases.hotel.url", url))
        .merge(("databases.hotel.pool_size", 2))
}

/// The fairing over the hotel tenant set.
pub fn fairing() -> TenancyFairing {
    TenancyFairing::new("hotel", TENANT)
}

/// The test app: every guard, the JSON catchers.
pub fn app(figment: Figment, fairing: TenancyFairing) -> Rocket<Build> {
    rocket::custom(figment)
        .attach(fairing)
        .mount("/", routes![list, add, whoami, schema, tenants, maybe])
        .register("/", catchers())
}

/// A tracked client for the default app.
pub fn client(url: &str) -> Client {
    Client::tracked(app(figment(url), fairing())).expect("the app launches")
}

/// The managed tenancy of a client's Rocket.
pub fn tenancy(client: &Client) -> &Tenancy {
    client
        .rocket()
        .state::<Tenancy>()
        .expect("the fairing manages Tenancy")
}

/// Creates a tenant with one hotel named `hotel` and optional domains.
pub fn provision(router: &SyncRouter, name: &str, domains: &[&str], hotel: &str) {
    let tenant = router
        .create_tenant(&NewTenant {
            name: name.into(),
            mode: None,
            schema_name: None,
            domains: domains
                .iter()
                .map(|d| DomainName::new(d).unwrap())
                .collect(),
        })
        .expect("create tenant");
    router
        .pool()
        .with_tenant(&tenant.schema_name, |conn| {
            add_hotel(conn, hotel).map_err(diesel_tenancy::Error::from)
        })
        .expect("insert hotel");
}

/// Adds a hotel named `name` in the connection's tenant.
pub fn add_hotel(conn: &mut PgConnection, name: &str) -> QueryResult<usize> {
    diesel::insert_into(hotels::table)
        .values((
            hotels::name.eq(name),
            hotels::location.eq("here"),
            hotels::description.eq("nice"),
        ))
        .execute(conn)
}

/// GET `path` with one header; returns status and body.
pub fn get_with(client: &Client, path: &str, header: Option<(&str, &str)>) -> (Status, String) {
    let mut request = client.get(path.to_owned());
    if let Some((name, value)) = header {
        request = request.header(Header::new(name.to_owned(), value.to_owned()));
    }
    let response = request.dispatch();
    let status = response.status();
    (status, response.into_string().unwrap_or_default())
}

/// GET `path` with `Tenant-Header: tenant`.
pub fn get_as(client: &Client, path: &str, tenant: &str) -> (Status, String) {
    get_with(client, path, Some(("Tenant-Header", tenant)))
}

/// Polls `check` until it holds or `deadline` passes; returns whether it held.
pub fn eventually(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub const NOT_FOUND_BODY: &str = r#"{"detail":"Tenant not found"}"#;

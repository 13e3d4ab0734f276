//! `rocket_sync_db_pools` interop: `#[database]` over `ManagedConnection` hands out
//! connections that are usable only inside a tenant or public scope.

mod common;
mod rocket_support;

use common::TestDb;
use diesel::prelude::*;
use diesel_tenancy::rocket::{ApiError, CurrentTenant};
use diesel_tenancy::ManagedConnection;
use rocket::http::Status;
use rocket::local::blocking::Client;
use rocket::{get, routes};
use rocket_support::*;
use rocket_sync_db_pools::database;

#[database("hotel")]
struct Db(ManagedConnection);

#[get("/sync/hotels")]
async fn sync_hotels(db: Db, tenant: CurrentTenant) -> Result<String, ApiError> {
    let scope = tenant.scope().clone();
    db.run(move |c| {
        c.with_scope(&scope, |conn| {
            let names: Vec<String> = hotels::table
                .order(hotels::id)
                .select(hotels::name)
                .load(conn)?;
            let path: String = diesel::dsl::sql::<diesel::sql_types::Text>(
                "SELECT current_setting('search_path')",
            )
            .get_result(conn)?;
            Ok::<_, ApiError>(format!("{path}: {}", names.join(",")))
        })
    })
    .await
}

#[get("/sync/count")]
async fn sync_count(db: Db) -> Result<String, ApiError> {
    db.run(|c| {
        c.with_public(|conn| {
            Ok::<i64, ApiError>(
                diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM tenants")
                    .get_result(conn)?,
            )
        })
    })
    .await
    .map(|n| n.to_string())
}

#[test]
fn database_pools_of_managed_connections_are_scoped() {
    let db = TestDb::new();
    let router = db.router(1);
    provision(&router, "demo1", &[], "D1 hotel");
    provision(&router, "demo2", &[], "D2 hotel");
    drop(router);
    let figment = figment(&db.url).merge(("databases.hotel.pool_size", 1));
    let rocket = app(figment, fairing())
        .attach(Db::fairing())
        .mount("/", routes![sync_hotels, sync_count]);
    let client = Client::tracked(rocket).unwrap();
    for i in 0..20 {
        let tenant = ["demo1", "demo2"][i % 2];
        let hotel = ["D1 hotel", "D2 hotel"][i % 2];
        assert_eq!(
            get_as(&client, "/sync/hotels", tenant),
            (Status::Ok, format!("{tenant}, pg_temp: {hotel}"))
        );
        assert_eq!(
            get_with(&client, "/sync/count", None),
            (Status::Ok, "2".to_owned())
        );
    }
}

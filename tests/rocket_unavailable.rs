//! An exhausted pool answers 503 with a JSON detail after the configured timeout,
//! not a hang and not a 500; the service recovers when the connection comes back.

mod common;
mod rocket_support;

use common::TestDb;
use rocket::http::Status;
use rocket::local::blocking::Client;
use rocket_support::*;

#[test]
fn an_exhausted_pool_is_503_then_recovers() {
    let db = TestDb::new();
    provision(&db.router(1), "demo1", &[], "D1 hotel");
    let figment = figment(&db.url)
        .merge(("databases.hotel.pool_size", 1))
        .merge(("databases.hotel.timeout", 1));
    let client = Client::tracked(app(figment, fairing())).unwrap();
    let pool = tenancy(&client).pool().unwrap();

    let held = pool.public().unwrap();
    let unavailable = (
        Status::ServiceUnavailable,
        r#"{"detail":"Database unavailable, try again later"}"#.to_owned(),
    );
    assert_eq!(get_as(&client, "/hotels", "demo1"), unavailable);
    assert_eq!(get_with(&client, "/tenants", None), unavailable);
    // Resolution needs no connection: a client mistake is still a 400.
    assert_eq!(get_as(&client, "/hotels", "nope").0, Status::BadRequest);
    assert_eq!(get_as(&client, "/whoami", "demo1").0, Status::Ok);
    drop(held);

    assert_eq!(
        get_as(&client, "/hotels", "demo1"),
        (Status::Ok, r#"["D1 hotel"]"#.to_owned())
    );
}

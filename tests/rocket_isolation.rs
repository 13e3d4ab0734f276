//! 200 interleaved requests for 3 tenants on a pool of one connection never return
//! another tenant's rows, in both pool modes, sequentially and concurrently.

mod common;
mod rocket_support;

use common::TestDb;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client as AsyncClient;
use rocket::local::blocking::Client;
use rocket_support::*;

const TENANTS: [&str; 3] = ["alpha", "Beta", "gamma"];

fn expected(tenant: &str) -> String {
    format!(r#"["{tenant} hotel"]"#)
}

fn setup(mode: &str) -> (TestDb, rocket::Rocket<rocket::Build>) {
    let db = TestDb::new();
    let router = db.router(1);
    for tenant in TENANTS {
        provision(&router, tenant, &[], &format!("{tenant} hotel"));
    }
    drop(router);
    let figment = figment(&db.url)
        .merge(("databases.hotel.pool_size", 1))
        .merge(("databases.hotel.mode", mode));
    let rocket = app(figment, fairing());
    (db, rocket)
}

#[test]
fn sequential_interleaving_never_leaks_rows() {
    for mode in ["session", "transaction_local"] {
        let (_db, rocket) = setup(mode);
        let client = Client::tracked(rocket).unwrap();
        assert_eq!(tenancy(&client).pool().unwrap().max_size(), 1);
        for i in 0..200 {
            let tenant = TENANTS[i % 3];
            let (status, body) = get_as(&client, "/hotels", tenant);
            assert_eq!(
                (status, body),
                (Status::Ok, expected(tenant)),
                "{mode} #{i}"
            );
        }
    }
}

#[rocket::async_test]
async fn concurrent_interleaving_never_leaks_rows() {
    for mode in ["session", "transaction_local"] {
        let (_db, rocket) = setup(mode);
        let client = AsyncClient::tracked(rocket).await.unwrap();
        let requests = (0..200).map(|i| {
            let tenant = TENANTS[i % 3];
            let client = &client;
            async move {
                let response = client
                    .get("/hotels")
                    .header(Header::new("Tenant-Header", tenant))
                    .dispatch()
                    .await;
                (tenant, response.status(), response.into_string().await)
            }
        });
        let results = rocket::futures::future::join_all(requests).await;
        for (tenant, status, body) in results {
            assert_eq!(status, Status::Ok, "{mode}");
            assert_eq!(body.as_deref(), Some(expected(tenant).as_str()), "{mode}");
        }
    }
}

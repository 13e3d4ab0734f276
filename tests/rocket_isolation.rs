//! 200 interleaved requests for 3 tenants on a pool of one connection never return
//! another tenant's rows, in both pool modes, sequentially and concurrently.

mod common;
mod rocket_support;

use common::TENANT;
use diesel_tenancy::testing::{AsyncTenantClient, TenantClient, TestTenancy};
use diesel_tenancy::TenantPool;
use rocket::http::Status;
use rocket::local::asynchronous::Client as AsyncClient;
use rocket::local::blocking::Client;
use rocket_support::*;

const TENANTS: [&str; 3] = ["alpha", "Beta", "gamma"];

fn expected(tenant: &str) -> String {
    format!(r#"["{tenant} hotel"]"#)
}

fn setup(mode: &str) -> (TestTenancy, rocket::Rocket<rocket::Build>) {
    let tenancy = TestTenancy::builder(TENANT)
        .pool(TenantPool::builder().max_size(1))
        .start();
    for tenant in TENANTS {
        provision(tenancy.router(), tenant, &[], &format!("{tenant} hotel"));
    }
    let figment = tenancy
        .figment("hotel")
        .merge(("log_level", "critical"))
        .merge(("databases.hotel.pool_size", 1))
        .merge(("databases.hotel.mode", mode));
    let rocket = app(figment, fairing());
    (tenancy, rocket)
}

#[test]
fn sequential_interleaving_never_leaks_rows() {
    for mode in ["session", "transaction_local"] {
        let (_db, rocket) = setup(mode);
        let client = Client::tracked(rocket).unwrap();
        assert_eq!(tenancy(&client).pool().unwrap().max_size(), 1);
        let clients = TENANTS.map(|tenant| TenantClient::header(&client, tenant));
        for i in 0..200 {
            let tenant = TENANTS[i % 3];
            let response = clients[i % 3].get("/hotels").dispatch();
            let (status, body) = (
                response.status(),
                response.into_string().unwrap_or_default(),
            );
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
        let mut clients = Vec::new();
        for tenant in TENANTS {
            clients.push(AsyncTenantClient::header(&client, tenant).await);
        }
        let requests = (0..200).map(|i| {
            let tenant = TENANTS[i % 3];
            let client = &clients[i % 3];
            async move {
                let response = client.get("/hotels").dispatch().await;
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

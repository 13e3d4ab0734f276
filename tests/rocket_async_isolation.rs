//! `AsyncTenantDb` against real PostgreSQL, in both pool modes: tenants never see each
//! other's rows, `public` only with the public-tenant option, unknown or missing tenants
//! are 400, and in `TransactionLocal` mode only committed work stays.

mod common;
mod rocket_async_support;

use common::TENANT;
use diesel_tenancy::testing::{AsyncTenantClient, TestTenancy};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket_async_support::{app, fairing, figment, NOT_FOUND};

const MODES: [&str; 2] = ["session", "transaction_local"];

async fn client(tenancy: &TestTenancy, mode: &str) -> Client {
    let rocket = app(figment(tenancy.url(), mode), fairing().public_tenant(true));
    Client::tracked(rocket).await.expect("the app launches")
}

async fn body(response: rocket::local::asynchronous::LocalResponse<'_>) -> (Status, String) {
    (
        response.status(),
        response.into_string().await.unwrap_or_default(),
    )
}

#[rocket::async_test]
async fn tenants_never_see_each_others_rows_and_ids_start_at_one() {
    for mode in MODES {
        let tenancy = TestTenancy::builder(TENANT)
            .router(|r| r.public_tenant(true))
            .start();
        tenancy.create_tenant("acme");
        tenancy.create_tenant("globex");
        let client = client(&tenancy, mode).await;
        let acme = AsyncTenantClient::header(&client, "acme").await;
        let globex = AsyncTenantClient::header(&client, "globex").await;
        for (i, name) in ["a1", "a2"].iter().enumerate() {
            let (status, id) = body(acme.post(format!("/hotels/{name}")).dispatch().await).await;
            assert_eq!((status, id), (Status::Ok, (i + 1).to_string()), "{mode}");
        }
        let (status, id) = body(globex.post("/hotels/g1").dispatch().await).await;
        assert_eq!((status, id.as_str()), (Status::Ok, "1"), "{mode}");

        // Interleaved, concurrently, on a pool of two connections.
        let requests = (0..60).map(|i| {
            let (client, want) = if i % 2 == 0 {
                (&acme, r#"[[1,"a1"],[2,"a2"]]"#)
            } else {
                (&globex, r#"[[1,"g1"]]"#)
            };
            async move { (body(client.get("/hotels").dispatch().await).await, want) }
        });
        for ((status, got), want) in rocket::futures::future::join_all(requests).await {
            assert_eq!((status, got.as_str()), (Status::Ok, want), "{mode}");
        }
        let (_, schema) = body(acme.get("/schema").dispatch().await).await;
        assert_eq!(schema, "acme", "{mode}");
        let (_, schema) = body(globex.get("/schema").dispatch().await).await;
        assert_eq!(schema, "globex", "{mode}");
    }
}

#[rocket::async_test]
async fn public_is_a_tenant_only_with_the_public_tenant_option() {
    for mode in MODES {
        let tenancy = TestTenancy::builder(TENANT)
            .router(|r| r.public_tenant(true))
            .start();
        tenancy.create_tenant("acme");
        let client = client(&tenancy, mode).await;
        let public = client
            .get("/schema")
            .header(Header::new("Tenant-Header", "PUBLIC"));
        assert_eq!(
            body(public.dispatch().await).await,
            (Status::Ok, "public".into())
        );
        let add = client
            .post("/hotels/shared")
            .header(Header::new("Tenant-Header", "public"));
        assert_eq!(body(add.dispatch().await).await, (Status::Ok, "1".into()));
        let list = client
            .get("/hotels")
            .header(Header::new("Tenant-Header", "public"));
        let expected = r#"[[1,"shared"]]"#.to_owned();
        assert_eq!(
            body(list.dispatch().await).await,
            (Status::Ok, expected),
            "{mode}"
        );
        // acme's table is its own.
        let acme = AsyncTenantClient::header(&client, "acme").await;
        assert_eq!(
            body(acme.get("/hotels").dispatch().await).await,
            (Status::Ok, "[]".into())
        );

        // Without the option, `public` names no tenant.
        let without = Client::tracked(app(figment(tenancy.url(), mode), fairing()))
            .await
            .expect("the app launches");
        let public = without
            .get("/hotels")
            .header(Header::new("Tenant-Header", "public"));
        assert_eq!(
            body(public.dispatch().await).await,
            (Status::BadRequest, NOT_FOUND.into()),
            "{mode}"
        );
    }
}

#[rocket::async_test]
async fn an_unknown_or_missing_tenant_is_400_tenant_not_found() {
    let tenancy = TestTenancy::new(TENANT);
    tenancy.create_tenant("acme");
    let client = client(&tenancy, "session").await;
    for request in [
        client.get("/hotels"),
        client
            .get("/hotels")
            .header(Header::new("Tenant-Header", "nobody")),
        client
            .post("/hotels/x")
            .header(Header::new("Tenant-Header", "nobody")),
        client
            .get("/schema")
            .header(Header::new("Tenant-Header", "acme2")),
    ] {
        assert_eq!(
            body(request.dispatch().await).await,
            (Status::BadRequest, NOT_FOUND.into())
        );
    }
    // The header's name and the tenant's name are matched in any case.
    let acme = client
        .get("/schema")
        .header(Header::new("tenant-header", " ACME "));
    assert_eq!(
        body(acme.dispatch().await).await,
        (Status::Ok, "acme".into())
    );
}

#[rocket::async_test]
async fn in_transaction_local_mode_only_committed_work_stays() {
    for mode in MODES {
        let tenancy = TestTenancy::new(TENANT);
        tenancy.create_tenant("acme");
        let client = client(&tenancy, mode).await;
        let acme = AsyncTenantClient::header(&client, "acme").await;
        let (status, _) = body(acme.post("/hotels/kept").dispatch().await).await;
        assert_eq!(status, Status::Ok);
        let (status, _) = body(acme.post("/hotels/dropped/uncommitted").dispatch().await).await;
        assert_eq!(status, Status::Ok);
        let (status, list) = body(acme.get("/hotels").dispatch().await).await;
        assert_eq!(status, Status::Ok);
        let expected = match mode {
            // Each statement commits as it runs.
            "session" => r#"[[1,"kept"],[2,"dropped"]]"#,
            // The dropped connection's transaction was rolled back.
            _ => r#"[[1,"kept"]]"#,
        };
        assert_eq!(list, expected, "{mode}");
    }
}

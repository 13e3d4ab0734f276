//! The axum face resolves requests as the Rocket face does: the tenant header in any
//! case, the host, `public`, and the same 400 bodies; a request with no tenant gets no
//! connection.

mod axum_support;
mod common;

use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Who};

use axum::http::StatusCode;
use axum_support::*;
use diesel_tenancy::axum::Tenancy;
use diesel_tenancy::testing::TestTenancy;
use diesel_tenancy::{DomainName, NewTenant, TenantPool};

/// A test database with tenants `acme` (domain `acme.example.com`) and `globex`.
fn tenants() -> TestTenancy {
    let test = TestTenancy::new(common::TENANT);
    test.create_tenant_with(&NewTenant {
        domains: vec![DomainName::new("acme.example.com").expect("a domain")],
        ..NewTenant::named("acme")
    });
    test.create_tenant("globex");
    test
}

#[tokio::test]
async fn the_header_selects_the_tenant_in_any_case_and_trimmed() {
    let test = tenants();
    let app = app(&start(test.router(), async_pool(), test.url()).await);
    let acme = r#"{"id":1,"name":"acme","schema":"acme","mode":"schema"}"#;
    assert_eq!(get_as(&app, "/whoami", "acme").await, ok(acme));
    assert_eq!(get_as(&app, "/whoami", " ACME ").await, ok(acme));
    // The header's name is case-insensitive too.
    assert_eq!(
        send(&app, "GET", "/whoami", &[("tenant-header", "Acme")]).await,
        ok(acme)
    );
    assert_eq!(get_as(&app, "/schema", "GLOBEX").await, ok("globex"));
}

#[tokio::test]
async fn the_host_selects_a_registered_domain_and_the_header_wins() {
    let test = tenants();
    let app = app(&start(test.router(), async_pool(), test.url()).await);
    let by_host = send(&app, "GET", "/schema", &[("Host", "ACME.example.com:8000")]).await;
    assert_eq!(by_host, ok("acme"));
    let both = [("Host", "acme.example.com"), ("Tenant-Header", "globex")];
    assert_eq!(send(&app, "GET", "/schema", &both).await, ok("globex"));
    // An unregistered host names nothing.
    let other = send(&app, "GET", "/schema", &[("Host", "other.example.com")]).await;
    assert_eq!(other, tenant_not_found());
}

#[tokio::test]
async fn an_unknown_or_missing_tenant_is_400_tenant_not_found_as_json() {
    let test = tenants();
    let app = app(&start(test.router(), async_pool(), test.url()).await);
    for path in ["/whoami", "/hotels", "/schema"] {
        assert_eq!(get_as(&app, path, "nobody").await, tenant_not_found());
        assert_eq!(send(&app, "GET", path, &[]).await, tenant_not_found());
    }
    let response = axum::http::Request::builder()
        .uri("/whoami")
        .body(axum::body::Body::empty())
        .expect("a request");
    let response = tower::ServiceExt::oneshot(app, response)
        .await
        .expect("infallible");
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/json")
    );
}

#[tokio::test]
async fn public_is_the_public_scope_only_on_public_routes() {
    let test = tenants();
    let app = app(&start(test.router(), async_pool(), test.url()).await);
    assert_eq!(get_as(&app, "/whoami", "public").await, tenant_not_found());
    assert_eq!(get_as(&app, "/hotels", "PUBLIC").await, tenant_not_found());
    let names = ok(r#"["acme","globex"]"#);
    assert_eq!(get_as(&app, "/tenants", "public").await, names);
    assert_eq!(send(&app, "GET", "/tenants", &[]).await, names);
    assert_eq!(get_as(&app, "/tenants", "nobody").await, names);
}

#[tokio::test]
async fn malformed_headers_are_400_with_a_detail() {
    let test = tenants();
    let app = app(&start(test.router(), async_pool(), test.url()).await);
    let twice = [("Tenant-Header", "acme"), ("Tenant-Header", "acme")];
    assert_eq!(
        send(&app, "GET", "/whoami", &twice).await,
        (
            StatusCode::BAD_REQUEST,
            r#"{"detail":"malformed Tenant-Header: sent more than once"}"#.to_owned()
        )
    );
    let long = "a".repeat(256);
    assert_eq!(
        get_as(&app, "/whoami", &long).await,
        (
            StatusCode::BAD_REQUEST,
            r#"{"detail":"malformed Tenant-Header: longer than 255 bytes"}"#.to_owned()
        )
    );
    let hosts = [("Host", "acme.example.com"), ("Host", "globex.example.com")];
    assert_eq!(
        send(&app, "GET", "/whoami", &hosts).await.0,
        StatusCode::BAD_REQUEST
    );
    // A public route does not care.
    assert_eq!(
        send(&app, "GET", "/tenants", &twice).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_request_with_no_tenant_gets_no_connection() {
    let test = tenants();
    let tenancy = start(test.router(), async_pool(), test.url()).await;
    let app = app(&tenancy);
    // `TenantConn`, `TenantDb` (checkout_with) and `Option<CurrentTenant>`.
    assert_eq!(send(&app, "GET", "/hotels", &[]).await, tenant_not_found());
    assert_eq!(send(&app, "GET", "/schema", &[]).await, tenant_not_found());
    assert_eq!(send(&app, "GET", "/maybe", &[]).await, ok("none"));
    assert_eq!(get_as(&app, "/maybe", "nobody").await, ok("none"));
    assert_eq!(get_as(&app, "/maybe", "acme").await, ok("acme"));

    // Without the layer the extractors answer 500, never a default scope.
    let bare = routes();
    let failed = get_as(&bare, "/hotels", "acme").await;
    assert_eq!(
        failed,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"detail":"Internal server error"}"#.to_owned()
        )
    );
    assert_eq!(
        get_as(&bare, "/tenants", "acme").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    // With `require_tenant` the layer answers before any handler runs.
    let strict = routes().layer(tenancy.layer().require_tenant());
    assert_eq!(
        send(&strict, "GET", "/maybe", &[]).await,
        tenant_not_found()
    );
    assert_eq!(get_as(&strict, "/maybe", "acme").await, ok("acme"));
}

/// Polls `check` every 10 ms until it holds or 10 seconds pass.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_registry_that_cannot_be_confirmed_is_503_on_tenant_routes_only() {
    // The router's pool has one connection, held below: the registry cannot be reloaded.
    let test = TestTenancy::builder(common::TENANT)
        .pool(
            TenantPool::builder()
                .max_size(1)
                .connection_timeout(Duration::from_secs(5)),
        )
        .start();
    test.create_tenant("acme");
    // The registry's change feed goes through a proxy that cuts it.
    let proxy = FaultProxy::start(test_support::Server::of(&common::base_url()).port);
    let pool = async_pool()
        .build_async(test.url())
        .await
        .expect("the async pool");
    let tenancy = Tenancy::builder(test.router().clone(), pool)
        .max_registry_age(Duration::from_millis(500))
        .start(&proxy.url(test.url()))
        .await
        .expect("the tenancy starts");
    let app = app(&tenancy);
    assert_eq!(get_as(&app, "/whoami", "acme").await.0, StatusCode::OK);

    let held = test.pool().public().expect("the router's one connection");
    proxy.set(Who::Listener, Fault::Refuse);
    proxy.cut(Who::Listener);
    assert!(
        eventually(|| async { tenancy.cache().fresh_snapshot().is_err() }).await,
        "the cached registry aged past its bound"
    );
    let unavailable = (
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"detail":"Tenant registry unavailable, try again later"}"#.to_owned(),
    );
    assert_eq!(get_as(&app, "/whoami", "acme").await, unavailable);
    assert_eq!(get_as(&app, "/hotels", "acme").await, unavailable);
    // `public` needs no registry.
    assert_eq!(get_as(&app, "/tenants", "acme").await, ok(r#"["acme"]"#));

    // With the router's connection back, the registry is reloaded through it.
    drop(held);
    assert!(
        eventually(|| async { get_as(&app, "/whoami", "acme").await.0 == StatusCode::OK }).await,
        "tenant routes recover through the pool while the feed is still down"
    );
}

/// Over the wire (HTTP/1.1 on a real socket, hyper's parser): an absolute-form request
/// target names its host, which wins over a `Host` header naming another (RFC 9112
/// §3.2.2), the point the Rocket face cannot read (issue 19).
#[tokio::test]
async fn an_absolute_form_target_names_the_host_over_the_wire() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let test = tenants();
    let app = app(&start(test.router(), async_pool(), test.url()).await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let ask = |request: &'static str| async move {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.unwrap();
        answer
    };
    let absolute = ask(
        "GET http://acme.example.com/schema HTTP/1.1\r\nHost: other.example.com\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
    assert!(absolute.starts_with("HTTP/1.1 200"), "{absolute}");
    assert!(absolute.ends_with("acme"), "{absolute}");
    let unknown = ask(
        "GET http://other.example.com/schema HTTP/1.1\r\nHost: acme.example.com\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
    assert!(unknown.starts_with("HTTP/1.1 400"), "{unknown}");
    assert!(
        unknown.contains(r#"{"detail":"Tenant not found"}"#),
        "{unknown}"
    );
    server.abort();
}

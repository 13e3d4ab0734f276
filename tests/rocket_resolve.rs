//! Per-request tenant resolution through the Rocket guards, against real PostgreSQL:
//! header, host, case, `public`, unknown and malformed input, path prefix, JSON errors.

mod common;
mod rocket_support;

use std::sync::{Arc, Mutex};

use common::TestDb;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel_tenancy::TenantPool;
use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::Client;
use rocket_support::*;

/// demo1 (domain demo1.example.com) and "Demo 2" (schema demo_2), one hotel each.
fn setup() -> (TestDb, Client) {
    let db = TestDb::new();
    let router = db.router(1);
    provision(&router, "demo1", &["demo1.example.com"], "D1 hotel");
    provision(&router, "Demo 2", &[], "D2 hotel");
    drop(router);
    let client = client(&db.url);
    (db, client)
}

fn ok(body: &str) -> (Status, String) {
    (Status::Ok, body.to_owned())
}

fn tenant_not_found() -> (Status, String) {
    (Status::BadRequest, NOT_FOUND_BODY.to_owned())
}

#[test]
fn header_selects_the_tenant_case_insensitively_and_trimmed() {
    let (_db, client) = setup();
    assert_eq!(get_as(&client, "/hotels", "demo1"), ok(r#"["D1 hotel"]"#));
    assert_eq!(
        get_as(&client, "/hotels", "  DEMO1 "),
        ok(r#"["D1 hotel"]"#)
    );
    assert_eq!(get_as(&client, "/hotels", "demo 2"), ok(r#"["D2 hotel"]"#));
    assert_eq!(get_as(&client, "/schema", "Demo 2"), ok("demo_2"));
    assert_eq!(
        get_as(&client, "/whoami", "DEMO1"),
        ok(r#"{"id":1,"name":"demo1","schema":"demo1","mode":"schema"}"#)
    );
    // Writes land in the resolved tenant only.
    assert_eq!(
        client
            .post("/hotels/new")
            .header(Header::new("Tenant-Header", "demo1"))
            .dispatch()
            .status(),
        Status::Ok
    );
    assert_eq!(
        get_as(&client, "/hotels", "demo1"),
        ok(r#"["D1 hotel","new"]"#)
    );
    assert_eq!(get_as(&client, "/hotels", "demo 2"), ok(r#"["D2 hotel"]"#));
}

#[test]
fn host_selects_a_registered_domain_and_the_header_wins() {
    let (_db, client) = setup();
    for host in [
        "demo1.example.com",
        "Demo1.Example.COM.",
        "demo1.example.com:8000",
    ] {
        assert_eq!(
            get_with(&client, "/hotels", Some(("Host", host))),
            ok(r#"["D1 hotel"]"#),
            "{host}"
        );
    }
    assert_eq!(
        get_with(&client, "/hotels", Some(("Host", "other.example.com"))),
        tenant_not_found()
    );
    let both = client
        .get("/hotels")
        .header(Header::new("Host", "demo1.example.com"))
        .header(Header::new("Tenant-Header", "demo 2"))
        .dispatch();
    assert_eq!(both.into_string().unwrap(), r#"["D2 hotel"]"#);
    // An unknown header does not fall through to the host.
    let unknown = client
        .get("/hotels")
        .header(Header::new("Host", "demo1.example.com"))
        .header(Header::new("Tenant-Header", "nope"))
        .dispatch();
    assert_eq!(unknown.status(), Status::BadRequest);
}

#[test]
fn unknown_or_missing_tenant_is_400_tenant_not_found_as_json() {
    let (_db, client) = setup();
    assert_eq!(get_as(&client, "/hotels", "nope"), tenant_not_found());
    assert_eq!(get_with(&client, "/hotels", None), tenant_not_found());
    assert_eq!(get_as(&client, "/hotels", "   "), tenant_not_found());
    assert_eq!(get_as(&client, "/whoami", "demo"), tenant_not_found());
    let response = client.get("/hotels").dispatch();
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    // Public routes run without a tenant.
    assert_eq!(
        get_with(&client, "/tenants", None),
        ok(r#"["Demo 2","demo1"]"#)
    );
    assert_eq!(
        get_as(&client, "/tenants", "nope"),
        ok(r#"["Demo 2","demo1"]"#)
    );
    assert_eq!(get_with(&client, "/maybe", None), ok("none"));
    // Other errors are JSON too.
    assert_eq!(
        get_with(&client, "/no/such/route", None),
        (Status::NotFound, r#"{"detail":"Not found"}"#.to_owned())
    );
}

#[test]
fn public_selects_the_public_scope_only_on_public_routes() {
    let (_db, client) = setup();
    for public in ["public", "PUBLIC", " Public "] {
        assert_eq!(
            get_as(&client, "/hotels", public),
            tenant_not_found(),
            "{public}"
        );
        assert_eq!(
            get_as(&client, "/tenants", public),
            ok(r#"["Demo 2","demo1"]"#)
        );
    }
}

#[test]
fn the_public_tenant_option_runs_tenant_routes_in_public() {
    let db = TestDb::new();
    let router = db.router(1);
    provision(&router, "demo1", &[], "D1 hotel");
    drop(router);
    let client = Client::tracked(app(figment(&db.url), fairing().public_tenant(true))).unwrap();
    assert_eq!(get_as(&client, "/schema", "PUBLIC"), ok("public"));
    assert_eq!(get_as(&client, "/hotels", "public"), ok("[]"));
    assert_eq!(
        get_as(&client, "/whoami", "public"),
        ok(r#"{"id":null,"name":"public","schema":"public","mode":"schema"}"#)
    );
    assert_eq!(get_as(&client, "/hotels", "demo1"), ok(r#"["D1 hotel"]"#));
    // No tenant named is still no tenant.
    assert_eq!(get_with(&client, "/hotels", None), tenant_not_found());
}

#[test]
fn malformed_headers_are_400_with_a_detail_never_500() {
    let (_db, client) = setup();
    let long = "a".repeat(256);
    for (value, why) in [
        ("de\u{1}mo1", "contains control characters"),
        ("demo1\u{7f}", "contains control characters"),
        ("de\tmo", "contains control characters"),
        (long.as_str(), "longer than 255 bytes"),
    ] {
        for path in ["/hotels", "/whoami"] {
            let (status, body) = get_as(&client, path, value);
            assert_eq!(status, Status::BadRequest, "{value:?}");
            assert_eq!(
                body,
                format!(r#"{{"detail":"malformed Tenant-Header: {why}"}}"#)
            );
        }
        // Optional and public routes are not failed by it.
        assert_eq!(get_as(&client, "/maybe", value), ok("none"));
        assert_eq!(get_as(&client, "/tenants", value).0, Status::Ok);
    }
    // 255 bytes is a well-formed (unknown) name.
    assert_eq!(
        get_as(&client, "/hotels", &"a".repeat(255)),
        tenant_not_found()
    );
    let twice = client
        .get("/hotels")
        .header(Header::new("Tenant-Header", "demo1"))
        .header(Header::new("Tenant-Header", "demo 2"))
        .dispatch();
    assert_eq!(twice.status(), Status::BadRequest);
    assert!(twice.into_string().unwrap().contains("more than once"));
}

#[test]
fn a_custom_header_name_and_the_path_prefix() {
    let (db, _default) = setup();
    let figment = figment(&db.url).merge(("tenancy.path_prefix", "t"));
    let client = Client::tracked(app(figment, fairing().header_name("X-Tenant"))).unwrap();
    assert_eq!(
        get_with(&client, "/hotels", Some(("X-Tenant", "demo1"))),
        ok(r#"["D1 hotel"]"#)
    );
    assert_eq!(get_as(&client, "/hotels", "demo1"), tenant_not_found());
    assert_eq!(
        get_with(&client, "/t/demo1/hotels", None),
        ok(r#"["D1 hotel"]"#)
    );
    assert_eq!(
        get_with(&client, "/t/Demo%202/hotels", None),
        ok(r#"["D2 hotel"]"#)
    );
    assert_eq!(get_with(&client, "/t/DEMO1/whoami?x=1", None).0, Status::Ok);
    assert_eq!(
        get_with(&client, "/t/nope/hotels", None),
        tenant_not_found()
    );
    assert_eq!(
        get_with(&client, "/t/a%01b/hotels", None),
        (
            Status::BadRequest,
            r#"{"detail":"malformed tenant in the path: contains control characters"}"#.to_owned()
        )
    );
    // The header still comes first.
    assert_eq!(
        get_with(&client, "/t/demo1/hotels", Some(("X-Tenant", "Demo 2"))),
        ok(r#"["D2 hotel"]"#)
    );
}

#[derive(Clone, Default)]
struct Statements(Arc<Mutex<Vec<String>>>);

impl Instrumentation for Statements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            self.0.lock().unwrap().push(query.to_string());
        }
    }
}

#[test]
fn resolving_a_known_tenant_costs_no_registry_round_trip() {
    let (db, _default) = setup();
    let seen = Statements::default();
    let counter = seen.clone();
    let pool = TenantPool::builder().instrumentation(move || Box::new(counter.clone()));
    let figment = figment(&db.url).merge(("databases.hotel.pool_size", 1));
    let client = Client::tracked(app(figment, fairing().pool_builder(pool))).unwrap();
    let generation = tenancy(&client).cache().generation();
    assert_eq!(get_as(&client, "/hotels", "demo1"), ok(r#"["D1 hotel"]"#));
    seen.0.lock().unwrap().clear();
    for _ in 0..10 {
        assert_eq!(get_as(&client, "/hotels", "DEMO1"), ok(r#"["D1 hotel"]"#));
        assert_eq!(get_as(&client, "/whoami", "demo1").0, Status::Ok);
    }
    // Two statements per /hotels request, the verified checkout and its own SELECT: no
    // registry lookup; /whoami sends nothing at all.
    let sent = seen.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 20, "{sent:#?}");
    for pair in sent.chunks(2) {
        assert!(
            pair[0].contains("EXECUTE diesel_tenancy_checkout"),
            "{sent:#?}"
        );
        assert!(pair[1].contains("\"hotels\""), "{sent:#?}");
    }
    assert_eq!(tenancy(&client).cache().generation(), generation);
}

//! The seed's proof of concept over HTTP, the service driven through `rocket::local`.

mod support;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_tenancy::testing::TestDatabase;
use serde_json::{json, Value};
use support::{fresh_database, App, Http, Options};

const DEMO1: [(&str, &str); 1] = [("Tenant-Header", "demo1")];
const DEMO2: [(&str, &str); 1] = [("Tenant-Header", "demo2")];

fn hotel(name: &str, location: &str) -> Value {
    json!({"name": name, "location": location, "description": format!("{name} in {location}")})
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("a JSON list")
        .iter()
        .map(|h| h["id"].as_i64().expect("an id"))
        .collect()
}

/// The service's options, with or without per-tenant database roles.
fn options(tenant_roles: bool) -> Options {
    let mut options = Options::default();
    if tenant_roles {
        options.env.push(("HOTEL_TENANT_ROLES", "on".into()));
    }
    options
}

#[test]
fn proof_of_concept() {
    proof_of_concept_with(false);
}

/// The same with `HOTEL_TENANT_ROLES=on`: every tenant request runs as its tenant's
/// database role, and the roles really keep the tenants apart.
#[test]
fn proof_of_concept_with_tenant_roles() {
    let db = proof_of_concept_with(true);
    let mut conn = PgConnection::establish(db.url()).expect("connect");
    let role = format!("{}_demo1", support::role_group(db.url()));
    let denied = conn
        .batch_execute(&format!("SET ROLE \"{role}\"; SELECT * FROM demo2.hotels"))
        .expect_err("demo1's role read demo2's hotels");
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    conn.batch_execute("RESET ROLE").expect("reset");
}

fn proof_of_concept_with(tenant_roles: bool) -> TestDatabase {
    // The service creates this database itself, then migrates it: nothing else is needed.
    let db = fresh_database();
    let server = App::start(&db, options(tenant_roles));

    // Create tenants demo1 and demo2 through the admin API.
    let demo1 = server.create_tenant("demo1");
    assert_eq!(demo1["name"], "demo1");
    assert_eq!(demo1["schema_name"], "demo1");
    assert_eq!(demo1["domains"], json!([]));
    assert!(demo1["created_at"].is_string());
    server.create_tenant("demo2");

    // Both hotel lists are empty.
    for tenant in [&DEMO1, &DEMO2] {
        let r = server.get("/hotels/", tenant);
        assert_eq!((r.status, r.json()), (200, json!([])));
    }

    // Two hotels in demo1, one in demo2; ids start at 1 in each tenant.
    let a = server.json("POST", "/hotels/", &DEMO1, hotel("Ritz", "Paris"));
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(
        a.json(),
        json!({"id": 1, "name": "Ritz", "location": "Paris",
               "description": "Ritz in Paris", "picture": null})
    );
    let b = server.json("POST", "/hotels/", &DEMO1, hotel("Negresco", "Nice"));
    assert_eq!((b.status, b.json()["id"].clone()), (201, json!(2)));
    let c = server.json("POST", "/hotels/", &DEMO2, hotel("Savoy", "London"));
    assert_eq!((c.status, c.json()["id"].clone()), (201, json!(1)));

    // The lists show 2 and 1, each tenant only its own rows.
    let list1 = server.get("/hotels/", &DEMO1).json();
    assert_eq!(ids(&list1), [1, 2]);
    assert_eq!(list1[0]["name"], "Ritz");
    assert_eq!(list1[1]["name"], "Negresco");
    let list2 = server.get("/hotels/", &DEMO2).json();
    assert_eq!(ids(&list2), [1]);
    assert_eq!(list2[0]["name"], "Savoy");

    // The same id names a different hotel in each tenant.
    assert_eq!(server.get("/hotels/1/", &DEMO1).json()["name"], "Ritz");
    assert_eq!(server.get("/hotels/1/", &DEMO2).json()["name"], "Savoy");
    assert_eq!(server.get("/hotels/2/", &DEMO2).status, 404);

    // The rows really are in two schemas.
    let mut conn = PgConnection::establish(db.url()).expect("connect");
    let mut count = |schema: &str| -> i64 {
        diesel::sql_query(format!("SELECT count(*) AS n FROM {schema}.hotels"))
            .get_result::<Count>(&mut conn)
            .expect("count")
            .n
    };
    assert_eq!((count("demo1"), count("demo2")), (2, 1));
    drop(server);
    db
}

/// The seed's proof of concept with `HOTEL_TENANT_MODE=rows`: the same requests, the
/// same isolation; what differs is that ids are global (one sequence for the row table)
/// and the rows live in one table of the row schema, apart by row-level security.
#[test]
fn proof_of_concept_in_row_mode() {
    let db = support::OwnedDatabase::new();
    let mut options = Options::default();
    options.env.push(("HOTEL_TENANT_MODE", "rows".into()));
    proof_of_concept_in_row_mode_with(&db, options);
}

/// The same, with the mode from Rocket's configuration (`tenancy.tenant_mode`).
#[test]
fn proof_of_concept_in_row_mode_from_rocket_config() {
    let db = support::OwnedDatabase::new();
    let mut options = Options::default();
    options
        .env
        .push(("ROCKET_TENANCY", "{tenant_mode=\"rows\"}".into()));
    proof_of_concept_in_row_mode_with(&db, options);
}

fn proof_of_concept_in_row_mode_with(db: &support::OwnedDatabase, options: Options) {
    let server = App::start_url(&db.url, options);
    let demo1 = server.create_tenant("demo1");
    assert_eq!(
        (demo1["name"].clone(), demo1["mode"].clone()),
        (json!("demo1"), json!("rows"))
    );
    server.create_tenant("demo2");
    for tenant in [&DEMO1, &DEMO2] {
        let r = server.get("/hotels/", tenant);
        assert_eq!((r.status, r.json()), (200, json!([])));
    }
    let a = server.json("POST", "/hotels/", &DEMO1, hotel("Ritz", "Paris"));
    assert_eq!(a.status, 201, "{}", a.text());
    let b = server.json("POST", "/hotels/", &DEMO1, hotel("Negresco", "Nice"));
    assert_eq!(b.status, 201, "{}", b.text());
    let c = server.json("POST", "/hotels/", &DEMO2, hotel("Savoy", "London"));
    assert_eq!(c.status, 201, "{}", c.text());
    let (a, b, c) = (
        a.json()["id"].as_i64().unwrap(),
        b.json()["id"].as_i64().unwrap(),
        c.json()["id"].as_i64().unwrap(),
    );
    // Ids are global in row mode: three hotels, three ids.
    assert!(a < b && b < c, "{a} {b} {c}");

    let list1 = server.get("/hotels/", &DEMO1).json();
    assert_eq!(ids(&list1), [a, b]);
    assert_eq!(list1[0]["name"], "Ritz");
    let list2 = server.get("/hotels/", &DEMO2).json();
    assert_eq!(ids(&list2), [c]);
    assert_eq!(list2[0]["name"], "Savoy");

    // Another tenant's id is not found, for reads, updates and deletes.
    assert_eq!(server.get(&format!("/hotels/{a}/"), &DEMO2).status, 404);
    let put = server.json(
        "PUT",
        &format!("/hotels/{c}/"),
        &DEMO1,
        hotel("Stolen", "Nowhere"),
    );
    assert_eq!(put.status, 404, "{}", put.text());
    assert_eq!(
        server
            .send("DELETE", &format!("/hotels/{c}/"), &DEMO1, None)
            .status,
        404
    );
    assert_eq!(
        server.get(&format!("/hotels/{c}/"), &DEMO2).json()["name"],
        "Savoy"
    );
    // Unknown and missing tenants: the seed's 400.
    let unknown = server.get("/hotels/", &[("Tenant-Header", "demo3")]);
    assert_eq!(
        (unknown.status, unknown.json()),
        (400, json!({"detail": "Tenant not found"}))
    );

    // One service holds both modes: a schema tenant asked for by name, beside them.
    let r = server.admin(
        "POST",
        "/tenants",
        Some(json!({"name": "demo3", "mode": "schema"})),
    );
    assert_eq!(
        (r.status, r.json()["mode"].clone()),
        (201, json!("schema")),
        "{}",
        r.text()
    );
    const DEMO3: [(&str, &str); 1] = [("Tenant-Header", "demo3")];
    let d = server.json("POST", "/hotels/", &DEMO3, hotel("Adlon", "Berlin"));
    assert_eq!(
        (d.status, d.json()["id"].clone()),
        (201, json!(1)),
        "{}",
        d.text()
    );
    assert_eq!(ids(&server.get("/hotels/", &DEMO1).json()), [a, b]);
    let bad = server.admin(
        "POST",
        "/tenants",
        Some(json!({"name": "demo4", "mode": "cells"})),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("mode"), "{}", bad.text());

    // The rows are in the row schema's one table, tagged with their tenant; no tenant
    // schema was made for them.
    let mut conn = PgConnection::establish(&db.admin_url).expect("connect");
    let per_tenant: Vec<(String, i64)> = diesel::sql_query(
        "SELECT t.name AS name, count(*) AS n FROM tenant_rows.hotels h \
         JOIN public.tenants t ON t.id = h.tenant_id GROUP BY t.name ORDER BY t.name",
    )
    .load::<NameCount>(&mut conn)
    .expect("count")
    .into_iter()
    .map(|r| (r.name, r.n))
    .collect();
    assert_eq!(
        per_tenant,
        [("demo1".to_owned(), 2), ("demo2".to_owned(), 1)]
    );
    let schemas = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_namespace WHERE nspname IN ('demo1', 'demo2', 'demo3')",
    )
    .get_result::<Count>(&mut conn)
    .expect("schemas")
    .n;
    assert_eq!(schemas, 1, "demo3's schema only");
    drop(server);
}

#[derive(QueryableByName)]
struct NameCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[test]
fn model_viewset_semantics() {
    model_viewset_semantics_with(false);
}

#[test]
fn model_viewset_semantics_with_tenant_roles() {
    model_viewset_semantics_with(true);
}

fn model_viewset_semantics_with(tenant_roles: bool) {
    let db = support::test_database();
    let server = App::start(&db, options(tenant_roles));
    server.create_tenant("acme");
    let acme = [("Tenant-Header", "ACME")]; // names compare case-insensitively

    // With and without the trailing slash.
    let created = server.json("POST", "/hotels", &acme, hotel("One", "A"));
    assert_eq!(created.status, 201);
    assert_eq!(created.header("Location"), Some("/hotels/1/"));
    assert_eq!(
        server.get("/hotels", &acme).json().as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(server.get("/hotels/1", &acme).json()["name"], "One");
    assert_eq!(server.get("/hotels/1/", &acme).json()["name"], "One");

    // PUT replaces every field; PATCH changes a subset.
    let put = server.json("PUT", "/hotels/1/", &acme, hotel("Uno", "B"));
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(
        put.json(),
        json!({"id": 1, "name": "Uno", "location": "B", "description": "Uno in B", "picture": null})
    );
    let patch = server.json("PATCH", "/hotels/1", &acme, json!({"location": "  C  "}));
    assert_eq!(patch.status, 200);
    assert_eq!(patch.json()["location"], "C");
    assert_eq!(patch.json()["name"], "Uno");
    let noop = server.json("PATCH", "/hotels/1/", &acme, json!({}));
    assert_eq!(
        (noop.status, noop.json()["location"].clone()),
        (200, json!("C"))
    );

    // DELETE, then it is gone.
    let gone = server.send("DELETE", "/hotels/1/", &acme, None);
    assert_eq!((gone.status, gone.body.len()), (204, 0));
    for (method, path) in [
        ("GET", "/hotels/1/"),
        ("DELETE", "/hotels/1"),
        ("PATCH", "/hotels/1/"),
    ] {
        let r = server.json(method, path, &acme, json!({}));
        assert_eq!(
            (r.status, r.json()),
            (404, json!({"detail": "Not found."})),
            "{method} {path}"
        );
    }
    let put_missing = server.json("PUT", "/hotels/7/", &acme, hotel("X", "Y"));
    assert_eq!(put_missing.status, 404);
    // Ids keep counting, as in a sequence.
    let next = server.json("POST", "/hotels/", &acme, hotel("Two", "D"));
    assert_eq!(next.json()["id"], 2);
    assert_eq!(ids(&server.get("/hotels/", &acme).json()), [2]);
}

#[test]
fn public_tenant_and_domains() {
    public_tenant_and_domains_with(false);
}

#[test]
fn public_tenant_and_domains_with_tenant_roles() {
    public_tenant_and_domains_with(true);
}

fn public_tenant_and_domains_with(tenant_roles: bool) {
    let db = support::test_database();
    let server = App::start(&db, options(tenant_roles));
    let public = [("Tenant-Header", "Public")];

    // `public` is the default tenant: it holds hotels too.
    assert_eq!(server.get("/hotels/", &public).json(), json!([]));
    let r = server.json("POST", "/hotels/", &public, hotel("HQ", "Here"));
    assert_eq!((r.status, r.json()["id"].clone()), (201, json!(1)));
    assert_eq!(ids(&server.get("/hotels/", &public).json()), [1]);

    // A tenant reached by its registered domain (the Host, port ignored).
    let created = server.admin(
        "POST",
        "/tenants",
        Some(
            json!({"name": "Beach Club", "schema_name": "beach", "domains": ["beach.example.com"]}),
        ),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["domains"], json!(["beach.example.com"]));
    let by_host = [("Host", "Beach.Example.com:8000")];
    assert_eq!(server.get("/hotels/", &by_host).json(), json!([]));
    let r = server.json("POST", "/hotels/", &by_host, hotel("Sand", "Coast"));
    assert_eq!((r.status, r.json()["id"].clone()), (201, json!(1)));
    let by_name = [("Tenant-Header", "beach club")];
    assert_eq!(server.get("/hotels/", &by_name).json()[0]["name"], "Sand");
    // The header wins over the host.
    let both = [("Host", "beach.example.com"), ("Tenant-Header", "public")];
    assert_eq!(server.get("/hotels/", &both).json()[0]["name"], "HQ");

    // Unknown tenant, or none at all: the seed's 400.
    for headers in [
        &[("Tenant-Header", "nobody")][..],
        &[],
        &[("Host", "other.example.com")],
    ] {
        let r = server.get("/hotels/", headers);
        assert_eq!(
            (r.status, r.json()),
            (400, json!({"detail": "Tenant not found"}))
        );
    }
    // Public routes work whatever the tenant header says.
    for headers in [&[("Tenant-Header", "nobody")][..], &public, &[]] {
        let r = server.get("/health", headers);
        assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    }
}

/// Roles turned on for a database whose tenants were made without them, this time by
/// the fairing's configuration key (`tenancy.tenant_roles`): the service gives them their
/// roles at launch and serves them as before.
#[test]
fn tenant_roles_turned_on_later_are_made_at_launch() {
    let db = support::test_database();
    let server = App::start(&db, options(false));
    server.create_tenant("demo1");
    let made = server.json("POST", "/hotels/", &DEMO1, hotel("Ritz", "Paris"));
    assert_eq!(made.status, 201, "{}", made.text());
    drop(server);
    assert!(support::roles_like(&support::role_group(db.url())).is_empty());

    let mut roles_on = options(false);
    roles_on
        .env
        .push(("ROCKET_TENANCY", "{tenant_roles=true}".into()));
    let server = App::start(&db, roles_on);
    let list = server.get("/hotels/", &DEMO1);
    assert_eq!((list.status, ids(&list.json())), (200, vec![1]));
    let group = support::role_group(db.url());
    assert_eq!(
        support::roles_like(&group),
        vec![group.clone(), format!("{group}_demo1")]
    );
}

//! The validation cases over HTTP (`rocket::local`): 400, 401, 404, 409, 413, 415, and
//! never a 500 (every request goes through `Http::send`, which fails the test on any 5xx).

mod support;

use serde_json::{json, Value};
use support::{App, Body, Http, Options, TOKEN};

const DEMO1: [(&str, &str); 1] = [("Tenant-Header", "demo1")];
const REQUIRED: &str = "This field is required.";
const BLANK: &str = "This field may not be blank.";
const TOO_LONG: &str = "Ensure this field has no more than 255 characters.";

fn full() -> Value {
    json!({"name": "Ritz", "location": "Paris", "description": "Grand"})
}

#[test]
fn hotel_fields() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    server.create_tenant("demo1");
    let post = |body: Value| server.json("POST", "/hotels/", &DEMO1, body);

    let r = post(json!({}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"name": [REQUIRED], "location": [REQUIRED], "description": [REQUIRED]})
    );
    let r = post(json!({"name": "  ", "location": "", "description": "x".repeat(256)}));
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"name": [BLANK], "location": [BLANK], "description": [TOO_LONG]})
        )
    );
    let r = post(json!({"name": null, "location": true, "description": ["x"]}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["name"], json!(["This field may not be null."]));
    assert_eq!(r.json()["location"], json!(["Not a valid string."]));
    // 255 characters (not bytes) is the limit.
    let edge = json!({"name": "é".repeat(255), "location": "L", "description": "D"});
    assert_eq!(post(edge).status, 201);
    let r = post(json!([1, 2]));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["non_field_errors"][0],
        "Invalid data. Expected a dictionary, but got list."
    );
    // Multipart gets the same checks.
    let r = server.send(
        "POST",
        "/hotels/",
        &DEMO1,
        Some(Body::multipart(&[("name", ""), ("location", "L")], &[])),
    );
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"name": [BLANK], "description": [REQUIRED]}))
    );

    // PUT needs every field, PATCH checks only what it gets.
    assert_eq!(post(full()).status, 201);
    let r = server.json("PUT", "/hotels/2/", &DEMO1, json!({"name": "Only"}));
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"location": [REQUIRED], "description": [REQUIRED]})
        )
    );
    let r = server.json("PATCH", "/hotels/2/", &DEMO1, json!({"name": ""}));
    assert_eq!((r.status, r.json()), (400, json!({"name": [BLANK]})));
    assert_eq!(server.get("/hotels/2/", &DEMO1).json()["name"], "Ritz");
}

#[test]
fn bodies_and_routes() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    server.create_tenant("demo1");

    // Malformed JSON: 400 with a detail.
    let r = server.send(
        "POST",
        "/hotels/",
        &DEMO1,
        Some(Body::raw("application/json", b"{\"name\": ".to_vec())),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("JSON parse error"),
        "{}",
        r.text()
    );
    // Unsupported content types: 415 with a detail.
    for ct in ["text/plain", "application/xml", "image/png"] {
        let r = server.send(
            "POST",
            "/hotels/",
            &DEMO1,
            Some(Body::raw(ct, b"x".to_vec())),
        );
        assert_eq!(r.status, 415, "{ct}");
        assert_eq!(
            r.json()["detail"],
            format!("Unsupported media type \"{ct}\" in request.")
        );
        let r = server.send(
            "PATCH",
            "/hotels/1/",
            &DEMO1,
            Some(Body::raw(ct, b"x".to_vec())),
        );
        assert!(matches!(r.status, 404 | 415), "{}", r.status);
    }
    // Oversized JSON body: 413.
    let huge = json!({"name": "x".repeat(2 * 1024 * 1024), "location": "a", "description": "b"});
    let r = server.json("POST", "/hotels/", &DEMO1, huge);
    assert_eq!(r.status, 413);
    assert!(r.json()["detail"].is_string());
    // A long multipart field is a field error; a multipart body over its limit is 413.
    for (size, status) in [(100 * 1024, 400), (7 * 1024 * 1024, 413)] {
        let long = "y".repeat(size);
        let r = server.send(
            "POST",
            "/hotels/",
            &DEMO1,
            Some(Body::multipart(
                &[("name", &long), ("location", "a"), ("description", "b")],
                &[],
            )),
        );
        assert_eq!(r.status, status, "{size}: {}", r.text());
    }
    // Broken multipart: 400.
    let r = server.send(
        "POST",
        "/hotels/",
        &DEMO1,
        Some(Body::raw(
            "multipart/form-data; boundary=zzz",
            b"garbage".to_vec(),
        )),
    );
    assert_eq!(r.status, 400, "{}", r.text());

    // 404 with DRF's body: missing ids, ids that are not numbers, unknown routes.
    for path in [
        "/hotels/1/",
        "/hotels/abc/",
        "/hotels/99999999999999999999",
        "/nowhere",
    ] {
        let r = server.get(path, &DEMO1);
        assert_eq!(
            (r.status, r.json()),
            (404, json!({"detail": "Not found."})),
            "{path}"
        );
    }
    // Unknown or missing tenant on a tenant route: the seed's 400, even with a bad body.
    let not_found = json!({"detail": "Tenant not found"});
    for headers in [&[("Tenant-Header", "ghost")][..], &[]] {
        assert_eq!(server.get("/hotels/", headers).json(), not_found);
        let r = server.send(
            "POST",
            "/hotels/",
            headers,
            Some(Body::raw("text/plain", vec![])),
        );
        assert_eq!((r.status, r.json()), (400, not_found.clone()));
    }
    // A malformed tenant header: 400 with a detail, never a 500.
    let long_name = "a".repeat(300);
    let r = server.get("/hotels/", &[("Tenant-Header", long_name.as_str())]);
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"].is_string());
}

#[test]
fn admin_api_needs_its_token() {
    let db = support::test_database();
    // Without HOTEL_ADMIN_TOKEN the admin API does not exist.
    {
        let off = App::start(
            &db,
            Options {
                admin_token: None,
                ..Options::default()
            },
        );
        let bearer = format!("Bearer {TOKEN}");
        for (method, path) in [
            ("GET", "/tenants"),
            ("POST", "/tenants"),
            ("DELETE", "/domains/a.b"),
        ] {
            let r = off.send(method, path, &[("Authorization", bearer.as_str())], None);
            assert_eq!(r.status, 404, "{method} {path}");
        }
    }
    let server = App::start(&db, Options::default());
    let r = server.get("/tenants", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"detail": "Authentication credentials were not provided."})
    );
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
    for wrong in [
        "Bearer nope",
        "Bearer test-admin-token-and-more",
        "Basic dGVzdA==",
        "Bearer",
    ] {
        let r = server.send(
            "POST",
            "/tenants",
            &[("Authorization", wrong)],
            Some(Body::json(&json!({"name": "x"}))),
        );
        assert_eq!(r.status, 401, "{wrong}");
        assert!(r.json()["detail"].is_string());
    }
    // Nothing was created by the refused requests.
    assert_eq!(server.admin("GET", "/tenants", None).json(), json!([]));
}

#[test]
fn admin_api_statuses() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());

    let r = server.admin("POST", "/tenants", Some(json!({})));
    assert_eq!((r.status, r.json()), (400, json!({"name": [REQUIRED]})));
    for bad in [
        json!({"name": "public"}),
        json!({"name": "ok", "schema_name": "pg_bad"}),
        json!({"name": "ok", "domains": ["not a domain"]}),
        json!({"name": "ok", "domains": "x.test"}),
    ] {
        let r = server.admin("POST", "/tenants", Some(bad.clone()));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let r = server.send(
        "POST",
        "/tenants",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        Some(Body::raw("application/json", b"{oops".to_vec())),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"].is_string());

    let created = server.admin(
        "POST",
        "/tenants",
        Some(json!({"name": "demo1", "domains": ["demo1.test"]})),
    );
    assert_eq!(created.status, 201);
    assert_eq!(
        server
            .admin("POST", "/tenants", Some(json!({"name": "DEMO1"})))
            .status,
        409
    );
    let listed = server.admin("GET", "/tenants", None).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["domains"], json!(["demo1.test"]));
    assert_eq!(
        server.admin("GET", "/tenants/Demo1", None).json()["name"],
        "demo1"
    );
    assert_eq!(server.admin("GET", "/tenants/ghost", None).status, 404);

    // Domains: 201, 400, 404, 409; removal 204 then 404.
    let r = server.admin(
        "POST",
        "/tenants/demo1/domains",
        Some(json!({"domain": "WWW.demo1.test", "is_primary": true})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"domain": "www.demo1.test", "tenant": "demo1", "is_primary": true})
    );
    let r = server.admin(
        "POST",
        "/tenants/demo1/domains",
        Some(json!({"domain": "bad domain"})),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["domain"].is_array());
    let r = server.admin(
        "POST",
        "/tenants/ghost/domains",
        Some(json!({"domain": "g.test"})),
    );
    assert_eq!(r.status, 404);
    let r = server.admin(
        "POST",
        "/tenants/demo1/domains",
        Some(json!({"domain": "demo1.test"})),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        server.admin("GET", "/tenants/demo1", None).json()["domains"][0],
        "www.demo1.test"
    );
    // The new domain resolves right away.
    let by_host = server.get("/hotels/", &[("Host", "www.demo1.test")]);
    assert_eq!((by_host.status, by_host.json()), (200, json!([])));
    assert_eq!(
        server
            .admin("DELETE", "/domains/www.demo1.test", None)
            .status,
        204
    );
    assert_eq!(
        server
            .admin("DELETE", "/domains/www.demo1.test", None)
            .status,
        404
    );
    assert_eq!(
        server.get("/hotels/", &[("Host", "www.demo1.test")]).status,
        400
    );

    // Delete: 204, then the tenant no longer resolves; 404 for unknown tenants.
    assert_eq!(
        server
            .admin("DELETE", "/tenants/demo1?drop_schema=maybe", None)
            .status,
        400
    );
    assert_eq!(
        server
            .admin("DELETE", "/tenants/demo1?drop_schema=true", None)
            .status,
        204
    );
    assert_eq!(server.admin("DELETE", "/tenants/demo1", None).status, 404);
    assert_eq!(server.get("/hotels/", &DEMO1).status, 400);
}

//! The same black-box checks against every face of the hotel service (`HOTEL_FACE`),
//! each the real binary over real HTTP on a database of its own: the seed's proof of
//! concept, DRF's ModelViewSet semantics, validation, `public`, unknown tenants. A face
//! passes only if it answers exactly as the others do.

mod support;

use diesel::prelude::*;
use serde_json::{json, Value};
use support::{fresh_database, Http, Options, Server};

/// Every face, by its `HOTEL_FACE` value. A new face is one more line here.
const FACES: &[&str] = &["rocket", "rocket-async", "axum"];

const DEMO1: [(&str, &str); 1] = [("Tenant-Header", "demo1")];
const DEMO2: [(&str, &str); 1] = [("Tenant-Header", "demo2")];
const PUBLIC: [(&str, &str); 1] = [("Tenant-Header", "Public")];

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

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// One exchange as the client saw it, to compare faces with.
type Exchange = (String, u16, Value);

/// Runs the checks against `server`; returns the exchanges whose answers every face
/// must give alike.
fn checks(face: &str, server: &Server, db_url: &str) -> Vec<Exchange> {
    let mut seen = Vec::new();
    let mut note = |what: &str, r: &support::Response| {
        let body = if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        };
        seen.push((what.to_owned(), r.status, body));
    };

    // Two tenants through the admin API.
    for name in ["demo1", "demo2"] {
        let created = server.create_tenant(name);
        assert_eq!(created["schema_name"], name, "{face}");
    }
    for tenant in [&DEMO1, &DEMO2] {
        let r = server.get("/hotels/", tenant);
        assert_eq!((r.status, r.json()), (200, json!([])), "{face}");
    }

    // Ids start at 1 in each tenant; the header's name and value in any case.
    let a = server.json("POST", "/hotels/", &DEMO1, hotel("Ritz", "Paris"));
    assert_eq!(a.status, 201, "{face}: {}", a.text());
    assert_eq!(
        a.json(),
        json!({"id": 1, "name": "Ritz", "location": "Paris",
               "description": "Ritz in Paris", "picture": null}),
        "{face}"
    );
    assert_eq!(a.header("Location"), Some("/hotels/1/"), "{face}");
    let shouting = [("TENANT-HEADER", "DEMO1")];
    let b = server.json("POST", "/hotels", &shouting, hotel("Negresco", "Nice"));
    assert_eq!(
        (b.status, b.json()["id"].clone()),
        (201, json!(2)),
        "{face}"
    );
    let c = server.json("POST", "/hotels/", &DEMO2, hotel("Savoy", "London"));
    assert_eq!(
        (c.status, c.json()["id"].clone()),
        (201, json!(1)),
        "{face}"
    );

    // Each tenant sees its own rows only; the same id names another hotel in each.
    let list1 = server.get("/hotels/", &[("tenant-header", "Demo1")]).json();
    assert_eq!(ids(&list1), [1, 2], "{face}");
    assert_eq!(ids(&server.get("/hotels/", &DEMO2).json()), [1], "{face}");
    assert_eq!(server.get("/hotels/1/", &DEMO1).json()["name"], "Ritz");
    assert_eq!(server.get("/hotels/1", &DEMO2).json()["name"], "Savoy");
    let r = server.get("/hotels/2/", &DEMO2);
    assert_eq!((r.status, r.json()), (404, json!({"detail": "Not found."})));
    note("list demo1", &server.get("/hotels/", &DEMO1));
    note("list demo2", &server.get("/hotels/", &DEMO2));

    // PUT replaces every field, PATCH a subset, an empty PATCH changes nothing.
    let put = server.json("PUT", "/hotels/2/", &DEMO1, hotel("Negresco", "Cannes"));
    assert_eq!(
        (put.status, put.json()["location"].clone()),
        (200, json!("Cannes"))
    );
    note("put", &put);
    let patch = server.json("PATCH", "/hotels/2", &DEMO1, json!({"name": "  Carlton "}));
    assert_eq!(
        (patch.status, patch.json()["name"].clone()),
        (200, json!("Carlton"))
    );
    note("patch", &patch);
    note(
        "empty patch",
        &server.json("PATCH", "/hotels/2/", &DEMO1, json!({})),
    );
    note(
        "put missing",
        &server.json("PUT", "/hotels/9/", &DEMO1, hotel("X", "Y")),
    );
    // Validation answers as DRF does.
    note(
        "post nothing",
        &server.json("POST", "/hotels/", &DEMO1, json!({})),
    );
    note(
        "post blank",
        &server.json(
            "POST",
            "/hotels/",
            &DEMO1,
            json!({"name": " ", "location": "x", "description": "y"}),
        ),
    );
    note(
        "put partial",
        &server.json("PUT", "/hotels/1/", &DEMO1, json!({"name": "Z"})),
    );
    note(
        "not json",
        &server.send(
            "POST",
            "/hotels/",
            &DEMO1,
            Some(support::Body::raw("application/json", b"{".to_vec())),
        ),
    );
    // DELETE, then it is gone; ids keep counting.
    let gone = server.send("DELETE", "/hotels/2/", &DEMO1, None);
    assert_eq!((gone.status, gone.body.len()), (204, 0), "{face}");
    note(
        "delete again",
        &server.send("DELETE", "/hotels/2/", &DEMO1, None),
    );
    let next = server.json("POST", "/hotels/", &DEMO1, hotel("Martinez", "Cannes"));
    assert_eq!(next.json()["id"], 3, "{face}");

    // `public` holds hotels of its own.
    assert_eq!(server.get("/hotels/", &PUBLIC).json(), json!([]), "{face}");
    let hq = server.json("POST", "/hotels/", &PUBLIC, hotel("HQ", "Here"));
    assert_eq!(
        (hq.status, hq.json()["id"].clone()),
        (201, json!(1)),
        "{face}"
    );
    note("list public", &server.get("/hotels/", &PUBLIC));

    // Unknown tenant, or none: 400 with the seed's body, on every method.
    for headers in [&[("Tenant-Header", "nobody")][..], &[]] {
        for (method, path) in [
            ("GET", "/hotels/"),
            ("GET", "/hotels/1/"),
            ("DELETE", "/hotels/1/"),
        ] {
            let r = server.send(method, path, headers, None);
            assert_eq!(
                (r.status, r.json()),
                (400, json!({"detail": "Tenant not found"})),
                "{face}: {method} {path} {headers:?}"
            );
        }
        let r = server.json("POST", "/hotels/", headers, hotel("A", "B"));
        assert_eq!(
            (r.status, r.json()),
            (400, json!({"detail": "Tenant not found"}))
        );
    }

    // The rows really are in three schemas.
    let mut conn = PgConnection::establish(db_url).expect("connect");
    let mut count = |schema: &str| -> i64 {
        diesel::sql_query(format!("SELECT count(*) AS n FROM {schema}.hotels"))
            .get_result::<Count>(&mut conn)
            .expect("count")
            .n
    };
    assert_eq!(
        (count("demo1"), count("demo2"), count("public")),
        (2, 1, 1),
        "{face}"
    );
    seen
}

#[test]
fn every_face_serves_the_same_api_with_the_same_isolation() {
    let mut transcripts: Vec<(&str, Vec<Exchange>)> = Vec::new();
    for face in FACES {
        let db = fresh_database();
        let options = Options {
            env: vec![("HOTEL_FACE", (*face).to_owned())],
            ..Options::default()
        };
        let server = Server::start_url(db.url(), options);
        let seen = checks(face, &server, db.url());
        let banner = format!("the hotel API runs on the {face} face");
        assert!(
            server.log_text().contains(&banner),
            "{face}: {}",
            server.log_text()
        );
        transcripts.push((face, seen));
    }
    let (first, expected) = &transcripts[0];
    for (face, seen) in &transcripts[1..] {
        for (want, got) in expected.iter().zip(seen) {
            assert_eq!(got, want, "{face} answers unlike {first}");
        }
        assert_eq!(seen.len(), expected.len());
    }
}

#[test]
fn an_unknown_face_is_refused_at_start() {
    let db = fresh_database();
    let media = std::env::temp_dir();
    let out = support::hotel_command(db.url(), &media)
        .env("HOTEL_FACE", "warp")
        .arg("serve")
        .output()
        .expect("run the hotel binary");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HOTEL_FACE") && stderr.contains("rocket-async"),
        "{stderr}"
    );
}

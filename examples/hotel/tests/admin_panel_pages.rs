//! The admin panel's pages over HTTP (`rocket::local`): escaping, inline mistakes, 404s, deleting
//! with and without the schema, hotels with pictures and thumbnails, domains.

mod support;

use diesel::prelude::*;
use serde_json::json;
use support::panel::{hotel_form, tenant_names, Visitor};
use support::{image_bytes, App, Http, Options};

#[test]
fn pages_escape_data_and_report_mistakes() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    let mut admin = Visitor::new(&server);
    let csrf = admin.log_in();

    // A hostile tenant name is shown as text.
    let r = server.admin(
        "POST",
        "/tenants",
        Some(json!({"name": "<script>alert(1)</script>", "schema_name": "evil"})),
    );
    assert_eq!(r.status, 201);
    let page = admin.get("/admin").text();
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(!page.contains("<script>"));

    // Validation errors come back inline on the same page, with what was typed.
    let r = admin.post(
        "/admin/tenants",
        &[
            ("csrf", &csrf),
            ("name", "public"),
            ("domain", "not a domain"),
        ],
    );
    assert_eq!(r.status, 400);
    let page = r.text();
    assert!(
        page.contains(r#"<p class="error">Invalid tenant name `public`"#),
        "{page}"
    );
    assert!(page.contains(r#"value="not a domain""#));
    let r = admin.post("/admin/tenants", &[("csrf", &csrf), ("name", "  ")]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("This field may not be blank."));
    let r = admin.post("/admin/tenants", &[("csrf", &csrf), ("name", "Evil")]);
    assert_eq!(r.status, 409, "the derived schema `evil` is taken");
    let r = admin.post(
        "/admin/tenants/evil/hotels",
        &[("csrf", &csrf), ("name", ""), ("location", "x")],
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("This field may not be blank."));
    assert!(r.text().contains("This field is required."));

    // Unknown tenants, hotels and domains are 404 pages, not 500s.
    for path in [
        "/admin/tenants/nobody",
        "/admin/tenants/Bad%20Schema",
        "/admin/tenants/evil/hotels/999",
        "/admin/tenants/evil/hotels/abc",
        "/admin/tenants/evil/thumbs/hotels/missing.png",
        "/admin/nothing",
    ] {
        let r = admin.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.text().contains("<h1>404 Not Found</h1>"), "{path}");
    }
    let r = admin.post(
        "/admin/tenants/evil/domains/remove",
        &[("csrf", &csrf), ("domain", "unknown.test")],
    );
    assert_eq!(r.status, 404);
}

#[test]
fn deleting_keeps_the_schema_unless_asked() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    server.create_tenant("keep");
    server.create_tenant("gone");
    let mut admin = Visitor::new(&server);
    let csrf = admin.log_in();

    let confirm = admin.get("/admin/tenants/keep/delete").text();
    assert!(confirm.contains(r#"<input type="checkbox" name="drop_schema" id="drop_schema">"#));
    let r = admin.post("/admin/tenants/keep/delete", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    let r = admin.post(
        "/admin/tenants/gone/delete",
        &[("csrf", &csrf), ("drop_schema", "on")],
    );
    assert_eq!(r.status, 303);
    assert!(admin.get("/admin").text().contains("dropped"));
    assert!(tenant_names(&server).is_empty());

    let mut conn = PgConnection::establish(db.url()).expect("connect");
    let schemas: Vec<String> = diesel::sql_query(
        "SELECT nspname AS name FROM pg_namespace WHERE nspname IN ('keep', 'gone')",
    )
    .load::<Name>(&mut conn)
    .expect("schemas")
    .into_iter()
    .map(|n| n.name)
    .collect();
    assert_eq!(schemas, ["keep"]);
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[test]
fn hotels_and_domains_through_the_panel() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    server.create_tenant("demo1");
    let mut admin = Visitor::new(&server);
    let csrf = admin.log_in();
    let demo1 = [("Tenant-Header", "demo1")];

    // Pictures are checked as the API checks them: mistakes inline, oversize 413.
    let r = admin.send(
        "POST",
        "/admin/tenants/demo1/hotels",
        Some(hotel_form(&csrf, "Ritz", &[], Some(b"not an image"))),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Upload a valid image."), "{}", r.text());
    assert!(r.text().contains(r#"value="Ritz""#), "what was typed stays");
    let big = vec![0u8; 5 * 1024 * 1024 + 1];
    let r = admin.send(
        "POST",
        "/admin/tenants/demo1/hotels",
        Some(hotel_form(&csrf, "Ritz", &[], Some(&big))),
    );
    assert_eq!(r.status, 413);
    assert!(r.text().contains("<h1>413 Payload Too Large</h1>"));
    assert_eq!(server.get("/hotels/", &demo1).json(), json!([]));

    // Create with a picture: its thumbnail is a PNG for the logged-in admin only.
    let png = image_bytes(image::ImageFormat::Jpeg);
    let r = admin.send(
        "POST",
        "/admin/tenants/demo1/hotels",
        Some(hotel_form(&csrf, "Ritz", &[], Some(&png))),
    );
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/admin/tenants/demo1"))
    );
    let hotel = server.get("/hotels/1/", &demo1).json();
    let stored = hotel["picture"]
        .as_str()
        .expect("a picture")
        .trim_start_matches("/media/")
        .to_owned();
    let page = admin.get("/admin/tenants/demo1").text();
    let thumb = format!("/admin/tenants/demo1/thumbs/{stored}");
    assert!(page.contains(&thumb), "{page}");
    let r = admin.get(&thumb);
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("image/png"))
    );
    let small = image::load_from_memory(&r.body).expect("a PNG");
    assert_eq!(
        (small.width(), small.height()),
        (4, 3),
        "small pictures stay small"
    );
    let r = admin.get(&format!("/admin/tenants/demo1/media/{stored}"));
    assert_eq!((r.status, r.body.clone()), (200, png));
    let file = server.media_root().join("demo1").join(&stored);
    assert!(file.exists());

    // Edit: keep the picture unless a new one comes or the box is ticked.
    let r = admin.send(
        "POST",
        "/admin/tenants/demo1/hotels/1",
        Some(hotel_form(&csrf, "Ritz Paris", &[], None)),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let hotel = server.get("/hotels/1/", &demo1).json();
    assert_eq!(hotel["name"], "Ritz Paris");
    assert!(hotel["picture"].is_string());
    let r = admin.send(
        "POST",
        "/admin/tenants/demo1/hotels/1",
        Some(hotel_form(
            &csrf,
            "Ritz Paris",
            &[("clear_picture", "on")],
            None,
        )),
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        server.get("/hotels/1/", &demo1).json()["picture"],
        json!(null)
    );
    assert!(!file.exists(), "a removed picture's file goes too");

    // Delete.
    let r = admin.post("/admin/tenants/demo1/hotels/1/delete", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    assert_eq!(server.get("/hotels/1/", &demo1).status, 404);
    let r = admin.post("/admin/tenants/demo1/hotels/1/delete", &[("csrf", &csrf)]);
    assert_eq!(r.status, 404);

    // Domains: add two, switch the primary, remove one; each applies at once.
    for (domain, primary) in [("a.demo1.test", true), ("b.demo1.test", false)] {
        let mut fields = vec![("csrf", csrf.as_str()), ("domain", domain)];
        if primary {
            fields.push(("primary", "on"));
        }
        assert_eq!(
            admin.post("/admin/tenants/demo1/domains", &fields).status,
            303
        );
    }
    let r = admin.post(
        "/admin/tenants/demo1/domains",
        &[("csrf", &csrf), ("domain", "A.demo1.test")],
    );
    assert_eq!(r.status, 409);
    assert!(r.text().contains("is already registered"), "{}", r.text());
    let r = admin.post(
        "/admin/tenants/demo1/domains/primary",
        &[("csrf", &csrf), ("domain", "b.demo1.test")],
    );
    assert_eq!(r.status, 303);
    let listed = server.admin("GET", "/tenants/demo1", None).json();
    assert_eq!(listed["domains"], json!(["b.demo1.test", "a.demo1.test"]));
    let r = admin.post(
        "/admin/tenants/demo1/domains/remove",
        &[("csrf", &csrf), ("domain", "a.demo1.test")],
    );
    assert_eq!(r.status, 303);
    let by_host = server.get("/hotels/", &[("Host", "b.demo1.test")]);
    assert_eq!(by_host.status, 200);
    let removed = server.get("/hotels/", &[("Host", "a.demo1.test")]);
    assert_eq!(removed.status, 400, "a removed domain names no tenant");
}

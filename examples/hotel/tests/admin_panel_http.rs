//! The admin panel's gate over HTTP (`rocket::local`): off without
//! a token, the login page for strangers, session cookies, and 403 for any form without
//! the session's CSRF token.

mod support;

use serde_json::json;
use support::panel::{csrf_of, set_cookies, tenant_names, Visitor};
use support::{image_bytes, App, Body, Http, Options, TOKEN};

#[test]
fn off_without_a_token() {
    let db = support::test_database();
    let server = App::start(
        &db,
        Options {
            admin_token: None,
            ..Options::default()
        },
    );
    for (method, path) in [
        ("GET", "/admin"),
        ("GET", "/admin/admin.css"),
        ("POST", "/admin/login"),
        ("GET", "/admin/tenants/demo1"),
    ] {
        let r = server.send(method, path, &[], None);
        assert_eq!(r.status, 404, "{method} {path}");
    }
}

#[test]
fn strangers_get_the_login_page_and_nothing_else() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    server.create_tenant("demo1");
    let mut stranger = Visitor::new(&server);

    // GET /admin is the login page, with a login CSRF cookie that scripts cannot read.
    let login = stranger.get("/admin");
    assert_eq!(login.status, 200);
    assert_eq!(
        login.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = login.text();
    assert!(page.contains(r#"<form method="post" action="/admin/login""#));
    assert!(!page.contains("demo1"), "no data before logging in");
    let cookie = set_cookies(&login).join("\n");
    assert!(cookie.starts_with("hotel_admin_login="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));

    // Every other page sends the stranger back to the login page.
    for path in [
        "/admin/tenants/demo1",
        "/admin/tenants/demo1/delete",
        "/admin/tenants/demo1/hotels/new",
        "/admin/tenants/demo1/hotels/1",
        "/admin/tenants/demo1/thumbs/hotels/a.png",
        "/admin/tenants/demo1/media/hotels/a.png",
    ] {
        let r = stranger.get(path);
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/admin")),
            "{path}"
        );
    }

    // Forms without a session are refused, even with the login page's token.
    let token = csrf_of(&page);
    for (path, fields) in [
        (
            "/admin/tenants",
            vec![("csrf", token.as_str()), ("name", "evil")],
        ),
        ("/admin/logout", vec![("csrf", token.as_str())]),
        (
            "/admin/tenants/demo1/delete",
            vec![("csrf", token.as_str())],
        ),
        (
            "/admin/tenants/demo1/domains",
            vec![("csrf", token.as_str()), ("domain", "evil.test")],
        ),
    ] {
        let r = stranger.post(path, &fields);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("security token"));
    }
    assert_eq!(tenant_names(&server), ["demo1"]);

    // A wrong token: 401 and the login page again, no session.
    let r = stranger.post("/admin/login", &[("csrf", &token), ("token", "guess")]);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("That token is not right."));
    assert!(set_cookies(&r)
        .iter()
        .all(|c| !c.starts_with("hotel_admin_session")));
    // The right token without the login form's CSRF token (or with another one): 403.
    let r = stranger.post("/admin/login", &[("token", TOKEN)]);
    assert_eq!(r.status, 403);
    let r = stranger.post(
        "/admin/login",
        &[("csrf", &"0".repeat(64)), ("token", TOKEN)],
    );
    assert_eq!(r.status, 403);
    let mut no_cookie = Visitor::new(&server);
    let r = no_cookie.post("/admin/login", &[("csrf", &token), ("token", TOKEN)]);
    assert_eq!(r.status, 403);
    assert!(set_cookies(&r).is_empty());
}

#[test]
fn forms_need_the_sessions_csrf_token() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    server.create_tenant("demo1");
    let mut admin = Visitor::new(&server);
    let login_token = csrf_of(&admin.get("/admin").text());
    let r = admin.post("/admin/login", &[("csrf", &login_token), ("token", TOKEN)]);
    assert_eq!(r.status, 303);
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("hotel_admin_session="))
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(session.contains(attribute), "{session}");
    }
    let csrf = csrf_of(&admin.get("/admin").text());
    assert_ne!(csrf, login_token);

    // Missing, wrong, or another form's token: 403, and nothing changes.
    for bad in [None, Some("nope"), Some(login_token.as_str()), Some("")] {
        let mut fields = vec![("name", "demo2")];
        if let Some(token) = bad {
            fields.push(("csrf", token));
        }
        let r = admin.post("/admin/tenants", &fields);
        assert_eq!(r.status, 403, "{bad:?}");
    }
    let r = admin.send(
        "POST",
        "/admin/tenants",
        Some(Body::json(&json!({"csrf": csrf, "name": "demo2"}))),
    );
    assert_eq!(r.status, 403, "not a form");
    let r = admin.send(
        "POST",
        "/admin/tenants/demo1/hotels",
        Some(Body::multipart(
            &[
                ("name", "Ritz"),
                ("location", "Paris"),
                ("description", "x"),
            ],
            &[("picture", "a.png", &image_bytes(image::ImageFormat::Png))],
        )),
    );
    assert_eq!(r.status, 403);
    for (path, fields) in [
        ("/admin/tenants/demo1/domains", vec![("domain", "a.test")]),
        ("/admin/tenants/demo1/delete", vec![("drop_schema", "on")]),
        ("/admin/logout", vec![]),
    ] {
        let r = admin.post(path, &fields);
        assert_eq!(r.status, 403, "{path}");
    }
    assert_eq!(tenant_names(&server), ["demo1"]);
    assert_eq!(
        server.get("/hotels/", &[("Tenant-Header", "demo1")]).json(),
        json!([])
    );

    // With the token the same forms work.
    let r = admin.post("/admin/tenants", &[("csrf", &csrf), ("name", "demo2")]);
    assert_eq!((r.status, r.header("location")), (303, Some("/admin")));
    assert_eq!(tenant_names(&server), ["demo1", "demo2"]);
    let r = admin.send(
        "POST",
        "/admin/tenants/demo1/hotels",
        Some(Body::multipart(
            &[
                ("csrf", &csrf),
                ("name", "Ritz"),
                ("location", "Paris"),
                ("description", "Grand"),
            ],
            &[("picture", "a.png", &image_bytes(image::ImageFormat::Png))],
        )),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let hotels = server.get("/hotels/", &[("Tenant-Header", "demo1")]).json();
    assert_eq!(hotels[0]["name"], "Ritz");

    // Logging out ends the session on the server: the old cookie and token are dead.
    let kept = admin.cookies.clone();
    let r = admin.post("/admin/logout", &[("csrf", &csrf)]);
    assert_eq!((r.status, r.header("location")), (303, Some("/admin")));
    assert!(admin.get("/admin").text().contains(r#"id="login""#));
    let mut replay = Visitor::new(&server);
    replay.cookies = kept;
    assert!(replay.get("/admin").text().contains(r#"id="login""#));
    let r = replay.post("/admin/tenants", &[("csrf", &csrf), ("name", "demo3")]);
    assert_eq!(r.status, 403);
    assert_eq!(tenant_names(&server), ["demo1", "demo2"]);
}

//! The admin panel over plain HTTP against the running hotel service: the login page for
//! strangers, sessions and their cookies, 403 for forms without a valid CSRF token, and
//! what the browser test does not look at (escaping, dropping a schema).

mod common;
mod hotel_support;

use diesel::prelude::*;
use hotel_support::{image_bytes, Body, Options, Response, Server, TOKEN};
use serde_json::json;

/// A cookie-keeping client, as a browser would be.
struct Visitor<'a> {
    server: &'a Server,
    cookies: Vec<(String, String)>,
}

/// `application/x-www-form-urlencoded`.
fn urlencode(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first `name="csrf"` field of a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in:\n{page}"));
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("end of the value")].to_owned()
}

fn set_cookies(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

impl<'a> Visitor<'a> {
    fn new(server: &'a Server) -> Self {
        Visitor {
            server,
            cookies: Vec::new(),
        }
    }

    fn send(&mut self, method: &str, path: &str, body: Option<Body>) -> Response {
        let cookie = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let headers: Vec<(&str, &str)> = if cookie.is_empty() {
            Vec::new()
        } else {
            vec![("Cookie", cookie.as_str())]
        };
        let r = self.server.send(method, path, &headers, body);
        for line in set_cookies(&r) {
            let pair = line.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(n, _)| n != name);
            if !line.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        r
    }

    fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, None)
    }

    fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = Body::raw(
            "application/x-www-form-urlencoded",
            urlencode(fields).into_bytes(),
        );
        self.send("POST", path, Some(body))
    }

    /// Logs in; returns the session's CSRF token (from the tenants page).
    fn log_in(&mut self) -> String {
        let login = self.get("/admin");
        assert_eq!(login.status, 200);
        let r = self.post(
            "/admin/login",
            &[("csrf", &csrf_of(&login.text())), ("token", TOKEN)],
        );
        assert_eq!((r.status, r.header("location")), (303, Some("/admin")));
        let home = self.get("/admin");
        assert!(
            home.text().contains(r#"id="new-tenant""#),
            "{}",
            home.text()
        );
        csrf_of(&home.text())
    }
}

fn tenant_names(server: &Server) -> Vec<String> {
    let list = server.admin("GET", "/tenants", None).json();
    list.as_array()
        .expect("a list")
        .iter()
        .map(|t| t["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[test]
fn off_without_a_token() {
    let db = common::TestDb::new();
    let server = Server::start(
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
    let db = common::TestDb::new();
    let server = Server::start(&db, Options::default());
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
    let db = common::TestDb::new();
    let server = Server::start(&db, Options::default());
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

#[test]
fn pages_escape_data_and_report_mistakes() {
    let db = common::TestDb::new();
    let server = Server::start(&db, Options::default());
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
    let db = common::TestDb::new();
    let server = Server::start(&db, Options::default());
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

    let mut conn = PgConnection::establish(&db.url).expect("connect");
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

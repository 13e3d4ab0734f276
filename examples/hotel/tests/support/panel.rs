//! The admin panel's visitor: a cookie-keeping client, as a browser would be, and the
//! panel's forms.

use super::{Body, Http, Response, TOKEN};

/// A cookie-keeping client, as a browser would be.
pub struct Visitor<'a> {
    server: &'a dyn Http,
    pub cookies: Vec<(String, String)>,
}

/// `application/x-www-form-urlencoded`.
pub fn urlencode(fields: &[(&str, &str)]) -> String {
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
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in:\n{page}"));
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("end of the value")].to_owned()
}

pub fn set_cookies(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

impl<'a> Visitor<'a> {
    pub fn new(server: &'a dyn Http) -> Self {
        Visitor {
            server,
            cookies: Vec::new(),
        }
    }

    pub fn send(&mut self, method: &str, path: &str, body: Option<Body>) -> Response {
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

    pub fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, None)
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = Body::raw(
            "application/x-www-form-urlencoded",
            urlencode(fields).into_bytes(),
        );
        self.send("POST", path, Some(body))
    }

    /// Logs in; returns the session's CSRF token (from the tenants page).
    pub fn log_in(&mut self) -> String {
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

pub fn tenant_names(server: &dyn Http) -> Vec<String> {
    let list = server.admin("GET", "/tenants", None).json();
    list.as_array()
        .expect("a list")
        .iter()
        .map(|t| t["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// A multipart hotel form as the panel's page posts it.
pub fn hotel_form(csrf: &str, name: &str, extra: &[(&str, &str)], picture: Option<&[u8]>) -> Body {
    let mut fields = vec![
        ("csrf", csrf),
        ("name", name),
        ("location", "Paris"),
        ("description", "On the square"),
    ];
    fields.extend_from_slice(extra);
    let files: Vec<(&str, &str, &[u8])> = picture
        .map(|bytes| ("picture", "photo.png", bytes))
        .into_iter()
        .collect();
    Body::multipart(&fields, &files)
}

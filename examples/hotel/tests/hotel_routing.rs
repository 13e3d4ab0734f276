//! One reading of each request, over raw sockets against the hotel service: requests that
//! name two hosts or two tenants are refused with 400 before any tenant is chosen, and a
//! forwarded host is read only from a trusted proxy.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use diesel_tenancy::testing::TestDatabase;
use serde_json::json;
use support::http::parse_response;
use support::{fresh_database, Http, Options, Response, Server};

/// Sends `head` (request line and headers, CRLF-separated, without the blank line) as is.
fn raw(server: &Server, head: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let request = format!("{head}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    parse_response(&bytes).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&bytes)))
}

/// The tenant a `GET /hotels/` answered for (each tenant holds one hotel named after
/// it), or the status and detail.
fn who(server: &Server, head: &str) -> String {
    let r = raw(server, head);
    match r.status {
        200 => r.json()[0]["name"].as_str().unwrap_or("?").to_owned(),
        status => format!("{status} {}", r.json()["detail"].as_str().unwrap_or("")),
    }
}

/// demo1 and demo2, each with its domain and one hotel named after it.
fn serve(trusted_proxies: Option<&str>) -> (TestDatabase, Server) {
    let db = fresh_database();
    let mut options = Options::default();
    if let Some(list) = trusted_proxies {
        options
            .env
            .push(("ROCKET_TENANCY", format!("{{trusted_proxies=[{list}]}}")));
    }
    let server = Server::start(&db, options);
    for name in ["demo1", "demo2"] {
        let r = server.admin(
            "POST",
            "/tenants",
            Some(json!({"name": name, "domains": [format!("{name}.localhost")]})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let r = server.json(
            "POST",
            "/hotels/",
            &[("Tenant-Header", name)],
            json!({"name": name, "location": "x", "description": "y"}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    (db, server)
}

#[test]
fn ambiguous_requests_are_refused_and_clear_ones_route() {
    let (_db, s) = serve(None);
    let get = "GET /hotels/ HTTP/1.1";
    assert_eq!(who(&s, &format!("{get}\r\nHost: demo1.localhost")), "demo1");
    assert_eq!(
        who(&s, &format!("{get}\r\nHost: DEMO2.localhost.:8000")),
        "demo2"
    );
    assert_eq!(
        who(
            &s,
            &format!("{get}\r\nHost: demo1.localhost\r\nHost: demo2.localhost")
        ),
        "400 malformed Host: sent more than once"
    );
    // The same host twice is refused too: a proxy may have read either line.
    assert!(who(
        &s,
        &format!("{get}\r\nHost: demo1.localhost\r\nHost: demo1.localhost")
    )
    .starts_with("400 malformed Host"));
    assert_eq!(
        who(
            &s,
            &format!("{get}\r\nHost: demo1.localhost@demo2.localhost")
        ),
        "400 malformed Host: contains user info (`@`)"
    );
    assert_eq!(
        who(&s, &format!("{get}\r\nHost: demo1.localhost:http")),
        "400 malformed Host: the port is not a number"
    );
    assert_eq!(
        who(&s, &format!("{get}\r\nHost: demo1.localhost:70000")),
        "400 malformed Host: the port is above 65535"
    );
    assert_eq!(
        who(
            &s,
            &format!("{get}\r\nHost: 127.0.0.1\r\nTenant-Header: demo1\r\nTenant-Header: demo2")
        ),
        "400 malformed Tenant-Header: sent more than once"
    );
    assert_eq!(
        who(
            &s,
            &format!("{get}\r\nHost: 127.0.0.1\r\nTenant-Header: demo1\r\nTenant-Header: demo1")
        ),
        "400 malformed Tenant-Header: sent more than once"
    );
    // Header before host.
    assert_eq!(
        who(
            &s,
            &format!("{get}\r\nHost: demo1.localhost\r\nTenant-Header: demo2")
        ),
        "demo2"
    );
    // Without trusted proxies a forwarded host is ignored.
    assert_eq!(
        who(
            &s,
            &format!("{get}\r\nHost: demo1.localhost\r\nX-Forwarded-Host: demo2.localhost")
        ),
        "demo1"
    );
    assert_eq!(
        who(
            &s,
            &format!("{get}\r\nHost: demo1.localhost\r\nForwarded: host=demo2.localhost")
        ),
        "demo1"
    );
    // Refused requests changed nothing and the service still answers.
    assert_eq!(who(&s, &format!("{get}\r\nHost: demo2.localhost")), "demo2");
}

#[test]
fn a_trusted_proxy_names_the_host() {
    let (_db, s) = serve(Some("\"127.0.0.1\""));
    let get = "GET /hotels/ HTTP/1.1";
    assert_eq!(
        who(
            &s,
            &format!("{get}\r\nHost: backend:8000\r\nX-Forwarded-Host: demo2.localhost")
        ),
        "demo2"
    );
    assert_eq!(
        who(
            &s,
            &format!("{get}\r\nHost: demo1.localhost\r\nForwarded: for=192.0.2.1;host=\"demo2.localhost:443\"")
        ),
        "demo2"
    );
    assert_eq!(
        who(
            &s,
            &format!(
                "{get}\r\nHost: x\r\nForwarded: host=demo1.localhost\r\nX-Forwarded-Host: demo2.localhost"
            )
        ),
        "400 malformed request: Forwarded and X-Forwarded-Host name different hosts"
    );
    // The absolute-form target's authority: Rocket 0.5 drops it before any code sees it
    // (README, "Which tenant a request reaches"); behind a proxy the forwarded host is
    // what the proxy routed on, so the two agree.
    assert_eq!(
        who(
            &s,
            "GET http://demo2.localhost/hotels/ HTTP/1.1\r\nHost: demo1.localhost\r\nX-Forwarded-Host: demo2.localhost"
        ),
        "demo2"
    );
    // A proxy that forwards no host: the Host decides.
    assert_eq!(who(&s, &format!("{get}\r\nHost: demo1.localhost")), "demo1");
}

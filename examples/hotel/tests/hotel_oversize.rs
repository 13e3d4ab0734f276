//! Oversized bodies as a plain blocking client sends them: the whole request first
//! (no `Expect: 100-continue`), then read the answer. Every write and every read must
//! succeed: the service reads and drops the rest of a body it refuses (up to its drain
//! cap) before answering, so the client gets the 413 and its JSON instead of a broken
//! pipe or a reset.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::panel::{hotel_form, Visitor};
use support::{Body, Http, Options, Response, Server, TOKEN};

const MIB: usize = 1024 * 1024;

/// An 8 MiB JSON object: a hotel whose name is 8 MiB long.
fn json_8mib() -> Vec<u8> {
    let mut body = br#"{"location": "Paris", "description": "Grand", "name": ""#.to_vec();
    body.resize(8 * MIB - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// A request head with `Content-Length` (or chunked when `length` is `None`).
fn head(method: &str, path: &str, headers: &[(&str, &str)], length: Option<usize>) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match length {
        Some(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    head
}

/// Reads one response off a kept-alive connection (its body by `Content-Length`).
fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    raw.extend_from_slice(&body);
    support::http::parse_response(&raw)
}

/// Connects, writes `head` and all of `body` (failing on any write error), then reads
/// the response; the connection stays open for another request.
fn send_whole(server: &Server, head: &str, body: &[u8]) -> (Response, TcpStream, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    stream.write_all(head.as_bytes()).expect("write the head");
    stream
        .write_all(body)
        .unwrap_or_else(|e| panic!("writing the body failed: {e}\n{}", server.log_text()));
    let response = read_response(&mut stream)
        .unwrap_or_else(|e| panic!("reading the answer failed: {e}\n{}", server.log_text()));
    (response, stream, started.elapsed())
}

/// The same connection serves the next request: the refused body was read to its end.
fn still_usable(mut stream: TcpStream) {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("second request");
    let r = read_response(&mut stream).expect("second answer");
    assert_eq!(r.status, 200, "{}", r.text());
}

fn too_large(r: &Response) {
    assert_eq!(r.status, 413, "{}", r.text());
    let detail = r.json()["detail"].as_str().map(str::to_owned);
    assert!(
        detail.as_deref().is_some_and(|d| d.contains("too large")),
        "{}",
        r.text()
    );
}

#[test]
fn json_bodies_over_the_limit_are_read_then_answered() {
    let db = support::test_database();
    let server = Server::start(&db, Options::default());
    server.create_tenant("demo1");
    let body = json_8mib();
    let json = ("Content-Type", "application/json");

    // The issue's case: 8 MiB of JSON, no `Expect`.
    let h = head(
        "POST",
        "/hotels/",
        &[("Tenant-Header", "demo1"), json],
        Some(body.len()),
    );
    let (r, stream, took) = send_whole(&server, &h, &body);
    too_large(&r);
    assert_eq!(
        r.json(),
        json!({"detail": "Request body is too large (the limit is 1MiB)."})
    );
    eprintln!("8 MiB JSON to /hotels/: 413 read by the client after {took:?}");
    still_usable(stream);

    // The admin API's JSON bodies, and PUT.
    let auth = format!("Bearer {TOKEN}");
    let h = head(
        "POST",
        "/tenants",
        &[("Authorization", &auth), json],
        Some(body.len()),
    );
    too_large(&send_whole(&server, &h, &body).0);
    let h = head(
        "PUT",
        "/hotels/1/",
        &[("Tenant-Header", "demo1"), json],
        Some(body.len()),
    );
    too_large(&send_whole(&server, &h, &body).0);

    // Chunked, without a length: the same.
    let mut chunked = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let h = head(
        "POST",
        "/hotels/",
        &[("Tenant-Header", "demo1"), json],
        None,
    );
    let (r, stream, _) = send_whole(&server, &h, &chunked);
    too_large(&r);
    still_usable(stream);

    // A refused media type is read too before its 415.
    let h = head(
        "POST",
        "/hotels/",
        &[("Tenant-Header", "demo1"), ("Content-Type", "text/plain")],
        Some(body.len()),
    );
    let (r, stream, _) = send_whole(&server, &h, &body);
    assert_eq!(r.status, 415, "{}", r.text());
    still_usable(stream);

    // Nothing was stored.
    let list = server.get("/hotels/", &[("Tenant-Header", "demo1")]);
    assert_eq!(list.json(), json!([]));
}

/// Method, path, headers, and the expected status and JSON answer.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16, Value);

#[test]
fn bodies_refused_for_other_reasons_are_read_then_answered() {
    let db = support::test_database();
    let server = Server::start(&db, Options::default());
    let body = json_8mib();
    let json = ("Content-Type", "application/json");
    let cases: [Case; 5] = [
        (
            "POST",
            "/hotels/",
            vec![("Tenant-Header", "nobody"), json],
            400,
            json!({"detail": "Tenant not found"}),
        ),
        (
            "PATCH",
            "/hotels/1/",
            vec![("Tenant-Header", "nobody"), json],
            400,
            json!({"detail": "Tenant not found"}),
        ),
        (
            "POST",
            "/tenants",
            vec![json],
            401,
            json!({"detail": "Authentication credentials were not provided."}),
        ),
        (
            "POST",
            "/nowhere",
            vec![json],
            404,
            json!({"detail": "Not found."}),
        ),
        (
            "PUT",
            "/health",
            vec![json],
            404,
            json!({"detail": "Not found."}),
        ),
    ];
    for (method, path, headers, status, answer) in cases {
        let h = head(method, path, &headers, Some(body.len()));
        let (r, stream, _) = send_whole(&server, &h, &body);
        assert_eq!((r.status, r.json()), (status, answer), "{method} {path}");
        still_usable(stream);
    }
    // The admin panel without a session: its 403 page.
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let h = head("POST", "/admin/tenants", &[form], Some(body.len()));
    let (r, stream, _) = send_whole(&server, &h, &body);
    assert_eq!(r.status, 403, "{}", r.text());
    still_usable(stream);
    // An unknown path under /admin keeps the panel's HTML 404 page.
    let h = head("POST", "/admin/nowhere", &[json], Some(body.len()));
    let (r, stream, _) = send_whole(&server, &h, &body);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("<h1>"), "{}", r.text());
    still_usable(stream);
}

#[test]
fn multipart_bodies_over_a_limit_are_read_then_answered() {
    let db = support::test_database();
    let server = Server::start(&db, Options::default());
    server.create_tenant("demo1");
    let demo1 = ("Tenant-Header", "demo1");
    let fields = [
        ("name", "Ritz"),
        ("location", "Paris"),
        ("description", "Grand"),
    ];

    // Over the 6 MiB form limit, and within it with a picture over its 5 MiB.
    for size in [8 * MIB, 5 * MIB + 1] {
        let picture = vec![0u8; size];
        let body = Body::multipart(&fields, &[("picture", "big.png", &picture)]);
        let ct = ("Content-Type", body.content_type.as_str());
        let h = head("POST", "/hotels/", &[demo1, ct], Some(body.bytes.len()));
        let (r, stream, took) = send_whole(&server, &h, &body.bytes);
        too_large(&r);
        eprintln!("{size} B picture: 413 after {took:?}");
        still_usable(stream);
    }
    let list = server.get("/hotels/", &[demo1]);
    assert_eq!(list.json(), json!([]));
}

#[test]
fn admin_panel_forms_over_the_limit_are_read_then_answered() {
    let db = support::test_database();
    let server = Server::start(&db, Options::default());
    server.create_tenant("demo1");
    let mut admin = Visitor::new(&server);
    let csrf = admin.log_in();
    let cookie = admin
        .cookies
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let picture = vec![0u8; 8 * MIB];
    let body = hotel_form(&csrf, "Ritz", &[], Some(&picture));
    let headers = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", body.content_type.as_str()),
    ];
    let h = head(
        "POST",
        "/admin/tenants/demo1/hotels",
        &headers,
        Some(body.bytes.len()),
    );
    let (r, stream, _) = send_whole(&server, &h, &body.bytes);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("<h1>413 Payload Too Large</h1>"));
    still_usable(stream);
}

#[test]
fn expect_continue_and_bodies_over_the_drain_cap() {
    let db = support::test_database();
    let server = Server::start(&db, Options::default());
    server.create_tenant("demo1");
    let json = ("Content-Type", "application/json");
    let demo1 = ("Tenant-Header", "demo1");
    let connect = || {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
    };

    // With `Expect: 100-continue` (as curl sends for large bodies): Rocket peeks at
    // every body before routing, so the service says `100 Continue` at once; the
    // client sends its body, which is read before the 413.
    let body = json_8mib();
    let mut stream = connect();
    let expect = [demo1, json, ("Expect", "100-continue")];
    let h = head("POST", "/hotels/", &expect, Some(body.len()));
    stream.write_all(h.as_bytes()).expect("head");
    let interim = read_response(&mut stream).expect("interim answer");
    assert_eq!(interim.status, 100);
    stream.write_all(&body).expect("body after 100 Continue");
    too_large(&read_response(&mut stream).expect("final answer"));
    still_usable(stream);

    // Declared over the drain cap: answered at once, the rest not read. The client
    // sends the head and the first 64 KiB (Rocket waits for a few bytes of any body
    // before routing) and reads: the 413 comes while it could still be sending. One
    // that insisted on writing the whole GiB first would see the connection close.
    let started = Instant::now();
    let mut stream = connect();
    let h = head("POST", "/hotels/", &[demo1, json], Some(1024 * MIB));
    stream.write_all(h.as_bytes()).expect("head");
    stream
        .write_all(&body[..64 * 1024])
        .expect("start of the body");
    let r = read_response(&mut stream).unwrap_or_else(|e| panic!("{e}\n{}", server.log_text()));
    too_large(&r);
    eprintln!("1 GiB declared: 413 after {:?}", started.elapsed());
    assert_eq!(server.get("/health", &[]).status, 200);
}

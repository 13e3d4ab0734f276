//! The hotel binary's management commands against throwaway databases.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{fresh_database, run_cli, Http, Options, Server};

struct Ran {
    code: Option<i32>,
    out: String,
    err: String,
}

fn hotel(url: &str, args: &[&str]) -> Ran {
    let Output {
        status,
        stdout,
        stderr,
    } = run_cli(url, args);
    Ran {
        code: status.code(),
        out: String::from_utf8_lossy(&stdout).into_owned(),
        err: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn ok(url: &str, args: &[&str]) -> String {
    let ran = hotel(url, args);
    assert_eq!(ran.code, Some(0), "{args:?}: {}{}", ran.out, ran.err);
    ran.out
}

/// Exit code 2 and exactly one line on stderr.
fn fails(url: &str, args: &[&str], needle: &str) {
    let ran = hotel(url, args);
    assert_eq!(ran.code, Some(2), "{args:?}: {}{}", ran.out, ran.err);
    assert_eq!(ran.err.lines().count(), 1, "{args:?}: {}", ran.err);
    assert!(ran.err.starts_with("error: "), "{}", ran.err);
    assert!(
        ran.err.contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        ran.err
    );
}

fn json_out(url: &str, args: &[&str]) -> Value {
    let out = ok(url, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[test]
fn migrate_on_a_fresh_database() {
    let db = fresh_database();
    let url = db.url();
    // --check changes nothing, not even by creating the database.
    fails(url, &["migrate", "--check"], "does not exist");

    let out = ok(url, &["migrate"]);
    // The registry and, with the public-tenant option, the hotels table in public.
    assert!(
        out.starts_with("Shared: applied 8 migration(s) to public"),
        "{out}"
    );
    assert!(out.contains("Tenants: 0 migrated"), "{out}");
    assert_eq!(ok(url, &["migrate", "--check"]), "Nothing pending.\n");
    let again = json_out(url, &["migrate", "--json", "--jobs", "3"]);
    assert_eq!(again["shared_applied"], json!([]));
    assert_eq!(again["failed"], 0);
    let check = json_out(url, &["migrate", "--check", "--json"]);
    assert_eq!(check["pending"], false);
    fails(
        url,
        &["migrate", "--tenant", "ghost"],
        "unknown tenant `ghost`",
    );
}

#[test]
fn tenant_and_domain_commands() {
    // Registry commands work on a database that does not exist yet.
    let db = fresh_database();
    let url = db.url();
    assert_eq!(ok(url, &["tenant", "list"]), "No tenants.\n");

    assert_eq!(
        ok(
            url,
            &["tenant", "create", "demo1", "--domain", "demo1.test"]
        ),
        "Created tenant `demo1` in schema `demo1` (domains: demo1.test).\n"
    );
    let created = json_out(
        url,
        &["tenant", "create", "Demo 2", "--schema", "d2", "--json"],
    );
    assert_eq!(created["schema_name"], "d2");
    fails(
        url,
        &["tenant", "create", "DEMO1", "--schema", "x"],
        "already exists",
    );
    fails(
        url,
        &["tenant", "create", "bad", "--domain", "no way"],
        "invalid domain",
    );

    let listed = json_out(url, &["tenant", "list", "--json"]);
    let names: Vec<&str> = listed
        .as_array()
        .map(|l| l.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["Demo 2", "demo1"]);

    assert_eq!(
        ok(
            url,
            &["domain", "add", "demo1", "www.demo1.test", "--primary"]
        ),
        "Added primary domain `www.demo1.test` to tenant `demo1`.\n"
    );
    fails(
        url,
        &["domain", "add", "ghost", "g.test"],
        "unknown tenant `ghost`",
    );
    fails(
        url,
        &["domain", "add", "demo1", "demo1.test"],
        "already registered",
    );
    assert_eq!(
        ok(url, &["domain", "remove", "demo1.test"]),
        "Removed domain `demo1.test`.\n"
    );
    fails(url, &["domain", "remove", "demo1.test"], "unknown domain");

    ok(url, &["tenant", "rename", "demo1", "first"]);
    let first = &json_out(url, &["tenant", "list", "--json"])[1];
    assert_eq!(first["name"], "first");
    assert_eq!(first["schema_name"], "demo1");
    assert_eq!(first["domains"], json!(["www.demo1.test"]));

    assert!(ok(url, &["tenant", "delete", "first", "--drop-schema"]).contains("dropped"));
    fails(
        url,
        &["tenant", "delete", "first"],
        "unknown tenant `first`",
    );
    // The deleted tenant's schema is gone: nothing is pending and nothing is orphaned.
    let check = json_out(url, &["migrate", "--check", "--json"]);
    assert_eq!(check["orphan_schemas"], json!([]));
}

#[test]
fn usage() {
    let db = fresh_database();
    let help = ok(db.url(), &["--help"]);
    for command in ["serve", "migrate", "tenant", "domain"] {
        assert!(help.contains(command), "{help}");
    }
    let ran = hotel(db.url(), &["tenant"]);
    assert_eq!(ran.code, Some(2));
    assert!(ran.err.contains("Usage"), "{}", ran.err);
    let ran = hotel(db.url(), &["migrate", "--jobs", "0"]);
    assert_eq!(ran.code, Some(2));
}

#[test]
fn a_tenant_created_by_the_cli_is_served() {
    let db = support::test_database();
    let server = Server::start(
        &db,
        Options {
            admin_token: None,
            ..Options::default()
        },
    );
    ok(db.url(), &["tenant", "create", "late"]);
    // The service hears of it through NOTIFY: poll with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let headers = [("Tenant-Header", "late")];
    loop {
        let r = server.get("/hotels/", &headers);
        if r.status == 200 {
            assert_eq!(r.json(), json!([]));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {}: {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let created = server.json(
        "POST",
        "/hotels/",
        &headers,
        json!({"name": "a", "location": "b", "description": "c"}),
    );
    assert_eq!(created.json()["id"], 1);
}

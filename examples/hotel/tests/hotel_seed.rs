//! The hotel example's after-create hook: new tenants start empty, or with one demo hotel
//! when `HOTEL_SEED_DEMO` is on, on every creation path (admin API, admin panel, the
//! `tenant create` command), and `tenant sql` reads every tenant.

mod support;

use serde_json::{json, Value};
use support::panel::Visitor;
use support::{hotel_command, App, Http, Options, TempDir};

fn hotels(server: &dyn Http, tenant: &str) -> Value {
    let r = server.get("/hotels/", &[("Tenant-Header", tenant)]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn seeding(on: &str) -> Options {
    Options {
        env: vec![("HOTEL_SEED_DEMO", on.to_owned())],
        ..Options::default()
    }
}

/// Runs the binary's management command with `HOTEL_SEED_DEMO=on`.
fn cli(url: &str, on: &str, args: &[&str]) -> std::process::Output {
    let scratch = TempDir::new("seed-cli");
    hotel_command(url, &scratch.0)
        .env("HOTEL_SEED_DEMO", on)
        .args(args)
        .output()
        .expect("run the hotel binary")
}

#[test]
fn new_tenants_start_empty_by_default() {
    let db = support::test_database();
    let server = App::start(&db, Options::default());
    server.create_tenant("plain");
    assert_eq!(hotels(&server, "plain"), json!([]));
}

#[test]
fn with_the_switch_every_creation_path_seeds_a_demo_hotel() {
    let db = support::test_database();
    // Made before the service starts, so its registry cache has them at launch.
    let made = cli(db.url(), "yes", &["tenant", "create", "by-cli"]);
    assert!(made.status.success(), "{made:?}");
    let made = cli(db.url(), "off", &["tenant", "create", "unseeded"]);
    assert!(made.status.success(), "{made:?}");
    let server = App::start(&db, seeding("1"));

    server.create_tenant("by-api");
    let mut admin = Visitor::new(&server);
    let csrf = admin.log_in();
    let r = admin.post(
        "/admin/tenants",
        &[
            ("csrf", &csrf),
            ("name", "by-panel"),
            ("schema_name", ""),
            ("domain", ""),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());

    for tenant in ["by-api", "by-panel", "by-cli"] {
        let list = hotels(&server, tenant);
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{tenant}: {list}");
        assert_eq!(list[0]["name"], "Demo Hotel", "{tenant}");
        assert_eq!(list[0]["location"], "Paris", "{tenant}");
    }

    // Without the switch the same command seeded nothing.
    assert_eq!(hotels(&server, "unseeded"), json!([]));

    // `tenant sql` sees every tenant's seed in one command.
    let counted = cli(
        db.url(),
        "0",
        &[
            "tenant",
            "sql",
            "SELECT count(*) AS n FROM hotels",
            "--json",
        ],
    );
    assert!(counted.status.success(), "{counted:?}");
    let value: Value = serde_json::from_slice(&counted.stdout).unwrap();
    let counts: Vec<(&str, i64)> = value["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().unwrap(),
                t["rows"][0]["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("by-api", 1),
            ("by-cli", 1),
            ("by-panel", 1),
            ("unseeded", 0)
        ]
    );
}

#[test]
fn a_bad_switch_value_is_refused() {
    let db = support::test_database();
    let ran = cli(db.url(), "maybe", &["tenant", "list"]);
    assert_eq!(ran.status.code(), Some(2));
    let err = String::from_utf8_lossy(&ran.stderr);
    assert!(err.contains("HOTEL_SEED_DEMO is \"maybe\""), "{err}");
}

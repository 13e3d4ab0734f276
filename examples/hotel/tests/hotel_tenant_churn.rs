//! Clean answers while tenants change, against the hotel service under load: a tenant
//! deleted by another process, or deleted and created again on the same schema name,
//! answers 200 with its own rows or 400 "Tenant not found", never a 5xx and never the new
//! tenant's rows. And the failure modes of the change feed with the service's database
//! traffic going through a fault proxy: a half-open or refused listener never makes the
//! service serve an old route past its bound, and its own admin writes show at once.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_tenancy::testing::{server_url, TestDatabase};
use diesel_tenancy::{NewTenant, SchemaName, SyncRouter, TenantPool};
use hotel::TENANT_MIGRATIONS as TENANT;
use serde_json::json;
use support::{fresh_database, http, Http, Options, Server};
use test_support::fault_proxy::{Fault, FaultProxy, Who};

/// The bound the service is started with (`tenancy.max_registry_age`).
const MAX_AGE: Duration = Duration::from_secs(2);

/// A router of this test process (not the service's): its changes reach the service only
/// through the registry's change feed.
fn outside(db: &TestDatabase) -> SyncRouter {
    let pool = TenantPool::builder()
        .max_size(2)
        .min_idle(Some(0))
        .build(db.url())
        .expect("pool");
    SyncRouter::new(pool, TENANT)
}

fn add_hotel(router: &SyncRouter, schema: &str, name: &str) {
    router
        .pool()
        .with_tenant(&SchemaName::new(schema).unwrap(), |c| {
            diesel::sql_query(
                "INSERT INTO hotels (name, location, description) VALUES ($1, 'x', 'y')",
            )
            .bind::<diesel::sql_types::Text, _>(name)
            .execute(c)
            .map_err(diesel_tenancy::Error::from)
        })
        .unwrap();
}

/// What the load saw: status counts and the bodies of 200s.
#[derive(Default)]
struct Seen {
    ok: usize,
    not_found: usize,
    other: Vec<String>,
    foreign: Vec<String>,
}

/// Runs `clients` threads asking `GET /hotels/` as `tenant` until `stop`; a 200 body
/// must not hold `foreign`.
fn load(
    port: u16,
    tenant: &'static str,
    foreign: &'static str,
    stop: &Arc<AtomicBool>,
    seen: &Arc<Mutex<Seen>>,
    count: &Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|_| {
            let (stop, seen, count) = (Arc::clone(stop), Arc::clone(seen), Arc::clone(count));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let r =
                        http::request(port, "GET", "/hotels/", &[("Tenant-Header", tenant)], None)
                            .expect("request");
                    let text = r.text();
                    let mut seen = seen.lock().unwrap();
                    match r.status {
                        200 if text.contains(foreign) => seen.foreign.push(text),
                        200 => seen.ok += 1,
                        400 if text.contains("Tenant not found") => seen.not_found += 1,
                        status => seen.other.push(format!("{status} {text}")),
                    }
                    count.fetch_add(1, Ordering::AcqRel);
                }
            })
        })
        .collect()
}

/// Waits until `count` has grown by `n` (the load made progress).
fn after_requests(count: &AtomicUsize, n: usize) {
    let target = count.load(Ordering::Acquire) + n;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Acquire) < target {
        assert!(Instant::now() < deadline, "the load stalled");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Deletes `victim` (with its schema) from outside, then, with `recreate`, creates
/// `new` on the same schema with a row only it has; all under load on `victim`.
fn churn(recreate: bool) {
    let db = fresh_database();
    let mut options = Options::default();
    if recreate {
        // Session mode leaves a window between the checkout and the borrower's later
        // statements (README, "What a route proves"); TransactionLocal closes it for the
        // router's own operations.
        options.env.push((
            "ROCKET_DATABASES",
            "{hotel={mode=\"transaction_local\"}}".into(),
        ));
    }
    let server = Server::start(&db, options);
    let outside = outside(&db);
    for round in 0..3 {
        let victim = ["old0", "old1", "old2"][round];
        let r = server.admin(
            "POST",
            "/tenants",
            Some(json!({"name": victim, "schema_name": "churn"})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        add_hotel(&outside, "churn", "own row");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let count = Arc::new(AtomicUsize::new(0));
        let threads = load(server.port, victim, "FOREIGN ROW", &stop, &seen, &count);
        after_requests(&count, 20);
        // Deleted with its schema, then a new tenant on the same schema name with a row
        // only it has, as an admin of another process would (README, "What a route
        // proves", for the window an atomic swap by raw DDL still has in Session mode).
        outside.delete_tenant(victim, true).unwrap();
        if recreate {
            outside
                .create_tenant(&NewTenant {
                    name: format!("new{round}"),
                    mode: None,
                    schema_name: Some(SchemaName::new("churn").unwrap()),
                    domains: vec![],
                })
                .unwrap();
            add_hotel(&outside, "churn", "FOREIGN ROW");
        }
        after_requests(&count, 200);
        stop.store(true, Ordering::Release);
        for t in threads {
            t.join().unwrap();
        }
        let seen = seen.lock().unwrap();
        println!(
            "round {round} (recreate {recreate}): {} × 200, {} × 400 Tenant not found",
            seen.ok, seen.not_found
        );
        assert!(
            seen.other.is_empty(),
            "other answers: {:?}\n{}",
            &seen.other[..seen.other.len().min(3)],
            server
                .log_text()
                .lines()
                .filter(|l| l.contains("diesel-tenancy") || l.contains("rror"))
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(seen.foreign.is_empty(), "foreign rows: {:?}", seen.foreign);
        assert!(seen.not_found > 0, "the deletion was seen");
        if recreate {
            outside.delete_tenant(&format!("new{round}"), true).unwrap();
        }
    }
}

#[test]
fn a_tenant_deleted_under_load_answers_its_rows_or_400_never_500() {
    churn(false);
}

#[test]
fn a_tenant_deleted_and_recreated_on_its_schema_under_load_never_serves_the_new_rows() {
    churn(true);
}

/// The service with its database traffic through `proxy` and a short bound.
fn through_proxy(db: &TestDatabase) -> (FaultProxy, Server) {
    let proxy = FaultProxy::start(test_support::Server::of(&server_url()).port);
    let url = proxy.url(db.url());
    let options = Options {
        env: vec![(
            "ROCKET_TENANCY",
            format!("{{max_registry_age={}}}", MAX_AGE.as_secs_f64()),
        )],
        ..Options::default()
    };
    let server = Server::start_url(&url, options);
    (proxy, server)
}

#[test]
fn a_dead_feed_never_serves_an_old_route_past_the_bound() {
    let db = fresh_database();
    let (proxy, server) = through_proxy(&db);
    let outside = outside(&db);
    for fault in [Fault::Freeze, Fault::Refuse] {
        let suffix = if fault == Fault::Freeze { "f" } else { "r" };
        let (old, new) = (format!("old{suffix}"), format!("new{suffix}"));
        let r = server.admin(
            "POST",
            "/tenants",
            Some(json!({"name": old, "schema_name": format!("s{suffix}")})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        proxy.set(Who::Listener, fault);
        if fault == Fault::Refuse {
            proxy.cut(Who::Listener);
        }
        // An admin write on this instance shows here at once, feed or no feed.
        let r = server.admin("POST", "/tenants", Some(json!({"name": new})));
        assert_eq!(r.status, 201, "{}", r.text());
        let r = server.get("/hotels/", &[("Tenant-Header", &new)]);
        assert_eq!(r.status, 200, "{}", r.text());
        // Deleted and recreated on its schema by another process: the old name never
        // reaches the new tenant's rows, and stops resolving within the bound.
        outside.delete_tenant(&old, true).unwrap();
        let again = format!("again{suffix}");
        outside
            .create_tenant(&NewTenant {
                name: again.clone(),
                mode: None,
                schema_name: Some(SchemaName::new(&format!("s{suffix}")).unwrap()),
                domains: vec![],
            })
            .unwrap();
        add_hotel(&outside, &format!("s{suffix}"), "FOREIGN ROW");
        let acked = Instant::now();
        loop {
            let asked = Instant::now();
            let r = http::request(
                server.port,
                "GET",
                "/hotels/",
                &[("Tenant-Header", &old)],
                None,
            )
            .unwrap();
            assert!(r.status < 500, "{fault:?}: {} {}", r.status, r.text());
            assert!(!r.text().contains("FOREIGN ROW"), "{fault:?}: {}", r.text());
            if r.status == 400 {
                break;
            }
            assert!(
                asked < acked + MAX_AGE,
                "{fault:?}: old route served after {:?}",
                asked - acked
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // The new tenant resolves through the fallback reload (the pool still works).
        let r = server.get("/hotels/", &[("Tenant-Header", &again)]);
        assert_eq!(r.status, 200, "{fault:?}: {}", r.text());
        // A domain moved by another process: the old owner is never served past the
        // bound, and once the data is older than the bound, requests reload it through the
        // pool and get the new owner (never a 5xx: the pool works).
        let domain = format!("moving-{suffix}.example.com");
        // Added through this instance's admin API, which reloads through the pool: the
        // instance knows the domain's first owner at once, feed or no feed.
        let r = server.admin(
            "POST",
            &format!("/tenants/{new}/domains"),
            Some(json!({"domain": domain})),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        add_hotel(&outside, &new, "FIRST OWNER ROW");
        let r = server.get("/hotels/", &[("Host", &domain)]);
        assert!(r.text().contains("FIRST OWNER ROW"), "{}", r.text());
        outside
            .pool()
            .with_public(|c| {
                diesel::sql_query(
                    "UPDATE public.domains SET tenant_id = \
                     (SELECT id FROM public.tenants WHERE name = $1) WHERE domain = $2",
                )
                .bind::<diesel::sql_types::Text, _>(&again)
                .bind::<diesel::sql_types::Text, _>(&domain)
                .execute(c)
                .map_err(diesel_tenancy::Error::from)
            })
            .unwrap();
        let acked = Instant::now();
        let deadline = acked + Duration::from_secs(30);
        loop {
            let asked = Instant::now();
            let r =
                http::request(server.port, "GET", "/hotels/", &[("Host", &domain)], None).unwrap();
            assert!(r.status < 500, "{fault:?}: {} {}", r.status, r.text());
            if r.text().contains("FOREIGN ROW") {
                break; // `again`'s row: the new owner.
            }
            if r.text().contains("FIRST OWNER ROW") {
                assert!(
                    asked < acked + MAX_AGE,
                    "{fault:?}: old owner served after {:?}",
                    asked - acked
                );
            }
            assert!(asked < deadline, "{fault:?}: the new owner never came");
            std::thread::sleep(Duration::from_millis(5));
        }
        proxy.set(Who::Listener, Fault::Forward);
    }
}

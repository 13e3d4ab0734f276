//! Moving tenants between workers: one tenant while the hotel service serves it and
//! others, and the rebalancer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use diesel_tenancy::{CitusNode, NewTenant, SyncRouter, TransferMode};
use serde_json::{json, Value};

use crate::citus_support::{cli, CitusDb};
use crate::common::TENANT;
use crate::hotel_support::{Options, Server};
use crate::lifecycle::{pool, router};

/// The node `tenant` lives on.
fn node_of(router: &SyncRouter, tenant: &str) -> CitusNode {
    router
        .placement()
        .expect("placement")
        .into_iter()
        .find(|p| p.tenant.name == tenant)
        .and_then(|p| p.node)
        .unwrap_or_else(|| panic!("{tenant} has no node"))
}

/// One client of one tenant until `stop`: each round adds a hotel named after the tenant
/// and the round, then lists the tenant's hotels, which must be exactly the ones this
/// client added so far, in order (no error, no missing row, no other tenant's row).
fn client(
    server: &Server,
    tenant: &str,
    stop: &AtomicBool,
    served: &AtomicU64,
    ready: mpsc::Sender<()>,
) {
    let header = [("Tenant-Header", tenant)];
    let mut expected: Vec<String> = Vec::new();
    let mut ready = Some(ready);
    while !stop.load(Ordering::Acquire) {
        let name = format!("{tenant}-{}", expected.len() + 1);
        let body = json!({"name": name, "location": tenant, "description": "load"});
        let created = server.json("POST", "/hotels/", &header, body);
        assert_eq!(created.status, 201, "{tenant}: {}", created.text());
        expected.push(name);
        let listed = server.get("/hotels/", &header);
        assert_eq!(listed.status, 200, "{tenant}: {}", listed.text());
        let names: Vec<String> = listed
            .json()
            .as_array()
            .expect("a list")
            .iter()
            .map(|h: &Value| h["name"].as_str().expect("name").to_owned())
            .collect();
        assert_eq!(names, expected, "{tenant} read a wrong set of rows");
        served.fetch_add(1, Ordering::AcqRel);
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
    }
}

pub fn a_tenant_moves_between_workers_while_requests_are_served() {
    let db = CitusDb::new();
    let server = Server::start_url(&db.url, Options::default());
    let tenants = ["demo1", "demo2", "demo3"];
    for t in tenants {
        server.create_tenant(t);
    }
    let router = SyncRouter::new(pool(&db, 2), TENANT);
    let home = node_of(&router, "demo1");
    let away: CitusNode = db
        .workers
        .iter()
        .map(|w| w.address().parse().expect("node"))
        .find(|w: &CitusNode| *w != home)
        .expect("another worker");

    let stop = AtomicBool::new(false);
    let served: Vec<AtomicU64> = tenants.iter().map(|_| AtomicU64::new(0)).collect();
    let (during, moves) = std::thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel();
        for (tenant, served) in tenants.iter().zip(&served) {
            let (server, stop, ready) = (&server, &stop, ready_tx.clone());
            s.spawn(move || client(server, tenant, stop, served, ready));
        }
        drop(ready_tx);
        // Every client has been served once before the first move starts.
        for _ in tenants {
            ready_rx.recv().expect("a client failed before the move");
        }
        let before: Vec<u64> = served.iter().map(|n| n.load(Ordering::Acquire)).collect();
        let online = router.move_tenant("demo1", &away, None);
        let moved_there = node_of(&router, "demo1");
        let blocked = router.move_tenant("demo1", &home, Some(TransferMode::BlockWrites));
        let after: Vec<u64> = served.iter().map(|n| n.load(Ordering::Acquire)).collect();
        stop.store(true, Ordering::Release);
        let during: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        (during, (online, moved_there, blocked))
    });
    let (online, moved_there, blocked) = moves;
    let online = online.expect("online move");
    assert_eq!(
        (online.from.clone(), online.to.clone()),
        (home.clone(), away.clone())
    );
    assert_eq!(
        online.mode,
        TransferMode::Online,
        "wal_level = logical on the cluster"
    );
    assert_eq!(moved_there, away);
    let blocked = blocked.expect("move back");
    assert_eq!(blocked.mode, TransferMode::BlockWrites);
    assert_eq!(node_of(&router, "demo1"), home);
    // Requests for the moving tenant and for the others were served during the moves
    // (each client checked every answer; a 5xx or a wrong row would have panicked).
    assert!(
        during.iter().all(|n| *n > 0),
        "served during the moves: {during:?}"
    );
    eprintln!("requests served during the two moves, per tenant: {during:?}");
}

pub fn rebalance_spreads_tenants_over_the_workers() {
    let db = CitusDb::new();
    let router = router(&db, 2);
    let first: CitusNode = db.workers[0].address().parse().expect("node");
    for i in 0..4 {
        let name = format!("r{i}");
        router
            .create_tenant(&NewTenant::named(&name))
            .expect("create");
        if node_of(&router, &name) != first {
            router
                .move_tenant(&name, &first, Some(TransferMode::BlockWrites))
                .expect("gather on the first worker");
        }
    }
    let on_first = |router: &SyncRouter| {
        router
            .placement()
            .expect("placement")
            .iter()
            .filter(|p| p.node.as_ref() == Some(&first))
            .count()
    };
    assert_eq!(on_first(&router), 4);

    let plan = cli(&router, &["tenant", "rebalance", "--dry-run", "--json"]);
    let planned = plan.assert_ok().json()["moves"]
        .as_array()
        .expect("moves")
        .len();
    assert_eq!(planned, 2, "{}", plan.out);
    assert_eq!(on_first(&router), 4, "a dry run moves nothing");
    let text = cli(&router, &["tenant", "rebalance", "--dry-run"]);
    assert_eq!(text.assert_ok().out.matches("Would move tenant").count(), 2);

    let done = cli(
        &router,
        &["tenant", "rebalance", "--block-writes", "--json"],
    );
    let moved = done.assert_ok().json()["moves"].clone();
    assert_eq!(moved.as_array().expect("moves").len(), 2, "{}", done.out);
    assert!(moved
        .as_array()
        .expect("moves")
        .iter()
        .all(|m| m["mode"] == "block_writes" && m["from"]["port"] == first.port));
    assert_eq!(on_first(&router), 2);
    let balanced = cli(&router, &["tenant", "rebalance"]);
    assert!(
        balanced
            .assert_ok()
            .out
            .starts_with("Nothing moved: the tenants are balanced."),
        "{}",
        balanced.out
    );
}

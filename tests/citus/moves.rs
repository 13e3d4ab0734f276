//! Moving tenants between workers: the rebalancer (one tenant moved while the hotel
//! service serves it and others is the hotel's `tests/hotel_citus.rs`).

use diesel_tenancy::{CitusNode, NewTenant, SyncRouter, TransferMode};

use crate::citus_support::{cli, CitusDb};
use crate::lifecycle::router;

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

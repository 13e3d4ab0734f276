//! The hotel service on a real Citus cluster (issue 16): the seed's proof of concept with
//! its two tenants on two different workers, and a tenant moved between workers while
//! requests for it and for others keep being served. `CITUS_URL` names the cluster's
//! coordinator; without it this binary prints one line saying how to start one and
//! reports the tests as ignored (never as passed). `.ci/run` starts a cluster and fails
//! unless these ran.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_tenancy::{CitusNode, SyncRouter, TenantPool, TransferMode};
use hotel::TENANT_MIGRATIONS as TENANT;
use libtest_mimic::{Arguments, Trial};
use serde_json::{json, Value};
use support::{Http, Options, Server};
use test_support::citus::{citus_url, CitusDb, Node, HOW_TO_START};

fn main() {
    let args = Arguments::from_args();
    if citus_url().is_none() && !args.list {
        println!("{HOW_TO_START}");
    }
    let trials = [
        (
            "proof_of_concept_puts_two_tenants_on_two_workers",
            proof_of_concept_puts_two_tenants_on_two_workers as fn(),
        ),
        (
            "a_tenant_moves_between_workers_while_requests_are_served",
            a_tenant_moves_between_workers_while_requests_are_served,
        ),
    ]
    .into_iter()
    .map(|(name, test)| {
        Trial::test(name, move || {
            test();
            Ok(())
        })
        .with_ignored_flag(citus_url().is_none())
    })
    .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn pool(db: &CitusDb, size: u32) -> TenantPool {
    TenantPool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .build(&db.url)
        .expect("pool on the coordinator")
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

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

/// The hotel names stored in `schema`'s shard of `hotels` on `node`, read on the node
/// itself (not through the coordinator).
fn hotels_on(db: &CitusDb, node: &Node, schema: &str) -> Vec<String> {
    let mut conn = db.connect(node);
    // Citus hides shards from catalog queries on a worker unless told not to.
    conn.batch_execute("SET citus.override_table_visibility TO off")
        .expect("show shards");
    let shard: Name = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname ~ '^hotels_[0-9]+$'",
    )
    .bind::<Text, _>(schema)
    .get_result(&mut conn)
    .unwrap_or_else(|e| panic!("no shard of {schema}.hotels on {node:?}: {e}"));
    diesel::sql_query(format!(
        "SELECT name::text AS name FROM \"{schema}\".\"{}\" ORDER BY id",
        shard.name
    ))
    .load::<Name>(&mut conn)
    .expect("read the shard")
    .into_iter()
    .map(|n| n.name)
    .collect()
}

fn proof_of_concept_puts_two_tenants_on_two_workers() {
    let db = CitusDb::new();
    let server = Server::start_url(&db.url, Options::default());
    let demo1 = [("Tenant-Header", "demo1")];
    let demo2 = [("Tenant-Header", "demo2")];
    server.create_tenant("demo1");
    server.create_tenant("demo2");
    for tenant in [&demo1, &demo2] {
        let r = server.get("/hotels/", tenant);
        assert_eq!((r.status, r.json()), (200, json!([])));
    }
    for (tenant, name, location) in [
        (&demo1, "Ritz", "Paris"),
        (&demo1, "Negresco", "Nice"),
        (&demo2, "Savoy", "London"),
    ] {
        let body = json!({"name": name, "location": location, "description": "Grand"});
        let r = server.json("POST", "/hotels/", tenant, body);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let names = |list: Value| -> Vec<(i64, String)> {
        list.as_array()
            .expect("a list")
            .iter()
            .map(|h| {
                (
                    h["id"].as_i64().expect("id"),
                    h["name"].as_str().expect("name").into(),
                )
            })
            .collect()
    };
    let r = server.get("/hotels/", &demo1);
    assert_eq!(
        names(r.json()),
        [(1, "Ritz".to_owned()), (2, "Negresco".to_owned())]
    );
    let r = server.get("/hotels/", &demo2);
    assert_eq!(names(r.json()), [(1, "Savoy".to_owned())]);
    let r = server.get("/hotels/", &[("Tenant-Header", "nobody")]);
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"detail": "Tenant not found"}))
    );

    // The database's own setting stayed off: the crate made the schemas distributed.
    let mut conn = PgConnection::establish(&db.url).expect("connect");
    let setting: Name =
        diesel::sql_query("SELECT current_setting('citus.enable_schema_based_sharding') AS name")
            .get_result(&mut conn)
            .expect("setting");
    assert_eq!(setting.name, "off");

    // demo1 on one worker, demo2 on the other, each tenant's rows on its own worker only.
    let router = SyncRouter::new(pool(&db, 2), TENANT);
    let placed = router.placement().expect("placement");
    assert!(placed.iter().all(|p| p.distributed), "{placed:?}");
    let node = |t: &str| node_of(&router, t).to_string();
    assert_ne!(node("demo1"), node("demo2"), "{placed:?}");
    let (w1, w2) = (db.worker(&node("demo1")), db.worker(&node("demo2")));
    assert_eq!(hotels_on(&db, w1, "demo1"), ["Ritz", "Negresco"]);
    assert_eq!(hotels_on(&db, w2, "demo2"), ["Savoy"]);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM ONLY demo1.hotels"),
        2
    );
    drop(server);
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

fn a_tenant_moves_between_workers_while_requests_are_served() {
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

//! Shared tables as reference tables: a tenant query joining one runs on the tenant's
//! worker, and the registry's change notifications still reach the coordinator.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_tenancy::{Error, NewTenant, SyncRouter};

use crate::citus_support::CitusDb;
use crate::common::TENANT;
use crate::lifecycle::pool;

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

#[derive(QueryableByName)]
struct Joined {
    #[diesel(sql_type = Text)]
    hotel: String,
    #[diesel(sql_type = Text)]
    country: String,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

const JOIN: &str = "SELECT h.name::text AS hotel, c.country FROM hotels h \
                    JOIN public.cities c ON c.name = h.location ORDER BY h.id";

/// The tenant's join, and its plan as one text.
fn join(router: &SyncRouter, schema: &str) -> (Vec<(String, String)>, String) {
    router
        .pool()
        .with_tenant(&schema.parse().expect("schema"), |c| {
            let rows = diesel::sql_query(JOIN)
                .load::<Joined>(c)?
                .into_iter()
                .map(|j| (j.hotel, j.country))
                .collect();
            let plan = diesel::sql_query(format!("EXPLAIN {JOIN}"))
                .load::<Line>(c)?
                .into_iter()
                .map(|l| l.line)
                .collect::<Vec<_>>()
                .join("\n");
            Ok::<_, Error>((rows, plan))
        })
        .expect("the join")
}

fn reference_tables(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT logicalrelid::text AS name FROM pg_dist_partition \
         WHERE partmethod = 'n' AND repmodel = 't' ORDER BY 1",
    )
    .load::<Name>(conn)
    .expect("reference tables")
    .into_iter()
    .map(|n| n.name)
    .collect()
}

pub fn a_tenant_query_joins_a_reference_table_on_its_worker() {
    let db = CitusDb::new();
    let mut conn = PgConnection::establish(&db.url).expect("connect");
    // The application's shared table (its shared migrations would make it).
    conn.batch_execute(
        "CREATE TABLE public.cities (name text PRIMARY KEY, country text NOT NULL); \
         INSERT INTO public.cities VALUES ('Paris', 'France'), ('London', 'UK')",
    )
    .expect("cities");
    let router = SyncRouter::new(pool(&db, 2), TENANT);
    router.migrate_shared().expect("shared");
    let demo1 = router
        .create_tenant(&NewTenant::named("demo1"))
        .expect("create");
    router
        .pool()
        .with_tenant(&demo1.schema_name, |c| {
            Ok::<_, Error>(c.batch_execute(
                "INSERT INTO hotels (name, location, description) VALUES \
                 ('Ritz', 'Paris', 'x'), ('Savoy', 'London', 'y')",
            )?)
        })
        .expect("hotels");
    let worker_port = |plan: &str| {
        db.workers
            .iter()
            .find(|w| plan.contains(&format!("port={}", w.port)))
            .map(|w| w.port)
    };
    let expected = vec![
        ("Ritz".to_owned(), "France".to_owned()),
        ("Savoy".to_owned(), "UK".to_owned()),
    ];

    // A coordinator-local shared table: the tenant's rows are pulled to the coordinator.
    let (rows, plan) = join(&router, "demo1");
    assert_eq!(rows, expected);
    assert!(plan.contains("Distributed Subplan"), "{plan}");

    // As reference tables (the registry and the application's table), the whole join
    // runs on demo1's worker.
    let converted = router.make_reference_tables().expect("reference tables");
    assert_eq!(converted.len(), 4, "{converted:?}");
    assert_eq!(
        reference_tables(&mut conn),
        ["cities", "domains", "tenant_spares", "tenants"]
    );
    let (rows, plan) = join(&router, "demo1");
    assert_eq!(rows, expected);
    assert!(!plan.contains("Subplan"), "{plan}");
    assert!(plan.contains("Task Count: 1"), "{plan}");
    let placed = router.placement().expect("placement");
    let node = placed[0].node.clone().expect("demo1's node");
    assert_eq!(worker_port(&plan), Some(node.port), "{plan}");

    // The registry still notifies its listeners (from the coordinator's copy only), and
    // writes to it work (a NOTIFY on a worker's copy would fail their commit).
    let mut listener = PgConnection::establish(&db.url).expect("listener");
    listener
        .batch_execute("LISTEN diesel_tenancy_registry")
        .expect("listen");
    router
        .create_tenant(&NewTenant::named("demo2"))
        .expect("create with the registry as reference tables");
    let heard = (0..100).any(|_| {
        listener
            .batch_execute("SELECT pg_sleep(0.01)")
            .expect("poll");
        listener.notifications_iter().next().is_some()
    });
    assert!(heard, "no registry notification reached the coordinator");
    router.delete_tenant("demo2", true).expect("delete");

    // The opt-in on the router: `migrate_shared` converts shared tables added later.
    conn.batch_execute("CREATE TABLE public.plans (id int PRIMARY KEY)")
        .expect("plans");
    let opted = SyncRouter::new(pool(&db, 2), TENANT).citus_reference_tables(true);
    opted.migrate_shared().expect("shared");
    assert_eq!(
        reference_tables(&mut conn),
        ["cities", "domains", "plans", "tenant_spares", "tenants"]
    );
}

//! The async face (`AsyncTenantPool`) against the real PostgreSQL: the same scopes and
//! isolation as the sync pool in both modes and for both tenant kinds; the pipelined
//! first query runs only after a proven checkout and leaves with it in one round trip.

mod common;

use std::time::{Duration, Instant};

use common::async_hotels::{add, here, in_block, insert, list, names};
use common::fault_proxy::{Fault, FaultProxy, Who};
use common::{TestDb, TENANT};
use diesel::prelude::*;
use diesel_tenancy::diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_tenancy::{
    Error, NewTenant, PoolMode, SchemaName, Scope, SyncRouter, TenantMode, TenantPool,
};
use futures_util::future::FutureExt;

const MODES: [PoolMode; 2] = [PoolMode::Session, PoolMode::TransactionLocal];

fn schema(name: &str) -> SchemaName {
    SchemaName::new(name).unwrap()
}

/// Two schema tenants `a` and `b` made by the sync router.
fn schema_tenants(db: &TestDb) -> SyncRouter {
    let router = db.router(2);
    for name in ["a", "b"] {
        router.create_tenant(&NewTenant::named(name)).unwrap();
    }
    router
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_other_in_either_mode() {
    for mode in MODES {
        let db = TestDb::new();
        let _router = schema_tenants(&db);
        let pool = TenantPool::builder()
            .max_size(1)
            .mode(mode)
            .build_async(&db.url)
            .await
            .unwrap();
        assert_eq!(pool.mode(), mode);
        for (tenant, rows) in [("a", ["a1", "a2"]), ("b", ["b1", "b2"])] {
            let mut conn = pool.tenant(&schema(tenant)).await.unwrap();
            assert_eq!(here(&mut conn).await.schema, tenant, "{mode:?}");
            assert_eq!(
                add(&mut conn, rows[0]).await.unwrap(),
                1,
                "{mode:?}: ids start at 1"
            );
            assert_eq!(add(&mut conn, rows[1]).await.unwrap(), 2, "{mode:?}");
            conn.commit().await.unwrap();
        }
        let mut a = pool.tenant(&schema("a")).await.unwrap();
        assert_eq!(
            names(&mut a).await,
            vec![(1, "a1".to_owned()), (2, "a2".to_owned())]
        );
        a.rollback().await.unwrap();
        let mut public = pool.public().await.unwrap();
        assert_eq!(here(&mut public).await.schema, "public", "{mode:?}");
        assert_eq!(
            in_block(&mut public).await,
            mode == PoolMode::TransactionLocal,
            "{mode:?}"
        );
        public.commit().await.unwrap();
        let (mut b, first) = pool
            .checkout_with(Scope::Tenant(schema("b")), list)
            .await
            .unwrap();
        assert_eq!(
            first.unwrap(),
            vec![(1, "b1".to_owned()), (2, "b2".to_owned())],
            "{mode:?}: the pipelined first query ran in b"
        );
        assert_eq!(here(&mut b).await.schema, "b");
        b.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_local_keeps_only_committed_work() {
    let db = TestDb::new();
    let _router = schema_tenants(&db);
    let pool = TenantPool::builder()
        .max_size(1)
        .mode(PoolMode::TransactionLocal)
        .build_async(&db.url)
        .await
        .unwrap();
    let mut conn = pool.tenant(&schema("a")).await.unwrap();
    add(&mut conn, "rolled back").await.unwrap();
    conn.rollback().await.unwrap();
    let mut conn = pool.tenant(&schema("a")).await.unwrap();
    add(&mut conn, "dropped").await.unwrap();
    drop(conn); // neither committed nor rolled back: closed, so rolled back on the server
    let (conn, id) = pool
        .checkout_with(Scope::Tenant(schema("a")), |c| insert(c, "kept"))
        .await
        .unwrap();
    assert!(id.is_ok());
    conn.commit().await.unwrap();
    let mut conn = pool.tenant(&schema("a")).await.unwrap();
    let kept: Vec<String> = names(&mut conn).await.into_iter().map(|(_, n)| n).collect();
    assert_eq!(kept, vec!["kept".to_owned()]);
    conn.commit().await.unwrap();

    // A first query that fails dooms the pool's transaction: commit refuses and rolls back.
    let (conn, failed) = pool
        .checkout_with(Scope::Tenant(schema("a")), |c| {
            async move {
                let mut c = c;
                diesel::sql_query("SELECT 1/0").execute(&mut c).await
            }
            .boxed()
        })
        .await
        .unwrap();
    assert!(failed.is_err());
    assert!(matches!(conn.commit().await, Err(Error::Query(_))));
    let mut conn = pool.tenant(&schema("a")).await.unwrap();
    assert_eq!(names(&mut conn).await.len(), 1, "the pool still serves a");
    conn.commit().await.unwrap();
}

/// The test that fails without the transaction block around a pipelined checkout: a
/// checkout whose proof fails (a stale route) leaves the session's path where the
/// previous borrower had it, and a first query sent behind it would then run there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_proof_never_runs_the_pipelined_first_query() {
    for mode in MODES {
        let db = TestDb::new();
        let _router = schema_tenants(&db);
        let pool = TenantPool::builder()
            .max_size(1)
            .mode(mode)
            .build_async(&db.url)
            .await
            .unwrap();
        // The one connection's last scope is `a`.
        let conn = pool.tenant(&schema("a")).await.unwrap();
        conn.commit().await.unwrap();
        // A route to `b` whose OID no schema has: the proof fails.
        let stale = Scope::Pinned {
            schema: schema("b"),
            oid: 1,
        };
        let outcome = pool.checkout_with(stale, |c| insert(c, "leak")).await;
        assert!(
            matches!(outcome, Err(Error::StaleRoute { .. })),
            "{mode:?}: {outcome:?}"
        );
        for tenant in ["a", "b"] {
            let mut conn = pool.tenant(&schema(tenant)).await.unwrap();
            assert_eq!(
                names(&mut conn).await,
                vec![],
                "{mode:?}: the first query behind a failed proof ran in {tenant}"
            );
            conn.commit().await.unwrap();
        }
    }
}

/// One round trip: with every reply of the server held back, the first query still
/// reaches the server and runs, so it left with the checkout message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_query_leaves_with_the_checkout_in_one_round_trip() {
    for mode in MODES {
        let db = TestDb::new();
        let _router = schema_tenants(&db);
        let server_port = test_support::Server::of(&db.url).port;
        let proxy = FaultProxy::start(server_port);
        let pool = TenantPool::builder()
            .max_size(1)
            .mode(mode)
            .dangerous_skip_pooler_check()
            .build_async(&proxy.url(&db.url))
            .await
            .unwrap();
        let warm = pool.tenant(&schema("a")).await.unwrap();
        warm.commit().await.unwrap();
        proxy.set(Who::Others, Fault::HoldReplies);
        let task = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let (conn, first) = pool
                    .checkout_with(Scope::Tenant(schema("b")), |c| insert(c, "pipelined"))
                    .await?;
                conn.commit().await?;
                Ok::<_, Error>(first)
            })
        };
        let mut admin = AsyncPgConnection::establish(&db.url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            #[derive(QueryableByName)]
            struct Seen {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let seen: Seen = diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND query LIKE 'INSERT INTO \"hotels\"%'",
            )
            .get_result(&mut admin)
            .await
            .unwrap();
            if seen.n == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{mode:?}: the first query never reached the server while the checkout's \
                 reply was held: it waits for a second round trip"
            );
            tokio::task::yield_now().await;
        }
        assert!(!task.is_finished(), "{mode:?}: no reply was delivered yet");
        proxy.set(Who::Others, Fault::Forward);
        let first = task.await.unwrap().unwrap();
        assert_eq!(first.unwrap(), 1, "{mode:?}");
    }
}

/// A database owned by a plain login role with two row tenants.
struct Rows {
    _db: TestDb,
    app_url: String,
    a: i64,
    b: i64,
}

fn row_tenants() -> Rows {
    let db = TestDb::new();
    let (_app, app_url) = db.plain_owner();
    let router = SyncRouter::new(
        TenantPool::builder()
            .max_size(2)
            .row_tenants(true)
            .build(&app_url)
            .unwrap(),
        TENANT,
    );
    router.migrate_shared().unwrap();
    let mut ids = [0; 2];
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        ids[i] = router
            .create_tenant(&NewTenant::named(name).mode(TenantMode::Rows))
            .unwrap()
            .id;
    }
    Rows {
        _db: db,
        app_url,
        a: ids[0],
        b: ids[1],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_tenants_see_their_own_rows_only() {
    let rows = row_tenants();
    for mode in MODES {
        let pool = TenantPool::builder()
            .max_size(1)
            .mode(mode)
            .row_tenants(true)
            .build_async(&rows.app_url)
            .await
            .unwrap();
        assert!(pool.has_row_tenants());
        for (tenant, name) in [(rows.a, "a-row"), (rows.b, "b-row")] {
            let (conn, first) = pool
                .checkout_with(Scope::Rows { tenant }, |c| insert(c, name))
                .await
                .unwrap();
            assert!(first.is_ok(), "{mode:?}: {first:?}");
            conn.commit().await.unwrap();
        }
        for (tenant, name) in [(rows.a, "a-row"), (rows.b, "b-row")] {
            let mut conn = pool.row_tenant(tenant).await.unwrap();
            let seen: Vec<String> = names(&mut conn).await.into_iter().map(|(_, n)| n).collect();
            assert_eq!(seen, vec![name.to_owned()], "{mode:?}");
            assert!(here(&mut conn).await.role.ends_with("_tenant_rows"));
            conn.commit().await.unwrap();
        }
        let mut all = pool.all_tenant_rows().await.unwrap();
        assert_eq!(names(&mut all).await.len(), 2, "{mode:?}");
        diesel::sql_query("DELETE FROM hotels")
            .execute(&mut *all)
            .await
            .unwrap();
        all.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_is_a_stale_route_and_the_pool_goes_on() {
    let db = TestDb::new();
    let router = schema_tenants(&db);
    let pool = TenantPool::builder()
        .max_size(1)
        .build_async(&db.url)
        .await
        .unwrap();
    #[derive(QueryableByName)]
    struct Oid {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        oid: i64,
    }
    let mut admin = PgConnection::establish(&db.url).unwrap();
    let oid: Oid = diesel::RunQueryDsl::get_result(
        diesel::sql_query("SELECT 'b'::regnamespace::oid::int8 AS oid"),
        &mut admin,
    )
    .unwrap();
    let route = Scope::Pinned {
        schema: schema("b"),
        oid: u32::try_from(oid.oid).unwrap(),
    };
    let live = pool.checkout(route.clone()).await.unwrap();
    drop(live);
    router.delete_tenant("b", true).unwrap();
    let outcome = pool.checkout(route).await;
    assert!(
        matches!(outcome, Err(Error::StaleRoute { .. })),
        "{outcome:?}"
    );
    let mut conn = pool.tenant(&schema("a")).await.unwrap();
    assert_eq!(here(&mut conn).await.schema, "a");
}

/// Behind PgBouncer in transaction mode (one server connection for every client one):
/// `TransactionLocal`, the proof inline, the first query pipelined, tenants interleaved
/// from two client connections on the one backend; `Session` mode is refused there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_local_behind_pgbouncer() {
    let db = TestDb::new();
    let _router = schema_tenants(&db);
    let bouncer = common::pgbouncer::PgBouncer::start(&db.url, 1);
    let pool = TenantPool::builder()
        .mode(PoolMode::TransactionLocal)
        .statement_cache(false)
        .max_size(3)
        .connection_timeout(Duration::from_secs(10))
        .build_async(&bouncer.url)
        .await
        .unwrap();
    // Two tasks, one per tenant, each on its own client connection; PgBouncer serves
    // both from its one backend, transaction by transaction.
    let tasks: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|tenant| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for round in 0..5 {
                    let (mut conn, first) = pool
                        .checkout_with(Scope::Tenant(schema(tenant)), list)
                        .await
                        .unwrap();
                    let rows = first.unwrap();
                    assert_eq!(rows.len(), round, "{tenant} round {round}: {rows:?}");
                    assert!(rows.iter().all(|(_, n)| n == tenant), "{rows:?}");
                    assert_eq!(here(&mut conn).await.schema, tenant);
                    add(&mut conn, tenant).await.unwrap();
                    conn.commit().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let session = TenantPool::builder().build_async(&bouncer.url).await;
    assert!(
        matches!(session, Err(Error::SessionModeBehindPooler)),
        "{session:?}"
    );
}

/// A borrower that swaps its own `AsyncPgConnection` into the guard does not put it in
/// the pool: check-in finds no pool instrumentation on it and closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_connection_is_not_returned_to_the_pool() {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    async fn pid(conn: &mut AsyncPgConnection) -> i32 {
        diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result::<Pid>(conn)
            .await
            .unwrap()
            .pid
    }
    let db = TestDb::new();
    let _router = schema_tenants(&db);
    let pool = TenantPool::builder()
        .max_size(1)
        .build_async(&db.url)
        .await
        .unwrap();
    let mut conn = pool.tenant(&schema("a")).await.unwrap();
    let pooled = pid(&mut conn).await;
    let mut own = AsyncPgConnection::establish(&db.url).await.unwrap();
    let foreign = pid(&mut own).await;
    std::mem::swap(&mut *conn, &mut own);
    drop(conn);
    let mut next = pool.tenant(&schema("b")).await.unwrap();
    let served = pid(&mut next).await;
    assert_ne!(
        served, foreign,
        "the borrower's own connection entered the pool"
    );
    assert_ne!(
        served, pooled,
        "the pool's connection is the borrower's now"
    );
    assert_eq!(here(&mut next).await.schema, "b");
    drop(own);
}

/// A hostile borrower on the async face: SQL that leaves state behind on the server (a
/// temporary table shadowing `hotels`, settings, a held cursor, `LISTEN`, an open block
/// opened behind diesel-async's back, another role, a function that sets the path,
/// forgotten statements). The next innocent checkout of the other tenant, plain or with
/// its first query pipelined behind the checkout, sees only its own rows, in its own
/// schema, as the login role, and no block opened before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_borrower_never_reaches_the_next_innocent_checkout() {
    use diesel_tenancy::diesel_async::SimpleAsyncConnection;
    let attacks: &[&str] = &[
        "CREATE TEMP TABLE hotels (id bigint, name text); INSERT INTO hotels VALUES (1, 'leak')",
        "SET search_path TO a",
        "SELECT set_config('search_path', 'a', false)",
        "CREATE FUNCTION pg_temp.f() RETURNS void LANGUAGE sql AS $$ SELECT set_config('search_path', 'a', false) $$; SELECT pg_temp.f()",
        "BEGIN; DECLARE held CURSOR WITH HOLD FOR SELECT 1; COMMIT",
        "LISTEN leak",
        "BEGIN; INSERT INTO hotels (name, location, description) VALUES ('leak', 'x', 'y')",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "SET default_transaction_read_only = on",
        "DEALLOCATE ALL",
        "DISCARD ALL",
    ];
    for mode in MODES {
        let db = TestDb::new();
        let login = test_support::Server::of(&db.url).user;
        let _router = schema_tenants(&db);
        let pool = TenantPool::builder()
            .max_size(1)
            .mode(mode)
            .build_async(&db.url)
            .await
            .unwrap();
        let mut b = pool.tenant(&schema("b")).await.unwrap();
        add(&mut b, "b1").await.unwrap();
        b.commit().await.unwrap();
        for (i, attack) in attacks.iter().enumerate() {
            let mut hostile = pool.tenant(&schema("a")).await.unwrap();
            // Some attacks fail in some modes (e.g. DISCARD ALL inside the pool's
            // transaction): what matters is what they leave behind.
            let _ = hostile.batch_execute(attack).await;
            let _ = hostile.commit().await;
            // Every other time the innocent's first query (a write) rides behind the
            // checkout message: it must land in b or nowhere, never where the hostile
            // borrower left the session.
            let pipelined = i % 2 == 0;
            let mut conn = if pipelined {
                let (conn, id) = pool
                    .checkout_with(Scope::Tenant(schema("b")), |c| insert(c, "innocent"))
                    .await
                    .unwrap_or_else(|e| panic!("{mode:?} after {attack:?}: {e}"));
                id.unwrap();
                conn
            } else {
                pool.tenant(&schema("b"))
                    .await
                    .unwrap_or_else(|e| panic!("{mode:?} after {attack:?}: {e}"))
            };
            let rows: Vec<String> = names(&mut conn).await.into_iter().map(|(_, n)| n).collect();
            assert_eq!(rows[0], "b1", "{mode:?} after {attack:?}");
            assert_eq!(rows.len(), 2 + i / 2, "{mode:?} after {attack:?}: {rows:?}");
            assert!(
                rows[1..].iter().all(|n| n == "innocent"),
                "{mode:?} after {attack:?}: {rows:?}"
            );
            let at = here(&mut conn).await;
            assert_eq!(at.schema, "b", "{mode:?} after {attack:?}");
            assert_eq!(at.role, login, "{mode:?} after {attack:?}");
            assert_eq!(
                in_block(&mut conn).await,
                mode == PoolMode::TransactionLocal,
                "{mode:?} after {attack:?}"
            );
            conn.commit().await.unwrap();
        }
        // The block opened behind diesel-async's back: in `Session` mode the next proof
        // refused it and the connection was closed, so the insert never committed; in
        // `TransactionLocal` it ran inside the pool's transaction, which the borrower
        // itself committed, in its own tenant.
        let expected = if mode == PoolMode::TransactionLocal {
            vec![(1, "leak".to_owned())]
        } else {
            vec![]
        };
        let mut a = pool.tenant(&schema("a")).await.unwrap();
        assert_eq!(
            names(&mut a).await,
            expected,
            "{mode:?}: tenant a (an innocent write landed there?)"
        );
        a.commit().await.unwrap();
    }
}

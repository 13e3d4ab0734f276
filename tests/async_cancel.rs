//! Cancel safety of the async face, by construction: every await point of every pool
//! operation and of a borrower's queries, transactions and commit is driven in turn —
//! the future is polled N times (each poll after a real wake-up) and then dropped, for
//! every N until the operation completes — in both pool modes and for schema and row
//! tenants. After each drop the next innocent checkouts (another tenant, then the same
//! one) must get a session that is exactly theirs: right schema and role, no
//! transaction block left open, no row of the cancelled work visible to the other
//! tenant, and the pool still serving.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use common::async_hotels::{self, add, here, in_block, insert};
use common::{TestDb, TENANT};
use diesel::prelude::*;
use diesel_tenancy::diesel_async::scoped_futures::ScopedFutureExt;
use diesel_tenancy::diesel_async::{AsyncConnection, AsyncPgConnection};
use diesel_tenancy::{
    AsyncTenantPool, NewTenant, PoolMode, SchemaName, Scope, SyncRouter, TenantMode, TenantPool,
};
use futures_util::future::BoxFuture;

/// Polls the inner future at most `left` times, then gives up and drops it.
struct PollLimit<F: Future> {
    inner: Pin<Box<F>>,
    left: usize,
}

impl<F: Future> Future for PollLimit<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        self.inner.as_mut().poll(cx).map(Some)
    }
}

/// Runs `fut` for at most `polls` polls; `Some` if it completed.
async fn limited<F: Future>(fut: F, polls: usize) -> Option<F::Output> {
    PollLimit {
        inner: Box::pin(fut),
        left: polls,
    }
    .await
}

const CANCELLED: &str = "cancelled";

async fn insert_on(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    add(conn, CANCELLED).await
}

/// The cancelled work's first query.
fn insert_cancelled(conn: &AsyncPgConnection) -> BoxFuture<'_, QueryResult<i64>> {
    insert(conn, CANCELLED)
}

/// The hotel names.
async fn names(conn: &mut AsyncPgConnection) -> Vec<String> {
    async_hotels::names(conn)
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect()
}

/// The operations whose every await point is driven.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `checkout` itself (deadpool's get, the verified checkout).
    Checkout,
    /// `checkout_with` and its pipelined first query.
    Pipelined,
    /// A borrower's query on a checked-out connection.
    Query,
    /// A borrower's transaction (BEGIN, two inserts, COMMIT).
    Transaction,
    /// The pool's commit (`TransactionLocal`: the COMMIT round trip).
    Commit,
}

const OPS: [Op; 5] = [
    Op::Checkout,
    Op::Pipelined,
    Op::Query,
    Op::Transaction,
    Op::Commit,
];

/// Runs `op` in `scope` for at most `polls` polls; true if it completed.
async fn run(pool: &AsyncTenantPool, scope: &Scope, op: Op, polls: usize) -> bool {
    match op {
        Op::Checkout => limited(pool.checkout(scope.clone()), polls)
            .await
            .map(|conn| drop(conn.expect("checkout")))
            .is_some(),
        Op::Pipelined => {
            let done = limited(pool.checkout_with(scope.clone(), insert_cancelled), polls).await;
            match done {
                Some(Ok((conn, first))) => {
                    first.expect("first query");
                    conn.commit().await.expect("commit");
                    true
                }
                Some(Err(e)) => panic!("checkout_with: {e}"),
                None => false,
            }
        }
        Op::Query => {
            let mut conn = pool.checkout(scope.clone()).await.expect("checkout");
            let done = limited(insert_on(&mut conn), polls).await;
            if done.is_some() {
                conn.commit().await.expect("commit");
            }
            done.is_some()
        }
        Op::Transaction => {
            let mut conn = pool.checkout(scope.clone()).await.expect("checkout");
            let work = conn.transaction::<_, diesel::result::Error, _>(|c| {
                async move {
                    insert_on(c).await?;
                    insert_on(c).await
                }
                .scope_boxed()
            });
            let done = limited(work, polls).await;
            if done.is_some() {
                conn.commit().await.expect("commit");
            }
            done.is_some()
        }
        Op::Commit => {
            let mut conn = pool.checkout(scope.clone()).await.expect("checkout");
            insert_on(&mut conn).await.expect("insert");
            limited(conn.commit(), polls).await.is_some()
        }
    }
}

/// What an innocent checkout of `scope` must see.
struct Expect<'a> {
    scope: Scope,
    schema: &'a str,
    role_suffix: Option<&'a str>,
    tenant: String,
}

/// The next innocent checkouts: `other` (never touched by the cancelled work) must see
/// exactly its own session and none of the cancelled rows; `same` must get a clean
/// session too. Returns the backend of each (the pool has one connection).
async fn innocent(
    pool: &AsyncTenantPool,
    mode: PoolMode,
    other: &Expect<'_>,
    same: &Expect<'_>,
) -> [i32; 2] {
    let mut pids = [0; 2];
    for (i, expect) in [other, same].into_iter().enumerate() {
        let mut conn = pool
            .checkout(expect.scope.clone())
            .await
            .expect("an innocent checkout after a cancelled operation");
        let at = here(&mut conn).await;
        pids[i] = at.pid;
        assert_eq!(at.schema, expect.schema, "{mode:?} {:?}", expect.scope);
        assert_eq!(at.tenant, expect.tenant, "{mode:?} {:?}", expect.scope);
        if let Some(suffix) = expect.role_suffix {
            assert!(at.role.ends_with(suffix), "{mode:?}: role {}", at.role);
        }
        assert_eq!(
            in_block(&mut conn).await,
            mode == PoolMode::TransactionLocal,
            "{mode:?} {:?}: a transaction block opened before the checkout is still open",
            expect.scope
        );
        if std::ptr::eq(expect, other) {
            let seen = names(&mut conn).await;
            assert!(
                !seen.iter().any(|n| n == CANCELLED),
                "{mode:?}: cancelled work leaked into {:?}: {seen:?}",
                expect.scope
            );
        }
        conn.commit().await.expect("innocent commit");
    }
    pids
}

/// Drives every await point of every operation on `pool`; returns how many drops
/// happened mid-operation.
async fn drive(pool: &AsyncTenantPool, mode: PoolMode, victim: &Expect<'_>, other: &Expect<'_>) {
    for op in OPS {
        let mut cancelled = 0;
        let mut polls = 0;
        let mut last = innocent(pool, mode, other, victim).await[1];
        loop {
            let completed = run(pool, &victim.scope, op, polls).await;
            let next = innocent(pool, mode, other, victim).await;
            if !completed && polls > 0 {
                // Dropped after its first poll, the operation had started on the one
                // connection: the client side discards it rather than leave it to the
                // server's proof.
                assert_ne!(
                    next[0], last,
                    "{mode:?} {op:?}: dropped after {polls} polls, the connection was reused"
                );
            }
            last = next[1];
            if completed {
                break;
            }
            cancelled += 1;
            polls += 1;
            assert!(polls < 500, "{mode:?} {op:?} never completed");
        }
        // Every operation with I/O awaits at least once; how many polls it takes beyond
        // that depends on when the server's answer arrives.
        let has_io = !matches!((op, mode), (Op::Commit, PoolMode::Session));
        assert!(
            !has_io || cancelled >= 1,
            "{mode:?} {op:?}: no await point was driven"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_tenants_survive_a_drop_at_every_await_point() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let db = TestDb::new();
        let router = db.router(1);
        for name in ["a", "b"] {
            router.create_tenant(&NewTenant::named(name)).unwrap();
        }
        let pool = TenantPool::builder()
            .max_size(1)
            .mode(mode)
            .build_async(&db.url)
            .await
            .unwrap();
        let expect = |name: &'static str| Expect {
            scope: Scope::Tenant(SchemaName::new(name).unwrap()),
            schema: name,
            role_suffix: None,
            tenant: String::new(),
        };
        drive(&pool, mode, &expect("a"), &expect("b")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_tenants_survive_a_drop_at_every_await_point() {
    let db = TestDb::new();
    let (_app, app_url) = db.plain_owner();
    let router = SyncRouter::new(
        TenantPool::builder()
            .max_size(1)
            .row_tenants(true)
            .build(&app_url)
            .unwrap(),
        TENANT,
    );
    router.migrate_shared().unwrap();
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        ids.push(
            router
                .create_tenant(&NewTenant::named(name).mode(TenantMode::Rows))
                .unwrap()
                .id,
        );
    }
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let pool = TenantPool::builder()
            .max_size(1)
            .mode(mode)
            .row_tenants(true)
            .build_async(&app_url)
            .await
            .unwrap();
        let expect = |tenant: i64| Expect {
            scope: Scope::Rows { tenant },
            schema: "tenant_rows",
            role_suffix: Some("_tenant_rows"),
            tenant: tenant.to_string(),
        };
        drive(&pool, mode, &expect(ids[0]), &expect(ids[1])).await;
    }
}

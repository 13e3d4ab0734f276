//! The fail-closed suite's core cases (`tests/fail_closed.rs`, issue 11's classes) with
//! the pool on the Citus coordinator and the tenants distributed schemas on the workers:
//! after each hostile checkout, the next innocent one (a pool of one connection, both
//! modes) sees only its own tenant, commits where it belongs and runs as the session
//! user. Plus what only Citus has: SQL run on a worker's session (a function pushed down
//! with a tenant query) that changes that session's path.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_tenancy::{Error, PoolMode, Scope, TenantPool};

use crate::citus_support::CitusDb;
use crate::common::attack::{self, Attack};
use crate::common::sentinel;

/// `attack::setup` for Citus: the same functions and per-scope tables; the trigger on a
/// distributed table needs `citus.enable_unsafe_triggers` (it runs on the worker).
fn setup(pool: &TenantPool, scopes: &[Scope]) {
    pool.with_public(|c| {
        Ok::<_, Error>(c.batch_execute(
            "CREATE FUNCTION public.dt_switch_path(p text) RETURNS text LANGUAGE plpgsql \
               AS $$ BEGIN RETURN pg_catalog.set_config('search_path', p, false); END $$; \
             CREATE FUNCTION public.dt_sneaky_switch(p text) RETURNS text LANGUAGE plpgsql \
               SET search_path = pg_catalog \
               AS $$ BEGIN PERFORM pg_catalog.set_config('search_path', p, false); RETURN p; END $$; \
             CREATE PROCEDURE public.dt_commit_switch(p text) LANGUAGE plpgsql \
               AS $$ BEGIN COMMIT; PERFORM pg_catalog.set_config('search_path', p, false); END $$; \
             CREATE FUNCTION public.dt_trigger_switch() RETURNS trigger LANGUAGE plpgsql \
               AS $$ BEGIN PERFORM pg_catalog.set_config('search_path', NEW.target, false); \
               RETURN NEW; END $$;",
        )?)
    })
    .expect("attack functions");
    for scope in scopes {
        // One statement per message: Citus sends a DDL statement's text to the workers.
        pool.with_scope(scope.clone(), |c| {
            for sql in [
                "SET citus.enable_unsafe_triggers TO on",
                "CREATE TABLE writes (token text PRIMARY KEY)",
                "CREATE TABLE audited (target text NOT NULL)",
                "CREATE TRIGGER audited_switch AFTER INSERT ON audited \
                 FOR EACH ROW EXECUTE FUNCTION public.dt_trigger_switch()",
            ] {
                c.batch_execute(sql)?;
            }
            Ok::<_, Error>(())
        })
        .expect("attack tables");
    }
}

/// `attack::innocent` with the path read on the coordinator. On Citus a function in a
/// query on a distributed table runs on the tenant's worker, in the session Citus keeps
/// open there: `current_schema()` beside the sentinel row (as `sentinel::check` reads
/// it) reports that session's path, not the checkout's. The row itself comes from the
/// tenant's shard; the path is asked in a query of its own, which the coordinator runs.
fn innocent(pool: &TenantPool, scope: &Scope, scopes: &[Scope], url: &str) {
    use crate::common::sentinel::sentinel::dsl::{name, sentinel as table};
    use diesel::sql_types::{Nullable, Text};
    let token = attack::token(scope);
    let expected = sentinel::name_of(scope);
    let wrong = pool
        .with_scope(scope.clone(), |c| {
            let path: Option<String> =
                diesel::select(diesel::dsl::sql::<Nullable<Text>>("current_schema()"))
                    .get_result(c)?;
            let found: String = table.select(name).first(c)?;
            if path.as_deref() != Some(expected.as_str()) || found != expected {
                return Ok(Some(format!(
                    "expected {expected}, current_schema {path:?}, sentinel {found}"
                )));
            }
            attack::session_is_clean_and_writes(c, &token, "postgres")
        })
        .expect("the innocent checkout works");
    assert_eq!(wrong, None, "innocent checkout of {scope:?}");
    assert_eq!(
        attack::committed_in(url, scopes, &token),
        vec![expected],
        "the innocent write of {scope:?} is committed in its own schema only"
    );
}

struct World {
    db: CitusDb,
    /// public, then tenants `t00` and `t01`.
    scopes: Vec<Scope>,
}

impl World {
    fn pool(&self, mode: PoolMode) -> TenantPool {
        TenantPool::builder()
            .mode(mode)
            .max_size(1)
            .min_idle(Some(0))
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(&self.db.url)
            .expect("pool")
    }

    fn a(&self) -> &Scope {
        &self.scopes[1]
    }

    fn b(&self) -> &Scope {
        &self.scopes[2]
    }

    /// For each mode and each case (a sequence of hostile checkouts of `a` aimed at `b`),
    /// an innocent checkout of `a`, of `b` and of public, each after a fresh attack.
    fn check(&self, modes: &[PoolMode], cases: &[&[Attack]]) {
        for &mode in modes {
            let pool = self.pool(mode);
            for steps in cases {
                for target in [self.a(), self.b(), &Scope::Public] {
                    for &step in *steps {
                        let _ = pool.with_scope(self.a().clone(), |c| {
                            attack::run(step, c, self.a(), self.b(), &self.db.url)?;
                            Ok::<_, Error>(())
                        });
                    }
                    innocent(&pool, target, &self.scopes, &self.db.url);
                }
            }
        }
    }
}

pub fn the_checkout_guarantees_hold_through_the_coordinator() {
    let db = CitusDb::new();
    let pool = TenantPool::builder()
        .max_size(2)
        .min_idle(Some(0))
        .build(&db.url)
        .expect("pool");
    let scopes = sentinel::setup(pool.clone(), "t", 2);
    setup(&pool, &scopes);
    let world = World { db, scopes };
    let both = [PoolMode::Session, PoolMode::TransactionLocal];
    world.check(
        &both,
        &[
            // 1. Server-side code changes the path.
            &[Attack::FunctionSetsPath],
            &[Attack::FunctionWithSetClauseSetsPath],
            &[Attack::TriggerSetsPath],
            &[Attack::DoBlockSetsPath],
            // 2. SQL a text scanner misses.
            &[Attack::CommentBeforeSet],
            &[Attack::UnicodeEscapedSet],
            &[Attack::SetInsideQueryToXml],
            &[Attack::BindsMarkerInBatch],
            &[Attack::PrepareSwitch, Attack::ExecutePreparedSwitch],
            &[Attack::BeginTransactionSqlWithSet],
            // 3. Hidden transactions.
            &[Attack::HiddenTransaction],
            &[Attack::HiddenTransactionWithSet],
            &[Attack::AbortedHiddenTransaction],
            // 4. Temporary objects.
            &[Attack::TempViewShadowsSentinel],
            &[Attack::TempTableShadowsWrites],
            // 5. Other session state.
            &[Attack::SetRole],
            &[Attack::SetSessionAuthorization],
            &[Attack::DeallocateAll],
            &[Attack::CustomSetting],
            &[Attack::ReadOnlyDefault],
            &[Attack::ListenAndNotify],
            &[Attack::HoldCursor],
            &[Attack::NextvalForLastval],
            &[Attack::AdvisoryLock],
            &[Attack::StatementTimeout],
            &[Attack::ClientEncoding],
            &[Attack::TimeZone],
            // 6. A swapped connection.
            &[Attack::SwapInFreshConnection],
        ],
    );
    world.check(
        &[PoolMode::Session],
        &[
            &[Attack::ProcedureCommitsThenSetsPath],
            &[Attack::DiscardAll],
        ],
    );

    // Citus only: a function pushed down with a tenant query runs in the session Citus
    // keeps open from the coordinator's backend to the worker, and changes *that*
    // session's path. Citus names every shard with its schema in what it sends, so the
    // next checkout (same coordinator backend, same worker session) still reads its own
    // tenant.
    for mode in both {
        let pool = world.pool(mode);
        for target in [world.a(), world.b(), world.a()] {
            let (a, b) = (world.a(), world.b());
            let ran = pool.with_scope(a.clone(), |c| {
                diesel::sql_query(format!(
                    "SELECT inet_server_port() AS port, public.dt_switch_path('\"{}\"') AS path \
                     FROM sentinel",
                    sentinel::name_of(b)
                ))
                .get_result::<RanOn>(c)
                .map_err(Error::from)
            });
            let port = ran.expect("the pushed-down function ran").port;
            assert!(
                world.db.workers.iter().any(|w| i32::from(w.port) == port),
                "the function ran on port {port}, not on a worker"
            );
            innocent(&pool, target, &world.scopes, &world.db.url);
        }
    }
}

#[derive(QueryableByName)]
struct RanOn {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    port: i32,
}

/// PgBouncer (Debian's 1.18) in transaction mode in front of the coordinator: a
/// `Session`-mode pool is refused, a `TransactionLocal` one serves two tenants on two
/// workers from shared server connections without mixing them up.
pub fn transaction_local_mode_works_behind_pgbouncer_on_the_coordinator() {
    use diesel::sql_types::Text;
    use diesel_tenancy::{NewTenant, SyncRouter};
    use test_support::pgbouncer::PgBouncer;

    #[derive(QueryableByName)]
    struct Location {
        #[diesel(sql_type = Text)]
        location: String,
    }

    let db = CitusDb::new();
    let router = SyncRouter::new(
        TenantPool::builder()
            .max_size(2)
            .min_idle(Some(0))
            .build(&db.url)
            .expect("pool"),
        crate::common::TENANT,
    );
    router.migrate_shared().expect("shared");
    let mut scopes = Vec::new();
    for name in ["a", "b"] {
        let t = router
            .create_tenant(&NewTenant::named(name))
            .expect("create");
        router
            .pool()
            .with_tenant(&t.schema_name, |c| {
                Ok::<_, Error>(c.batch_execute(&format!(
                    "INSERT INTO hotels (name, location, description) VALUES ('h', '{name}', 'x')"
                ))?)
            })
            .expect("a hotel");
        scopes.push(t.schema_name);
    }
    let nodes: Vec<_> = router
        .placement()
        .expect("placement")
        .into_iter()
        .map(|p| p.node)
        .collect();
    assert_ne!(nodes[0], nodes[1], "a and b on two workers");

    let coordinator = test_support::Server {
        host: db.coordinator.host.clone(),
        port: db.coordinator.port,
        user: "postgres".to_owned(),
        database: String::new(),
    };
    let bouncer = PgBouncer::start_on(&db.url, coordinator, 2);
    let session = TenantPool::builder()
        .max_size(1)
        .build(&bouncer.url)
        .expect_err("Session mode behind a transaction pooler");
    assert!(
        matches!(session, Error::SessionModeBehindPooler),
        "{session}"
    );
    let pool = TenantPool::builder()
        .mode(PoolMode::TransactionLocal)
        .max_size(4)
        .min_idle(Some(0))
        .build(&bouncer.url)
        .expect("TransactionLocal pool behind PgBouncer");
    std::thread::scope(|s| {
        for thread in 0..4 {
            let (pool, scopes) = (&pool, &scopes);
            s.spawn(move || {
                for i in 0..50 {
                    let schema = &scopes[(thread + i) % 2];
                    let rows = pool
                        .with_tenant(schema, |c| {
                            Ok::<_, Error>(
                                diesel::sql_query("SELECT location::text AS location FROM hotels")
                                    .load::<Location>(c)?,
                            )
                        })
                        .expect("a checkout behind PgBouncer");
                    let seen: Vec<&str> = rows.iter().map(|r| r.location.as_str()).collect();
                    assert_eq!(seen, [schema.as_str()], "checkout {i} of thread {thread}");
                }
            });
        }
    });
}

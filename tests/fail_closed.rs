//! Issue 11's classes, one test each: a hostile checkout does what a realistic
//! application might (server-side code, SQL a text scan misses, hidden transactions,
//! temporary objects, other session state, a swapped connection), and the next innocent
//! checkout, on a pool of one connection, in both modes, must see only its own tenant,
//! commit its writes where they belong and run as the session user.

mod common;

use common::attack::{self, Attack};
use common::pgbouncer::PgBouncer;
use common::sentinel;
use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_tenancy::{Error, PoolMode, Scope, TenantPool};

struct World {
    db: TestDb,
    /// public, then tenants `t00` ("a") and `t01` ("b").
    scopes: Vec<Scope>,
}

impl World {
    fn new() -> World {
        let db = TestDb::new();
        let scopes = sentinel::setup(db.pool(2), "t", 2);
        attack::setup(&db.pool(1), &scopes);
        World { db, scopes }
    }

    fn pool(&self, mode: PoolMode, size: u32) -> TenantPool {
        TenantPool::builder()
            .mode(mode)
            .max_size(size)
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

    /// One hostile checkout of `own` running `attacks` aimed at `other`, whatever its
    /// outcome (some attacks are refused by the server, which is fine).
    fn hostile(&self, pool: &TenantPool, own: &Scope, other: &Scope, attacks: &[Attack]) {
        let _ = pool.with_scope(own.clone(), |c| {
            for &a in attacks {
                attack::run(a, c, own, other, &self.db.url)?;
            }
            Ok::<_, Error>(())
        });
    }

    fn innocent(&self, pool: &TenantPool, scope: &Scope) {
        attack::innocent(pool, scope, &self.scopes, &self.db.url);
    }

    /// For each mode and each attack (a sequence of hostile checkouts): attack from `a`
    /// aiming at `b`, then an innocent checkout of `a` (the repeated tenant), of `b`
    /// (a switch) and of public, each after a fresh attack.
    fn check(&self, modes: &[PoolMode], cases: &[&[Attack]]) {
        for &mode in modes {
            let pool = self.pool(mode, 1);
            for steps in cases {
                for target in [self.a(), self.b(), &Scope::Public] {
                    for &step in *steps {
                        self.hostile(&pool, self.a(), self.b(), &[step]);
                    }
                    self.innocent(&pool, target);
                }
            }
            let state = pool.state();
            assert!(state.connections <= 1, "{mode:?}: {state:?}");
        }
    }
}

const BOTH: [PoolMode; 2] = [PoolMode::Session, PoolMode::TransactionLocal];

#[test]
fn class1_server_side_code_that_changes_the_path() {
    World::new().check(
        &BOTH,
        &[
            &[Attack::FunctionSetsPath],
            &[Attack::FunctionWithSetClauseSetsPath],
            &[Attack::TriggerSetsPath],
            &[Attack::DoBlockSetsPath],
        ],
    );
    // A procedure may COMMIT only outside a transaction block: Session mode.
    World::new().check(
        &[PoolMode::Session],
        &[&[Attack::ProcedureCommitsThenSetsPath]],
    );
}

#[test]
fn class2_sql_a_text_scanner_misses() {
    World::new().check(
        &BOTH,
        &[
            &[Attack::CommentBeforeSet],
            &[Attack::UnicodeEscapedSet],
            &[Attack::SetInsideQueryToXml],
            &[Attack::BindsMarkerInBatch],
            // Prepared in one checkout, executed in a later one.
            &[Attack::PrepareSwitch, Attack::ExecutePreparedSwitch],
            &[Attack::BeginTransactionSqlWithSet],
        ],
    );
}

#[test]
fn class3_hidden_transactions() {
    let world = World::new();
    world.check(
        &BOTH,
        &[
            &[Attack::HiddenTransaction],
            &[Attack::HiddenTransactionWithSet],
            &[Attack::AbortedHiddenTransaction],
        ],
    );
    // A later innocent request rolls back (Diesel's own transaction): that must not undo
    // the path the pool set for it, so the checkout after it is still in its tenant.
    for mode in BOTH {
        let pool = world.pool(mode, 1);
        world.hostile(&pool, world.a(), world.b(), &[Attack::HiddenTransaction]);
        let rolled_back = pool.with_scope(world.a().clone(), |c| {
            let _ = c.transaction::<(), _, _>(|c| {
                c.batch_execute("SELECT 1")?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            sentinel::check(c, "t00")
        });
        assert_eq!(rolled_back.expect("checkout"), None, "{mode:?}");
        world.innocent(&pool, world.a());
    }
}

#[test]
fn class4_temporary_objects_never_shadow_tenant_tables() {
    World::new().check(
        &BOTH,
        &[
            &[Attack::TempViewShadowsSentinel],
            &[Attack::TempTableShadowsWrites],
        ],
    );
}

#[test]
fn class5_other_session_state_does_not_survive() {
    let world = World::new();
    world.check(
        &BOTH,
        &[
            &[Attack::SetRole],
            &[Attack::SetSessionAuthorization],
            &[Attack::DeallocateAll],
            &[Attack::CustomSetting],
            &[Attack::ReadOnlyDefault],
            &[Attack::ListenAndNotify],
            &[Attack::ListenNotifyUnlisten],
            &[Attack::HoldCursor],
            &[Attack::NextvalForLastval],
            &[Attack::StatementTimeout],
            &[Attack::ClientEncoding],
            &[Attack::TimeZone],
        ],
    );
    // `DISCARD ALL` cannot run inside the pool's transaction; in Session mode it drops
    // Diesel's prepared statements, and later checkouts must still work.
    world.check(&[PoolMode::Session], &[&[Attack::DiscardAll]]);
    // A session advisory lock taken by a borrower is released by the next checkout.
    for mode in BOTH {
        let pool = world.pool(mode, 1);
        world.hostile(&pool, world.a(), world.b(), &[Attack::AdvisoryLock]);
        world.innocent(&pool, world.b());
        let mut other = PgConnection::establish(&world.db.url).unwrap();
        let free: bool =
            diesel::dsl::sql::<diesel::sql_types::Bool>("SELECT pg_try_advisory_lock(4242)")
                .get_result(&mut other)
                .unwrap();
        assert!(
            free,
            "{mode:?}: the borrower's advisory lock outlived its checkout"
        );
    }
}

#[test]
fn class6_a_swapped_connection_is_discarded() {
    let world = World::new();
    world.check(&BOTH, &[&[Attack::SwapInFreshConnection]]);
    // Two connections of the same pool swapped with each other.
    for mode in BOTH {
        let pool = world.pool(mode, 2);
        {
            let mut x = pool.checkout(world.a().clone()).unwrap();
            let mut y = pool.checkout(world.b().clone()).unwrap();
            std::mem::swap(&mut *x, &mut *y);
        }
        for target in [world.a(), world.b(), world.a()] {
            world.innocent(&pool, target);
        }
        assert!(pool.state().connections <= 2, "{mode:?}");
    }
}

#[test]
fn class8_every_builder_path_refuses_session_mode_behind_a_transaction_pooler() {
    use rocket_sync_db_pools::Poolable;
    let db = TestDb::new();
    let bouncer = PgBouncer::start(&db.url, 2);
    // The manager a `rocket_sync_db_pools` pool is built from refuses to connect.
    let manager = TenantPool::builder()
        .statement_cache(false)
        .manager(&bouncer.url)
        .unwrap();
    let err = r2d2::ManageConnection::connect(&manager).unwrap_err();
    assert!(matches!(err, Error::SessionModeBehindPooler), "{err}");
    // `Poolable` itself, as `#[database]` uses it: the pool cannot be built.
    let figment = rocket::Config::figment()
        .merge(("databases.hotel.url", &bouncer.url))
        .merge(("databases.hotel.pool_size", 1))
        .merge(("databases.hotel.timeout", 2));
    let rocket = rocket::custom(figment);
    let refused = diesel_tenancy::ManagedConnection::pool("hotel", &rocket);
    let message = format!("{:?}", refused.expect_err("no pool behind PgBouncer"));
    assert!(message.contains("transaction pooler"), "{message}");
    // Transaction-local mode through the same manager works behind it.
    let manager = TenantPool::builder()
        .mode(PoolMode::TransactionLocal)
        .statement_cache(false)
        .manager(&bouncer.url)
        .unwrap();
    let mut conn = r2d2::ManageConnection::connect(&manager).unwrap();
    conn.with_public(|c| Ok::<_, Error>(c.batch_execute("SELECT 1")?))
        .unwrap();
}

#[test]
fn class7_one_rule_for_tenant_name_equality() {
    use diesel_tenancy::{NewTenant, RegistryCache, SchemaName, TenantRegistry};
    let db = TestDb::new();
    let router = db.router(1);
    let named = |name: &str, schema: &str| NewTenant {
        name: name.into(),
        mode: None,
        schema_name: Some(SchemaName::new(schema).unwrap()),
        domains: vec![],
    };
    let upper = router.create_tenant(&named("ΟΔΟΣ", "odos_upper")).unwrap();
    // PostgreSQL's lower() tells these apart, Rust's to_lowercase() does not: with one
    // rule, the second is the same name and is refused.
    let err = router
        .create_tenant(&named("οδος", "odos_lower"))
        .unwrap_err();
    assert!(matches!(err, Error::TenantExists { .. }), "{err}");
    let cache = RegistryCache::start(&db.url).unwrap();
    for spelling in ["οδος", "ΟΔΟΣ", "οδοσ", " Οδος "] {
        let found = router
            .pool()
            .with_public(|c| TenantRegistry::find_by_name(c, spelling))
            .unwrap()
            .map(|t| t.id);
        assert_eq!(found, Some(upper.id), "registry, {spelling}");
        assert_eq!(
            cache.find_by_name(spelling).map(|t| t.id),
            Some(upper.id),
            "cache, {spelling}"
        );
    }
    // Renaming to another spelling of the same name is not a conflict with itself.
    router
        .pool()
        .with_public(|c| TenantRegistry::rename(c, "ΟΔΟΣ", "Οδος"))
        .unwrap();
}

#[test]
fn class7_a_registry_with_names_that_collide_under_the_rule_is_refused_by_name() {
    use diesel_tenancy::{NewTenant, SchemaName};
    let db = TestDb::new();
    let router = db.router(1);
    // Turn the registry back into its shape before the name-key migrations, which let
    // `ΟΔΟΣ` and `οδος` both in (its unique index was on lower(name)).
    router
        .pool()
        .with_public(|c| {
            let undone = diesel::sql_query(
                "DELETE FROM public.__diesel_schema_migrations \
                 WHERE version IN ('00000000000003', '00000000000004')",
            )
            .execute(c)?;
            assert_eq!(undone, 2);
            c.batch_execute(
                "DROP INDEX public.tenants_name_key_key; \
                 ALTER TABLE public.tenants DROP COLUMN name_key; \
                 CREATE UNIQUE INDEX tenants_name_lower_key ON public.tenants (lower(name)); \
                 INSERT INTO public.tenants (name, schema_name) \
                   VALUES ('ΟΔΟΣ', 'odos_upper'), ('οδος', 'odos_lower'), ('Plain', 'plain');",
            )?;
            Ok::<_, Error>(())
        })
        .unwrap();
    let err = router.migrate_shared().unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("ΟΔΟΣ") && message.contains("οδος") && message.contains("rename"),
        "{message}"
    );
    // Nothing was applied: the column is still missing.
    let missing: i64 = router
        .pool()
        .with_public(|c| {
            Ok::<_, Error>(
                diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "SELECT count(*) FROM information_schema.columns \
                     WHERE table_name = 'tenants' AND column_name = 'name_key'",
                )
                .get_result(c)?,
            )
        })
        .unwrap();
    assert_eq!(missing, 0);
    // Once one is renamed, the migration fills every key and makes it unique.
    router
        .pool()
        .with_public(|c| {
            Ok::<_, Error>(c.batch_execute(
                "UPDATE public.tenants SET name = 'odos two' WHERE schema_name = 'odos_lower'",
            )?)
        })
        .unwrap();
    assert_eq!(router.migrate_shared().unwrap().len(), 2);
    let dup = router
        .create_tenant(&NewTenant {
            name: "PLAIN".into(),
            mode: None,
            schema_name: Some(SchemaName::new("plain2").unwrap()),
            domains: vec![],
        })
        .unwrap_err();
    assert!(matches!(dup, Error::TenantExists { .. }), "{dup}");
}

/// A custom SQL type defined in every tenant schema (`mood`), and one defined once in
/// `public` and declared with its schema (`shared_mood`).
mod types {
    use diesel::expression::AsExpression;
    use diesel::pg::Pg;
    use diesel::query_builder::QueryId;
    use diesel::serialize::{IsNull, Output, ToSql};
    use diesel::sql_types::SqlType;
    use std::io::Write;

    #[derive(SqlType, QueryId)]
    #[diesel(postgres_type(name = "mood"))]
    pub struct Mood;

    #[derive(SqlType, QueryId)]
    #[diesel(postgres_type(name = "shared_mood", schema = "public"))]
    pub struct SharedMood;

    #[derive(Debug, AsExpression)]
    #[diesel(sql_type = Mood)]
    #[diesel(sql_type = SharedMood)]
    pub struct Happy;

    impl ToSql<Mood, Pg> for Happy {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
            out.write_all(b"happy")?;
            Ok(IsNull::No)
        }
    }

    impl ToSql<SharedMood, Pg> for Happy {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
            out.write_all(b"happy")?;
            Ok(IsNull::No)
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use super::{Mood, SharedMood};
        moods (id) {
            id -> Int4,
            m -> Mood,
            s -> SharedMood,
        }
    }
}

#[test]
fn diesels_type_cache_filled_by_search_path_is_never_used_in_another_scope() {
    use types::{moods, Happy};
    let world = World::new();
    world
        .db
        .pool(1)
        .with_public(|c| {
            Ok::<_, Error>(
                c.batch_execute("CREATE TYPE public.shared_mood AS ENUM ('happy', 'sad')")?,
            )
        })
        .unwrap();
    for scope in [world.a(), world.b()] {
        world
            .db
            .pool(1)
            .with_scope(scope.clone(), |c| {
                Ok::<_, Error>(c.batch_execute(
                    "CREATE TYPE mood AS ENUM ('happy', 'sad'); \
                     CREATE TABLE moods (id serial PRIMARY KEY, m mood, s public.shared_mood)",
                )?)
            })
            .unwrap();
    }
    let pid = |c: &mut PgConnection| -> QueryResult<i32> {
        diesel::dsl::sql::<diesel::sql_types::Integer>("SELECT pg_backend_pid()").get_result(c)
    };
    for mode in BOTH {
        let pool = world.pool(mode, 1);
        // Binding `mood` makes Diesel look it up by search_path: `a`'s OID is cached on the
        // connection, and must never be sent in `b`'s scope.
        let mut backends = Vec::new();
        for scope in [world.a(), world.b(), world.a(), world.b()] {
            let backend = pool
                .with_scope(scope.clone(), |c| {
                    diesel::insert_into(moods::table)
                        .values(moods::m.eq(Happy))
                        .execute(c)?;
                    Ok::<_, Error>(pid(c)?)
                })
                .unwrap_or_else(|e| panic!("{mode:?} {scope:?}: {e}"));
            backends.push(backend);
        }
        backends.dedup();
        assert_eq!(
            backends.len(),
            4,
            "{mode:?}: each switch needs a fresh connection"
        );
        // A type declared with its schema resolves the same everywhere: no discard.
        let pool = world.pool(mode, 1);
        let mut backends = Vec::new();
        for scope in [world.a(), world.b(), world.a(), world.b()] {
            let backend = pool
                .with_scope(scope.clone(), |c| {
                    diesel::insert_into(moods::table)
                        .values(moods::s.eq(Happy))
                        .execute(c)?;
                    Ok::<_, Error>(pid(c)?)
                })
                .unwrap();
            backends.push(backend);
        }
        backends.dedup();
        assert_eq!(backends.len(), 1, "{mode:?}: one connection throughout");
    }
}

/// With tenant roles on: the scopes of [`World`], their roles made by the backfill, and a
/// pool of one connection per mode that runs each tenant scope as its role.
struct RoleWorld {
    world: World,
    /// The tenant roles of `a` and `b`.
    roles: [String; 2],
}

impl RoleWorld {
    fn new() -> RoleWorld {
        let world = World::new();
        let router =
            diesel_tenancy::SyncRouter::new(world.role_pool(PoolMode::Session, 1), common::TENANT);
        let report = router.sync_tenant_roles().expect("backfill");
        assert_eq!(report.failures().count(), 0);
        let role_of = |scope: &Scope| {
            let schema = scope.schema().expect("public has no tenant role");
            router.tenant_role_name(schema).unwrap()
        };
        let roles = [role_of(world.a()), role_of(world.b())];
        RoleWorld { world, roles }
    }

    fn user_of(&self, scope: &Scope) -> &str {
        match scope {
            Scope::Public => "postgres",
            s if s == self.world.a() => &self.roles[0],
            _ => &self.roles[1],
        }
    }

    /// An innocent checkout of `scope` that runs as its own role, sees its own rows only,
    /// and is refused the other tenant's.
    fn innocent(&self, pool: &TenantPool, scope: &Scope) {
        let w = &self.world;
        attack::innocent_as(pool, scope, &w.scopes, &w.db.url, self.user_of(scope));
        let other = if scope == w.a() { w.b() } else { w.a() };
        if *scope != Scope::Public {
            let denied = pool
                .with_scope(scope.clone(), |c| {
                    Ok::<_, Error>(c.transaction(|c| {
                        c.batch_execute(&format!(
                            "SELECT * FROM \"{}\".sentinel",
                            sentinel::name_of(other)
                        ))
                    }))
                })
                .expect("checkout");
            let message = denied
                .expect_err("another tenant's table was readable")
                .to_string();
            assert!(message.contains("permission denied"), "{message}");
        }
    }
}

impl World {
    fn role_pool(&self, mode: PoolMode, size: u32) -> TenantPool {
        TenantPool::builder()
            .mode(mode)
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(std::time::Duration::from_secs(10))
            .tenant_roles(diesel_tenancy::TenantRoles::new())
            .build(&self.db.url)
            .expect("pool")
    }
}

/// Runs `sql` in one checkout of `scope`, whatever its outcome (the server refuses some).
fn hostile_sql(pool: &TenantPool, scope: &Scope, sql: &str) {
    let _ = pool.with_scope(scope.clone(), |c| Ok::<_, Error>(c.batch_execute(sql)?));
}

#[test]
fn class5_with_tenant_roles_the_next_checkout_runs_as_its_own_tenants_role() {
    let w = RoleWorld::new();
    let b_role = &w.roles[1];
    let tricks = [
        "RESET ROLE".to_owned(),
        // The session user (the login) may set any tenant role, from any role.
        format!("SET ROLE \"{b_role}\""),
        format!("RESET ROLE; SET ROLE \"{b_role}\""),
        format!("RESET ROLE; SELECT set_config('role', '{b_role}', false)"),
        "RESET ROLE; SET ROLE pg_read_all_data".to_owned(),
        "SET SESSION AUTHORIZATION pg_read_all_data".to_owned(),
        "SET ROLE NONE; RESET SESSION AUTHORIZATION".to_owned(),
        // Inside a block that commits: a session-level role outlives the transaction.
        format!("BEGIN; RESET ROLE; SET ROLE \"{b_role}\"; COMMIT"),
    ];
    for mode in BOTH {
        let pool = w.world.role_pool(mode, 1);
        for trick in &tricks {
            for target in [w.world.a(), w.world.b(), &Scope::Public, w.world.a()] {
                hostile_sql(&pool, w.world.a(), trick);
                w.innocent(&pool, target);
            }
        }
        assert!(pool.state().connections <= 1, "{mode:?}");
    }
}

/// Where an escalation of a tenant role is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaughtBy {
    /// Every checkout's role proof (session state only).
    Checkout,
    /// The audit run wherever roles are made or repaired (`sync_tenant_roles`).
    Backfill,
}

#[test]
fn tenant_roles_a_role_given_more_than_its_grants_is_refused() {
    let w = RoleWorld::new();
    let (a_role, b_role) = (&w.roles[0], &w.roles[1]);
    let group = a_role.rsplit_once('_').map(|(g, _)| g.to_owned()).unwrap();
    // What SQL that changed the role in a checkout (it is then the login role) can
    // leave behind, each undone by the test afterwards.
    let escalations = [
        (
            format!("RESET ROLE; ALTER ROLE \"{a_role}\" SUPERUSER"),
            format!("ALTER ROLE \"{a_role}\" NOSUPERUSER"),
            "superuser",
            CaughtBy::Checkout,
        ),
        (
            format!("RESET ROLE; GRANT \"{b_role}\" TO \"{a_role}\""),
            format!("REVOKE \"{b_role}\" FROM \"{a_role}\""),
            "is a member of",
            CaughtBy::Backfill,
        ),
        (
            format!("RESET ROLE; GRANT pg_read_all_data TO \"{group}\""),
            format!("REVOKE pg_read_all_data FROM \"{group}\""),
            "is a member of pg_read_all_data",
            CaughtBy::Backfill,
        ),
        (
            format!("RESET ROLE; ALTER ROLE \"{a_role}\" BYPASSRLS"),
            format!("ALTER ROLE \"{a_role}\" NOBYPASSRLS"),
            "BYPASSRLS",
            CaughtBy::Backfill,
        ),
    ];
    let mut admin = PgConnection::establish(&w.world.db.url).unwrap();
    for mode in BOTH {
        let pool = w.world.role_pool(mode, 2);
        let router = diesel_tenancy::SyncRouter::new(pool.clone(), common::TENANT);
        for (escalate, undo, reason, caught_by) in &escalations {
            hostile_sql(&pool, w.world.b(), escalate);
            let checkout = pool.tenant(&schema_of(w.world.a())).map(drop);
            let why = match (caught_by, checkout) {
                (CaughtBy::Checkout, Err(Error::TenantRole { role, reason, .. })) => {
                    assert_eq!(&role, a_role);
                    reason
                }
                // A tenant's role fails that tenant; the group fails the whole backfill.
                (CaughtBy::Backfill, Ok(())) => match router.sync_tenant_roles() {
                    Err(e) => e.to_string(),
                    Ok(report) => {
                        let failure = report.failures().find(|t| t.tenant == "t00");
                        let failure = failure.unwrap_or_else(|| panic!("{mode:?} {escalate}"));
                        failure.error.as_ref().unwrap().to_string()
                    }
                },
                (_, other) => panic!("{mode:?} {escalate}: {:?}", other.err()),
            };
            assert!(why.contains(reason), "{mode:?} {escalate}: {why}");
            admin.batch_execute(undo).unwrap();
            assert_eq!(router.sync_tenant_roles().unwrap().failures().count(), 0);
            w.innocent(&pool, w.world.a());
            w.innocent(&pool, w.world.b());
        }
    }
}

fn schema_of(scope: &Scope) -> diesel_tenancy::SchemaName {
    scope.schema().cloned().expect("public is no tenant")
}

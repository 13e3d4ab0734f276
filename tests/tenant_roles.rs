//! Per-tenant database roles (issue 13, part 1): PostgreSQL itself refuses SQL in one
//! tenant's scope that names another tenant's schema; roles are made, granted and dropped
//! with their tenants; the backfill makes them for tenants that existed before; the
//! login role needs CREATEROLE. Every role made here is dropped with the test database.

mod common;

use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::{
    Error, NewTenant, PoolMode, Scope, SyncRouter, TenantPool, TenantRegistry, TenantRoles,
};

const BOTH: [PoolMode; 2] = [PoolMode::Session, PoolMode::TransactionLocal];

fn pool(db: &TestDb, mode: PoolMode, roles: Option<TenantRoles>) -> TenantPool {
    let builder = TenantPool::builder()
        .mode(mode)
        .max_size(2)
        .min_idle(Some(0))
        .connection_timeout(std::time::Duration::from_secs(10));
    match roles {
        Some(roles) => builder.tenant_roles(roles),
        None => builder,
    }
    .build(&db.url)
    .expect("pool")
}

fn router(pool: TenantPool) -> SyncRouter {
    let router = SyncRouter::new(pool, common::TENANT);
    router.migrate_shared().expect("shared set");
    router
}

fn text(c: &mut PgConnection, sql: &str) -> QueryResult<String> {
    diesel::dsl::sql::<diesel::sql_types::Text>(sql).get_result(c)
}

fn count(c: &mut PgConnection, sql: &str) -> QueryResult<i64> {
    diesel::dsl::sql::<diesel::sql_types::BigInt>(sql).get_result(c)
}

/// Runs `sql` in a savepoint (so a `TransactionLocal` checkout survives its failure) and
/// returns its error text.
fn refused(c: &mut PgConnection, sql: &str) -> String {
    match c.transaction(|c| c.batch_execute(sql)) {
        Ok(()) => panic!("`{sql}` was allowed"),
        Err(e) => e.to_string(),
    }
}

fn is_denied(message: &str) -> bool {
    message.contains("permission denied")
}

/// The roles of the cluster named like this database's tenant roles.
fn roles_of(db: &TestDb) -> Vec<String> {
    TestDb::roles_like(&db.role_group())
}

#[test]
fn a_tenant_scope_cannot_read_or_write_another_tenants_tables_in_either_mode() {
    let db = TestDb::new();
    let router = router(pool(&db, PoolMode::Session, Some(TenantRoles::new())));
    let a = router
        .create_tenant(&NewTenant::named("a"))
        .unwrap()
        .schema_name;
    let b = router
        .create_tenant(&NewTenant::named("b"))
        .unwrap()
        .schema_name;
    let group = db.role_group();
    for mode in BOTH {
        let pool = pool(&db, mode, Some(TenantRoles::new()));
        // Each tenant writes and reads its own hotels as its own role.
        for (own, name) in [(&a, "Ritz"), (&b, "Savoy")] {
            pool.with_tenant(own, |c| {
                let who = text(c, "SELECT current_user::text")?;
                assert_eq!(who, format!("{group}_{own}"), "{mode:?}");
                assert_eq!(text(c, "SELECT session_user::text")?, "postgres");
                c.batch_execute(&format!(
                    "INSERT INTO hotels (name, location, description) VALUES ('{name}', 'x', 'y')"
                ))?;
                assert!(count(c, "SELECT count(*) FROM hotels")? >= 1);
                Ok::<_, Error>(())
            })
            .unwrap_or_else(|e| panic!("{mode:?} {own}: {e}"));
        }
        // In a's scope, SQL that names b's schema is refused by PostgreSQL, whatever the
        // statement, and so is the registry in public.
        pool.with_tenant(&a, |c| {
            for sql in [
                "SELECT * FROM b.hotels",
                "INSERT INTO b.hotels (name, location, description) VALUES ('x', 'x', 'x')",
                "UPDATE b.hotels SET name = 'owned'",
                "DELETE FROM b.hotels",
                "SELECT * FROM public.tenants",
                "SELECT count(*) FROM a.__diesel_schema_migrations",
                "CREATE TABLE a.mine (id int)",
            ] {
                let message = refused(c, sql);
                assert!(is_denied(&message), "{mode:?}: `{sql}` gave: {message}");
            }
            // Through the path, b's schema is skipped as if absent (no USAGE on it).
            let message = refused(c, "SET LOCAL search_path TO b; SELECT * FROM hotels");
            assert!(message.contains("does not exist"), "{mode:?}: {message}");
            // Its own schema, qualified or not, is fine.
            assert!(count(c, "SELECT count(*) FROM a.hotels")? >= 1);
            Ok::<_, Error>(())
        })
        .unwrap();
        // `public` runs as the login role and reads every tenant (the registry's job).
        pool.with_public(|c| {
            assert_eq!(text(c, "SELECT current_user::text")?, "postgres");
            assert!(count(c, "SELECT count(*) FROM b.hotels")? >= 1);
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    // b's rows are intact: nothing done in a's scope reached them.
    router
        .pool()
        .with_public(|c| {
            assert_eq!(
                text(c, "SELECT string_agg(DISTINCT name, ',') FROM b.hotels")?,
                "Savoy"
            );
            Ok::<_, Error>(())
        })
        .unwrap();
}

/// The tenant set, then a migration that adds a table with a sequence.
struct WithRooms;

const ROOMS: EmbeddedMigrations = embed_migrations!("tests/fixtures/tenant_rooms");

impl MigrationSource<Pg> for WithRooms {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        let mut all = MigrationSource::<Pg>::migrations(&common::TENANT)?;
        all.extend(MigrationSource::<Pg>::migrations(&ROOMS)?);
        Ok(all)
    }
}

#[test]
fn roles_follow_the_tenant_and_what_migrations_add() {
    let db = TestDb::new();
    let roles = Some(TenantRoles::new());
    let router = router(pool(&db, PoolMode::Session, roles.clone()));
    let acme = router
        .create_tenant(&NewTenant::named("Acme"))
        .unwrap()
        .schema_name;
    let role = router.tenant_role_name(&acme).unwrap();
    assert_eq!(role, format!("{}_acme", db.role_group()));
    assert_eq!(roles_of(&db), vec![db.role_group(), role.clone()]);
    let pool = router.pool().clone();

    // A later tenant migration adds `rooms` (with an identity sequence): migrate grants it.
    let v2 = SyncRouter::new(pool.clone(), WithRooms);
    let report = v2.migrate_all(&Default::default()).unwrap();
    assert_eq!(report.applied_count(), 1);
    pool.with_tenant(&acme, |c| {
        c.batch_execute("INSERT INTO rooms (label) VALUES ('101'), ('102')")?;
        assert_eq!(count(c, "SELECT max(id)::int8 FROM rooms")?, 2);
        assert_eq!(
            count(c, "SELECT currval(pg_get_serial_sequence('rooms', 'id'))")?,
            2
        );
        Ok::<_, Error>(())
    })
    .unwrap();
    // A table the owner adds by hand is covered by the default privileges.
    pool.with_public(|c| Ok::<_, Error>(c.batch_execute("CREATE TABLE acme.notes (body text)")?))
        .unwrap();
    pool.with_tenant(&acme, |c| {
        Ok::<_, Error>(c.batch_execute("INSERT INTO notes VALUES ('hi'); DELETE FROM notes")?)
    })
    .unwrap();

    // A rename keeps the schema, and so the role.
    pool.with_public(|c| TenantRegistry::rename(c, "Acme", "Acme Hotels"))
        .unwrap();
    pool.with_tenant(&acme, |c| {
        assert_eq!(text(c, "SELECT current_user::text")?, role);
        Ok::<_, Error>(())
    })
    .unwrap();

    // Deleting the tenant drops its role, also when the schema and its data stay.
    router.delete_tenant("Acme Hotels", false).unwrap();
    assert_eq!(roles_of(&db), vec![db.role_group()]);
    pool.with_public(|c| {
        assert_eq!(count(c, "SELECT count(*) FROM acme.rooms")?, 2);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_failed_creation_leaves_no_role_and_a_spare_schema_gets_one() {
    let db = TestDb::new();
    let router = router(pool(&db, PoolMode::Session, Some(TenantRoles::new())));
    router.create_tenant(&NewTenant::named("taken")).unwrap();
    // Fails after the role step would have run (the domain is invalid only in SQL terms:
    // a duplicate), so the whole transaction, role included, is rolled back.
    let first = NewTenant {
        domains: vec![diesel_tenancy::DomainName::new("dup.example.com").unwrap()],
        ..NewTenant::named("first")
    };
    router.create_tenant(&first).unwrap();
    let clash = NewTenant {
        domains: vec![diesel_tenancy::DomainName::new("dup.example.com").unwrap()],
        ..NewTenant::named("clash")
    };
    let err = router.create_tenant(&clash).unwrap_err();
    assert!(matches!(err, Error::DomainExists { .. }), "{err}");
    let group = db.role_group();
    assert_eq!(
        roles_of(&db),
        vec![
            group.clone(),
            format!("{group}_first"),
            format!("{group}_taken")
        ]
    );
    // From a spare schema: renamed into place, then granted.
    assert_eq!(router.prepare_spares(1).unwrap(), 1);
    let spare = router
        .create_tenant(&NewTenant::named("spare"))
        .unwrap()
        .schema_name;
    assert_eq!(router.spare_count().unwrap(), 0);
    router
        .pool()
        .with_tenant(&spare, |c| {
            assert_eq!(count(c, "SELECT count(*) FROM hotels")?, 0);
            assert_eq!(
                text(c, "SELECT current_user::text")?,
                format!("{group}_spare")
            );
            Ok::<_, Error>(())
        })
        .unwrap();
}

#[test]
fn the_backfill_makes_roles_for_tenants_that_existed_before() {
    let db = TestDb::new();
    let plain = router(pool(&db, PoolMode::Session, None));
    let old = plain
        .create_tenant(&NewTenant::named("old"))
        .unwrap()
        .schema_name;
    plain.create_tenant(&NewTenant::named("older")).unwrap();
    assert!(roles_of(&db).is_empty());

    for mode in BOTH {
        let pool = pool(&db, mode, Some(TenantRoles::new()));
        // Before the backfill: a typed error naming the role, never a checkout as the
        // login role.
        let err = pool.tenant(&old).unwrap_err();
        match &err {
            Error::TenantRole { role, reason, .. } => {
                assert_eq!(role, &format!("{}_old", db.role_group()));
                assert!(reason.contains("does not exist"), "{reason}");
            }
            other => panic!("{mode:?}: {other}"),
        }
        // Other scopes are not affected.
        pool.with_public(|c| Ok::<_, Error>(c.batch_execute("SELECT 1")?))
            .unwrap();
    }

    let router = router(pool(&db, PoolMode::Session, Some(TenantRoles::new())));
    let report = router.sync_tenant_roles().unwrap();
    let made: Vec<(&str, bool, bool)> = report
        .tenants
        .iter()
        .map(|t| (t.tenant.as_str(), t.created, t.error.is_none()))
        .collect();
    assert_eq!(made, [("old", true, true), ("older", true, true)]);
    // Twice is a no-op apart from granting again.
    let again = router.sync_tenant_roles().unwrap();
    assert!(again
        .tenants
        .iter()
        .all(|t| !t.created && t.error.is_none()));
    assert_eq!(again.failures().count(), 0);
    router
        .pool()
        .with_tenant(&old, |c| {
            assert!(is_denied(&refused(c, "SELECT * FROM older.hotels")));
            c.batch_execute(
                "INSERT INTO hotels (name, location, description) VALUES ('a', 'b', 'c')",
            )?;
            Ok::<_, Error>(())
        })
        .unwrap();

    // A pool without roles cannot backfill.
    let err = plain.sync_tenant_roles().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn shared_reads_are_granted_exactly() {
    let db = TestDb::new();
    let setup = router(pool(&db, PoolMode::Session, None));
    setup
        .pool()
        .with_public(|c| {
            Ok::<_, Error>(c.batch_execute(
                "CREATE TABLE public.plans (name text); INSERT INTO public.plans VALUES ('gold'); \
                 CREATE TABLE public.secrets (name text)",
            )?)
        })
        .unwrap();
    let t = setup
        .create_tenant(&NewTenant::named("t"))
        .unwrap()
        .schema_name;

    let reads = |tables: &[&str]| {
        tables
            .iter()
            .fold(TenantRoles::new(), |roles, table| roles.read_shared(*table))
    };
    let wide = router(pool(
        &db,
        PoolMode::TransactionLocal,
        Some(reads(&["public.plans", "secrets"])),
    ));
    wide.sync_tenant_roles().unwrap();
    wide.pool()
        .with_tenant(&t, |c| {
            assert_eq!(text(c, "SELECT name FROM public.plans")?, "gold");
            assert_eq!(count(c, "SELECT count(*) FROM public.secrets")?, 0);
            assert!(is_denied(&refused(
                c,
                "INSERT INTO public.plans VALUES ('x')"
            )));
            Ok::<_, Error>(())
        })
        .unwrap();
    // Declared no longer: migrate_shared revokes it.
    let narrower = router(pool(
        &db,
        PoolMode::TransactionLocal,
        Some(reads(&["plans"])),
    ));
    narrower
        .pool()
        .with_tenant(&t, |c| {
            assert_eq!(text(c, "SELECT name FROM public.plans")?, "gold");
            assert!(is_denied(&refused(c, "SELECT * FROM public.secrets")));
            Ok::<_, Error>(())
        })
        .unwrap();
    // A table that does not exist is a configuration error, not a silent skip.
    let missing = SyncRouter::new(
        pool(&db, PoolMode::Session, Some(reads(&["public.nope"]))),
        common::TENANT,
    );
    let err = missing.migrate_shared().unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("nope")),
        "{err}"
    );
}

#[test]
fn a_login_role_without_createrole_gets_a_typed_error_before_any_work() {
    let db = TestDb::new();
    let owner = router(pool(&db, PoolMode::Session, None));
    owner.create_tenant(&NewTenant::named("existing")).unwrap();
    let (login, url) = db.login_role("nocreaterole", "NOCREATEROLE");
    let limited = TenantPool::builder()
        .max_size(1)
        .min_idle(Some(0))
        .tenant_roles(TenantRoles::new())
        .build(&url)
        .unwrap();
    let router = SyncRouter::new(limited, common::TENANT);
    for err in [
        router.create_tenant(&NewTenant::named("new")).unwrap_err(),
        router.sync_tenant_roles().unwrap_err(),
    ] {
        match &err {
            Error::TenantRolesNotPermitted { login: who } => assert_eq!(who, &login),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("CREATEROLE"), "{err}");
    }
    // Nothing was made.
    owner
        .pool()
        .with_public(|c| {
            assert_eq!(count(c, "SELECT count(*) FROM public.tenants")?, 1);
            Ok::<_, Error>(())
        })
        .unwrap();
    assert!(roles_of(&db).is_empty());
}

#[test]
fn scopes_interleave_on_one_connection_without_carrying_a_role_over() {
    let db = TestDb::new();
    let router = router(pool(&db, PoolMode::Session, Some(TenantRoles::new())));
    let a = router
        .create_tenant(&NewTenant::named("a"))
        .unwrap()
        .schema_name;
    let b = router
        .create_tenant(&NewTenant::named("b"))
        .unwrap()
        .schema_name;
    let group = db.role_group();
    // A route's pinned scope (what the Rocket guard checks out) runs as the tenant's role
    // too, not only a plain tenant scope.
    let b_oid = router
        .pool()
        .with_public(|c| {
            Ok::<_, Error>(count(
                c,
                "SELECT oid::int8 FROM pg_namespace WHERE nspname = 'b'",
            )?)
        })
        .unwrap();
    for mode in BOTH {
        let pool = TenantPool::builder()
            .mode(mode)
            .max_size(1)
            .tenant_roles(TenantRoles::new())
            .build(&db.url)
            .unwrap();
        let scopes = [
            Scope::Tenant(a.clone()),
            Scope::Tenant(a.clone()),
            Scope::Public,
            Scope::Tenant(b.clone()),
            Scope::Public,
            Scope::Pinned {
                schema: b.clone(),
                oid: u32::try_from(b_oid).unwrap(),
            },
            Scope::Tenant(a.clone()),
        ];
        let mut pids = Vec::new();
        for scope in &scopes {
            let (who, pid) = pool
                .with_scope(scope.clone(), |c| {
                    Ok::<_, Error>((
                        text(c, "SELECT current_user::text")?,
                        count(c, "SELECT pg_backend_pid()::int8")?,
                    ))
                })
                .unwrap();
            let expected = match scope {
                Scope::Public => "postgres".to_owned(),
                Scope::Tenant(s) | Scope::Pinned { schema: s, .. } => format!("{group}_{s}"),
                other => unreachable!("no row scope here: {other:?}"),
            };
            assert_eq!(who, expected, "{mode:?} {scope:?}");
            pids.push(pid);
        }
        pids.dedup();
        assert_eq!(pids.len(), 1, "{mode:?}: one connection served every scope");
    }
}

#[test]
fn a_login_role_with_a_tenant_roles_name_is_never_used_nor_dropped() {
    let db = TestDb::new();
    let role = format!("{}_clash", db.role_group());
    db.login_roles.lock().unwrap().push(role.clone());
    let mut admin = PgConnection::establish(&db.url).unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN"))
        .unwrap();
    let router = router(pool(&db, PoolMode::Session, Some(TenantRoles::new())));
    match router
        .create_tenant(&NewTenant::named("clash"))
        .unwrap_err()
    {
        Error::TenantRole {
            role: r, reason, ..
        } => {
            assert_eq!(r, role);
            assert!(reason.contains("can log in"), "{reason}");
        }
        other => panic!("{other}"),
    }
    // Nothing of the tenant was made.
    router
        .pool()
        .with_public(|c| {
            assert_eq!(count(c, "SELECT count(*) FROM public.tenants")?, 0);
            Ok::<_, Error>(())
        })
        .unwrap();
    // Made without roles, the tenant is deleted with roles on; the account stays.
    let plain = SyncRouter::new(pool(&db, PoolMode::Session, None), common::TENANT);
    plain.create_tenant(&NewTenant::named("clash")).unwrap();
    router.delete_tenant("clash", true).unwrap();
    assert_eq!(TestDb::roles_like(&role), vec![role.clone()]);
}

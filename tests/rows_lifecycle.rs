//! Row tenants, the registry and migration side: the row schema provisioned by
//! `migrate_shared` (schema, sentinel, row role, grants, tables protected by forced
//! row-level security), creating, renaming and deleting row tenants (hooks in their
//! scope, one transaction each), a mixed application, status and `migrate --check`
//! catching an unprotected row table, login roles refused, the batch creation of
//! 100,000 row tenants, and the SQL helper.
//!
//! Which rows a row tenant sees is checked here with raw SQL on a plain connection
//! (`SET ROLE <row role>; SET diesel_tenancy.tenant = '<id>'`), the statements a
//! `Scope::Rows` checkout sends; the checkout itself is tested with the pool.

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::{TestDb, TENANT};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::cli::{self, Command, Outcome};
use diesel_tenancy::{
    DomainName, Error, MigrateOptions, NewTenant, Refusal, SchemaName, SyncRouter, TenantHooks,
    TenantMode, TenantPool, TenantRegistry,
};

const TENANT_V2: EmbeddedMigrations = embed_migrations!("tests/fixtures/tenant_v2");
const UNPROTECTED: EmbeddedMigrations = embed_migrations!("tests/fixtures/rows_unprotected");

/// A test database owned by a login role that row-level security binds (no superuser,
/// no BYPASSRLS, CREATEROLE), and a URL logging in as it.
struct RowDb {
    db: TestDb,
    login: String,
    url: String,
}

impl RowDb {
    fn new() -> RowDb {
        RowDb::with_login("app", "CREATEROLE")
    }

    fn with_login(suffix: &str, attributes: &str) -> RowDb {
        let db = TestDb::new();
        let (login, url) = db.owner_role(suffix, attributes);
        RowDb { db, login, url }
    }

    fn pool(&self) -> TenantPool {
        TenantPool::builder()
            .max_size(4)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            .row_tenants(true)
            .build(&self.url)
            .expect("pool")
    }

    /// A router over the hotel set, the shared set applied and the row schema provisioned.
    fn router(&self) -> SyncRouter {
        let router = SyncRouter::new(self.pool(), TENANT);
        router.migrate_shared().expect("shared migrations");
        router
    }

    /// A plain connection as the login role (the owner of the row tables).
    fn owner(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect as the login role")
    }

    /// A plain connection in row tenant `id`'s scope, as a `Scope::Rows` checkout sets it.
    fn as_tenant(&self, router: &SyncRouter, id: i64) -> PgConnection {
        let mut conn = self.owner();
        let role = row_role(router);
        conn.batch_execute(&format!(
            "SET search_path TO tenant_rows, pg_temp; SET ROLE \"{role}\"; \
             SET diesel_tenancy.tenant = '{id}'"
        ))
        .expect("enter the row tenant's scope");
        conn
    }
}

fn row_role(router: &SyncRouter) -> String {
    router
        .tenant_role_name(router.pool().row_schema())
        .expect("row role name")
}

fn int(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::dsl::sql::<BigInt>(sql)
        .get_result(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn boolean(conn: &mut PgConnection, sql: &str) -> bool {
    diesel::dsl::sql::<Bool>(sql)
        .get_result(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn text(conn: &mut PgConnection, sql: &str) -> String {
    diesel::dsl::sql::<Text>(sql)
        .get_result(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn add_hotel(conn: &mut PgConnection, name: &str) {
    conn.batch_execute(&format!(
        "INSERT INTO hotels (name, location, description) VALUES ('{name}', 'here', 'nice')"
    ))
    .expect("insert hotel");
}

fn rows(name: &str) -> NewTenant {
    NewTenant::named(name).mode(TenantMode::Rows)
}

#[derive(Parser)]
struct App {
    #[command(subcommand)]
    command: Command,
}

/// Runs one CLI command line: the outcome, stdout and stderr.
fn sh(router: &SyncRouter, line: &str) -> (Outcome, String, String) {
    let app = App::try_parse_from(std::iter::once("app").chain(line.split(' ')))
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = cli::run(&app.command, router, &mut out, &mut err);
    (
        outcome,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn migrate_shared_provisions_the_row_schema() {
    let db = RowDb::new();
    let router = db.router();
    assert!(
        router.migrate_shared().unwrap().is_empty(),
        "a second run applies nothing and provisions nothing new"
    );
    let role = row_role(&router);
    let mut c = db.owner();
    let owner = text(
        &mut c,
        "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = 'tenant_rows'",
    );
    assert_eq!(owner, db.login);
    // The role: nothing but its grants.
    let attributes = text(
        &mut c,
        &format!(
            "SELECT concat_ws(',', rolcanlogin, rolsuper, rolbypassrls, rolcreaterole)::text \
             FROM pg_roles WHERE rolname = '{role}'"
        ),
    );
    assert_eq!(attributes, "f,f,f,f");
    assert!(boolean(
        &mut c,
        &format!("SELECT pg_has_role(current_user, '{role}', 'MEMBER')")
    ));
    for (check, expected) in [
        ("has_schema_privilege('{r}', 'tenant_rows', 'USAGE')", true),
        (
            "has_table_privilege('{r}', 'tenant_rows.hotels', 'SELECT, INSERT, UPDATE, DELETE')",
            true,
        ),
        (
            "has_sequence_privilege('{r}', 'tenant_rows.hotels_id_seq', 'USAGE')",
            true,
        ),
        (
            "has_table_privilege('{r}', 'tenant_rows.__diesel_schema_migrations', 'SELECT')",
            false,
        ),
        (
            "has_schema_privilege('{r}', 'tenant_rows', 'CREATE')",
            false,
        ),
    ] {
        let sql = format!("SELECT {}", check.replace("{r}", &role));
        assert_eq!(boolean(&mut c, &sql), expected, "{sql}");
    }
    // The sentinel and hotels: tenant_id, keys leading with it, forced RLS, both policies.
    for table in ["__diesel_tenancy_rows", "hotels"] {
        let state = text(
            &mut c,
            &format!(
                "SELECT concat_ws(',', c.relrowsecurity, c.relforcerowsecurity, \
                   (SELECT string_agg(polname, ' ' ORDER BY polname) FROM pg_policy \
                    WHERE polrelid = c.oid))::text \
                 FROM pg_class c WHERE c.oid = 'tenant_rows.{table}'::regclass"
            ),
        );
        assert_eq!(
            state, "t,t,diesel_tenancy_owner diesel_tenancy_tenant",
            "{table}"
        );
    }
    let key = text(
        &mut c,
        "SELECT pg_get_constraintdef(oid)::text FROM pg_constraint \
         WHERE conrelid = 'tenant_rows.hotels'::regclass AND contype = 'p'",
    );
    assert_eq!(key, "PRIMARY KEY (tenant_id, id)");
    let status = router.status().unwrap();
    let rows = status.row_schema.as_ref().expect("row schema status");
    assert!(rows.pending.is_empty() && !rows.schema_missing, "{rows:?}");
    assert!(status.unprotected_row_tables.is_empty(), "{status:?}");
    assert!(status.orphan_schemas.is_empty(), "{status:?}");
    assert!(!status.has_pending(), "{status:?}");
}

#[test]
fn row_tenants_see_and_write_their_own_rows_only() {
    let db = RowDb::new();
    let router = db.router();
    let a = router.create_tenant(&rows("a")).unwrap();
    let b = router.create_tenant(&rows("b")).unwrap();
    let mut as_a = db.as_tenant(&router, a.id);
    add_hotel(&mut as_a, "Ritz");
    add_hotel(&mut as_a, "Savoy");
    let mut as_b = db.as_tenant(&router, b.id);
    add_hotel(&mut as_b, "Plaza");
    assert_eq!(int(&mut as_a, "SELECT count(*) FROM hotels"), 2);
    assert_eq!(int(&mut as_b, "SELECT count(*) FROM hotels"), 1);
    assert_eq!(
        int(&mut as_a, "SELECT min(tenant_id) FROM hotels"),
        a.id,
        "tenant_id comes from the setting"
    );
    // Writing a row for another tenant is refused (WITH CHECK), and so is updating a
    // row into another tenant.
    let err = as_a
        .batch_execute(&format!(
            "INSERT INTO hotels (tenant_id, name, location, description) \
             VALUES ({}, 'x', 'y', 'z')",
            b.id
        ))
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    let err = as_a
        .batch_execute(&format!("UPDATE hotels SET tenant_id = {}", b.id))
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    // No setting: no rows, and nothing can be written.
    as_a.batch_execute("RESET diesel_tenancy.tenant").unwrap();
    assert_eq!(int(&mut as_a, "SELECT count(*) FROM hotels"), 0);
    // The owner (the login role, as Scope::AllRows runs) sees every row.
    let mut owner = db.owner();
    assert_eq!(
        int(&mut owner, "SELECT count(*) FROM tenant_rows.hotels"),
        3
    );
}

#[test]
fn create_rename_and_delete_a_row_tenant() {
    let db = RowDb::new();
    let router = db.router();
    let acme = router
        .create_tenant(&NewTenant {
            domains: vec![DomainName::new("acme.test").unwrap()],
            ..rows("Acme")
        })
        .unwrap();
    assert_eq!(acme.mode, TenantMode::Rows);
    assert_eq!(acme.schema_name.as_str(), "acme", "derived and reserved");
    let mut owner = db.owner();
    assert_eq!(
        int(
            &mut owner,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'acme'"
        ),
        0,
        "a row tenant's schema is never created"
    );
    // The name's schema stays reserved: a schema tenant cannot take it.
    let err = router
        .create_tenant(&NewTenant {
            schema_name: Some(SchemaName::new("acme").unwrap()),
            ..NewTenant::named("Other")
        })
        .unwrap_err();
    assert!(matches!(err, Error::SchemaExists { .. }), "{err}");
    let listed = router
        .pool()
        .with_public(TenantRegistry::list_with_domains)
        .unwrap();
    let json = serde_json::to_value(&listed).unwrap();
    assert_eq!(json[0]["mode"], "rows");
    assert_eq!(json[0]["domains"][0], "acme.test");

    let globex = router.create_tenant(&rows("Globex")).unwrap();
    add_hotel(&mut db.as_tenant(&router, acme.id), "Ritz");
    add_hotel(&mut db.as_tenant(&router, globex.id), "Plaza");

    let renamed = router.rename_tenant("acme", "Acme Corp").unwrap();
    assert_eq!(
        (renamed.id, renamed.schema_name.as_str()),
        (acme.id, "acme")
    );
    assert_eq!(
        int(
            &mut db.as_tenant(&router, acme.id),
            "SELECT count(*) FROM hotels"
        ),
        1,
        "renaming leaves the rows with the tenant"
    );

    // Deleted without its data: the rows stay (no tenant sees them), the registry row goes.
    router.delete_tenant("Acme Corp", false).unwrap();
    assert_eq!(
        int(&mut owner, "SELECT count(*) FROM tenant_rows.hotels"),
        2
    );
    assert_eq!(int(&mut owner, "SELECT count(*) FROM public.domains"), 0);
    // Deleted with its data: its rows go, the other tenant's stay.
    router.delete_tenant("Globex", true).unwrap();
    assert_eq!(
        int(
            &mut owner,
            &format!(
                "SELECT count(*) FROM tenant_rows.hotels WHERE tenant_id = {}",
                globex.id
            )
        ),
        0
    );
    assert_eq!(
        int(&mut owner, "SELECT count(*) FROM tenant_rows.hotels"),
        1
    );
    assert_eq!(int(&mut owner, "SELECT count(*) FROM public.tenants"), 0);
}

#[test]
fn hooks_run_in_the_row_tenants_scope_and_a_failure_undoes_everything() {
    let db = RowDb::new();
    let role = row_role(&db.router());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let hooks = TenantHooks::new()
        .after_create(move |conn, tenant| {
            add_hotel(conn, "Seeded");
            let who = text(
                conn,
                "SELECT concat_ws(',', current_user, current_schema(), \
                 current_setting('diesel_tenancy.tenant'))::text",
            );
            log.lock().unwrap().push(who);
            if tenant.name == "doomed" {
                return Err(Refusal::new("no").into());
            }
            Ok(())
        })
        .before_delete(|conn, tenant, _drop| {
            // The hook sees its own tenant's rows only.
            let n = int(conn, "SELECT count(*) FROM hotels");
            if tenant.name == "kept" {
                return Err(Refusal::new(format!("kept has {n} hotels")).into());
            }
            Ok(())
        });
    let router = db.router().hooks(hooks);
    let ok = router.create_tenant(&rows("ok")).unwrap();
    assert_eq!(
        seen.lock().unwrap()[0],
        format!("{role},tenant_rows,{}", ok.id)
    );
    let mut owner = db.owner();
    assert_eq!(
        int(
            &mut owner,
            &format!(
                "SELECT count(*) FROM tenant_rows.hotels WHERE tenant_id = {}",
                ok.id
            )
        ),
        1,
        "the seeded row belongs to the new tenant"
    );
    // The connection is the login role again after the hooks.
    assert!(router
        .pool()
        .with_public(|c| Ok::<_, Error>(text(c, "SELECT current_user::text")))
        .is_ok_and(|who| who == db.login));

    // A failing after_create hook: no registry row, no seeded row.
    let err = router.create_tenant(&rows("doomed")).unwrap_err();
    assert!(matches!(err, Error::Hook { .. }), "{err}");
    assert_eq!(
        int(
            &mut owner,
            "SELECT count(*) FROM public.tenants WHERE name = 'doomed'"
        ),
        0
    );
    assert_eq!(
        int(&mut owner, "SELECT count(*) FROM tenant_rows.hotels"),
        1
    );

    // A failing before_delete hook: the registry row and the rows stay as they were,
    // also when the rows were to be dropped.
    let kept = router.create_tenant(&rows("kept")).unwrap();
    let err = router.delete_tenant("kept", true).unwrap_err();
    assert!(err.to_string().contains("kept has 1 hotels"), "{err}");
    assert_eq!(
        int(
            &mut owner,
            &format!(
                "SELECT count(*) FROM tenant_rows.hotels WHERE tenant_id = {}",
                kept.id
            )
        ),
        1
    );
    assert_eq!(
        int(
            &mut owner,
            "SELECT count(*) FROM public.tenants WHERE name = 'kept'"
        ),
        1
    );
}

#[test]
fn schema_and_row_tenants_side_by_side_in_one_router() {
    let db = RowDb::new();
    let router = db.router();
    assert_eq!(router.default_tenant_mode(), TenantMode::Schema);
    let s1 = router.create_tenant(&NewTenant::named("s1")).unwrap();
    let r1 = router.create_tenant(&rows("r1")).unwrap();
    assert_eq!((s1.mode, r1.mode), (TenantMode::Schema, TenantMode::Rows));
    // A router whose default is rows.
    let rows_first = router.clone().tenant_mode(TenantMode::Rows);
    assert_eq!(
        rows_first
            .create_tenant(&NewTenant::named("r2"))
            .unwrap()
            .mode,
        TenantMode::Rows
    );
    // The row schema's name is never a schema tenant's.
    let err = router
        .create_tenant(&NewTenant {
            schema_name: Some(SchemaName::new("tenant_rows").unwrap()),
            ..NewTenant::named("sneaky")
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSchemaName { .. }), "{err}");
    let derived = router
        .create_tenant(&NewTenant::named("Tenant Rows"))
        .unwrap();
    assert_eq!(derived.schema_name.as_str(), "t_tenant_rows");

    // Work across tenants: each in its own scope.
    let report = router
        .for_each_tenant(&Default::default(), |conn, _tenant| {
            Ok::<_, Error>(text(conn, "SELECT current_schema()::text"))
        })
        .unwrap();
    let places: Vec<(String, String)> = report
        .tenants
        .into_iter()
        .map(|t| (t.tenant, t.result.unwrap()))
        .collect();
    assert_eq!(
        places,
        [
            ("r1".to_owned(), "tenant_rows".to_owned()),
            ("r2".to_owned(), "tenant_rows".to_owned()),
            ("s1".to_owned(), "s1".to_owned()),
            ("Tenant Rows".to_owned(), "t_tenant_rows".to_owned()),
        ]
    );

    // A new migration: migrate_all migrates the schema tenants and the row schema (one
    // unit, under its name), never a row tenant.
    let v2 = SyncRouter::new(db.pool(), TENANT_V2);
    let report = v2
        .migrate_all(&MigrateOptions {
            jobs: 2,
            ..Default::default()
        })
        .unwrap();
    let mut units: Vec<(&str, Vec<String>)> = report
        .tenants
        .iter()
        .map(|t| (t.tenant.as_str(), t.applied.clone()))
        .collect();
    units.sort();
    let rating = vec!["20240101000002".to_owned()];
    assert_eq!(
        units,
        [
            ("Tenant Rows", rating.clone()),
            ("s1", rating.clone()),
            ("tenant_rows", rating.clone()),
        ],
        "{report:?}"
    );
    assert!(report.failures().next().is_none());
    let status = v2.status().unwrap();
    assert!(!status.has_pending(), "{status:?}");
    assert!(status.unprotected_row_tables.is_empty(), "{status:?}");
    // The new column serves row tenants too.
    let mut as_r1 = db.as_tenant(&router, r1.id);
    as_r1
        .batch_execute(
            "INSERT INTO hotels (name, location, description, rating) VALUES ('a', 'b', 'c', 5)",
        )
        .unwrap();

    // The CLI lists the modes.
    let (outcome, out, _) = sh(&router, "tenant list");
    assert_eq!(outcome, Outcome::Success);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("r1") && l.contains(" rows ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("s1") && l.contains(" schema ")),
        "{out}"
    );
    let (_, json, _) = sh(&router, "tenant list --json");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["name"], "r1");
    assert_eq!(json[0]["mode"], "rows");
    let (outcome, out, err) = sh(&router, "tenant create r3 --mode rows");
    assert_eq!(outcome, Outcome::Success, "{err}");
    assert!(out.starts_with("Created row tenant `r3`"), "{out}");
    let (outcome, out, err) = sh(&router, "tenant delete r3 --drop-data");
    assert_eq!(outcome, Outcome::Success, "{err}");
    assert!(out.contains("and its rows"), "{out}");
}

#[test]
fn status_and_check_catch_an_unprotected_row_table() {
    let db = RowDb::new();
    let router = db.router();
    let mut owner = db.owner();
    owner
        .batch_execute("CREATE TABLE tenant_rows.notes (id BIGINT PRIMARY KEY)")
        .unwrap();
    let status = router.status().unwrap();
    let names: Vec<&str> = status
        .unprotected_row_tables
        .iter()
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(names, ["notes"]);
    let (outcome, out, err) = sh(&router, "migrate --check");
    assert_eq!(outcome, Outcome::Failed, "{out}");
    assert!(
        out.contains(
            "error: row table `notes`: no `tenant_id` column; fix: call \
             `SELECT public.diesel_tenancy_row_table('notes');`"
        ),
        "{out}"
    );
    assert!(err.contains("1 relation(s) of the row schema"), "{err}");
    let (_, json, _) = sh(&router, "migrate --check --json");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["unprotected_row_tables"][0]["table"], "notes");

    // The helper fixes it; a policy that widens the tenant's view breaks it again.
    owner
        .batch_execute("SELECT public.diesel_tenancy_row_table('tenant_rows.notes')")
        .unwrap();
    assert!(router.status().unwrap().unprotected_row_tables.is_empty());
    owner
        .batch_execute("CREATE POLICY everyone ON tenant_rows.notes USING (true)")
        .unwrap();
    let status = router.status().unwrap();
    assert!(
        status.unprotected_row_tables[0]
            .problem
            .contains("everyone"),
        "{status:?}"
    );
}

#[test]
fn a_tenant_migration_without_the_helper_is_rolled_back() {
    let db = RowDb::new();
    let unprotected = SyncRouter::new(db.pool(), UNPROTECTED);
    let err = unprotected.migrate_shared().unwrap_err();
    match &err {
        Error::RowSecurity { reason } => {
            assert!(reason.contains("`notes`"), "{reason}");
            assert!(
                reason.contains("SELECT public.diesel_tenancy_row_table('notes');"),
                "{reason}"
            );
        }
        other => panic!("{other}"),
    }
    let mut owner = db.owner();
    assert_eq!(
        int(
            &mut owner,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_rows'"
        ),
        0,
        "the row schema's transaction was rolled back whole"
    );
    // The shared set was applied, and schema tenants are not concerned.
    let router = SyncRouter::new(db.pool(), TENANT);
    let s = router.create_tenant(&NewTenant::named("s")).unwrap();
    assert_eq!(s.mode, TenantMode::Schema);
    router.migrate_shared().unwrap();
}

#[test]
fn login_roles_row_security_would_not_bind_are_refused_with_the_fix() {
    let db = TestDb::new();
    // The test server's superuser: refused when the pool is built or when migrating.
    let built = TenantPool::builder()
        .max_size(2)
        .min_idle(Some(0))
        .row_tenants(true)
        .build(&db.url);
    let err = match built {
        Err(e) => e,
        Ok(pool) => SyncRouter::new(pool, TENANT).migrate_shared().unwrap_err(),
    };
    match &err {
        Error::RowSecurity { reason } => {
            assert!(
                reason.contains("CREATE ROLE app LOGIN CREATEROLE;"),
                "{reason}"
            );
            assert!(reason.contains("OWNER TO app;"), "{reason}");
        }
        other => panic!("{other}"),
    }

    // A login role that may not create the row role is told what to run.
    let limited = RowDb::with_login("nocr", "NOCREATEROLE");
    let router = SyncRouter::new(limited.pool(), TENANT);
    let err = router.migrate_shared().unwrap_err();
    let role = row_role(&router);
    match &err {
        Error::RowSecurity { reason } => assert!(
            reason.contains(&format!(
                "CREATE ROLE \"{role}\" NOLOGIN; GRANT \"{role}\" TO \"{}\";",
                limited.login
            )),
            "{reason}"
        ),
        other => panic!("{other}"),
    }
    // Once an administrator did, the row schema is provisioned.
    let mut admin = PgConnection::establish(&limited.db.url).unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{role}\" NOLOGIN; GRANT \"{role}\" TO \"{}\"",
            limited.login
        ))
        .unwrap();
    router.migrate_shared().unwrap();
    assert!(router.status().unwrap().unprotected_row_tables.is_empty());
}

#[test]
fn row_tenants_need_a_pool_that_serves_them() {
    let db = TestDb::new();
    let router = db.router(2);
    let err = router.create_tenant(&rows("r")).unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("row_tenants(true)")),
        "{err}"
    );
    let err = router.create_row_tenants(&[rows("r")]).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn a_hundred_thousand_row_tenants_in_one_batch() {
    const N: usize = 100_000;
    let db = RowDb::new();
    let router = db.router();
    let new: Vec<NewTenant> = (0..N)
        .map(|i| NewTenant::named(format!("Tenant {i}")))
        .collect();
    let started = Instant::now();
    let created = router.create_row_tenants(&new).unwrap();
    let took = started.elapsed();
    eprintln!("created {N} row tenants in {:.2} s", took.as_secs_f64());
    assert_eq!(created.len(), N);
    assert_eq!(created[12_345].name, "Tenant 12345");
    assert_eq!(created[12_345].schema_name.as_str(), "tenant_12345");
    assert!(created.iter().all(|t| t.mode == TenantMode::Rows));
    let mut owner = db.owner();
    assert_eq!(
        int(
            &mut owner,
            "SELECT count(*) FROM public.tenants WHERE mode = 'rows'"
        ),
        N as i64
    );

    // Served: routes from a registry cache that holds them all, through real checkouts.
    let cache = diesel_tenancy::RegistryCache::start(&db.url).unwrap();
    let snapshot = cache.snapshot();
    assert!(snapshot.tenants().len() >= N);
    let pool = router.pool();
    for name in ["Tenant 0", "Tenant 54321", "Tenant 99999"] {
        let tenant = snapshot.by_name(name).expect("routed by name");
        let mut conn = pool.checkout(snapshot.scope_of(&tenant)).unwrap();
        let hotels: i64 = diesel::dsl::sql::<BigInt>("SELECT count(*) FROM hotels")
            .get_result(&mut *conn)
            .unwrap();
        assert_eq!(hotels, 0, "{name} starts empty");
        conn.batch_execute(&format!(
            "INSERT INTO hotels (name, location, description) VALUES ('{name}', 'x', 'y')"
        ))
        .unwrap();
        conn.commit().unwrap();
    }
    let mut conn = pool
        .checkout(snapshot.scope_of(&snapshot.by_name("Tenant 54321").unwrap()))
        .unwrap();
    let names: Vec<String> = diesel::dsl::sql::<Text>("SELECT name::text FROM hotels")
        .load(&mut *conn)
        .unwrap();
    assert_eq!(names, ["Tenant 54321"]);
    drop(conn);

    // A batch with one taken name creates nothing.
    let err = router
        .create_row_tenants(&[NewTenant::named("fresh"), NewTenant::named("TENANT 7")])
        .unwrap_err();
    assert!(matches!(err, Error::TenantExists { .. }), "{err}");
    assert_eq!(
        int(
            &mut owner,
            "SELECT count(*) FROM public.tenants WHERE name = 'fresh'"
        ),
        0
    );
}

#[test]
fn the_row_table_helper_is_idempotent_leads_keys_with_tenant_id_and_is_a_no_op_elsewhere() {
    let db = RowDb::new();
    let router = db.router();
    let s = router.create_tenant(&NewTenant::named("s")).unwrap();
    let mut owner = db.owner();
    // In a schema tenant: nothing changed.
    let in_schema = text(
        &mut owner,
        &format!(
            "SELECT concat_ws(',', c.relrowsecurity, \
               (SELECT count(*) FROM pg_attribute WHERE attrelid = c.oid AND attname = 'tenant_id'), \
               (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid))::text \
             FROM pg_class c WHERE c.oid = '{}.hotels'::regclass",
            s.schema_name
        ),
    );
    assert_eq!(in_schema, "f,0,0");
    owner
        .batch_execute(&format!(
            "SET search_path TO {}; SELECT public.diesel_tenancy_row_table('hotels')",
            s.schema_name
        ))
        .unwrap();
    assert!(!boolean(
        &mut owner,
        "SELECT public.diesel_tenancy_is_row_schema()"
    ));

    // In the row schema: twice is once.
    owner
        .batch_execute(
            "SET search_path TO tenant_rows; \
             CREATE TABLE rooms (id BIGINT PRIMARY KEY, number TEXT NOT NULL UNIQUE, \
                                 tenant_id BIGINT); \
             SELECT public.diesel_tenancy_row_table('rooms'); \
             SELECT public.diesel_tenancy_row_table('rooms');",
        )
        .unwrap();
    assert!(boolean(
        &mut owner,
        "SELECT public.diesel_tenancy_is_row_schema()"
    ));
    let keys = text(
        &mut owner,
        "SELECT string_agg(pg_get_constraintdef(oid), '; ' ORDER BY contype)::text \
         FROM pg_constraint WHERE conrelid = 'tenant_rows.rooms'::regclass \
         AND contype IN ('p', 'u')",
    );
    assert_eq!(
        keys,
        "PRIMARY KEY (tenant_id, id); UNIQUE (tenant_id, number)"
    );
    assert_eq!(
        int(
            &mut owner,
            "SELECT count(*) FROM pg_policy WHERE polrelid = 'tenant_rows.rooms'::regclass"
        ),
        2
    );
    assert!(boolean(
        &mut owner,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'tenant_rows.rooms'::regclass \
         AND attname = 'tenant_id'"
    ));
    assert!(router.status().unwrap().unprotected_row_tables.is_empty());

    // A key a foreign key depends on cannot be rewritten: call the helper first.
    owner
        .batch_execute(
            "CREATE TABLE guests (id BIGINT PRIMARY KEY); \
             CREATE TABLE stays (guest BIGINT REFERENCES guests (id))",
        )
        .unwrap();
    let err = owner
        .batch_execute("SELECT public.diesel_tenancy_row_table('guests')")
        .unwrap_err();
    assert!(
        err.to_string().contains("a foreign key depends on"),
        "{err}"
    );
}

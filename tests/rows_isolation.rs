//! Row tenants: what a `Scope::Rows` checkout proves, attacked from the application's
//! side (raw SQL, settings, server-side functions) and from the database's (role
//! attributes, ownership, defaults), in both pool modes and behind PgBouncer.
//!
//! Every test logs in as a plain role that owns its throwaway database (`app`,
//! `CREATEROLE`); the row schema and its role are made by `SyncRouter::migrate_shared`.

mod common;

use common::hotels::{add_hotel, exec, hotel_names};
use common::pgbouncer::PgBouncer;
use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_tenancy::{
    Error, NewTenant, PoolMode, Scope, SyncRouter, TenantMode, TenantPool, TenantPoolBuilder,
};

/// A database owned by a plain login role, its row schema provisioned, and two row
/// tenants `a` and `b` with one hotel each.
struct Rows {
    db: TestDb,
    app_url: String,
    app: String,
    a: i64,
    b: i64,
}

impl Rows {
    fn new() -> Rows {
        let db = TestDb::new();
        let (app, app_url) = db.plain_owner();
        let router = SyncRouter::new(Rows::builder().build(&app_url).unwrap(), common::TENANT);
        router.migrate_shared().expect("shared set and row schema");
        let a = router
            .create_tenant(&NewTenant::named("a").mode(TenantMode::Rows))
            .unwrap()
            .id;
        let b = router
            .create_tenant(&NewTenant::named("b").mode(TenantMode::Rows))
            .unwrap()
            .id;
        let pool = Rows::builder().build(&app_url).unwrap();
        for (id, name) in [(a, "a-hotel"), (b, "b-hotel")] {
            let mut conn = pool.row_tenant(id).unwrap();
            add_hotel(&mut conn, name);
            conn.commit().unwrap();
        }
        Rows {
            db,
            app_url,
            app,
            a,
            b,
        }
    }

    fn builder() -> TenantPoolBuilder {
        TenantPool::builder()
            .max_size(2)
            .connection_timeout(std::time::Duration::from_secs(5))
            .row_tenants(true)
    }

    fn pool(&self, mode: PoolMode) -> TenantPool {
        Rows::builder().mode(mode).build(&self.app_url).unwrap()
    }

    fn admin(&self) -> PgConnection {
        PgConnection::establish(&self.db.url).unwrap()
    }

    fn row_role(&self) -> String {
        format!("{}_tenant_rows", self.db.role_group())
    }
}

const MODES: [PoolMode; 2] = [PoolMode::Session, PoolMode::TransactionLocal];

fn names(conn: &mut PgConnection) -> Vec<String> {
    hotel_names(conn)
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect()
}

fn count(conn: &mut PgConnection, sql: &str) -> Result<i64, diesel::result::Error> {
    diesel::dsl::sql::<BigInt>(sql).get_result(conn)
}

fn text(conn: &mut PgConnection, sql: &str) -> String {
    diesel::dsl::sql::<Text>(sql).get_result(conn).unwrap()
}

/// What the next innocent checkout of `tenant` must see: its own rows only, as the row
/// role, with its tenant set; and its write lands in its own rows (read back as owner).
fn innocent(rows: &Rows, pool: &TenantPool, tenant: i64, own: &str) {
    let mut conn = pool.row_tenant(tenant).unwrap();
    assert_eq!(names(&mut conn), vec![own.to_owned()]);
    assert_eq!(
        text(&mut conn, "SELECT current_user::text"),
        rows.row_role()
    );
    assert_eq!(
        text(&mut conn, "SELECT current_setting('diesel_tenancy.tenant')"),
        tenant.to_string()
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM tenant_rows.hotels").unwrap(),
        1
    );
    drop(conn);
}

#[test]
fn raw_sql_in_a_row_scope_reads_and_writes_its_own_rows_only() {
    let rows = Rows::new();
    for mode in MODES {
        let pool = rows.pool(mode);
        let mut conn = pool.row_tenant(rows.a).unwrap();
        // Reads: unqualified, qualified, by the other tenant's id.
        assert_eq!(names(&mut conn), vec!["a-hotel"]);
        let b = rows.b;
        for sql in [
            format!("SELECT count(*) FROM hotels WHERE tenant_id = {b}"),
            format!("SELECT count(*) FROM tenant_rows.hotels WHERE tenant_id = {b}"),
            "SELECT count(*) FROM hotels WHERE name = 'b-hotel'".to_owned(),
        ] {
            assert_eq!(count(&mut conn, &sql).unwrap(), 0, "{mode:?}: {sql}");
        }
        // Updates and deletes of the other tenant's rows touch nothing.
        exec(
            &mut conn,
            "UPDATE hotels SET name = 'stolen' WHERE name = 'b-hotel'",
        )
        .unwrap();
        exec(
            &mut conn,
            &format!("DELETE FROM hotels WHERE tenant_id = {b}"),
        )
        .unwrap();
        // An insert naming the other tenant is refused by the policy's WITH CHECK.
        let err = exec(
            &mut conn,
            &format!(
                "INSERT INTO hotels (tenant_id, name, location, description) \
                 VALUES ({b}, 'planted', 'x', 'y')"
            ),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("row-level security"),
            "{mode:?}: {err}"
        );
        drop(conn);
        let mut conn = pool.row_tenant(rows.a).unwrap();
        // An update that moves a row to the other tenant is refused too.
        let err = exec(
            &mut conn,
            &format!("UPDATE hotels SET tenant_id = {b} WHERE name = 'a-hotel'"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("row-level security"), "{err}");
        drop(conn);
        innocent(&rows, &pool, rows.b, "b-hotel");
        innocent(&rows, &pool, rows.a, "a-hotel");
    }
    // And as the owner, nothing of b's was changed.
    let pool = rows.pool(PoolMode::Session);
    let mut all = pool.all_tenant_rows().unwrap();
    let mut seen = names(&mut all);
    seen.sort();
    assert_eq!(seen, vec!["a-hotel", "b-hotel"]);
}

#[test]
fn an_insert_naming_another_tenants_id_stays_invisible_to_it() {
    let rows = Rows::new();
    let pool = rows.pool(PoolMode::Session);
    let b_id: i64 = {
        let mut conn = pool.row_tenant(rows.b).unwrap();
        hotel_names(&mut conn).unwrap()[0].0
    };
    let mut conn = pool.row_tenant(rows.a).unwrap();
    exec(
        &mut conn,
        &format!(
            "INSERT INTO hotels (id, name, location, description) \
             VALUES ({b_id}, 'same id', 'x', 'y')"
        ),
    )
    .unwrap();
    drop(conn);
    let mut conn = pool.row_tenant(rows.b).unwrap();
    assert_eq!(names(&mut conn), vec!["b-hotel"]);
}

#[test]
fn a_scope_with_no_tenant_sees_nothing_and_cannot_write() {
    let rows = Rows::new();
    for mode in MODES {
        let pool = rows.pool(mode);
        let mut conn = pool.row_tenant(rows.a).unwrap();
        let reset = if mode == PoolMode::Session {
            "RESET diesel_tenancy.tenant"
        } else {
            "SET LOCAL diesel_tenancy.tenant = ''"
        };
        exec(&mut conn, reset).unwrap();
        assert_eq!(
            count(&mut conn, "SELECT count(*) FROM hotels").unwrap(),
            0,
            "{mode:?}"
        );
        let err = exec(
            &mut conn,
            "INSERT INTO hotels (name, location, description) VALUES ('x', 'y', 'z')",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("null value") || err.to_string().contains("row-level"),
            "{mode:?}: {err}"
        );
        drop(conn);
        innocent(&rows, &pool, rows.a, "a-hotel");
    }
}

#[test]
fn a_setting_changed_by_sql_or_a_function_does_not_survive_the_checkout() {
    let rows = Rows::new();
    let mut admin = rows.admin();
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION public.switch_tenant(t text) RETURNS text LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM set_config('diesel_tenancy.tenant', t, false); RETURN t; END $$; \
             GRANT EXECUTE ON FUNCTION public.switch_tenant(text) TO \"{}\"",
            rows.row_role()
        ))
        .unwrap();
    let b = rows.b;
    for mode in MODES {
        let pool = rows.pool(mode);
        for attack in [
            format!("SET diesel_tenancy.tenant = '{b}'"),
            format!("SELECT public.switch_tenant('{b}')"),
            format!("SELECT set_config('diesel_tenancy.tenant', '{b}', false)"),
        ] {
            let mut conn = pool.row_tenant(rows.a).unwrap();
            exec(&mut conn, &attack).unwrap();
            // Inside the scope the application's own SQL switched tenants: documented,
            // like resetting a tenant role. The point is that it ends with the checkout.
            conn.commit().unwrap();
            innocent(&rows, &pool, rows.a, "a-hotel");
            // A schema or public scope on the same connections runs as the login role
            // with no tenant set.
            let mut public = pool.public().unwrap();
            assert_eq!(
                text(
                    &mut public,
                    "SELECT coalesce(current_setting('diesel_tenancy.tenant', true), '')"
                ),
                "",
                "{mode:?} {attack}"
            );
            assert_eq!(text(&mut public, "SELECT current_user::text"), rows.app);
        }
    }
}

#[test]
fn a_role_reset_inside_the_scope_does_not_survive_the_checkout() {
    let rows = Rows::new();
    for mode in MODES {
        let pool = rows.pool(mode);
        let mut conn = pool.row_tenant(rows.a).unwrap();
        exec(&mut conn, "RESET ROLE").unwrap();
        // Documented: the login role owns the row tables and sees every tenant.
        assert_eq!(
            count(&mut conn, "SELECT count(*) FROM hotels").unwrap(),
            2,
            "{mode:?}"
        );
        conn.commit().unwrap();
        innocent(&rows, &pool, rows.a, "a-hotel");
    }
}

#[test]
fn logins_that_row_security_never_binds_are_refused_at_build() {
    let rows = Rows::new();
    // The superuser the tests log in as.
    let err = Rows::builder().build(&rows.db.url).unwrap_err();
    match &err {
        Error::RowSecurity { reason } => {
            assert!(reason.contains("superuser"), "{reason}");
            assert!(reason.contains("CREATE ROLE"), "{reason}");
        }
        other => panic!("expected RowSecurity, got {other:?}"),
    }
    // A BYPASSRLS role.
    let (_, url) = rows.db.login_role("bypass", "BYPASSRLS");
    let err = Rows::builder().build(&url).unwrap_err();
    assert!(
        matches!(&err, Error::RowSecurity { reason } if reason.contains("BYPASSRLS")),
        "{err:?}"
    );
    // The same logins build pools without row tenants.
    TenantPool::builder().max_size(1).build(&url).unwrap();
}

#[test]
fn a_row_role_that_escapes_row_security_is_refused_at_checkout() {
    let rows = Rows::new();
    let role = rows.row_role();
    let mut admin = rows.admin();
    for (harm, undo) in [
        (
            format!("ALTER ROLE \"{role}\" BYPASSRLS"),
            format!("ALTER ROLE \"{role}\" NOBYPASSRLS"),
        ),
        (
            format!("ALTER ROLE \"{role}\" SUPERUSER"),
            format!("ALTER ROLE \"{role}\" NOSUPERUSER"),
        ),
        (
            // The row role made owner of the sentinel, no longer forced: owners of
            // unforced tables are exempt.
            format!(
                "ALTER TABLE tenant_rows.__diesel_tenancy_rows OWNER TO \"{role}\"; \
                 ALTER TABLE tenant_rows.__diesel_tenancy_rows NO FORCE ROW LEVEL SECURITY"
            ),
            format!(
                "ALTER TABLE tenant_rows.__diesel_tenancy_rows FORCE ROW LEVEL SECURITY; \
                 ALTER TABLE tenant_rows.__diesel_tenancy_rows OWNER TO \"{}\"",
                rows.app
            ),
        ),
        (
            // Row security off by default for the login role: RESET ALL falls back to it.
            format!("ALTER ROLE \"{}\" SET row_security = off", rows.app),
            format!("ALTER ROLE \"{}\" RESET row_security", rows.app),
        ),
    ] {
        for mode in MODES {
            admin.batch_execute(&harm).unwrap();
            // New connections: role defaults apply at login.
            let pool = rows.pool(mode);
            let err = pool.row_tenant(rows.a).unwrap_err();
            assert!(
                matches!(
                    &err,
                    Error::RowSecurity { .. } | Error::UncleanSession { .. }
                ),
                "{mode:?} after {harm}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("row") && (text.contains("security") || text.contains("superuser")),
                "{mode:?} after {harm}: {text}"
            );
            admin.batch_execute(&undo).unwrap();
            innocent(&rows, &rows.pool(mode), rows.a, "a-hotel");
        }
    }
}

#[test]
fn a_deleted_row_tenant_is_a_stale_route() {
    let rows = Rows::new();
    let pool = rows.pool(PoolMode::Session);
    innocent(&rows, &pool, rows.b, "b-hotel");
    let router = SyncRouter::new(pool.clone(), common::TENANT);
    router.delete_tenant("b", false).unwrap();
    for mode in MODES {
        let err = rows.pool(mode).row_tenant(rows.b).unwrap_err();
        assert!(matches!(err, Error::StaleRoute { .. }), "{mode:?}: {err:?}");
    }
    // An id that never was a row tenant, and a schema tenant's id, fail the same way.
    let schema = router.create_tenant(&NewTenant::named("s")).unwrap();
    for id in [i64::MAX, schema.id] {
        let err = pool.row_tenant(id).unwrap_err();
        assert!(matches!(err, Error::StaleRoute { .. }), "{id}: {err:?}");
    }
    innocent(&rows, &pool, rows.a, "a-hotel");
}

#[test]
fn all_tenant_rows_runs_as_the_owner_and_sees_every_tenant() {
    let rows = Rows::new();
    for mode in MODES {
        let pool = rows.pool(mode);
        let mut all = pool.checkout(Scope::AllRows).unwrap();
        assert_eq!(text(&mut all, "SELECT current_user::text"), rows.app);
        assert_eq!(
            count(&mut all, "SELECT count(DISTINCT tenant_id) FROM hotels").unwrap(),
            2
        );
        drop(all);
        innocent(&rows, &pool, rows.a, "a-hotel");
    }
}

#[test]
fn row_scopes_need_a_pool_that_serves_row_tenants() {
    let rows = Rows::new();
    let plain = TenantPool::builder()
        .max_size(1)
        .build(&rows.app_url)
        .unwrap();
    for scope in [Scope::Rows { tenant: rows.a }, Scope::AllRows] {
        let err = plain.checkout(scope).unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("row_tenants")),
            "{err:?}"
        );
    }
}

#[test]
fn row_tenants_behind_pgbouncer_in_transaction_mode() {
    let rows = Rows::new();
    let bouncer = PgBouncer::start_on(&rows.app_url, test_support::Server::of(&rows.app_url), 2);
    let pool = Rows::builder()
        .mode(PoolMode::TransactionLocal)
        .build(&bouncer.url)
        .unwrap();
    for _ in 0..3 {
        innocent(&rows, &pool, rows.a, "a-hotel");
        innocent(&rows, &pool, rows.b, "b-hotel");
        let mut conn = pool.row_tenant(rows.a).unwrap();
        assert_eq!(
            count(
                &mut conn,
                &format!("SELECT count(*) FROM hotels WHERE tenant_id = {}", rows.b)
            )
            .unwrap(),
            0
        );
        exec(
            &mut conn,
            &format!("SET diesel_tenancy.tenant = '{}'", rows.b),
        )
        .unwrap();
        conn.commit().unwrap();
    }
    // The setting is transaction-local there: a session-level SET that escaped the
    // pool's transaction is reset by the next checkout on whichever backend it lands.
    innocent(&rows, &pool, rows.a, "a-hotel");
}

#[test]
fn a_row_scope_cannot_read_schema_tenants_or_the_registry() {
    let rows = Rows::new();
    let router = SyncRouter::new(rows.pool(PoolMode::Session), common::TENANT);
    let s = router.create_tenant(&NewTenant::named("s")).unwrap();
    {
        let mut conn = rows.pool(PoolMode::Session).tenant(&s.schema_name).unwrap();
        add_hotel(&mut conn, "s-hotel");
    }
    for mode in MODES {
        let pool = rows.pool(mode);
        for sql in [
            format!("SELECT count(*) FROM {}.hotels", s.schema_name),
            "SELECT count(*) FROM public.tenants".to_owned(),
            "SELECT count(*) FROM public.domains".to_owned(),
            "SELECT count(*) FROM tenant_rows.__diesel_schema_migrations".to_owned(),
        ] {
            let mut conn = pool.row_tenant(rows.a).unwrap();
            let err = count(&mut conn, &sql).unwrap_err();
            assert!(
                err.to_string().contains("permission denied"),
                "{mode:?} {sql}: {err}"
            );
            drop(conn);
        }
        // A path switched to the schema tenant's schema finds nothing it may use.
        let mut conn = pool.row_tenant(rows.a).unwrap();
        exec(&mut conn, &format!("SET search_path TO {}", s.schema_name)).unwrap();
        assert!(
            count(&mut conn, "SELECT count(*) FROM hotels").is_err(),
            "{mode:?}"
        );
        drop(conn);
        innocent(&rows, &pool, rows.a, "a-hotel");
    }
}

/// What a careless or hostile borrower of a row scope leaves behind, by the classes of
/// the fail-closed suite: a transaction opened and left open, temporary objects that
/// would shadow the row table, settings other than the tenant (row security, the role
/// through `set_config`, a DO block), the pool's prepared statements dropped, cursors
/// and `LISTEN`. After each, the next innocent checkout of either tenant sees only its
/// own rows, as the row role, with its own tenant set.
#[test]
fn what_a_hostile_row_scope_leaves_behind_never_reaches_the_next_checkout() {
    let rows = Rows::new();
    let b = rows.b;
    let attacks = [
        "BEGIN".to_owned(),
        format!("BEGIN; SET LOCAL diesel_tenancy.tenant = '{b}'"),
        "CREATE TEMP TABLE hotels (id bigint, name text, location text, description text, \
         picture text)"
            .to_owned(),
        "CREATE TEMP VIEW hotels AS SELECT 0::bigint AS id, 'planted'::varchar AS name".to_owned(),
        "SET row_security = off".to_owned(),
        format!("DO $$ BEGIN PERFORM set_config('diesel_tenancy.tenant', '{b}', false); END $$"),
        "SELECT set_config('role', 'none', false)".to_owned(),
        "DEALLOCATE ALL".to_owned(),
        "DISCARD ALL".to_owned(),
        "BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT * FROM hotels; COMMIT".to_owned(),
        "LISTEN dt_channel".to_owned(),
        "SET search_path TO public".to_owned(),
    ];
    for mode in MODES {
        let pool = rows.pool(mode);
        for attack in &attacks {
            if let Ok(mut conn) = pool.row_tenant(rows.a) {
                // Some attacks are refused by the server or end the pool's transaction:
                // what matters is what the next checkout sees.
                let _ = exec(&mut conn, attack);
                let _ = conn.commit();
            }
            innocent(&rows, &pool, rows.b, "b-hotel");
            innocent(&rows, &pool, rows.a, "a-hotel");
        }
    }
}

//! Tenants on Citus (the proof of concept through the hotel service is the hotel's
//! `tests/hotel_citus.rs`): the CLI's lifecycle commands, a migration over 40 tenants, status and `tenant distribute`, spares, and
//! tenant roles refused.

use std::collections::BTreeMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::cli::Outcome;
use diesel_tenancy::{
    BatchOptions, Error, MigrateOptions, NewTenant, SyncRouter, TenantPool, TenantRegistry,
    TenantRoles,
};
use serde_json::{json, Value};

use crate::citus_support::{cli, CitusDb, Node};
use crate::common::TENANT;

const TENANT_V2: EmbeddedMigrations = embed_migrations!("tests/fixtures/tenant_v2");

pub fn pool(db: &CitusDb, size: u32) -> TenantPool {
    TenantPool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .build(&db.url)
        .expect("pool on the coordinator")
}

/// A router over the hotel tenant set on `db`, shared set applied.
pub fn router(db: &CitusDb, size: u32) -> SyncRouter {
    let router = SyncRouter::new(pool(db, size), TENANT);
    router.migrate_shared().expect("shared migrations");
    router
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

/// A migrated tenant schema made without the crate, as before Citus was installed (or
/// by other code): the database's sharding setting is off, so it stays on the
/// coordinator.
fn local_schema(conn: &mut PgConnection, schema: &str) {
    use diesel_migrations::MigrationHarness;
    conn.batch_execute(&format!(
        "CREATE SCHEMA {schema}; SET search_path TO {schema}"
    ))
    .expect("schema");
    conn.run_pending_migrations(TENANT).expect("migrate");
    conn.batch_execute("RESET search_path").expect("reset");
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// The node (`host:port`) each tenant lives on, from `tenant placement --json`.
fn placement(router: &SyncRouter) -> BTreeMap<String, Value> {
    cli(router, &["tenant", "placement", "--json"])
        .assert_ok()
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| (p["tenant"].as_str().expect("name").to_owned(), p.clone()))
        .collect()
}

pub fn create_rename_delete_leave_nothing_on_any_node() {
    let db = CitusDb::new();
    let router = router(&db, 2);
    let created = cli(
        &router,
        &[
            "tenant",
            "create",
            "acme",
            "--domain",
            "acme.test",
            "--json",
        ],
    );
    assert_eq!(created.assert_ok().json()["schema_name"], "acme");
    let node = placement(&router)["acme"]["node"]
        .as_str()
        .expect("acme lives on a worker")
        .to_owned();
    let worker = db.worker(&node).clone();
    assert!(db.schema_on(&worker, "acme"));
    let renamed = cli(&router, &["tenant", "rename", "acme", "Acme Corp"]);
    assert!(
        renamed.assert_ok().out.contains("schema `acme` unchanged"),
        "{}",
        renamed.out
    );
    assert_eq!(placement(&router)["Acme Corp"]["node"], json!(node));
    router
        .pool()
        .with_tenant(&"acme".parse().expect("schema"), |c| {
            Ok::<_, Error>(c.batch_execute(
                "INSERT INTO hotels (name, location, description) VALUES ('Ritz', 'Paris', 'x')",
            )?)
        })
        .expect("a row in acme");
    let deleted = cli(&router, &["tenant", "delete", "Acme Corp", "--drop-schema"]);
    assert!(
        deleted.assert_ok().out.contains("dropped schema `acme`"),
        "{}",
        deleted.out
    );
    let coordinator = db.coordinator.clone();
    for node in std::iter::once(&coordinator).chain(&db.workers) {
        assert!(!db.schema_on(node, "acme"), "schema acme left on {node:?}");
    }
    let mut conn = PgConnection::establish(&db.url).expect("connect");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM pg_dist_schema"),
        0
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM public.domains"),
        0
    );
    assert_eq!(
        cli(&router, &["tenant", "list"]).assert_ok().out,
        "No tenants.\n"
    );
}

pub fn a_new_migration_reaches_40_tenants_on_both_workers() {
    let db = CitusDb::new();
    let v1 = router(&db, 4);
    for i in 0..40 {
        v1.create_tenant(&NewTenant::named(format!("t{i:02}")))
            .expect("create tenant");
    }
    let placed = placement(&v1);
    assert!(placed.values().all(|p| p["distributed"] == json!(true)));
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in placed.values() {
        *per_node
            .entry(p["node"].as_str().expect("node").to_owned())
            .or_default() += 1;
    }
    let workers: Vec<String> = db.workers.iter().map(Node::address).collect();
    assert_eq!(
        per_node.keys().cloned().collect::<Vec<_>>(),
        workers,
        "{per_node:?}"
    );

    let v2 = SyncRouter::new(pool(&db, 4), TENANT_V2);
    let status = v2.status().expect("status");
    let pending = status.pending_tenants(&[], &[]).expect("pending");
    assert_eq!(pending.len(), 40);
    assert!(pending
        .iter()
        .all(|t| t.pending == ["20240101000002"] && !t.schema_missing));
    let check = cli(&v2, &["migrate", "--check"]);
    assert_eq!(check.outcome, Outcome::Pending, "{}", check.out);
    assert!(
        check.out.contains("40 tenant(s) to migrate"),
        "{}",
        check.out
    );

    let options = MigrateOptions {
        jobs: 4,
        keep_going: true,
        ..Default::default()
    };
    let report = v2.migrate_all(&options).expect("migrate all");
    assert_eq!((report.applied_count(), report.failures().count()), (40, 0));
    assert!(!v2.status().expect("status").has_pending());
    assert_eq!(
        cli(&v2, &["migrate", "--check"]).assert_ok().out,
        "Nothing pending.\n"
    );
    // Every tenant's worker has the new column: read through each tenant's scope.
    let runs = v2
        .for_each_tenant(&BatchOptions::default(), |c, _| {
            Ok::<_, Error>(
                diesel::sql_query("SELECT count(rating) AS n FROM hotels")
                    .get_result::<Count>(c)?,
            )
        })
        .expect("each tenant");
    assert_eq!(runs.tenants.len(), 40);
    assert!(runs
        .tenants
        .iter()
        .all(|r| matches!(&r.result, Ok(c) if c.n == 0)));
}

pub fn status_lists_undistributed_tenants_and_distribute_fixes_them() {
    let db = CitusDb::new();
    let router = router(&db, 2);
    router
        .create_tenant(&NewTenant::named("placed"))
        .expect("create");
    // A tenant made before Citus, or by other code: registered, its schema local.
    let mut conn = PgConnection::establish(&db.url).expect("connect");
    local_schema(&mut conn, "local");
    let local = TenantRegistry::create(&mut conn, "local", &"local".parse().expect("schema"))
        .expect("register");
    router
        .pool()
        .with_tenant(&local.schema_name, |c| {
            Ok::<_, Error>(c.batch_execute(
                "INSERT INTO hotels (name, location, description) VALUES ('Ritz', 'Paris', 'x')",
            )?)
        })
        .expect("a row");

    let status = router.status().expect("status");
    let undistributed: Vec<&str> = status
        .citus
        .as_ref()
        .expect("a Citus status")
        .undistributed
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(undistributed, ["local"]);
    let check = cli(&router, &["migrate", "--check"]);
    assert_eq!(
        check.outcome,
        Outcome::Success,
        "nothing is pending: {}",
        check.out
    );
    assert!(
        check
            .out
            .contains("tenant `local` (local) is not a Citus distributed schema")
            && check.out.contains("run `tenant distribute local`"),
        "{}",
        check.out
    );
    let json = cli(&router, &["migrate", "--check", "--json"]).json();
    assert_eq!(json["citus"]["undistributed"][0]["name"], "local");
    let placed = placement(&router);
    assert_eq!(
        (&placed["local"]["distributed"], &placed["local"]["node"]),
        (&json!(false), &Value::Null)
    );
    let refused = router
        .move_tenant(
            "local",
            &db.workers[0].address().parse().expect("node"),
            None,
        )
        .expect_err("an undistributed tenant cannot move");
    assert!(
        matches!(&refused, Error::Citus { reason, .. } if reason.contains("tenant distribute local")),
        "{refused}"
    );

    let fixed = cli(&router, &["tenant", "distribute", "--all"]);
    assert!(
        fixed
            .assert_ok()
            .out
            .contains("Distributed tenant `local` (local)"),
        "{}",
        fixed.out
    );
    assert!(router
        .status()
        .expect("status")
        .citus
        .expect("Citus")
        .undistributed
        .is_empty());
    assert_eq!(placement(&router)["local"]["distributed"], json!(true));
    let rows = router
        .pool()
        .with_tenant(&local.schema_name, |c| {
            Ok::<_, Error>(
                diesel::sql_query("SELECT name::text AS name FROM hotels").load::<Name>(c)?,
            )
        })
        .expect("read");
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["Ritz"]
    );
    // The coordinator's copy of the data, invisible once distributed, was truncated.
    assert_eq!(
        count(&mut conn, "SELECT pg_relation_size('local.hotels') AS n"),
        0
    );
    let again = cli(&router, &["tenant", "distribute", "local"]);
    assert!(
        again.assert_ok().out.contains("already was distributed"),
        "{}",
        again.out
    );
    assert_eq!(
        cli(&router, &["tenant", "distribute", "--all"])
            .assert_ok()
            .out,
        "Every tenant schema is distributed.\n"
    );
}

pub fn spares_are_distributed_schemas_too() {
    let db = CitusDb::new();
    let router = router(&db, 2);
    assert_eq!(router.prepare_spares(2).expect("spares"), 2);
    let mut conn = PgConnection::establish(&db.url).expect("connect");
    let spares_distributed = "SELECT count(*) AS n FROM public.tenant_spares s \
         JOIN pg_namespace n ON n.nspname = s.schema_name \
         JOIN pg_dist_schema d ON d.schemaid = n.oid";
    assert_eq!(count(&mut conn, spares_distributed), 2);
    router
        .create_tenant(&NewTenant::named("first"))
        .expect("create");
    router
        .create_tenant(&NewTenant::named("second"))
        .expect("create");
    // A spare made before Citus was installed: claimed, then distributed.
    local_schema(&mut conn, "dt_spare_old");
    conn.batch_execute("INSERT INTO public.tenant_spares (schema_name) VALUES ('dt_spare_old')")
        .expect("an old spare");
    assert_eq!(count(&mut conn, spares_distributed), 0);
    router
        .create_tenant(&NewTenant::named("third"))
        .expect("create");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM public.tenant_spares"),
        0
    );
    let placed = placement(&router);
    for tenant in ["first", "second", "third"] {
        assert_eq!(placed[tenant]["distributed"], json!(true), "{placed:?}");
        assert!(placed[tenant]["node"].is_string(), "{placed:?}");
    }
    assert!(router
        .status()
        .expect("status")
        .citus
        .expect("Citus")
        .undistributed
        .is_empty());
}

pub fn tenant_roles_are_refused_with_a_typed_error() {
    let db = CitusDb::new();
    let refused = TenantPool::builder()
        .tenant_roles(TenantRoles::new())
        .build(&db.url)
        .expect_err("tenant roles on Citus");
    assert!(
        matches!(&refused, Error::Citus { what: "tenant roles", reason }
            if reason.contains("cannot log in")),
        "{refused}"
    );
    // Row tenants run as a NOLOGIN row role too: refused the same way (before the login
    // role's own check, which a superuser coordinator login would also fail).
    let refused = TenantPool::builder()
        .row_tenants(true)
        .build(&db.url)
        .expect_err("row tenants on Citus");
    assert!(
        matches!(&refused, Error::Citus { what: "row tenants", reason }
            if reason.contains("cannot log in")),
        "{refused}"
    );
    // The manager handed to another r2d2 pool (rocket_sync_db_pools) refuses each
    // connection the same way.
    let manager = TenantPool::builder()
        .tenant_roles(TenantRoles::new())
        .manager(&db.url)
        .expect("manager");
    let other = r2d2::Pool::builder()
        .max_size(1)
        .connection_timeout(std::time::Duration::from_millis(500))
        .build(manager)
        .expect_err("no connection with tenant roles on Citus");
    assert!(
        other
            .to_string()
            .contains("tenant roles cannot be used on this Citus database"),
        "{other}"
    );
    // Nothing was made: no group role for this database on the coordinator.
    let mut conn = PgConnection::establish(&db.url).expect("connect");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM pg_roles WHERE rolname = 'dt' || \
             (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        0
    );
}

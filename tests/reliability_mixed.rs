//! One pool serving tenants at different migration versions, where a column's type
//! differs: "cached plan must not change result type" reaches a caller at most once per
//! pool (never with `reset_statements_on_switch`), and the connection that met it is
//! replaced.

mod common;

use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel_tenancy::{Error, NewTenant, PoolMode, SchemaName, TenantPool};

diesel::table! {
    hotels (id) {
        id -> BigInt,
        name -> Varchar,
        location -> Varchar,
    }
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// Tenants `v1` (location VARCHAR(255)) and `v2` (location widened to VARCHAR(500), as a
/// half-rolled-out migration would leave it), one hotel each.
fn two_versions(db: &TestDb) -> (SchemaName, SchemaName) {
    let router = db.router(1);
    let mut out = Vec::new();
    for (name, sql) in [
        ("v1", ""),
        (
            "v2",
            "ALTER TABLE hotels ALTER COLUMN location TYPE VARCHAR(500);",
        ),
    ] {
        let s = router
            .create_tenant(&NewTenant::named(name))
            .unwrap()
            .schema_name;
        router
            .pool()
            .with_tenant(&s, |c| {
                Ok::<_, Error>(c.batch_execute(&format!(
                    "{sql} INSERT INTO hotels (name, location, description) VALUES ('{name}', 'x', 'y')"
                ))?)
            })
            .unwrap();
        out.push(s);
    }
    (out.remove(0), out.remove(0))
}

/// Alternates v1/v2 on a pool of one, 40 times; returns (stale-plan errors, backend pids).
fn alternate(pool: &TenantPool, v1: &SchemaName, v2: &SchemaName) -> (usize, Vec<i32>) {
    let mut stale = 0;
    let mut pids = Vec::new();
    for i in 0..40 {
        let (schema, expected) = if i % 2 == 0 { (v1, "v1") } else { (v2, "v2") };
        let result = pool.with_tenant(schema, |c| {
            let rows: Vec<(String, String)> = hotels::table
                .select((hotels::name, hotels::location))
                .load(c)?;
            let pid: Pid = diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result(c)?;
            Ok::<_, Error>((rows, pid.pid))
        });
        match result {
            Ok((rows, pid)) => {
                assert_eq!(rows, vec![(expected.to_owned(), "x".to_owned())]);
                pids.push(pid);
            }
            Err(e) => {
                assert!(
                    e.to_string()
                        .contains("cached plan must not change result type"),
                    "{e}"
                );
                stale += 1;
            }
        }
    }
    pids.dedup();
    (stale, pids)
}

#[test]
fn a_stale_plan_reaches_a_caller_at_most_once_per_pool() {
    for mode in [PoolMode::Session, PoolMode::TransactionLocal] {
        let db = TestDb::new();
        let (v1, v2) = two_versions(&db);
        let pool = TenantPool::builder()
            .mode(mode)
            .max_size(1)
            .build(&db.url)
            .unwrap();
        let (stale, pids) = alternate(&pool, &v1, &v2);
        assert_eq!(stale, 1, "{mode:?}: the first divergence is reported once");
        assert_eq!(
            pids.len(),
            2,
            "{mode:?}: the connection that met it was replaced, once"
        );
    }
}

#[test]
fn with_reset_on_switch_a_stale_plan_never_reaches_a_caller() {
    let db = TestDb::new();
    let (v1, v2) = two_versions(&db);
    let pool = TenantPool::builder()
        .max_size(1)
        .reset_statements_on_switch(true)
        .build(&db.url)
        .unwrap();
    let (stale, pids) = alternate(&pool, &v1, &v2);
    assert_eq!(stale, 0);
    assert_eq!(
        pids.len(),
        1,
        "one connection served both versions throughout"
    );
}

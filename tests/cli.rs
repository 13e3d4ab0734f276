//! The management CLI against the real PostgreSQL, each test in its own throwaway database.

mod common;

use clap::Parser;
use common::{TestDb, TENANT};
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::cli::{self, Command, Outcome};
use diesel_tenancy::{Error, Refusal, SyncRouter, TenantHooks};
use serde_json::Value;

const BROKEN: EmbeddedMigrations = embed_migrations!("tests/fixtures/broken_tenant");
const TENANT_V2: EmbeddedMigrations = embed_migrations!("tests/fixtures/tenant_v2");

#[derive(Parser)]
struct App {
    #[command(subcommand)]
    command: Command,
}

struct Ran {
    outcome: Outcome,
    out: String,
    err: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("{e}: {:?}", self.out))
    }

    /// A failure writes nothing on stdout and exactly one line on stderr.
    fn assert_failed(&self, needle: &str) {
        assert_eq!(self.outcome, Outcome::Failed, "stdout: {}", self.out);
        assert!(self.out.is_empty(), "stdout: {}", self.out);
        assert!(self.err.starts_with("error: "), "{}", self.err);
        assert_eq!(self.err.lines().count(), 1, "{}", self.err);
        assert!(self.err.contains(needle), "{:?} lacks {needle:?}", self.err);
    }

    /// A run stopped at the first failing tenant: the outcome is a failure, stdout
    /// reports per tenant and has every `out_needles`, stderr is one line starting with
    /// `err_start` that points to `--keep-going`.
    fn assert_stopped(&self, out_needles: &[&str], err_start: &str) {
        assert_eq!(self.outcome, Outcome::Failed, "stdout: {}", self.out);
        for needle in out_needles {
            assert!(self.out.contains(needle), "{:?} lacks {needle:?}", self.out);
        }
        assert_eq!(self.err.lines().count(), 1, "{}", self.err);
        assert!(self.err.starts_with(err_start), "{}", self.err);
        assert!(self.err.contains("--keep-going"), "{}", self.err);
    }
}

/// Runs one command line (words split on spaces).
fn sh(router: &SyncRouter, line: &str) -> Ran {
    words(router, &line.split(' ').collect::<Vec<_>>())
}

/// Runs one command line given word by word.
fn words(router: &SyncRouter, words: &[&str]) -> Ran {
    let app = App::try_parse_from(std::iter::once("app").chain(words.iter().copied()))
        .unwrap_or_else(|e| panic!("{words:?}: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = cli::run(&app.command, router, &mut out, &mut err);
    Ran {
        outcome,
        out: String::from_utf8(out).expect("utf-8 stdout"),
        err: String::from_utf8(err).expect("utf-8 stderr"),
    }
}

fn ok(router: &SyncRouter, line: &str) -> Ran {
    let ran = sh(router, line);
    assert_eq!(ran.outcome, Outcome::Success, "{line}: {}", ran.err);
    assert!(ran.err.is_empty(), "{line}: {}", ran.err);
    ran
}

fn schema_exists(router: &SyncRouter, name: &str) -> bool {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    router
        .pool()
        .with_public(|c| {
            diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS found",
            )
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result::<Found>(c)
            .map_err(Error::from)
        })
        .expect("query pg_namespace")
        .found
}

#[test]
fn tenant_lifecycle() {
    let db = TestDb::new();
    let router = db.router(2);

    assert_eq!(ok(&router, "tenant list").out, "No tenants.\n");
    assert_eq!(
        ok(&router, "tenant list --json").json(),
        Value::Array(vec![])
    );

    let created = ok(&router, "tenant create demo1 --domain demo1.localhost");
    assert_eq!(
        created.out,
        "Created tenant `demo1` in schema `demo1` (domains: demo1.localhost).\n"
    );
    let created = ok(&router, "tenant create Demo2 --schema d2 --json").json();
    assert_eq!(created["name"], "Demo2");
    assert_eq!(created["schema_name"], "d2");
    assert_eq!(created["domains"], serde_json::json!([]));
    assert!(created["created_at"].is_string());
    assert!(schema_exists(&router, "d2"));

    sh(&router, "tenant create DEMO1").assert_failed("schema `demo1` already exists");
    sh(&router, "tenant create DEMO1 --schema other")
        .assert_failed("a tenant named `DEMO1` already exists");
    sh(&router, "tenant create public").assert_failed("invalid tenant name");
    sh(&router, "tenant create x --schema pg_x").assert_failed("invalid schema name `pg_x`");
    sh(&router, "tenant create x --domain bad_domain!").assert_failed("invalid domain");

    let list = ok(&router, "tenant list").out;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("NAME") && lines[0].contains("SCHEMA"));
    assert!(lines[1].starts_with("demo1") && lines[1].ends_with("demo1.localhost"));
    assert!(lines[2].starts_with("Demo2") && lines[2].contains(" d2 "));

    let renamed = ok(&router, "tenant rename DEMO1 first");
    assert_eq!(
        renamed.out,
        "Renamed tenant `DEMO1` to `first`; schema `demo1` unchanged.\n"
    );
    sh(&router, "tenant rename ghost other").assert_failed("unknown tenant `ghost`");
    sh(&router, "tenant rename first demo2").assert_failed("already exists");

    let added = ok(&router, "domain add first www.First.test --primary --json").json();
    assert_eq!(
        added,
        serde_json::json!({"domain": "www.first.test", "tenant": "first", "is_primary": true})
    );
    assert_eq!(
        ok(&router, "domain add demo2 demo2.test").out,
        "Added domain `demo2.test` to tenant `Demo2`.\n"
    );
    sh(&router, "domain add demo2 demo1.localhost").assert_failed("already registered");
    sh(&router, "domain add ghost g.test").assert_failed("unknown tenant `ghost`");
    sh(&router, "domain add first a:b").assert_failed("invalid domain");

    let listed = ok(&router, "tenant list --json").json();
    assert_eq!(listed[0]["name"], "Demo2");
    assert_eq!(listed[1]["name"], "first");
    assert_eq!(
        listed[1]["domains"],
        serde_json::json!(["www.first.test", "demo1.localhost"]),
        "primary first"
    );

    assert_eq!(
        ok(&router, "domain remove www.first.test").out,
        "Removed domain `www.first.test`.\n"
    );
    sh(&router, "domain remove www.first.test").assert_failed("unknown domain");

    let deleted = ok(&router, "tenant delete first").out;
    assert!(deleted.contains("kept"), "{deleted}");
    assert!(schema_exists(&router, "demo1"));
    let deleted = ok(&router, "tenant delete demo2 --drop-schema --json").json();
    assert_eq!(
        deleted,
        serde_json::json!({"name": "Demo2", "schema_name": "d2", "schema_dropped": true})
    );
    assert!(!schema_exists(&router, "d2"));
    sh(&router, "tenant delete demo2").assert_failed("unknown tenant `demo2`");
    assert_eq!(ok(&router, "tenant list").out, "No tenants.\n");
}

#[test]
fn migrate_and_check() {
    let db = TestDb::new();
    let router = SyncRouter::new(db.pool(4), TENANT);

    sh(&router, "tenant list").assert_failed("did you forget to run `migrate`?");
    let check = sh(&router, "migrate --check");
    assert_eq!(check.outcome, Outcome::Pending);
    assert!(check.out.starts_with("public: 6 pending"), "{}", check.out);
    let json = sh(&router, "migrate --check --json").json();
    assert_eq!(json["pending"], true);
    assert_eq!(json["shared_pending"].as_array().map(Vec::len), Some(6));

    let first = ok(&router, "migrate").out;
    assert!(
        first.starts_with("Shared: applied 6 migration(s)"),
        "{first}"
    );
    assert!(first.contains("Tenants: 0 migrated"), "{first}");
    assert_eq!(ok(&router, "migrate --check").out, "Nothing pending.\n");
    let again = ok(&router, "migrate").out;
    assert!(again.starts_with("Shared: up to date."), "{again}");

    for name in ["a", "b", "c"] {
        ok(&router, &format!("tenant create {name}"));
    }
    // A new tenant migration arrives.
    let v2 = SyncRouter::new(db.pool(4), TENANT_V2);
    let check = sh(&v2, "migrate --check --json");
    assert_eq!(check.outcome, Outcome::Pending);
    let value = check.json();
    assert_eq!(value["pending"], true);
    assert_eq!(value["shared_pending"], serde_json::json!([]));
    assert_eq!(value["tenants"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        value["tenants"][0]["pending"],
        serde_json::json!(["20240101000002"])
    );
    let only_a = sh(&v2, "migrate --check --tenant A");
    assert_eq!(only_a.outcome, Outcome::Pending);
    assert_eq!(
        only_a.out,
        "a (a): 1 pending: 20240101000002\nPending: 0 shared migration(s), 1 tenant(s) to migrate.\n"
    );
    sh(&v2, "migrate --check --tenant ghost").assert_failed("unknown tenant `ghost`");
    sh(&v2, "migrate --tenant ghost").assert_failed("unknown tenant `ghost`");

    let partial = ok(&v2, "migrate --skip c --jobs 2").out;
    assert!(partial.contains("  a (a): 20240101000002\n"), "{partial}");
    assert!(partial.contains("  b (b): 20240101000002\n"), "{partial}");
    assert!(
        partial.contains("Tenants: 2 migrated (2 migration(s)), 0 up to date"),
        "{partial}"
    );
    let rest = sh(&v2, "migrate --check");
    assert_eq!(rest.outcome, Outcome::Pending);
    assert!(rest.out.starts_with("c (c): 1 pending"), "{}", rest.out);

    let last = ok(&v2, "migrate --json").json();
    assert_eq!(last["migrated"], 1);
    assert_eq!(last["failed"], 0);
    assert_eq!(last["up_to_date"], 2);
    assert_eq!(last["tenants"][0]["tenant"], "c");
    assert_eq!(
        last["tenants"][0]["applied"],
        serde_json::json!(["20240101000002"])
    );
    assert_eq!(ok(&v2, "migrate --check").out, "Nothing pending.\n");
}

#[test]
fn migrate_failures_and_keep_going() {
    let db = TestDb::new();
    let router = db.router(2);
    ok(&router, "tenant create a");
    ok(&router, "tenant create b");

    let broken = SyncRouter::new(db.pool(2), BROKEN);
    let stopped = sh(&broken, "migrate");
    stopped.assert_stopped(
        &["FAILED a (a)", "Tenants: 0 migrated"],
        "error: migration failed for 1 of 1 tenant(s); first: tenant `a`",
    );

    let all = sh(&broken, "migrate --keep-going --json");
    assert_eq!(all.outcome, Outcome::Failed);
    assert_eq!(all.json()["failed"], 2);
    assert!(
        all.err.starts_with("error: migration failed for 2 of 2"),
        "{}",
        all.err
    );

    // Both tenants were rolled back whole: the good set still finds nothing pending.
    assert_eq!(ok(&router, "migrate --check").out, "Nothing pending.\n");
}

/// `tenant sql` with the SQL as one word, then `rest` split on spaces.
fn sql(router: &SyncRouter, statement: &str, rest: &str) -> Ran {
    let mut line = vec!["tenant", "sql", statement];
    line.extend(rest.split(' ').filter(|w| !w.is_empty()));
    words(router, &line)
}

/// The human output without its last line (the timing).
fn without_timing(out: &str) -> String {
    let mut lines: Vec<&str> = out.lines().collect();
    let last = lines.pop().unwrap_or_default();
    assert!(
        last.starts_with("Tenants: ") && last.ends_with(" s."),
        "{out}"
    );
    lines.iter().map(|l| format!("{l}\n")).collect()
}

const ADD_HOTEL: &str =
    "INSERT INTO hotels (name, location, description) VALUES ('H', 'here', 'nice');";

#[test]
fn tenant_sql_prints_rows_or_rows_affected_per_tenant() {
    let db = TestDb::new();
    let router = db.router(3);
    for name in ["a", "B", "c"] {
        ok(&router, &format!("tenant create {name}"));
    }
    let added = sql(&router, ADD_HOTEL, "--skip c");
    assert_eq!(added.outcome, Outcome::Success, "{}", added.err);
    assert_eq!(
        without_timing(&added.out),
        "a (a): 1 row(s) affected\nB (b): 1 row(s) affected\n"
    );

    let query = "SELECT name, 1.50::numeric AS price, 12345678901234567890 AS big, \
                 current_schema() AS schema FROM hotels -- trailing comment";
    let rows = sql(&router, query, "--jobs 2");
    assert_eq!(rows.outcome, Outcome::Success, "{}", rows.err);
    assert_eq!(
        without_timing(&rows.out),
        "a (a): 1 row(s)\n  \
         {\"name\":\"H\",\"price\":1.50,\"big\":12345678901234567890,\"schema\":\"a\"}\n\
         B (b): 1 row(s)\n  \
         {\"name\":\"H\",\"price\":1.50,\"big\":12345678901234567890,\"schema\":\"b\"}\n\
         c (c): 0 row(s)\n"
    );
    assert!(
        rows.out.contains("\nTenants: 3 succeeded, 0 failed, in "),
        "{}",
        rows.out
    );

    // JSON keeps PostgreSQL's rendering byte for byte: column order and numeric digits.
    let json = sql(&router, query, "--tenant A --json");
    assert_eq!(json.outcome, Outcome::Success, "{}", json.err);
    assert!(
        json.out
            .contains(r#"{"name":"H","price":1.50,"big":12345678901234567890,"schema":"a"}"#),
        "{}",
        json.out
    );
    let value = json.json();
    assert_eq!(value["succeeded"], 1);
    assert_eq!(value["tenants"][0]["tenant"], "a");
    assert_eq!(value["tenants"][0]["rows_affected"], Value::Null);
    assert_eq!(value["tenants"][0]["rows"][0]["name"], "H");

    // RETURNING gives rows; an UPDATE without it gives a count.
    let returning = sql(
        &router,
        "UPDATE hotels SET name = 'R' RETURNING name",
        "--tenant b --json",
    )
    .json();
    assert_eq!(
        returning["tenants"][0]["rows"],
        serde_json::json!([{"name": "R"}])
    );
    let counted = sql(&router, "UPDATE hotels SET name = 'S'", "--json").json();
    let affected: Vec<&Value> = counted["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["rows_affected"])
        .collect();
    assert_eq!(
        affected,
        [
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(0)
        ]
    );
    assert_eq!(counted["tenants"][0]["rows"], Value::Null);

    // DDL runs too (a count of 0).
    let ddl = sql(&router, "CREATE TABLE notes (body text)", "--tenant c");
    assert_eq!(without_timing(&ddl.out), "c (c): 0 row(s) affected\n");
}

#[test]
fn tenant_sql_is_all_or_nothing_per_tenant_and_stops_unless_keep_going() {
    let db = TestDb::new();
    let router = db.router(2);
    for name in ["a", "b", "c"] {
        ok(&router, &format!("tenant create {name}"));
    }
    assert_eq!(
        sql(&router, "CREATE TABLE extra (x int)", "--tenant b").outcome,
        Outcome::Success
    );
    let dir = std::env::temp_dir().join(format!("dt-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("two.sql");
    std::fs::write(
        &file,
        format!("{ADD_HOTEL}\nINSERT INTO extra VALUES (1);\n"),
    )
    .unwrap();
    let file = file.to_str().unwrap();

    // `a` fails on its second statement: its first is rolled back; nothing else runs.
    let stopped = words(&router, &["tenant", "sql", "--file", file]);
    assert!(stopped.out.starts_with("FAILED a (a): "), "{}", stopped.out);
    stopped.assert_stopped(
        &[
            "relation \"extra\" does not exist",
            "Tenants: 0 succeeded, 1 failed, 2 not run, in ",
        ],
        "error: the SQL failed in 1 of 1 tenant(s); first: tenant `a`",
    );
    assert!(
        stopped.err.contains("2 tenant(s) not run"),
        "{}",
        stopped.err
    );

    let all = words(
        &router,
        &["tenant", "sql", "--file", file, "--keep-going", "--json"],
    );
    assert_eq!(all.outcome, Outcome::Failed);
    let value = all.json();
    assert_eq!(
        (value["succeeded"].clone(), value["failed"].clone()),
        (1.into(), 2.into())
    );
    assert_eq!(value["tenants"][1]["tenant"], "b");
    assert_eq!(value["tenants"][1]["error"], Value::Null);
    std::fs::remove_dir_all(&dir).unwrap();

    let counts = sql(&router, "SELECT count(*) AS n FROM hotels", "--json").json();
    let n: Vec<&Value> = counts["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["rows"][0]["n"])
        .collect();
    assert_eq!(
        n,
        [&Value::from(0), &Value::from(1), &Value::from(0)],
        "only b's file ran"
    );

    // SQL that ends the tenant's transaction is a failure, not a success.
    let commit = sql(&router, "COMMIT", "--tenant a");
    assert_eq!(commit.outcome, Outcome::Failed);
    assert!(
        commit.out.contains("ended the transaction"),
        "{}",
        commit.out
    );
}

#[test]
fn tenant_sql_refuses_what_it_cannot_run() {
    let db = TestDb::new();
    let router = db.router(2);
    ok(&router, "tenant create a");
    sql(&router, "SELECT 1", "--tenant ghost").assert_failed("unknown tenant `ghost`");
    sql(&router, " ; ", "").assert_failed("the SQL is empty");
    words(&router, &["tenant", "sql", "--file", "/nonexistent/x.sql"])
        .assert_failed("cannot read the SQL file `/nonexistent/x.sql`");
    let typo = sql(&router, "SELEC 1", "");
    assert_eq!(typo.outcome, Outcome::Failed);
    assert!(
        typo.out
            .contains("FAILED a (a): query failed: syntax error"),
        "{}",
        typo.out
    );
    let two = sql(&router, "SELECT 1; SELECT 2", "");
    assert!(
        two.out.contains("cannot insert multiple commands"),
        "{}",
        two.out
    );
    assert_eq!(
        ok(&router, "tenant delete a --drop-schema").outcome,
        Outcome::Success
    );
    assert_eq!(sql(&router, "SELECT 1", "").out, "No tenants.\n");
}

#[test]
fn tenant_commands_run_the_routers_hooks() {
    let db = TestDb::new();
    let hooks = TenantHooks::new()
        .after_create(|conn, _| {
            diesel::sql_query(ADD_HOTEL).execute(conn)?;
            Ok(())
        })
        .before_delete(|_, tenant, drop_schema| match drop_schema {
            true => Err(Refusal::new(format!("{} keeps its data", tenant.name)).into()),
            false => Ok(()),
        })
        .after_rename(|_, tenant, old| match tenant.name.as_str() {
            "forbidden" => Err(format!("{old} may not be called that").into()),
            _ => Ok(()),
        });
    let router = db.router(2).hooks(hooks);
    ok(&router, "tenant create seeded");
    let n = sql(&router, "SELECT count(*) AS n FROM hotels", "--json").json();
    assert_eq!(n["tenants"][0]["rows"][0]["n"], 1, "seeded by the hook");
    sh(&router, "tenant delete seeded --drop-schema")
        .assert_failed("the before-delete hook failed for tenant `seeded`: seeded keeps its data");
    sh(&router, "tenant rename seeded forbidden").assert_failed(
        "the after-rename hook failed for tenant `forbidden`: seeded may not be called that",
    );
    ok(&router, "tenant rename seeded kept");
    ok(&router, "tenant delete kept");
    assert!(schema_exists(&router, "seeded"));
}

#[test]
fn tenant_roles_backfills_every_tenant() {
    use diesel_tenancy::{TenantPool, TenantRoles};
    let db = TestDb::new();
    let plain = db.router(2);
    ok(&plain, "tenant create demo1");
    ok(&plain, "tenant create demo2");
    sh(&plain, "tenant roles").assert_failed("tenant roles are off for this pool");

    let pool = TenantPool::builder()
        .max_size(2)
        .min_idle(Some(0))
        .tenant_roles(TenantRoles::new())
        .build(&db.url)
        .unwrap();
    let router = SyncRouter::new(pool, TENANT);
    let group = db.role_group();
    let first = ok(&router, "tenant roles").out;
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(
        lines[0],
        format!("Created role `{group}_demo1` for tenant `demo1`.")
    );
    assert_eq!(
        lines[1],
        format!("Created role `{group}_demo2` for tenant `demo2`.")
    );
    assert!(
        lines[2].starts_with("Tenant roles: 2 created, 0 already there, 0 failed"),
        "{first}"
    );
    let again = ok(&router, "tenant roles --json").json();
    assert_eq!(again["created"], 0);
    assert_eq!(again["failed"], 0);
    assert_eq!(again["tenants"][1]["role"], format!("{group}_demo2"));
    assert_eq!(again["tenants"][1]["error"], Value::Null);
    // A tenant whose schema is gone is reported, and the command fails; the others are done.
    router
        .pool()
        .with_public(|c| {
            Ok::<_, Error>(diesel::connection::SimpleConnection::batch_execute(
                c,
                "DROP SCHEMA demo2 CASCADE",
            )?)
        })
        .unwrap();
    let ran = sh(&router, "tenant roles");
    assert_eq!(ran.outcome, Outcome::Failed);
    assert!(
        ran.out
            .contains("tenant `demo2`: failed: schema `demo2` does not exist"),
        "{}",
        ran.out
    );
    assert!(
        ran.err.contains("tenant roles failed for 1 of 2 tenant(s)"),
        "{}",
        ran.err
    );
}

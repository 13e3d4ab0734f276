//! Migrators racing in two processes apply every migration exactly once.

mod common;

use std::process::Command;

use common::TestDb;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::{MigrateOptions, NewTenant, SyncRouter, TenantPool};

const TENANT_V2: EmbeddedMigrations = embed_migrations!("tests/fixtures/tenant_v2");
const CHILD_ENV: &str = "DT_MIGRATE_CHILD_URL";
const TENANTS: usize = 12;

/// In a child process: migrate shared and all tenants to v2, print what was applied.
fn child(url: &str) {
    let pool = TenantPool::builder().max_size(3).build(url).unwrap();
    let router = SyncRouter::new(pool, TENANT_V2);
    let shared = router.migrate_shared().unwrap();
    let report = router
        .migrate_all(&MigrateOptions {
            jobs: 3,
            ..MigrateOptions::default()
        })
        .unwrap();
    assert_eq!(report.failures().count(), 0);
    println!(
        "APPLIED shared={} tenant={}",
        shared.len(),
        report.applied_count()
    );
}

fn applied(stdout: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("APPLIED "))
        .unwrap_or_else(|| panic!("child printed no result: {text}"));
    let num = |key: &str| -> usize {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad line {line}"))
    };
    (num("shared="), num("tenant="))
}

#[test]
fn migrators_in_two_processes_apply_each_migration_once() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        return child(&url);
    }
    let db = TestDb::new();
    // Tenants at v1: the v2 migration is pending for each.
    let v1 = db.router(2);
    for i in 0..TENANTS {
        v1.create_tenant(&NewTenant::named(format!("race{i}")))
            .unwrap();
    }
    let me = std::env::current_exe().unwrap();
    // Both children start before either is waited for.
    let spawned: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&me)
                .args([
                    "migrators_in_two_processes_apply_each_migration_once",
                    "--exact",
                    "--nocapture",
                ])
                .env(CHILD_ENV, &db.url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = (0, 0);
    for child in spawned {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (s, t) = applied(&out.stdout);
        total = (total.0 + s, total.1 + t);
    }
    assert_eq!(
        total,
        (0, TENANTS),
        "shared already applied; each tenant's v2 applied once"
    );
    let v2 = SyncRouter::new(db.pool(1), TENANT_V2);
    assert!(!v2.status().unwrap().has_pending());
}

#[test]
fn shared_migrations_racing_in_threads_apply_once() {
    let db = TestDb::new();
    let expected = SyncRouter::new(db.pool(1), common::TENANT)
        .status()
        .unwrap()
        .shared_pending
        .len();
    assert!(expected >= 2, "the crate's shared set: registry and spares");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let pool = TenantPool::builder().max_size(1).build(&url).unwrap();
                SyncRouter::new(pool, common::TENANT)
                    .migrate_shared()
                    .unwrap()
                    .len()
            })
        })
        .collect();
    let applied: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(applied, expected, "each shared migration ran once in all");
}

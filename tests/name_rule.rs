//! The tenant-name rule against a registry written by the previous rule: stored keys the
//! rule computes differently are reported by the status (`migrate --check`) and re-keyed
//! by `migrate`; names the rule makes equal are reported and make `migrate` fail, naming
//! them, with nothing changed.

mod common;

use common::TestDb;
use diesel::connection::SimpleConnection;
use diesel_tenancy::{NewTenant, RegistryCache, TenantRegistry};

/// Registers `name` with `key` as the previous release would have stored it.
fn old_row(router: &diesel_tenancy::SyncRouter, name: &str, key: &str, schema: &str) {
    router
        .pool()
        .with_public(|c| {
            c.batch_execute(&format!(
                "CREATE SCHEMA {schema}; INSERT INTO public.tenants (name, name_key, schema_name) \
                 VALUES ('{name}', '{key}', '{schema}')"
            ))
            .map_err(diesel_tenancy::Error::from)
        })
        .unwrap();
}

#[test]
fn stale_keys_are_reported_then_rekeyed() {
    let db = TestDb::new();
    let router = db.router(2);
    // The previous rule did not fold the rounded Cyrillic ve (U+1C80) to в.
    old_row(&router, "ᲀeta", "ᲀeta", "s1");
    let status = router.status().unwrap();
    assert_eq!(status.name_keys.stale, vec!["ᲀeta".to_owned()]);
    assert!(status.name_keys.collisions.is_empty());
    assert!(status.name_keys.needs_work());
    router.migrate_shared().unwrap();
    let status = router.status().unwrap();
    assert!(!status.name_keys.needs_work(), "{:?}", status.name_keys);
    let found = router
        .pool()
        .with_public(|c| TenantRegistry::find_by_name(c, "вETA"))
        .unwrap();
    assert_eq!(found.map(|t| t.name).as_deref(), Some("ᲀeta"));
    // A new tenant spelled with в is the same name now.
    assert!(router.create_tenant(&NewTenant::named("вeta")).is_err());
}

#[test]
fn names_the_rule_makes_equal_are_reported_and_never_merged() {
    let db = TestDb::new();
    let router = db.router(2);
    old_row(&router, "ᲀx", "ᲀx", "s1");
    old_row(&router, "вx", "вx", "s2");
    let status = router.status().unwrap();
    assert_eq!(
        status.name_keys.collisions,
        vec![vec!["ᲀx".to_owned(), "вx".to_owned()]]
    );
    let e = router.migrate_shared().unwrap_err().to_string();
    assert!(e.contains("`ᲀx`, `вx`") && e.contains("rename"), "{e}");
    // Nothing changed: both keep their stored keys, and the cache finds neither by the
    // shared key rather than guessing.
    let status = router.status().unwrap();
    assert_eq!(status.name_keys.stale, vec!["ᲀx".to_owned()]);
    let cache = RegistryCache::start(&db.url).unwrap();
    assert!(cache.find_by_name("вx").is_none());
    // After a rename, migrate goes through.
    router
        .pool()
        .with_public(|c| {
            c.batch_execute(
                "UPDATE public.tenants SET name = 'ᲀy', name_key = 'ᲀy' WHERE name = 'ᲀx'",
            )
            .map_err(diesel_tenancy::Error::from)
        })
        .unwrap();
    router.migrate_shared().unwrap();
    assert!(!router.status().unwrap().name_keys.needs_work());
}

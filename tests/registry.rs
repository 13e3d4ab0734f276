//! The tenant registry: lookups by name, domain and schema, domains, renames, conflicts, and
//! a database whose registry is missing.

mod common;

use common::hotels::{exec, schema, schema_exists};
use common::{TestDb, TENANT};
use diesel_tenancy::{DomainName, Error, NewTenant, SyncRouter, TenantRegistry};

#[test]
fn registry_operations() {
    let db = TestDb::new();
    let router = db.router(2);
    let acme = router
        .create_tenant(&NewTenant {
            name: "Acme".into(),
            mode: None,
            schema_name: Some(schema("acme_corp")),
            domains: vec![
                DomainName::new("acme.example.com").unwrap(),
                DomainName::new("www.acme.example.com").unwrap(),
            ],
        })
        .unwrap();
    let pool = router.pool();
    pool.with_public(|c| {
        assert_eq!(TenantRegistry::get_by_name(c, " ACME ")?, acme);
        let by_domain =
            TenantRegistry::find_by_domain(c, &DomainName::from_host("ACME.example.com:8000")?)?;
        assert_eq!(by_domain.as_ref(), Some(&acme));
        let domains = TenantRegistry::domains_of(c, &acme)?;
        assert_eq!(domains.len(), 2);
        assert!(domains[0].is_primary && domains[0].domain == "acme.example.com");
        let www = DomainName::new("www.acme.example.com")?;
        TenantRegistry::set_primary(c, &www)?;
        let domains = TenantRegistry::domains_of(c, &acme)?;
        assert_eq!(domains.iter().filter(|d| d.is_primary).count(), 1);
        assert_eq!(domains[0].domain, "www.acme.example.com");
        assert!(matches!(
            TenantRegistry::add_domain(c, "acme", &DomainName::new("ACME.example.com")?, false),
            Err(Error::DomainExists { .. })
        ));
        TenantRegistry::remove_domain(c, &www)?;
        assert!(matches!(
            TenantRegistry::remove_domain(c, &www),
            Err(Error::UnknownDomain { .. })
        ));
        let renamed = TenantRegistry::rename(c, "acme", "Acme Inc")?;
        assert_eq!(renamed.schema_name, acme.schema_name);
        assert!(TenantRegistry::find_by_name(c, "acme")?.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(matches!(
        router.create_tenant(&NewTenant::named("ACME INC")),
        Err(Error::TenantExists { .. })
    ));
    // Two names that derive the same schema: the second is refused, never merged.
    router.create_tenant(&NewTenant::named("Beta!")).unwrap();
    let err = router
        .create_tenant(&NewTenant::named("beta?"))
        .unwrap_err();
    assert!(matches!(err, Error::SchemaExists { .. }), "{err}");
    // A stray schema with no registry row is not adopted either.
    pool.with_public(|c| exec(c, "CREATE SCHEMA stray"))
        .unwrap();
    let err = router
        .create_tenant(&NewTenant::named("Stray"))
        .unwrap_err();
    assert!(matches!(err, Error::SchemaExists { .. }), "{err}");
    assert!(matches!(
        router.create_tenant(&NewTenant::named("public")),
        Err(Error::InvalidTenantName { .. })
    ));

    let deleted = router.delete_tenant("acme inc", false).unwrap();
    assert!(
        schema_exists(pool, deleted.schema_name.as_str()),
        "kept by default"
    );
    router.delete_tenant("beta!", true).unwrap();
    assert!(!schema_exists(pool, "beta_"));
    assert!(matches!(
        router.delete_tenant("beta!", true),
        Err(Error::UnknownTenant { .. })
    ));
    let left = pool.with_public(TenantRegistry::list).unwrap();
    assert!(left.is_empty());
}

/// A database the shared migrations never reached has no registry: every registry
/// function fails with the typed error (the CLI prints its hint from it), and the error
/// goes once the shared set is applied.
#[test]
fn a_missing_registry_is_a_typed_error() {
    let db = TestDb::new();
    let router = SyncRouter::new(db.pool(1), TENANT);
    let pool = router.pool();
    let missing = pool.with_public(TenantRegistry::list).unwrap_err();
    assert!(
        matches!(
            missing,
            Error::RegistryMissing {
                table: "public.tenants"
            }
        ),
        "{missing:?}"
    );
    assert!(matches!(
        router.create_tenant(&NewTenant::named("acme")),
        Err(Error::RegistryMissing { .. })
    ));
    router.migrate_shared().unwrap();
    assert_eq!(pool.with_public(TenantRegistry::list).unwrap(), vec![]);
}

/// Listings show each tenant with its domains, the primary first and then by name, in
/// the shape the CLI and the example's admin API print.
#[test]
fn tenants_are_listed_with_their_domains_primary_first() {
    let db = TestDb::new();
    let router = db.router(2);
    let domain = |d: &str| DomainName::new(d).unwrap();
    router
        .create_tenant(&NewTenant {
            name: "Zeta".into(),
            domains: vec![
                domain("c.zeta.test"),
                domain("a.zeta.test"),
                domain("b.zeta.test"),
            ],
            ..NewTenant::default()
        })
        .unwrap();
    router.create_tenant(&NewTenant::named("alpha")).unwrap();
    let listed = router
        .pool()
        .with_public(|c| {
            TenantRegistry::set_primary(c, &domain("b.zeta.test"))?;
            TenantRegistry::list_with_domains(c)
        })
        .unwrap();
    let shown: Vec<(&str, Vec<&str>)> = listed
        .iter()
        .map(|l| (l.tenant.name.as_str(), l.domain_names()))
        .collect();
    assert_eq!(
        shown,
        [
            ("alpha", vec![]),
            ("Zeta", vec!["b.zeta.test", "a.zeta.test", "c.zeta.test"])
        ]
    );
    let json = serde_json::to_value(&listed[1]).unwrap();
    assert_eq!(json["schema_name"], "zeta");
    assert_eq!(json["domains"][0], "b.zeta.test");
    assert!(json["created_at"].as_str().unwrap().ends_with("+00:00"));
}

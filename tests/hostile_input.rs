//! Hostile input never panics, never reaches SQL as raw text, and always gives a typed
//! error. The property tests run `PROPTEST_CASES` cases each (256 by default; the long run
//! in RELIABILITY.md used 1,000,000).

mod common;

use common::TestDb;
use diesel_tenancy::{
    validate_tenant_name, DomainName, Error, NewTenant, SchemaName, TenantRegistry,
};
use proptest::prelude::*;

/// Strings an attacker would send: injection, quotes, NUL, control and unicode
/// characters, very long values, and arbitrary text.
fn hostile() -> impl Strategy<Value = String> {
    let samples = prop::sample::select(vec![
        "'; DROP SCHEMA public CASCADE; --".to_owned(),
        "\"; DROP TABLE tenants; --".to_owned(),
        "x\" OR \"1\"=\"1".to_owned(),
        "public".to_owned(),
        "PUBLIC ".to_owned(),
        "pg_catalog".to_owned(),
        "information_schema".to_owned(),
        "a\0b".to_owned(),
        "\u{202e}evil\u{202d}".to_owned(),
        "😀".repeat(40),
        "a".repeat(63),
        "a".repeat(64),
        "x".repeat(10 * 1024),
        "$$; SELECT pg_sleep(10); $$".to_owned(),
        "demo1\r\nX-Injected: 1".to_owned(),
        "..".to_owned(),
        "localhost:99999999999999999999".to_owned(),
        "[::1]:80".to_owned(),
    ]);
    prop_oneof![
        3 => any::<String>(),
        2 => "[a-zA-Z0-9_ .:'\";\\-]{0,80}",
        1 => samples,
        1 => prop::collection::vec(any::<char>(), 9_000..11_000)
            .prop_map(|c| c.into_iter().collect::<String>()),
        1 => prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn schema_chars_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && !s.starts_with("pg_")
        && !["public", "information_schema", "pg_catalog", "pg_toast"].contains(&s)
}

proptest! {
    #[test]
    fn schema_names_are_valid_or_a_typed_error(input in hostile()) {
        match SchemaName::new(&input) {
            Ok(name) => prop_assert!(schema_chars_ok(name.as_str())),
            Err(Error::InvalidSchemaName { name, reason }) => {
                prop_assert!(!reason.is_empty());
                prop_assert!(name.len() < 400, "error keeps input short");
                prop_assert!(!schema_chars_ok(&input));
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn derived_schema_names_are_always_valid(input in hostile()) {
        match SchemaName::derive_from(&input) {
            Ok(name) => {
                prop_assert!(schema_chars_ok(name.as_str()), "{name}");
                prop_assert_eq!(SchemaName::new(name.as_str()).ok(), Some(name));
            }
            Err(Error::InvalidTenantName { .. }) => prop_assert!(input.trim().is_empty()),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn tenant_names_are_clean_or_a_typed_error(input in hostile()) {
        match validate_tenant_name(&input) {
            Ok(name) => {
                prop_assert_eq!(name, input.trim());
                prop_assert!(!name.is_empty() && name.len() <= 255);
                prop_assert!(!name.chars().any(char::is_control));
                prop_assert!(!name.eq_ignore_ascii_case("public"));
            }
            Err(Error::InvalidTenantName { name, .. }) => prop_assert!(name.len() < 400),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn hosts_normalize_or_give_a_typed_error(input in hostile()) {
        match DomainName::from_host(&input) {
            Ok(d) => {
                let s = d.as_str();
                prop_assert!(!s.is_empty() && s.len() <= 253);
                prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'));
            }
            Err(Error::InvalidDomain { domain, .. }) => prop_assert!(domain.len() < 400),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}

/// Hostile names go to the database only as bind parameters or as validated schema
/// names: they are stored verbatim, looked up as data, and change nothing else.
#[test]
fn hostile_names_reach_sql_only_as_data() {
    let db = TestDb::new();
    let router = db.router(2);
    let names = [
        "x'); DROP TABLE public.tenants; --",
        "Robert\"; DROP SCHEMA public CASCADE; --",
        "$$ || pg_sleep(5) || $$",
        "Ünïcödé 🏨",
    ];
    for name in names {
        let t = router.create_tenant(&NewTenant::named(name)).unwrap();
        assert_eq!(t.name, name);
        assert!(SchemaName::new(t.schema_name.as_str()).is_ok());
    }
    let pool = router.pool();
    pool.with_public(|c| {
        for name in names {
            assert_eq!(TenantRegistry::get_by_name(c, name)?.name, name);
        }
        for probe in ["' OR '1'='1", "x' OR name IS NOT NULL --", "%", "_"] {
            assert!(TenantRegistry::find_by_name(c, probe)?.is_none(), "{probe}");
        }
        assert!(matches!(
            TenantRegistry::get_by_name(c, "nope'; --"),
            Err(Error::UnknownTenant { .. })
        ));
        assert_eq!(TenantRegistry::list(c)?.len(), names.len());
        Ok::<_, Error>(())
    })
    .unwrap();
    for bad in ["a\0b", "public", "", &"n".repeat(300)] {
        assert!(matches!(
            router.create_tenant(&NewTenant::named(bad)),
            Err(Error::InvalidTenantName { .. })
        ));
    }
    let status = router.status().unwrap();
    assert_eq!(status.tenants.len(), names.len());
    assert!(!status.has_pending());
}

mod resolution {
    use std::sync::Arc;

    use diesel_tenancy::resolve::{
        parse_name, RequestParts, Resolution, ResolverChain, TenantLookup,
    };
    use diesel_tenancy::{DomainName, SchemaName, Tenant};
    use proptest::prelude::*;

    struct Req {
        header: Option<Vec<u8>>,
        host: Option<String>,
    }

    impl RequestParts for Req {
        fn header_values(&self, name: &str) -> Vec<&[u8]> {
            match (&self.header, &self.host) {
                (Some(v), _) if name.eq_ignore_ascii_case("tenant-header") => vec![v.as_slice()],
                (_, Some(h)) if name.eq_ignore_ascii_case("host") => vec![h.as_bytes()],
                _ => vec![],
            }
        }
        fn path(&self) -> &str {
            "/hotels/"
        }
    }

    struct One(Arc<Tenant>);

    impl TenantLookup for One {
        fn by_name(&self, name: &str) -> Option<Arc<Tenant>> {
            name.eq_ignore_ascii_case("demo1").then(|| self.0.clone())
        }
        fn by_domain(&self, domain: &DomainName) -> Option<Arc<Tenant>> {
            (domain.as_str() == "demo1.example.com").then(|| self.0.clone())
        }
        fn by_id(&self, id: i64) -> Option<Arc<Tenant>> {
            (id == 1).then(|| self.0.clone())
        }
    }

    fn demo1() -> One {
        One(Arc::new(Tenant::new(
            1,
            "demo1",
            SchemaName::new("demo1").unwrap(),
            chrono::Utc::now(),
        )))
    }

    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            2 => super::hostile().prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..400),
            1 => prop::sample::select(vec![
                b"demo1".to_vec(),
                b" DEMO1 ".to_vec(),
                b"public".to_vec(),
                b"demo1\0".to_vec(),
                vec![0xff, 0xfe, b'd'],
                b"demo1' OR '1'='1".to_vec(),
            ]),
        ]
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => super::hostile(),
            1 => prop::sample::select(vec![
                "demo1.example.com".to_owned(),
                "DEMO1.example.com.:8000".to_owned(),
                "demo1.example.com:http".to_owned(),
                "[::1]:8000".to_owned(),
            ]),
        ]
    }

    proptest! {
        #[test]
        fn resolution_never_panics_and_only_matches_what_is_registered(
            header in prop::option::of(header_bytes()),
            host in prop::option::of(host()),
        ) {
            let chain = ResolverChain::new().header("Tenant-Header").host();
            let req = Req { header: header.clone(), host: host.clone() };
            let parsed = header.as_deref().map(|h| parse_name(h, "Tenant-Header"));
            match chain.resolve(&req, &demo1()) {
                Resolution::Tenant(t) => {
                    prop_assert_eq!(t.id, 1);
                    let by_header = header.as_deref()
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .is_some_and(|h| h.trim().eq_ignore_ascii_case("demo1"));
                    let by_host = host.as_deref()
                        .and_then(|h| DomainName::from_host(h).ok())
                        .is_some_and(|d| d.as_str() == "demo1.example.com");
                    // An absent or blank header names nothing; then the host decides.
                    let blank = header.as_deref().is_none_or(|h| {
                        std::str::from_utf8(h).is_ok_and(|t| t.trim().is_empty())
                    });
                    prop_assert!(by_header || (blank && by_host));
                }
                Resolution::Malformed(m) => {
                    // The header is unreadable, or the Host is not a valid authority.
                    prop_assert!(
                        matches!(parsed, Some(Err(_))) || m.detail.starts_with("malformed Host: "),
                        "{}", m.detail
                    );
                    prop_assert!(m.detail.len() < 200, "detail stays short");
                }
                Resolution::Public => prop_assert!(matches!(
                    parsed,
                    Some(Ok(diesel_tenancy::resolve::TenantRef::Public))
                )),
                Resolution::Unknown(_) | Resolution::Missing => {}
                _ => {}
            }
            if let Some(h) = &header {
                if std::str::from_utf8(h).is_err() {
                    prop_assert!(parse_name(h, "Tenant-Header").is_err());
                }
            }
        }
    }
}

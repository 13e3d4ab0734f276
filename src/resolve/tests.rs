//! Unit tests of the resolution chain, against an in-memory registry.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use super::*;
use crate::registry::Domain;
use crate::schema_name::SchemaName;

#[derive(Default)]
struct FakeRequest {
    headers: Vec<(&'static str, Vec<u8>)>,
    authority: Option<&'static str>,
    peer: Option<IpAddr>,
    path: &'static str,
}

impl FakeRequest {
    fn header(mut self, name: &'static str, value: &[u8]) -> Self {
        self.headers.push((name, value.to_vec()));
        self
    }
    fn host(self, host: &'static str) -> Self {
        self.header("Host", host.as_bytes())
    }
    fn authority(mut self, authority: &'static str) -> Self {
        self.authority = Some(authority);
        self
    }
    fn peer(mut self, peer: &str) -> Self {
        self.peer = Some(peer.parse().unwrap());
        self
    }
    fn path(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }
}

impl RequestParts for FakeRequest {
    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn authority(&self) -> Option<Cow<'_, str>> {
        self.authority.map(Cow::Borrowed)
    }
    fn peer(&self) -> Option<IpAddr> {
        self.peer
    }
    fn path(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            self.path
        }
    }
}

fn registry() -> RegistrySnapshot {
    let tenant = |id, name: &str| Tenant {
        id,
        name: name.into(),
        schema_name: SchemaName::derive_from(name).unwrap(),
        created_at: chrono::Utc::now(),
        mode: crate::TenantMode::Schema,
    };
    RegistrySnapshot::new(
        vec![tenant(1, "demo1"), tenant(2, "Demo 2")],
        vec![Domain {
            id: 1,
            domain: "demo1.example.com".into(),
            tenant_id: 1,
            is_primary: true,
        }],
    )
}

fn name_of(r: Resolution) -> String {
    match r {
        Resolution::Tenant(t) => t.name.clone(),
        Resolution::Public => "<public>".into(),
        Resolution::Missing => "<missing>".into(),
        Resolution::Unknown(r) => format!("<unknown {r}>"),
        Resolution::Malformed(m) => format!("<malformed: {}>", m.detail),
    }
}

fn resolve(chain: &ResolverChain, req: &FakeRequest) -> String {
    name_of(chain.resolve(req, &registry()))
}

#[test]
fn header_is_trimmed_and_case_insensitive() {
    let chain = ResolverChain::default();
    let req = |v: &[u8]| FakeRequest::default().header("tenant-header", v);
    assert_eq!(resolve(&chain, &req(b"demo1")), "demo1");
    assert_eq!(resolve(&chain, &req(b"  DEMO1\t")), "demo1");
    assert_eq!(resolve(&chain, &req(b"demo 2")), "Demo 2");
    for public in [&b"public"[..], b"PUBLIC", b" Public "] {
        assert_eq!(resolve(&chain, &req(public)), "<public>");
    }
}

#[test]
fn unknown_header_does_not_fall_through_to_the_host() {
    let chain = ResolverChain::default();
    let req = FakeRequest::default()
        .header("Tenant-Header", b"nope")
        .host("demo1.example.com");
    assert_eq!(resolve(&chain, &req), "<unknown tenant `nope`>");
}

#[test]
fn malformed_headers() {
    let chain = ResolverChain::default();
    let req = |v: &[u8]| FakeRequest::default().header("Tenant-Header", v);
    let long = "a".repeat(256);
    for (value, why) in [
        (&b"de\x01mo"[..], "control characters"),
        (b"a\tb", "control characters"),
        (b"\xff\xfe", "not valid UTF-8"),
        (long.as_bytes(), "longer than 255 bytes"),
    ] {
        let got = resolve(&chain, &req(value));
        assert!(
            got.starts_with("<malformed: malformed Tenant-Header: "),
            "{got}"
        );
        assert!(got.contains(why), "{got}");
    }
    assert_eq!(
        resolve(&chain, &req("a".repeat(255).as_bytes())),
        format!("<unknown tenant `{}…`>", "a".repeat(80))
    );
}

#[test]
fn blank_or_repeated_headers() {
    let chain = ResolverChain::default();
    let blank = FakeRequest::default().header("Tenant-Header", b"  ");
    assert_eq!(resolve(&chain, &blank), "<missing>");
    // Even the same value twice: a proxy may read the other line.
    let same = FakeRequest::default()
        .header("Tenant-Header", b"demo1")
        .header("Tenant-Header", b"DEMO1");
    assert!(resolve(&chain, &same).contains("more than once"));
    let one_blank = FakeRequest::default()
        .header("Tenant-Header", b"demo1")
        .header("tenant-header", b" ");
    assert!(resolve(&chain, &one_blank).contains("more than once"));
    let different = FakeRequest::default()
        .header("Tenant-Header", b"demo1")
        .header("Tenant-Header", b"demo 2");
    assert!(resolve(&chain, &different).contains("more than once"));
}

#[test]
fn host_matches_registered_domains_only() {
    let chain = ResolverChain::default();
    let host = |h| resolve(&chain, &FakeRequest::default().host(h));
    assert_eq!(host("demo1.example.com"), "demo1");
    assert_eq!(host("Demo1.Example.COM.:8000"), "demo1");
    assert_eq!(host("other.example.com"), "<missing>");
    assert_eq!(host("[::1]:8000"), "<missing>");
    assert_eq!(resolve(&chain, &FakeRequest::default()), "<missing>");
}

#[test]
fn a_custom_header_name_replaces_the_default() {
    let chain = ResolverChain::new().header("X-Tenant");
    let req = FakeRequest::default()
        .header("Tenant-Header", b"demo1")
        .header("x-tenant", b"demo 2");
    assert_eq!(resolve(&chain, &req), "Demo 2");
}

#[test]
fn path_prefix_is_off_by_default() {
    let req = FakeRequest::default().path("/t/demo1/hotels");
    assert_eq!(resolve(&ResolverChain::default(), &req), "<missing>");
    let chain = ResolverChain::default().path_prefix("t");
    assert_eq!(resolve(&chain, &req), "demo1");
    let encoded = FakeRequest::default().path("/t/Demo%202/hotels");
    assert_eq!(resolve(&chain, &encoded), "Demo 2");
    let public = FakeRequest::default().path("/t/PUBLIC");
    assert_eq!(resolve(&chain, &public), "<public>");
    let bad = FakeRequest::default().path("/t/a%0Ab/x");
    assert!(resolve(&chain, &bad).contains("tenant in the path: contains control"));
    let unknown = FakeRequest::default().path("/t/zzz/");
    assert_eq!(resolve(&chain, &unknown), "<unknown tenant `zzz`>");
}

#[test]
fn rules_run_in_order() {
    let chain = ResolverChain::new().host().header(DEFAULT_HEADER);
    let req = FakeRequest::default()
        .header("Tenant-Header", b"demo 2")
        .host("demo1.example.com");
    assert_eq!(resolve(&chain, &req), "demo1");
    assert_eq!(resolve(&ResolverChain::default(), &req), "Demo 2");
    assert_eq!(resolve(&ResolverChain::new(), &req), "<missing>");
}

struct Claim;

impl TenantResolver for Claim {
    fn resolve(&self, request: &dyn RequestParts) -> Result<Option<TenantRef>, Malformed> {
        let Some(token) = request.header_values("Authorization").first().copied() else {
            return Ok(None);
        };
        match token.strip_prefix(b"Bearer tenant-id=") {
            Some(id) => std::str::from_utf8(id)
                .ok()
                .and_then(|id| id.parse().ok())
                .map(|id| Some(TenantRef::Id(id)))
                .ok_or(Malformed {
                    detail: "bad token".into(),
                }),
            None => Ok(None),
        }
    }
}

#[test]
fn custom_resolvers() {
    let chain = ResolverChain::default().custom(Claim);
    let auth = |v: &[u8]| FakeRequest::default().header("Authorization", v);
    assert_eq!(resolve(&chain, &auth(b"Bearer tenant-id=2")), "Demo 2");
    assert_eq!(
        resolve(&chain, &auth(b"Bearer tenant-id=7")),
        "<unknown tenant id 7>"
    );
    assert_eq!(
        resolve(&chain, &auth(b"Bearer tenant-id=x")),
        "<malformed: bad token>"
    );
    assert_eq!(resolve(&chain, &auth(b"Basic x")), "<missing>");
}

#[test]
fn split_and_decode() {
    assert_eq!(split_path_prefix("", "/acme/x"), Some(("acme", "/x")));
    assert_eq!(
        split_path_prefix("api/t", "/api/t/acme/x"),
        Some(("acme", "/x"))
    );
    assert_eq!(split_path_prefix("t", "/t"), None);
    assert_eq!(split_path_prefix("t", "/t/"), None);
    assert_eq!(percent_decode("a%20b%zz%4"), b"a b%zz%4");
    assert_eq!(percent_decode("%C3%A9"), "é".as_bytes());
}

#[test]
fn lookups_through_a_plain_map() {
    struct Map(HashMap<String, Arc<Tenant>>);
    impl TenantLookup for Map {
        fn by_name(&self, name: &str) -> Option<Arc<Tenant>> {
            self.0.get(name).cloned()
        }
        fn by_domain(&self, _: &DomainName) -> Option<Arc<Tenant>> {
            None
        }
        fn by_id(&self, _: i64) -> Option<Arc<Tenant>> {
            None
        }
    }
    let map = Map(registry()
        .tenants()
        .iter()
        .map(|t| (t.name.clone(), Arc::clone(t)))
        .collect());
    let req = FakeRequest::default().header("Tenant-Header", b"demo1");
    assert_eq!(
        name_of(ResolverChain::default().resolve(&req, &map)),
        "demo1"
    );
}

#[test]
fn the_chain_says_which_header_and_whether_the_host_count() {
    let default = ResolverChain::default();
    assert_eq!(default.header_name(), Some(DEFAULT_HEADER));
    assert!(default.has_host());
    let custom = ResolverChain::new()
        .path_prefix("t")
        .header("X-A")
        .header("X-B");
    assert_eq!(custom.header_name(), Some("X-A"));
    assert!(!custom.has_host());
    assert_eq!(ResolverChain::new().header_name(), None);
}

#[test]
fn one_reading_of_the_host() {
    let chain = ResolverChain::default();
    let two = FakeRequest::default()
        .host("demo1.example.com")
        .host("other.example.com");
    assert_eq!(
        resolve(&chain, &two),
        "<malformed: malformed Host: sent more than once>"
    );
    // Refused whichever rule would decide: the header names a tenant here.
    let with_header = FakeRequest::default()
        .header("Tenant-Header", b"demo1")
        .host("demo1.example.com")
        .host("demo1.example.com");
    assert!(resolve(&chain, &with_header).contains("Host: sent more than once"));
    for bad in [
        "demo2.example.com@demo1.example.com",
        "demo1.example.com:http",
        "demo1.example.com:99999",
        "demo1.example.com demo2",
    ] {
        let got = resolve(&chain, &FakeRequest::default().host(bad));
        assert!(
            got.starts_with("<malformed: malformed Host: "),
            "{bad}: {got}"
        );
    }
    // Valid but not a domain: names nothing.
    for nothing in ["127.0.0.1:8000", "[::1]:8000", "a_b.example", ""] {
        assert_eq!(
            resolve(&chain, &FakeRequest::default().host(nothing)),
            "<missing>"
        );
    }
}

#[test]
fn the_target_authority_wins_over_host() {
    let chain = ResolverChain::default();
    let req = FakeRequest::default()
        .authority("demo1.example.com")
        .host("other.example.com");
    assert_eq!(resolve(&chain, &req), "demo1");
    let bad = FakeRequest::default().authority("x@demo1.example.com");
    assert!(resolve(&chain, &bad).contains("request target authority"));
}

#[test]
fn forwarded_hosts_only_from_trusted_proxies() {
    let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
    let chain = ResolverChain::default().trusted_proxies(proxies);
    let via = |peer: &str| {
        FakeRequest::default()
            .peer(peer)
            .host("other.example.com")
            .header("X-Forwarded-Host", b"evil.example.com, demo1.example.com")
    };
    assert_eq!(resolve(&chain, &via("10.1.1.1")), "demo1");
    assert_eq!(resolve(&chain, &via("192.0.2.1")), "<missing>");
    assert_eq!(
        resolve(&ResolverChain::default(), &via("10.1.1.1")),
        "<missing>"
    );
    let forwarded = FakeRequest::default()
        .peer("10.0.0.1")
        .header("Forwarded", b"for=192.0.2.1;host=evil.example.com")
        .header(
            "Forwarded",
            br#"for=192.0.2.2;host="Demo1.Example.com:443""#,
        );
    assert_eq!(resolve(&chain, &forwarded), "demo1");
    let disagree = FakeRequest::default()
        .peer("10.0.0.1")
        .header("Forwarded", b"host=demo1.example.com")
        .header("X-Forwarded-Host", b"other.example.com");
    assert!(resolve(&chain, &disagree).contains("name different hosts"));
    // A trusted proxy that forwards no host: the Host header decides.
    let plain = FakeRequest::default()
        .peer("10.0.0.1")
        .host("demo1.example.com");
    assert_eq!(resolve(&chain, &plain), "demo1");
}

#[test]
fn decided_again_against_a_newer_registry() {
    let chain = ResolverChain::default();
    let req = FakeRequest::default().header("Tenant-Header", b"demo1");
    let named = chain.named(&req).unwrap();
    assert_eq!(name_of(chain.find_first(&named, &registry())), "demo1");
    assert_eq!(
        name_of(chain.find_first(&named, &RegistrySnapshot::default())),
        "<unknown tenant `demo1`>"
    );
}

#[test]
fn a_request_names_a_tenant_by_the_registrys_own_shape_rule() {
    let long = "é".repeat(128); // 256 bytes, 128 characters
    let edge = "x".repeat(crate::MAX_TENANT_NAME_LEN);
    for name in [
        "",
        " \u{2003} ",
        "a\u{1}b",
        "a\u{85}b",
        long.as_str(),
        edge.as_str(),
        " Demo1 ",
    ] {
        let registry = crate::validate_tenant_name(name).is_ok();
        let request = parse_name(name.as_bytes(), "Tenant-Header").is_ok();
        assert_eq!(request, registry, "{name:?}");
    }
    // The repertoire is the registry's business: such a name is looked up and not found.
    assert!(crate::validate_tenant_name("a\u{200B}b").is_err());
    assert!(parse_name("a\u{200B}b".as_bytes(), "Tenant-Header").is_ok());
    assert_eq!(
        parse_name(" Public\u{2003}".as_bytes(), "h"),
        Ok(TenantRef::Public)
    );
}

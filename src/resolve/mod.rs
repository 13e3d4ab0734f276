//! Turning a request's header, host or path into a tenant: pure, framework-free logic;
//! and what the web faces (features `rocket`, `axum`) share on top of it: deciding a
//! request's route against the registry cache within its bound (`routing.rs`), the
//! [`CurrentTenant`] they hand out, and the statuses and details of their errors
//! (`http_error.rs`).
//!
//! A [`ResolverChain`] tries its rules in order; the default chain is the tenant header,
//! then the host. The first rule that *names* something decides: a name that is not
//! registered is [`Resolution::Unknown`], it does not fall through to the next rule. The
//! host rule is the exception: every request has a host, so a host that is not a
//! registered domain simply names nothing.
//!
//! # One reading of each request
//!
//! Before any rule decides, the chain refuses ([`Resolution::Malformed`], a 400) every
//! request that could be read two ways, whichever rule would have decided:
//!
//! - a tenant header sent more than once (even with the same value);
//! - more than one `Host` field line, or a `Host` that is not `uri-host [":" port]`
//!   (user info such as `demo1@demo2`, a port that is not a number up to 65535, other
//!   characters);
//! - from a trusted proxy, `Forwarded: host=` and `X-Forwarded-Host` naming two hosts.
//!
//! The host is then, in this order: the host a trusted proxy forwarded
//! ([`ResolverChain::trusted_proxies`]; those headers are ignored from any other peer),
//! the request target's authority ([`RequestParts::authority`]: an absolute-form target
//! or HTTP/2's `:authority`, which RFC 9112 §3.2.2 puts before `Host`), the `Host`
//! header.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::error::shorten;
use crate::registry::DomainName;
use crate::registry::RegistrySnapshot;
use crate::registry::Tenant;
use crate::registry::{names_public, read_name, NameShape};

/// The header the default chain reads the tenant name from.
pub const DEFAULT_HEADER: &str = "Tenant-Header";

mod current_tenant;
mod host;
mod http_error;
#[cfg(any(feature = "rocket", feature = "axum"))]
pub(crate) mod routing;
mod trusted_proxies;

pub use current_tenant::CurrentTenant;
#[cfg(any(feature = "rocket", feature = "axum"))]
pub(crate) use http_error::HttpError;
pub use http_error::{REGISTRY_UNAVAILABLE, TENANT_NOT_FOUND};
pub use trusted_proxies::{InvalidProxy, TrustedProxies};

/// The parts of an HTTP request the resolvers look at.
///
/// Implemented by the Rocket integration for `rocket::Request`; implement it to use the
/// resolvers with another framework.
pub trait RequestParts {
    /// Every field line of the header `name` (compared case-insensitively), as raw bytes,
    /// in the order received. Repeated lines must stay separate: the chain refuses a
    /// repeated `Host` or tenant header.
    fn header_values(&self, name: &str) -> Vec<&[u8]>;
    /// The request target's authority when the framework has it apart from the `Host`
    /// header: the authority of an absolute-form target (`GET http://a.example/ HTTP/1.1`)
    /// or HTTP/2's `:authority`. It wins over `Host`. Defaults to `None`.
    fn authority(&self) -> Option<Cow<'_, str>> {
        None
    }
    /// The address of the peer that sent the request (the TCP peer, not a header), for
    /// [`TrustedProxies`]. Defaults to `None`: no forwarded host is read.
    fn peer(&self) -> Option<IpAddr> {
        None
    }
    /// The request path as received, still percent-encoded, without the query.
    fn path(&self) -> &str;
}

/// What a request names, before it is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantRef {
    /// `public`, in any case: the public scope.
    Public,
    /// A tenant name, trimmed; matched case-insensitively.
    Name(String),
    /// A domain registered for a tenant.
    Domain(DomainName),
    /// A tenant's registry id (e.g. from a token claim).
    Id(i64),
}

impl fmt::Display for TenantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantRef::Public => f.write_str("public"),
            TenantRef::Name(n) => write!(f, "tenant `{}`", shorten(n)),
            TenantRef::Domain(d) => write!(f, "domain `{d}`"),
            TenantRef::Id(id) => write!(f, "tenant id {id}"),
        }
    }
}

/// A request carried a tenant reference that cannot be read; answer 400 with `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Malformed {
    /// A message for the client, e.g. "malformed Tenant-Header: contains control characters".
    pub detail: String,
}

impl Malformed {
    /// A refusal whose `detail` the client is sent (with 400).
    pub fn new(detail: impl Into<String>) -> Self {
        Malformed {
            detail: detail.into(),
        }
    }
}

/// A custom resolution rule, e.g. reading a tenant claim from a token.
///
/// Return `Ok(None)` when the request names no tenant by this rule, so the chain goes on.
pub trait TenantResolver: Send + Sync + 'static {
    /// What `request` names, if anything.
    fn resolve(&self, request: &dyn RequestParts) -> Result<Option<TenantRef>, Malformed>;
}

/// Where resolved names are looked up: the in-memory registry [`RegistrySnapshot`], or a test map.
pub trait TenantLookup {
    /// The tenant with this name, compared case-insensitively.
    fn by_name(&self, name: &str) -> Option<Arc<Tenant>>;
    /// The tenant reached at this domain.
    fn by_domain(&self, domain: &DomainName) -> Option<Arc<Tenant>>;
    /// The tenant with this registry id.
    fn by_id(&self, id: i64) -> Option<Arc<Tenant>>;
}

impl TenantLookup for RegistrySnapshot {
    fn by_name(&self, name: &str) -> Option<Arc<Tenant>> {
        RegistrySnapshot::by_name(self, name)
    }
    fn by_domain(&self, domain: &DomainName) -> Option<Arc<Tenant>> {
        RegistrySnapshot::by_domain(self, domain)
    }
    fn by_id(&self, id: i64) -> Option<Arc<Tenant>> {
        RegistrySnapshot::by_id(self, id)
    }
}

/// The outcome of resolving one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Resolution {
    /// A registered tenant.
    Tenant(Arc<Tenant>),
    /// The request explicitly named `public`.
    Public,
    /// Nothing named a tenant.
    Missing,
    /// The request named a tenant that is not registered.
    Unknown(TenantRef),
    /// The request carried an unreadable tenant reference.
    Malformed(Malformed),
}

enum Rule {
    Header(String),
    Host,
    PathPrefix(String),
    Custom(Arc<dyn TenantResolver>),
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Header(h) => write!(f, "Header({h:?})"),
            Rule::Host => f.write_str("Host"),
            Rule::PathPrefix(p) => write!(f, "PathPrefix({p:?})"),
            Rule::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// An ordered list of resolution rules.
///
/// The default chain is the `Tenant-Header` header, then the host (the precedence
/// documented in the [module docs](self), with the rules that refuse ambiguous requests).
///
/// ```
/// use diesel_tenancy::resolve::ResolverChain;
///
/// let chain = ResolverChain::new().header("X-Tenant").host().path_prefix("t");
/// assert_eq!(format!("{chain:?}"), r#"ResolverChain([Header("X-Tenant"), Host, PathPrefix("t")], TrustedProxies([]))"#);
/// ```
#[derive(Debug)]
pub struct ResolverChain(Vec<Rule>, TrustedProxies);

impl Default for ResolverChain {
    fn default() -> Self {
        ResolverChain::new().header(DEFAULT_HEADER).host()
    }
}

impl ResolverChain {
    /// A chain with no rules: every request resolves to [`Resolution::Missing`].
    pub fn new() -> Self {
        ResolverChain(Vec::new(), TrustedProxies::none())
    }

    /// Reads the tenant name from the header `name`; the header sent more than once is
    /// a malformed request.
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.0.push(Rule::Header(name.into()));
        self
    }

    /// Matches the request's host (port stripped, lowercased, trailing dot removed)
    /// against the registered domains; see the [module docs](self) for which host that is.
    pub fn host(mut self) -> Self {
        self.0.push(Rule::Host);
        self
    }

    /// The proxies whose forwarded host (`Forwarded: host=`, `X-Forwarded-Host`) the host
    /// rule reads, for requests whose peer is one of them. Defaults to none: those headers
    /// are ignored.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.1 = proxies;
        self
    }

    /// Reads the tenant name from the first path segment after `/<prefix>/`,
    /// e.g. `/t/acme/hotels` with prefix `t`.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.0.push(Rule::PathPrefix(prefix.into()));
        self
    }

    /// Adds a custom rule.
    pub fn custom(mut self, resolver: impl TenantResolver) -> Self {
        self.0.push(Rule::Custom(Arc::new(resolver)));
        self
    }

    /// Adds a shared custom rule.
    pub fn custom_shared(mut self, resolver: Arc<dyn TenantResolver>) -> Self {
        self.0.push(Rule::Custom(resolver));
        self
    }

    /// The name of the first header rule, if the chain has one.
    pub fn header_name(&self) -> Option<&str> {
        self.0.iter().find_map(|rule| match rule {
            Rule::Header(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether the chain matches the request's host.
    pub fn has_host(&self) -> bool {
        self.0.iter().any(|rule| matches!(rule, Rule::Host))
    }

    /// Resolves `request` against `lookup`.
    pub fn resolve(&self, request: &dyn RequestParts, lookup: &dyn TenantLookup) -> Resolution {
        match self.named(request) {
            Ok(named) => self.find_first(&named, lookup),
            Err(malformed) => Resolution::Malformed(malformed),
        }
    }

    /// What each rule names, in order, after refusing a request that has two readings.
    /// Looking the names up ([`ResolverChain::find_first`]) is a separate step, so a
    /// request can be decided again against a newer registry.
    pub fn named(&self, request: &dyn RequestParts) -> Result<Vec<TenantRef>, Malformed> {
        let mut host = None;
        for rule in &self.0 {
            match rule {
                Rule::Header(name) if request.header_values(name).len() > 1 => {
                    return Err(Malformed {
                        detail: format!("malformed {name}: sent more than once"),
                    })
                }
                Rule::Host if host.is_none() => host = Some(host::request_host(request, &self.1)?),
                _ => {}
            }
        }
        let mut named = Vec::new();
        for rule in &self.0 {
            let found = match rule {
                Rule::Host => host
                    .clone()
                    .flatten()
                    .and_then(|h| h.domain())
                    .map(TenantRef::Domain),
                other => other.named(request)?,
            };
            named.extend(found);
        }
        Ok(named)
    }

    /// Decides what `named` (from [`ResolverChain::named`]) resolves to in `lookup`: the
    /// first reference found decides; an unknown name stops the search, an unknown domain
    /// does not.
    pub fn find_first(&self, named: &[TenantRef], lookup: &dyn TenantLookup) -> Resolution {
        for named in named {
            match find(lookup, named) {
                Some(found) => return found,
                None if matches!(named, TenantRef::Domain(_)) => continue,
                None => return Resolution::Unknown(named.clone()),
            }
        }
        Resolution::Missing
    }
}

fn find(lookup: &dyn TenantLookup, named: &TenantRef) -> Option<Resolution> {
    let tenant = match named {
        TenantRef::Public => return Some(Resolution::Public),
        TenantRef::Name(n) => lookup.by_name(n),
        TenantRef::Domain(d) => lookup.by_domain(d),
        TenantRef::Id(id) => lookup.by_id(*id),
    };
    tenant.map(Resolution::Tenant)
}

impl Rule {
    fn named(&self, request: &dyn RequestParts) -> Result<Option<TenantRef>, Malformed> {
        match self {
            Rule::Header(name) => from_header(name, &request.header_values(name)),
            // Read once for the whole chain by `ResolverChain::named`.
            Rule::Host => Ok(None),
            Rule::PathPrefix(prefix) => match split_path_prefix(prefix, request.path()) {
                Some((segment, _)) => {
                    parse_name(&percent_decode(segment), "tenant in the path").map(Some)
                }
                None => Ok(None),
            },
            Rule::Custom(resolver) => resolver.resolve(request),
        }
    }
}

/// Reads a tenant header's one value (the chain refused repeated ones): absent or blank
/// names nothing.
fn from_header(name: &str, values: &[&[u8]]) -> Result<Option<TenantRef>, Malformed> {
    match values {
        [] => Ok(None),
        [value] if value.iter().all(u8::is_ascii_whitespace) => Ok(None),
        [value] => parse_name(value, name).map(Some),
        _ => Err(Malformed {
            detail: format!("malformed {name}: sent more than once"),
        }),
    }
}

/// Reads a tenant name taken from a request: UTF-8, then the shape every tenant name has
/// (trimmed, not empty, no control characters, at most
/// [`MAX_TENANT_NAME_LEN`](crate::MAX_TENANT_NAME_LEN) bytes: the registry's own rule).
/// `public` in any case is [`TenantRef::Public`]. Whether the name is registered is the
/// lookup's question.
///
/// ```
/// use diesel_tenancy::resolve::{parse_name, TenantRef};
///
/// assert_eq!(parse_name(b" Demo1 ", "Tenant-Header").unwrap(), TenantRef::Name("Demo1".into()));
/// assert_eq!(parse_name(b"PUBLIC", "Tenant-Header").unwrap(), TenantRef::Public);
/// assert!(parse_name(b"a\tb", "Tenant-Header").is_err());
/// assert!(parse_name(&[0xff, 0xfe], "Tenant-Header").is_err());
/// ```
pub fn parse_name(raw: &[u8], source: &str) -> Result<TenantRef, Malformed> {
    let bad = |why: &str| Malformed {
        detail: format!("malformed {source}: {why}"),
    };
    let text = std::str::from_utf8(raw).map_err(|_| bad("not valid UTF-8"))?;
    let name = read_name(text).map_err(|shape| {
        bad(match shape {
            NameShape::Empty => "empty",
            NameShape::Control => "contains control characters",
            NameShape::TooLong => "longer than 255 bytes",
        })
    })?;
    if names_public(name) {
        return Ok(TenantRef::Public);
    }
    Ok(TenantRef::Name(name.to_owned()))
}

/// Splits `/<prefix>/<segment>/rest` into the raw (still percent-encoded) `segment` and
/// the remaining path, which starts with `/`. `prefix` may be given with or without slashes.
///
/// ```
/// use diesel_tenancy::resolve::split_path_prefix;
///
/// assert_eq!(split_path_prefix("t", "/t/acme/hotels/1"), Some(("acme", "/hotels/1")));
/// assert_eq!(split_path_prefix("/t/", "/t/acme"), Some(("acme", "/")));
/// assert_eq!(split_path_prefix("t", "/tx/acme"), None);
/// assert_eq!(split_path_prefix("t", "/t//x"), None);
/// ```
pub fn split_path_prefix<'p>(prefix: &str, path: &'p str) -> Option<(&'p str, &'p str)> {
    let prefix = prefix.trim_matches('/');
    let rest = path.strip_prefix('/')?;
    let rest = if prefix.is_empty() {
        rest
    } else {
        rest.strip_prefix(prefix)?.strip_prefix('/')?
    };
    let (segment, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if segment.is_empty() {
        return None;
    }
    Some((segment, tail))
}

/// Decodes `%XX` escapes; a malformed escape is kept as is.
fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some(&[b'%', high, low]) => hex_pair(high, low),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let high = char::from(high).to_digit(16)?;
    let low = char::from(low).to_digit(16)?;
    u8::try_from(high * 16 + low).ok()
}

#[cfg(test)]
mod tests;

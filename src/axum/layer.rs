//! [`TenancyLayer`]: the tower layer that resolves every request's tenant.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};

use ::axum::extract::ConnectInfo;
use ::axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, Uri};
use tower::{Layer, Service};

use super::decision::Decision;
use super::tenancy::Tenancy;
use crate::resolve::RequestParts;

/// A tower layer that decides each request's tenant by the [`Tenancy`]'s resolver chain
/// against its registry cache (no database round trip while the change feed is healthy;
/// see [`Tenancy::fresh_snapshot`]) and stores the decision in the request's extensions
/// for the extractors. It reads the request as it arrives; the lookup runs once, when
/// the first extractor asks for the tenant (as Rocket's guards do), so a route that needs
/// no tenant never waits for the registry.
///
/// By default the layer lets every request through and the extractors answer for it:
/// [`CurrentTenant`](crate::resolve::CurrentTenant) and [`TenantDb`](super::TenantDb)
/// reject with 400 `{"detail":"Tenant not found"}`, a malformed request's 400, or the
/// registry's 503, while [`PublicDb`](super::PublicDb) routes still work.
/// With [`require_tenant`](Self::require_tenant) the layer answers those itself.
#[derive(Debug, Clone)]
pub struct TenancyLayer {
    tenancy: Tenancy,
    require_tenant: bool,
}

impl TenancyLayer {
    /// The layer of `tenancy`; also [`Tenancy::layer`].
    pub fn new(tenancy: Tenancy) -> Self {
        TenancyLayer {
            tenancy,
            require_tenant: false,
        }
    }

    /// Answers every request that does not resolve to a tenant with the error
    /// [`CurrentTenant`](crate::resolve::CurrentTenant) would reject it with, before the
    /// inner service sees it. Defaults to off.
    pub fn require_tenant(mut self) -> Self {
        self.require_tenant = true;
        self
    }
}

impl<S> Layer<S> for TenancyLayer {
    type Service = TenancyService<S>;

    fn layer(&self, inner: S) -> TenancyService<S> {
        TenancyService {
            inner,
            tenancy: self.tenancy.clone(),
            require_tenant: self.require_tenant,
        }
    }
}

/// The service [`TenancyLayer`] wraps around an inner one.
#[derive(Debug, Clone)]
pub struct TenancyService<S> {
    inner: S,
    tenancy: Tenancy,
    require_tenant: bool,
}

impl<S, B> Service<Request<B>> for TenancyService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let named = self.tenancy.named(&HttpRequest::of(&request));
        let decision = Decision::new(self.tenancy.clone(), named);
        let require_tenant = self.require_tenant;
        // The clone that was driven to readiness serves this request.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            if require_tenant {
                if let Err(e) = decision.current_tenant().await {
                    return Ok(e.into_response());
                }
            }
            request.extensions_mut().insert(decision);
            inner.call(request).await
        })
    }
}

/// The parts of an `http` request the resolvers read.
struct HttpRequest<'a> {
    headers: &'a HeaderMap,
    uri: &'a Uri,
    peer: Option<IpAddr>,
}

impl<'a> HttpRequest<'a> {
    fn of<B>(request: &'a Request<B>) -> Self {
        HttpRequest {
            headers: request.headers(),
            uri: request.uri(),
            peer: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        }
    }
}

impl RequestParts for HttpRequest<'_> {
    /// Header names are case-insensitive; a name that is not a valid header name has
    /// no values. Values are the raw bytes (a value that is not UTF-8 is a malformed
    /// tenant header, 400).
    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| value.as_bytes())
            .collect()
    }

    /// An absolute-form target's authority, or HTTP/2's `:authority` (hyper puts both in
    /// the request URI).
    fn authority(&self) -> Option<Cow<'_, str>> {
        self.uri.authority().map(|a| Cow::Borrowed(a.as_str()))
    }

    /// The TCP peer, when the server was started with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    fn path(&self) -> &str {
        self.uri.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &[u8])], uri: &str) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("a request")
    }

    #[test]
    fn header_values_are_case_insensitive_raw_and_kept_apart() {
        let r = request(
            &[("Tenant-Header", b"a"), ("tenant-header", b"\xffb")],
            "/hotels?x=1",
        );
        let parts = HttpRequest::of(&r);
        assert_eq!(
            parts.header_values("TENANT-HEADER"),
            [&b"a"[..], &b"\xffb"[..]]
        );
        assert!(parts.header_values("not a header name").is_empty());
        assert_eq!(parts.path(), "/hotels");
        assert_eq!(parts.authority(), None);
        assert_eq!(parts.peer(), None);
    }

    #[test]
    fn an_absolute_target_gives_the_authority_and_connect_info_the_peer() {
        let mut r = request(&[("Host", b"b.example")], "http://a.example:8080/hotels");
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
        let parts = HttpRequest::of(&r);
        assert_eq!(parts.authority().as_deref(), Some("a.example:8080"));
        assert_eq!(parts.peer(), Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(parts.path(), "/hotels");
    }
}

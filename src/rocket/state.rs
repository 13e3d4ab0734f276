//! [`Tenancy`]: what the fairing puts into Rocket's managed state.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock, Weak};

use ::rocket::http::uri::Origin;
use ::rocket::Request;

use crate::error::{Error, Result};
use crate::migrate::{NewTenant, SyncRouter};
use crate::pool::TenantPool;
use crate::registry::Tenant;
use crate::registry_cache::RegistryCache;
use crate::resolve::{split_path_prefix, RequestParts, Resolution, ResolverChain};

/// The tenancy of a Rocket application: the router (and its pool), the registry cache
/// and the resolver chain. Managed by [`TenancyFairing`](super::TenancyFairing); reach it
/// with `&State<Tenancy>` or `rocket.state::<Tenancy>()`.
///
/// At shutdown the fairing stops the cache's listener and lets go of the pool: its
/// connections close as soon as the requests still holding one finish, and later
/// requests get 503.
#[derive(Debug)]
pub struct Tenancy {
    live: Arc<RwLock<Option<Live>>>,
    cache: Arc<RegistryCache>,
    chain: ResolverChain,
    public_tenant: bool,
    path_prefix: Option<String>,
}

/// What shutdown lets go of.
#[derive(Debug)]
struct Live {
    router: SyncRouter,
    pool: TenantPool,
}

/// Lets go of a [`Tenancy`]'s pool and stops its registry listener, if the state still
/// exists. Idempotent; blocking (it waits for the listener thread to end).
#[derive(Debug, Clone)]
pub(crate) struct Release {
    live: Weak<RwLock<Option<Live>>>,
    cache: Weak<RegistryCache>,
}

impl Release {
    /// Whether the state it releases is gone (dropped with its Rocket instance).
    pub(crate) fn is_gone(&self) -> bool {
        self.live.strong_count() == 0
    }

    pub(crate) fn run(&self) {
        if let Some(live) = self.live.upgrade() {
            live.write().unwrap_or_else(PoisonError::into_inner).take();
        }
        if let Some(cache) = self.cache.upgrade() {
            cache.stop();
        }
    }
}

impl Tenancy {
    pub(crate) fn new(
        router: SyncRouter,
        cache: RegistryCache,
        chain: ResolverChain,
        path_prefix: Option<String>,
    ) -> Self {
        Tenancy {
            public_tenant: router.is_public_tenant(),
            live: Arc::new(RwLock::new(Some(Live {
                pool: router.pool().clone(),
                router,
            }))),
            cache: Arc::new(cache),
            chain,
            path_prefix,
        }
    }

    /// The sync router (a cheap clone), e.g. to create tenants from a handler on a
    /// blocking thread. Fails with a 503-class error once the server is shutting down.
    pub fn router(&self) -> Result<SyncRouter> {
        self.live(|live| live.router.clone())
    }

    /// The connection pool (a cheap clone); see [`router`](Self::router).
    pub fn pool(&self) -> Result<TenantPool> {
        self.live(|live| live.pool.clone())
    }

    fn live<T>(&self, f: impl FnOnce(&Live) -> T) -> Result<T> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.as_ref().map(f).ok_or_else(|| Error::Unavailable {
            what: "the tenant pool",
            reason: "the server is shutting down".into(),
        })
    }

    /// The in-memory tenant registry.
    pub fn cache(&self) -> &RegistryCache {
        &self.cache
    }

    /// Whether `public` also holds the tenant tables, so tenant routes accept `public`.
    pub fn is_public_tenant(&self) -> bool {
        self.public_tenant
    }

    /// Resolves `request` against the cached registry (no database round trip).
    pub fn resolve(&self, request: &Request<'_>) -> Resolution {
        self.chain.resolve(request, &*self.cache.snapshot())
    }

    /// Creates a tenant (row, schema, migrations) on a blocking thread and reloads the
    /// cache, so the tenant resolves in this process as soon as this returns (if the
    /// listener is reconnecting, as soon as it is back; the tenant is created either way).
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        let router = self.router()?;
        let cache = Arc::clone(&self.cache);
        blocking(move || {
            let tenant = router.create_tenant(&new)?;
            refresh(&cache);
            Ok(tenant)
        })
        .await
    }

    /// Deletes a tenant (and, with `drop_schema`, its schema) on a blocking thread and
    /// reloads the cache.
    pub async fn delete_tenant(&self, name: String, drop_schema: bool) -> Result<Tenant> {
        let router = self.router()?;
        let cache = Arc::clone(&self.cache);
        blocking(move || {
            let tenant = router.delete_tenant(&name, drop_schema)?;
            refresh(&cache);
            Ok(tenant)
        })
        .await
    }

    /// Stops the listener and drops the pool handle; called by the fairing at shutdown.
    pub(crate) async fn shut_down(&self) {
        let release = self.release();
        let stopped = blocking(move || {
            release.run();
            Ok::<(), Error>(())
        });
        if stopped.await.is_err() {
            log::warn!("diesel-tenancy: could not stop the registry listener cleanly");
        }
    }

    /// What shutdown releases, held weakly: it does nothing once this state is gone.
    pub(crate) fn release(&self) -> Release {
        Release {
            live: Arc::downgrade(&self.live),
            cache: Arc::downgrade(&self.cache),
        }
    }

    /// With a path prefix configured, strips `/<prefix>/<tenant>` from the URI before
    /// routing and remembers the original path for the resolver.
    pub(crate) fn rewrite_path(&self, request: &mut Request<'_>) {
        let Some(prefix) = &self.path_prefix else {
            return;
        };
        let original = request.uri().path().as_str().to_owned();
        let Some((_, rest)) = split_path_prefix(prefix, &original) else {
            return;
        };
        let target = match request.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        if let Ok(uri) = Origin::parse_owned(target) {
            request.local_cache(|| OriginalPath(Some(original.clone())));
            request.set_uri(uri);
        }
    }
}

/// Reloads the cache after a change made here; if that fails, the listener still
/// reloads when its connection comes back, so the change itself stands.
fn refresh(cache: &RegistryCache) {
    if let Err(e) = cache.refresh() {
        log::warn!("diesel-tenancy: the registry changed but the cache could not reload yet: {e}");
    }
}

/// Runs blocking work on Rocket's blocking pool; a panic there is re-raised here.
pub(crate) async fn blocking<T, E, F>(f: F) -> std::result::Result<T, E>
where
    F: FnOnce() -> std::result::Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    match ::rocket::tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(E::from(Error::Unavailable {
            what: "the blocking database task",
            reason: "it was cancelled (the server is shutting down)".into(),
        })),
    }
}

/// The path before [`Tenancy::rewrite_path`] stripped the tenant prefix.
struct OriginalPath(Option<String>);

impl RequestParts for Request<'_> {
    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers().get(name).map(str::as_bytes).collect()
    }

    /// Rocket 0.5 keeps only the path and query of the request target: an absolute-form
    /// target's authority is gone before any fairing or guard runs. `Request::host` is the
    /// first `Host` header on HTTP/1 (the chain has checked there is only one, and its
    /// syntax) and `:authority` on HTTP/2.
    fn authority(&self) -> Option<Cow<'_, str>> {
        Request::host(self).map(|host| Cow::Owned(host.to_string()))
    }

    fn peer(&self) -> Option<std::net::IpAddr> {
        self.remote().map(|addr| addr.ip())
    }

    fn path(&self) -> &str {
        match &self.local_cache(|| OriginalPath(None)).0 {
            Some(original) => original,
            None => self.uri().path().as_str(),
        }
    }
}

//! [`Tenancy`]: what the fairing puts into Rocket's managed state.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock, Weak};

use ::rocket::http::uri::Origin;
use ::rocket::Request;

use super::api_error::ApiError;
use crate::error::{Error, Result};
use crate::migrate::{NewTenant, SyncRouter};
use crate::pool::TenantPool;
use crate::registry::Tenant;
use crate::registry::{RegistryCache, RegistrySnapshot};
// Where the guards have always found them; the decision itself is shared with axum.
use crate::resolve::routing::Decider;
pub(crate) use crate::resolve::routing::{blocking, Decided, Routing};
use crate::resolve::{split_path_prefix, RequestParts, Resolution, ResolverChain};
#[cfg(feature = "rocket-async")]
use crate::AsyncTenantPool;

/// Why the async pool is missing, for the launch log and [`Tenancy::async_pool`].
#[cfg(feature = "rocket-async")]
pub(crate) const ASYNC_POOL_OFF: &str = "the async pool is off: set `tenancy.async_pool = true` \
     in Rocket.toml (or ROCKET_TENANCY='{async_pool=true}'), or call \
     TenancyFairing::async_pool(true)";

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
    /// The registry cache, the resolver chain and the fallback reload.
    decider: Decider,
    path_prefix: Option<String>,
}

/// What shutdown lets go of.
#[derive(Debug)]
struct Live {
    router: SyncRouter,
    pool: TenantPool,
    /// The async pool, when the fairing was asked for it.
    #[cfg(feature = "rocket-async")]
    async_pool: Option<AsyncTenantPool>,
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
            decider: Decider::new(Arc::new(cache), chain, router.is_public_tenant()),
            live: Arc::new(RwLock::new(Some(Live {
                pool: router.pool().clone(),
                router,
                #[cfg(feature = "rocket-async")]
                async_pool: None,
            }))),
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

    /// The async pool (a cheap clone), built by the fairing with `tenancy.async_pool`
    /// (or [`TenancyFairing::async_pool`](super::TenancyFairing::async_pool)). Fails with
    /// [`Error::Config`] when it was not asked for, and like [`router`](Self::router) once
    /// the server is shutting down.
    #[cfg(feature = "rocket-async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rocket-async")))]
    pub fn async_pool(&self) -> Result<AsyncTenantPool> {
        self.live(|live| live.async_pool.clone())?
            .ok_or_else(|| Error::Config(ASYNC_POOL_OFF.into()))
    }

    /// Whether the fairing built the async pool (false once the server shut down).
    #[cfg(feature = "rocket-async")]
    pub(crate) fn has_async_pool(&self) -> bool {
        self.live(|live| live.async_pool.is_some()).unwrap_or(false)
    }

    /// Hands the async pool the fairing built to the requests.
    #[cfg(feature = "rocket-async")]
    pub(crate) fn set_async_pool(&self, pool: AsyncTenantPool) {
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = live.as_mut() {
            live.async_pool = Some(pool);
        }
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
        self.decider.cache()
    }

    /// Reloads the registry through the cache's own listener connection, on a blocking
    /// thread (the tenant test clients start from a registry that has their tenant).
    #[cfg(feature = "testing")]
    pub(crate) async fn refresh_listener(&self) -> Result<()> {
        let cache = Arc::clone(self.decider.cache());
        blocking(move || cache.refresh()).await
    }

    /// Whether `public` also holds the tenant tables, so tenant routes accept `public`.
    pub fn is_public_tenant(&self) -> bool {
        self.decider.is_public_tenant()
    }

    /// The rules requests are resolved by (from the fairing's configuration).
    pub fn resolvers(&self) -> &ResolverChain {
        self.decider.chain()
    }

    /// Resolves `request` against the cached registry: no database round trip while the
    /// registry's change feed is healthy. A request that names two hosts or two tenants is
    /// [`Resolution::Malformed`]. When the cached data is older than its bound
    /// ([`RegistryCache::max_age`]), the registry is first reloaded through the pool (one
    /// request at a time, at most 2 seconds); if that fails too, the error is a 503.
    pub async fn resolve(&self, request: &Request<'_>) -> Result<Resolution, ApiError> {
        self.decide(request).await.map(Decided::into_resolution)
    }

    /// What `request` names, what that resolves to now, and the scope of its route.
    pub(crate) async fn decide(&self, request: &Request<'_>) -> Result<Decided, ApiError> {
        let named = self.decider.chain().named(request);
        let decided = self.decider.decide(named, || self.reload_task()).await;
        decided.map_err(ApiError::from)
    }

    /// What a request needs to be decided again later (by `TenantDb::run`).
    pub(crate) fn routing(&self) -> Routing {
        self.decider.routing()
    }

    /// The cached registry if it is within its bound; otherwise reloaded through the
    /// pool (one reload at a time, each given 2 seconds); otherwise a 503.
    pub async fn fresh_snapshot(&self) -> Result<Arc<RegistrySnapshot>, ApiError> {
        let snapshot = self.decider.fresh_snapshot(|| self.reload_task()).await;
        snapshot.map_err(ApiError::from)
    }

    /// Reloads the registry through the pool and waits for it, so this process sees a
    /// change it made at once, whatever state the change feed is in.
    pub async fn refresh(&self) -> Result<()> {
        let reload = self.reload_task();
        blocking(reload).await
    }

    /// [`refresh`](Self::refresh) for blocking code.
    pub fn refresh_blocking(&self) -> Result<()> {
        (self.reload_task())()
    }

    /// A reload through the pool, to run on a blocking thread.
    fn reload_task(&self) -> impl FnOnce() -> Result<()> + Send + 'static {
        let pool = self.pool();
        let cache = Arc::clone(self.decider.cache());
        move || pool?.with_public(|conn| cache.reload_from(conn))
    }

    /// Creates a tenant (row, schema, migrations) on a blocking thread and reloads the
    /// cache through the pool, so the tenant resolves in this process as soon as this
    /// returns, even when the change feed is down.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        let router = self.router()?;
        let reload = self.reload_task();
        blocking(move || {
            let tenant = router.create_tenant(&new)?;
            reloaded(reload());
            Ok(tenant)
        })
        .await
    }

    /// Deletes a tenant (and, with `drop_schema`, its schema) on a blocking thread and
    /// reloads the cache through the pool.
    pub async fn delete_tenant(&self, name: String, drop_schema: bool) -> Result<Tenant> {
        let router = self.router()?;
        let reload = self.reload_task();
        blocking(move || {
            let tenant = router.delete_tenant(&name, drop_schema)?;
            reloaded(reload());
            Ok(tenant)
        })
        .await
    }

    /// Renames a tenant (its schema keeps its name) on a blocking thread and reloads the
    /// cache, so the new name resolves in this process as soon as this returns.
    pub async fn rename_tenant(&self, old: String, new: String) -> Result<Tenant> {
        let router = self.router()?;
        let reload = self.reload_task();
        blocking(move || {
            let tenant = router.rename_tenant(&old, &new)?;
            reloaded(reload());
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
            cache: Arc::downgrade(self.decider.cache()),
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

/// After a change made here: if the reload failed, the change itself stands, and the
/// cache ages out of its bound (then reloads, or answers 503) rather than serve without it.
fn reloaded(result: Result<()>) {
    if let Err(e) = result {
        log::warn!("diesel-tenancy: the registry changed but the cache could not reload yet: {e}");
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

//! [`Tenancy`]: the axum face's shared state, and [`TenancyBuilder`], which starts it.

use std::sync::Arc;
use std::time::Duration;

use super::layer::TenancyLayer;
use crate::error::{Error, Result};
use crate::migrate::{MigrateOptions, NewTenant, SyncRouter};
use crate::registry::{RegistryCache, RegistrySnapshot, Tenant};
use crate::resolve::routing::{blocking, Decided, Decider, Routing};
use crate::resolve::{HttpError, Malformed, RequestParts, ResolverChain, TenantRef};
use crate::AsyncTenantPool;

/// The tenancy of an axum application: the sync router (migrations, tenant admin,
/// registry reloads) and its pool, the async pool requests get their connections from,
/// the registry cache and the resolver chain. A cheap clone.
///
/// Start it with [`Tenancy::builder`], then add [`layer`](Self::layer) to the router.
/// Handlers reach it as an extractor (`tenancy: Tenancy`) on requests that passed
/// through the layer. The registry listener stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Tenancy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    decider: Decider,
    router: SyncRouter,
    pool: AsyncTenantPool,
}

impl Tenancy {
    /// A builder over `router` (whose pool serves migrations, tenant admin and registry
    /// reloads; a small one will do) and `pool` (the async pool requests use).
    pub fn builder(router: SyncRouter, pool: AsyncTenantPool) -> TenancyBuilder {
        TenancyBuilder {
            router,
            pool,
            chain: ResolverChain::default(),
            max_registry_age: Duration::from_secs(5),
            migrate: true,
            migrate_jobs: 1,
        }
    }

    /// The layer that resolves every request's tenant.
    pub fn layer(&self) -> TenancyLayer {
        TenancyLayer::new(self.clone())
    }

    /// The sync router (clone it to move it onto a blocking thread), e.g. to create
    /// tenants from a handler.
    pub fn router(&self) -> &SyncRouter {
        &self.inner.router
    }

    /// The async pool.
    pub fn pool(&self) -> &AsyncTenantPool {
        &self.inner.pool
    }

    /// The in-memory tenant registry.
    pub fn cache(&self) -> &RegistryCache {
        self.inner.decider.cache()
    }

    /// The rules requests are resolved by.
    pub fn resolvers(&self) -> &ResolverChain {
        self.inner.decider.chain()
    }

    /// Whether `public` also holds the tenant tables, so tenant routes accept `public`.
    pub fn is_public_tenant(&self) -> bool {
        self.inner.decider.is_public_tenant()
    }

    /// The cached registry if it is within its bound ([`RegistryCache::max_age`]);
    /// otherwise reloaded through the router's pool (one reload at a time, each given 2
    /// seconds); otherwise a 503 [`ApiError`](super::ApiError).
    pub async fn fresh_snapshot(&self) -> Result<Arc<RegistrySnapshot>, super::ApiError> {
        let snapshot = self
            .inner
            .decider
            .fresh_snapshot(|| self.reload_task())
            .await;
        snapshot.map_err(super::ApiError::from)
    }

    /// Reloads the registry through the router's pool and waits for it, so this process
    /// sees a change it made at once, whatever state the change feed is in.
    pub async fn refresh(&self) -> Result<()> {
        blocking(self.reload_task()).await
    }

    /// Creates a tenant (row, schema, migrations) on a blocking thread and reloads the
    /// cache, so the tenant resolves in this process as soon as this returns.
    pub async fn create_tenant(&self, new: NewTenant) -> Result<Tenant> {
        let router = self.router().clone();
        let reload = self.reload_task();
        blocking(move || {
            let tenant = router.create_tenant(&new)?;
            reloaded(reload());
            Ok(tenant)
        })
        .await
    }

    /// Deletes a tenant (and, with `drop_schema`, its schema) on a blocking thread and
    /// reloads the cache.
    pub async fn delete_tenant(&self, name: String, drop_schema: bool) -> Result<Tenant> {
        let router = self.router().clone();
        let reload = self.reload_task();
        blocking(move || {
            let tenant = router.delete_tenant(&name, drop_schema)?;
            reloaded(reload());
            Ok(tenant)
        })
        .await
    }

    /// What `request` names, by the resolver chain (no lookup yet).
    pub(crate) fn named(&self, request: &dyn RequestParts) -> Result<Vec<TenantRef>, Malformed> {
        self.resolvers().named(request)
    }

    /// Decides what a request named against the registry cache (within its bound).
    pub(crate) async fn decide(
        &self,
        named: Result<Vec<TenantRef>, Malformed>,
    ) -> Result<Decided, HttpError> {
        self.inner
            .decider
            .decide(named, || self.reload_task())
            .await
    }

    /// What a request needs to be decided again once its route proved stale.
    pub(crate) fn routing(&self) -> Routing {
        self.inner.decider.routing()
    }

    /// A reload through the router's pool, to run on a blocking thread.
    fn reload_task(&self) -> impl FnOnce() -> Result<()> + Send + 'static {
        let pool = self.router().pool().clone();
        let cache = Arc::clone(self.inner.decider.cache());
        move || pool.with_public(|conn| cache.reload_from(conn))
    }
}

/// After a change made here: if the reload failed, the change itself stands, and the
/// cache ages out of its bound (then reloads, or answers 503) rather than serve without it.
fn reloaded(result: Result<()>) {
    if let Err(e) = result {
        log::warn!("diesel-tenancy: the registry changed but the cache could not reload yet: {e}");
    }
}

/// Starts a [`Tenancy`]: made by [`Tenancy::builder`].
#[derive(Debug)]
pub struct TenancyBuilder {
    router: SyncRouter,
    pool: AsyncTenantPool,
    chain: ResolverChain,
    max_registry_age: Duration,
    migrate: bool,
    migrate_jobs: usize,
}

impl TenancyBuilder {
    /// The rules requests are resolved by. Defaults to [`ResolverChain::default`]: the
    /// `Tenant-Header` header, then the host.
    pub fn resolvers(mut self, chain: ResolverChain) -> Self {
        self.chain = chain;
        self
    }

    /// The bound on the age of the registry data a request is resolved from (see
    /// [`RegistryCacheBuilder::max_age`](crate::RegistryCacheBuilder::max_age)).
    /// Defaults to 5 seconds.
    pub fn max_registry_age(mut self, max_age: Duration) -> Self {
        self.max_registry_age = max_age;
        self
    }

    /// Whether [`start`](Self::start) applies the shared migrations and pending tenant
    /// migrations. Defaults to `true`.
    pub fn migrate(mut self, enabled: bool) -> Self {
        self.migrate = enabled;
        self
    }

    /// Tenants migrated at once by [`start`](Self::start). Defaults to 1.
    pub fn migrate_jobs(mut self, jobs: usize) -> Self {
        self.migrate_jobs = jobs;
        self
    }

    /// On a blocking thread: applies the shared migrations and the pending tenant
    /// migrations (unless turned off), then loads the registry of `database_url` and
    /// starts its listener. A tenant that fails to migrate fails the start.
    pub async fn start(self, database_url: &str) -> Result<Tenancy> {
        let TenancyBuilder {
            router,
            pool,
            chain,
            max_registry_age,
            migrate,
            migrate_jobs,
        } = self;
        let url = database_url.to_owned();
        let router2 = router.clone();
        let cache = blocking(move || {
            if migrate {
                migrate_all(&router2, migrate_jobs)?;
            }
            RegistryCache::builder()
                .max_age(max_registry_age)
                .start(&url)
        })
        .await?;
        let public_tenant = router.is_public_tenant();
        Ok(Tenancy {
            inner: Arc::new(Inner {
                decider: Decider::new(Arc::new(cache), chain, public_tenant),
                router,
                pool,
            }),
        })
    }
}

/// The shared set, then every tenant's pending migrations; the first failure wins.
fn migrate_all(router: &SyncRouter, jobs: usize) -> Result<()> {
    router.migrate_shared()?;
    let options = MigrateOptions {
        jobs,
        keep_going: true,
        ..MigrateOptions::default()
    };
    let report = router.migrate_all(&options)?;
    let mut errors: Vec<Error> = report.tenants.into_iter().filter_map(|t| t.error).collect();
    if errors.is_empty() {
        return Ok(());
    }
    for later in errors.iter().skip(1) {
        log::error!("diesel-tenancy: {later}");
    }
    Err(errors.swap_remove(0))
}

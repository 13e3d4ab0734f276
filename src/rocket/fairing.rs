//! [`TenancyFairing`]: builds the pool, migrates, starts the registry cache.

use std::sync::Arc;
use std::time::Duration;

use ::rocket::fairing::{self, Fairing, Info, Kind};
use ::rocket::futures::FutureExt;
use ::rocket::{Build, Data, Orbit, Request, Rocket, Shutdown};
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;

use super::config::{self, Options};
use super::state::{blocking, Release, Tenancy};
use crate::error::{Error, Result};
use crate::migrate::MigrateOptions;
use crate::migrate::Source;
use crate::migrate::SyncRouter;
use crate::migrate::TenantHooks;
use crate::pool::TenantRoles;
use crate::pool::{TenantPool, TenantPoolBuilder};
use crate::registry::{RegistryCache, TenantMode, TenantRegistry};
use crate::resolve::{TenantResolver, TrustedProxies};
use crate::schema_name::SchemaRules;

/// The fairing that sets up tenancy for a Rocket application.
///
/// On ignite it reads `databases.<name>` and `tenancy` from Rocket's configuration
/// (see the [module docs](super) for the keys and their defaults), builds the
/// [`TenantPool`], applies the shared migrations, applies pending tenant migrations
/// (unless turned off), loads the registry cache and starts its listener, then manages
/// a [`Tenancy`]. Any failure is logged and aborts the launch. On shutdown it stops the
/// listener and lets go of the pool.
///
/// Settings made here are defaults: `Rocket.toml` and `ROCKET_*` variables override them.
pub struct TenancyFairing {
    database: String,
    tenant: Source,
    shared: Vec<Source>,
    options: Options,
    pool: TenantPoolBuilder,
    rules: SchemaRules,
    resolvers: Vec<Arc<dyn TenantResolver>>,
    hooks: TenantHooks,
}

impl std::fmt::Debug for TenancyFairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenancyFairing")
            .field("database", &self.database)
            .field("options", &self.options)
            .field("custom_resolvers", &self.resolvers.len())
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl TenancyFairing {
    /// A fairing for the database configured under `databases.<database>`, applying
    /// `tenant_migrations` to every tenant schema.
    pub fn new(
        database: impl Into<String>,
        tenant_migrations: impl MigrationSource<Pg> + Send + Sync + 'static,
    ) -> Self {
        TenancyFairing {
            database: database.into(),
            tenant: Arc::new(tenant_migrations),
            shared: Vec::new(),
            options: Options::default(),
            pool: TenantPool::builder(),
            rules: SchemaRules::default(),
            resolvers: Vec::new(),
            hooks: TenantHooks::default(),
        }
    }

    /// The application's shared migrations, applied to `public` after the crate's own
    /// registry migrations. Defaults to none.
    pub fn shared(
        mut self,
        shared_migrations: impl MigrationSource<Pg> + Send + Sync + 'static,
    ) -> Self {
        self.shared.push(Arc::new(shared_migrations));
        self
    }

    /// The name of the header carrying the tenant name. Defaults to `Tenant-Header`.
    /// Config key: `tenancy.header` (a name, or `false` to turn the rule off).
    pub fn header_name(mut self, name: impl Into<String>) -> Self {
        self.options.set_header(Some(name.into()));
        self
    }

    /// Whether the tenant header rule is on. Defaults to `true`.
    pub fn header_enabled(mut self, enabled: bool) -> Self {
        self.options.enable_header(enabled);
        self
    }

    /// Whether the request's host is matched against registered domains. Defaults to
    /// `true`. Config key: `tenancy.host`.
    pub fn host(mut self, enabled: bool) -> Self {
        self.options.set_host(enabled);
        self
    }

    /// Reads the tenant from the path, `/<prefix>/<tenant>/…`, and strips that part
    /// before routing, so the same routes serve `/t/acme/hotels` and `/hotels`.
    /// Defaults to off. Config key: `tenancy.path_prefix` (a prefix, `true` for `t`,
    /// or `false`).
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.set_path_prefix(prefix.into());
        self
    }

    /// The proxies in front of the service whose `Forwarded: host=` / `X-Forwarded-Host`
    /// the host rule reads (for requests whose TCP peer is one of them; from anyone else
    /// those headers are ignored). Defaults to none. Config key: `tenancy.trusted_proxies`
    /// (a list of addresses or CIDR ranges, e.g. `["10.0.0.0/8", "::1"]`).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.options.set_trusted_proxies(proxies);
        self
    }

    /// The bound on the age of the registry data a request is resolved from (see
    /// [`RegistryCacheBuilder::max_age`](crate::RegistryCacheBuilder::max_age)).
    /// Defaults to 5 seconds. Config key: `tenancy.max_registry_age` (seconds).
    pub fn max_registry_age(mut self, max_age: Duration) -> Self {
        self.options.set_max_registry_age(max_age);
        self
    }

    /// Adds a custom rule, tried after the header, host and path rules.
    pub fn resolver(mut self, resolver: impl TenantResolver) -> Self {
        self.resolvers.push(Arc::new(resolver));
        self
    }

    /// Whether pending tenant migrations are applied at launch. Defaults to `true`.
    /// Config key: `tenancy.migrate_tenants`.
    pub fn migrate_tenants(mut self, enabled: bool) -> Self {
        self.options.set_migrate_tenants(enabled);
        self
    }

    /// Tenants migrated at once at launch. Defaults to 1. Config key:
    /// `tenancy.migrate_jobs`.
    pub fn migrate_jobs(mut self, jobs: usize) -> Self {
        self.options.set_migrate_jobs(jobs);
        self
    }

    /// The public tenant: `public` also gets the tenant tables, and tenant routes
    /// accept an explicit `public`. Defaults to `false`. Config key:
    /// `tenancy.public_tenant`.
    pub fn public_tenant(mut self, enabled: bool) -> Self {
        self.options.set_public_tenant(enabled);
        self
    }

    /// The pool settings to start from; `databases.<name>.pool_size`, `timeout` and
    /// `mode` still override its size, checkout timeout and mode. Defaults to
    /// [`TenantPool::builder`] with a 5 second checkout timeout.
    pub fn pool_builder(mut self, builder: TenantPoolBuilder) -> Self {
        self.pool = builder;
        self
    }

    /// Gives every tenant its own database role; see
    /// [`TenantPoolBuilder::tenant_roles`]. Defaults to off. Call it after
    /// [`pool_builder`](Self::pool_builder), which replaces the whole pool setup. Config
    /// key: `tenancy.tenant_roles` (`true` turns on `TenantRoles::new()` unless code set
    /// roles, `false` turns them off).
    ///
    /// At launch, with [`migrate_tenants`](Self::migrate_tenants) on, the fairing also
    /// makes the roles of tenants that have none yet
    /// ([`SyncRouter::sync_missing_tenant_roles`]); otherwise it logs how many lack one
    /// (their requests fail until `tenant roles` runs).
    pub fn tenant_roles(mut self, roles: TenantRoles) -> Self {
        self.pool = self.pool.tenant_roles(roles);
        self
    }

    /// The mode of the tenants this application creates (through
    /// [`Tenancy::create_tenant`](super::Tenancy::create_tenant) and the router it hands
    /// out); [`TenantMode::Rows`] also lets the pool serve row tenants
    /// ([`TenantPoolBuilder::row_tenants`]). Defaults to [`TenantMode::Schema`]. Config
    /// key: `tenancy.tenant_mode` (`"schema"` or `"rows"`); `tenancy.row_tenants`
    /// turns the pool's row tenants on or off by itself (tenants of both modes in one
    /// application need it on).
    pub fn tenant_mode(mut self, mode: TenantMode) -> Self {
        self.options.set_tenant_mode(mode);
        self
    }

    /// The rules new schema names are checked against. Defaults to
    /// [`SchemaRules::default`].
    pub fn schema_rules(mut self, rules: SchemaRules) -> Self {
        self.rules = rules;
        self
    }

    /// The lifecycle hooks the router runs when a tenant is created, deleted or renamed
    /// (through [`Tenancy::create_tenant`](super::Tenancy::create_tenant) or the router
    /// it hands out). Defaults to none. Give the same hooks to the router of the
    /// application's management commands, so that every creation path runs them.
    pub fn hooks(mut self, hooks: TenantHooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Whether the fairing also builds an [`AsyncTenantPool`](crate::AsyncTenantPool),
    /// which [`AsyncTenantDb`](super::AsyncTenantDb) checks out from. It has the same
    /// settings as the sync pool (`pool_size`, `timeout`, `mode`, tenant roles, row
    /// tenants), and its own connections: up to `pool_size` more. Defaults to `false`.
    /// Config key: `tenancy.async_pool`.
    #[cfg(feature = "rocket-async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rocket-async")))]
    pub fn async_pool(mut self, enabled: bool) -> Self {
        self.options.set_async_pool(enabled);
        self
    }

    fn setup(&self) -> Setup {
        Setup {
            tenant: Arc::clone(&self.tenant),
            shared: self.shared.clone(),
            pool: self.pool.clone(),
            rules: self.rules.clone(),
            hooks: self.hooks.clone(),
        }
    }
}

impl TenancyFairing {
    /// The managed state over what ignite built, plus the async pool when asked for.
    #[cfg_attr(not(feature = "rocket-async"), allow(clippy::unused_async))]
    async fn state(
        &self,
        url: &str,
        options: &Options,
        (router, cache): (SyncRouter, RegistryCache),
    ) -> Result<Tenancy> {
        let chain = options.chain(&self.resolvers);
        let prefix = options.path_prefix().map(str::to_owned);
        let tenancy = Tenancy::new(router, cache, chain, prefix);
        #[cfg(feature = "rocket-async")]
        if options.async_pool() {
            let pool = options
                .pool_builder(self.pool.clone())
                .build_async(url)
                .await?;
            tenancy.set_async_pool(pool);
        }
        #[cfg(not(feature = "rocket-async"))]
        let _ = url;
        Ok(tenancy)
    }
}

/// What ignite needs on a blocking thread.
struct Setup {
    tenant: Source,
    shared: Vec<Source>,
    pool: TenantPoolBuilder,
    rules: SchemaRules,
    hooks: TenantHooks,
}

impl Setup {
    /// Everything ignite does that blocks: pool, migrations, cache.
    fn build(self, url: &str, o: &Options) -> Result<(SyncRouter, RegistryCache)> {
        let pool = o.pool_builder(self.pool).build(url)?;
        let mut router = SyncRouter::new(pool, SharedSource(self.tenant))
            .public_tenant(o.public_tenant())
            .schema_rules(self.rules)
            .hooks(self.hooks);
        for source in self.shared {
            router = router.shared(SharedSource(source));
        }
        if let Some(mode) = o.tenant_mode() {
            router = router.tenant_mode(mode);
        }
        let applied = router.migrate_shared()?;
        if !router.pool().has_row_tenants()
            && router.pool().with_public(TenantRegistry::has_row_tenants)?
        {
            // Their requests would all fail: say so at launch instead.
            return Err(Error::Config(
                "the registry holds row tenants, but the pool does not serve them: set \
                 `tenancy.row_tenants = true` (or `tenant_mode = \"rows\"`), or \
                 TenancyFairing::pool_builder with TenantPoolBuilder::row_tenants(true)"
                    .into(),
            ));
        }
        log::info!(
            "diesel-tenancy: shared migrations applied: {}",
            applied.len()
        );
        if o.migrate_tenants() {
            let options = MigrateOptions {
                jobs: o.migrate_jobs(),
                keep_going: true,
                ..MigrateOptions::default()
            };
            let report = router.migrate_all(&options)?;
            let migrated = report.tenants.len();
            let up_to_date = report.up_to_date;
            let mut errors: Vec<Error> =
                report.tenants.into_iter().filter_map(|t| t.error).collect();
            if !errors.is_empty() {
                log::error!(
                    "diesel-tenancy: {} tenant(s) failed to migrate at launch",
                    errors.len()
                );
                for later in errors.iter().skip(1) {
                    log::error!("diesel-tenancy: {later}");
                }
                return Err(errors.swap_remove(0));
            }
            log::info!(
                "diesel-tenancy: tenant migrations: {} migrated, {} up to date",
                migrated,
                up_to_date
            );
        }
        if router.pool().tenant_roles().is_some() {
            launch_roles(&router, o.migrate_tenants())?;
        }
        let cache = RegistryCache::builder()
            .max_age(o.max_registry_age())
            .start(url)?;
        Ok((router, cache))
    }
}

/// With tenant roles on: makes the missing ones (`make`), or says how many are missing.
fn launch_roles(router: &SyncRouter, make: bool) -> Result<()> {
    if !make {
        let missing = router.tenants_without_role()?;
        if let Some(first) = missing.first() {
            log::warn!(
                "diesel-tenancy: {} tenant(s) have no database role yet (first: `{}`); \
                 their requests fail until `tenant roles` runs",
                missing.len(),
                first.name
            );
        }
        return Ok(());
    }
    let report = router.sync_missing_tenant_roles()?;
    if let Some(failed) = report.failures().next() {
        log::error!(
            "diesel-tenancy: the roles of {} tenant(s) could not be made at launch; first: \
             `{}`",
            report.failures().count(),
            failed.tenant
        );
    }
    if !report.tenants.is_empty() {
        log::info!(
            "diesel-tenancy: tenant roles made at launch: {}",
            report.tenants.iter().filter(|t| t.created).count()
        );
    }
    Ok(())
}

/// A shared migration source handed to the router.
struct SharedSource(Source);

impl MigrationSource<Pg> for SharedSource {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        self.0.migrations()
    }
}

#[::rocket::async_trait]
impl Fairing for TenancyFairing {
    fn info(&self) -> Info {
        Info {
            name: "diesel-tenancy",
            kind: Kind::Ignite | Kind::Liftoff | Kind::Request | Kind::Shutdown,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let (url, options) = match config::read(rocket.figment(), &self.database, &self.options) {
            Ok(read) => read,
            Err(message) => {
                log::error!("diesel-tenancy: {message}");
                return Err(rocket);
            }
        };
        let setup = self.setup();
        let (url2, options2) = (url.clone(), options.clone());
        let built = blocking(move || setup.build(&url2, &options2)).await;
        let built = match built {
            Ok(built) => self.state(&url, &options, built).await,
            Err(e) => Err(e),
        };
        match built {
            Ok(tenancy) => Ok(rocket.manage(tenancy)),
            Err(e) => {
                log::error!(
                    "diesel-tenancy: cannot start tenancy for database `{}` ({}): {e}",
                    self.database,
                    crate::database_url::redact(&url)
                );
                Err(rocket)
            }
        }
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        if let Some(tenancy) = rocket.state::<Tenancy>() {
            watch_shutdown(rocket.shutdown(), tenancy.release());
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        if let Some(tenancy) = request.rocket().state::<Tenancy>() {
            tenancy.rewrite_path(request);
        }
    }

    async fn on_shutdown(&self, rocket: &Rocket<Orbit>) {
        if let Some(tenancy) = rocket.state::<Tenancy>() {
            tenancy.shut_down().await;
        }
    }
}

/// How often the shutdown watcher looks at Rocket's shutdown signal.
const SHUTDOWN_CHECK: Duration = Duration::from_millis(50);

/// Rocket 0.5 does not always run shutdown fairings: when its server future finishes
/// first, `launch()` returns without them (seen in about 1 run in 13 of
/// `tests/rocket_launch.rs`). A plain thread therefore watches the shutdown signal
/// too, and releases the pool and the listener once it trips, whatever Rocket's runtime
/// does. It holds the state weakly and ends when the state is dropped.
fn watch_shutdown(shutdown: Shutdown, release: Release) {
    let watcher = std::thread::Builder::new()
        .name("diesel-tenancy-shutdown".into())
        .spawn(move || loop {
            if release.is_gone() {
                return;
            }
            if shutdown.clone().now_or_never().is_some() {
                release.run();
                return;
            }
            std::thread::sleep(SHUTDOWN_CHECK);
        });
    if let Err(e) = watcher {
        log::warn!("diesel-tenancy: no shutdown watcher thread ({e}); relying on Rocket's shutdown fairing");
    }
}

//! [`TenantPoolBuilder`]: the settings of a [`TenantPool`], each setter with its default.

use std::sync::Arc;
use std::time::Duration;

use super::manager::ConnectionManager;
use super::mode::PoolMode;
use super::settings::ConnectionSettings;
use super::tenant_pool::TenantPool;
use super::tenant_roles::TenantRoles;
use super::watch::InstrumentationFactory;
use crate::error::Result;
use crate::schema_name::SchemaName;

/// Configures a [`TenantPool`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TenantPoolBuilder {
    max_size: u32,
    min_idle: Option<u32>,
    connection_timeout: Duration,
    max_lifetime: Option<Duration>,
    idle_timeout: Option<Duration>,
    test_on_check_out: bool,
    /// Everything about how each connection is opened and scoped.
    connections: ConnectionSettings,
}

impl Default for TenantPoolBuilder {
    fn default() -> Self {
        TenantPoolBuilder {
            max_size: 10,
            min_idle: None,
            connection_timeout: Duration::from_secs(30),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            test_on_check_out: false,
            connections: ConnectionSettings::default(),
        }
    }
}

impl TenantPoolBuilder {
    /// The most connections the pool opens. Defaults to 10.
    ///
    /// # Panics
    /// `build` panics (in r2d2) if it is 0.
    pub fn max_size(mut self, max_size: u32) -> Self {
        self.max_size = max_size;
        self
    }

    /// Idle connections the pool keeps open. Defaults to `None`: as many as `max_size`.
    pub fn min_idle(mut self, min_idle: Option<u32>) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// How long a checkout waits for a connection before failing with
    /// [`Error::Pool`](crate::Error::Pool). Defaults to 30 seconds.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Age after which a connection is closed. Defaults to 30 minutes.
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Idle time after which a connection is closed. Defaults to 10 minutes.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Pings each connection (`SELECT 1`) before handing it out. Defaults to `false`.
    ///
    /// It costs one extra round trip on every checkout and proves nothing the checkout's
    /// own statement does not: a connection found dead by that statement is discarded
    /// and another one is tried.
    pub fn test_on_check_out(mut self, test: bool) -> Self {
        self.test_on_check_out = test;
        self
    }

    /// How connections are put into their scope. Defaults to [`PoolMode::Session`].
    pub fn mode(mut self, mode: PoolMode) -> Self {
        self.connections.set_mode(mode);
        self
    }

    /// A schema added after the scope's own schema on every path, e.g. where extensions
    /// live. Defaults to none. `public` is refused: it would let a tenant's unqualified
    /// tables fall through to public's.
    pub fn extra_schema(mut self, schema: impl Into<String>) -> Self {
        self.connections.add_extra_schema(schema.into());
        self
    }

    /// Whether Diesel caches prepared statements. Defaults to `true`.
    ///
    /// Turn it off behind a transaction pooler that does not track prepared statements
    /// (PgBouncer before 1.21).
    pub fn statement_cache(mut self, enabled: bool) -> Self {
        self.connections.set_statement_cache(enabled);
        self
    }

    /// Deallocates the connection's prepared statements whenever it switches to another
    /// schema. Defaults to `false`.
    ///
    /// When tenants are at different migration versions and a column's type differs
    /// between them, a statement prepared in one schema fails in the other with "cached
    /// plan must not change result type". By default that error reaches the caller once
    /// per pool: the connection is discarded and the pool turns this option on by itself.
    /// With the option on from the start it never happens, at the price of re-preparing
    /// statements after each switch (`DEALLOCATE ALL` rides on the verified checkout,
    /// so it adds no round trip by itself).
    pub fn reset_statements_on_switch(mut self, enabled: bool) -> Self {
        self.connections.set_reset_statements_on_switch(enabled);
        self
    }

    /// Gives every connection the application's own Diesel [`Instrumentation`] (logging,
    /// metrics, statement counting). Defaults to none.
    ///
    /// Use this instead of `set_instrumentation` on a checked-out connection: the pool's
    /// own instrumentation marks the connection as the one it handed out, so a connection
    /// whose instrumentation was replaced is discarded at check-in (otherwise the
    /// replacement would see the next tenants' statements). Yours sees every event after
    /// the pool's.
    ///
    /// [`Instrumentation`]: diesel::connection::Instrumentation
    pub fn instrumentation<F>(mut self, make: F) -> Self
    where
        F: Fn() -> Box<dyn diesel::connection::Instrumentation> + Send + Sync + 'static,
    {
        self.connections
            .set_instrumentation(InstrumentationFactory::new(make));
        self
    }

    /// Skips the probe that refuses [`PoolMode::Session`] behind a transaction pooler.
    ///
    /// Without the probe a [`PoolMode::TransactionLocal`] pool also assumes a direct
    /// connection: it proves each session with a statement prepared on it, which fails
    /// (and discards the connection) when a pooler moves it to another backend.
    ///
    /// ### Warning
    /// Behind PgBouncer (or any pooler) in transaction mode, a session-mode pool leaks one
    /// tenant's `search_path` to other clients: tenant A reads tenant B's rows. Only skip
    /// the probe when you know the connection is direct or session-pooled.
    pub fn dangerous_skip_pooler_check(mut self) -> Self {
        self.connections.skip_pooler_check();
        self
    }

    /// After a connection has worked in this many distinct tenant schemas it is closed at
    /// check-in, because each backend keeps catalog caches for every table it touched
    /// (about 11 KB per table: a backend that touched 2,000 tenants of 10 tables holds
    /// about 220 MB). Defaults to 2000.
    ///
    /// Too low a limit costs throughput when many tenants are active: a recycled
    /// connection starts with cold caches (with 1,000 tenants in random use, a limit
    /// of 1,000 lost up to a third of the throughput in our measurements). Size it above
    /// the number of tenants that are active at once, within the memory you can give.
    pub fn max_schemas_per_connection(mut self, n: usize) -> Self {
        self.connections.set_max_schemas_per_connection(n);
        self
    }

    /// Gives every tenant its own database role and runs every tenant checkout as it.
    /// Defaults to off: every scope runs as the login role.
    ///
    /// With roles on, each checkout of a tenant scope also sets that tenant's role
    /// (`SET ROLE`, or `SET LOCAL ROLE` in [`PoolMode::TransactionLocal`]) in the same
    /// round trip and proves it (see the crate docs, "What a checkout proves"); `public`
    /// runs as the login role. PostgreSQL then refuses SQL in one tenant's scope that
    /// names another tenant's schema ("permission denied for schema b"). The
    /// [`SyncRouter`](crate::SyncRouter) built on this pool creates each tenant's role
    /// with its schema, grants it what migrations add, and drops it with the tenant;
    /// [`SyncRouter::sync_tenant_roles`](crate::SyncRouter::sync_tenant_roles) makes the
    /// roles of tenants that existed before.
    ///
    /// The login role needs `CREATEROLE` (or superuser) where tenants are created,
    /// migrated or deleted, and must own the tenant schemas' tables or be able to grant
    /// on them. A checkout of a tenant without a role fails with
    /// [`Error::TenantRole`](crate::Error::TenantRole). What roles do not stop, and what they cost, is in the
    /// crate docs ("Tenant roles").
    ///
    /// ```no_run
    /// use diesel_tenancy::{NewTenant, SyncRouter, TenantPool, TenantRoles};
    /// # const TENANT: diesel_migrations::EmbeddedMigrations =
    /// #     diesel_migrations::embed_migrations!("migrations_tenant");
    ///
    /// # fn main() -> diesel_tenancy::Result<()> {
    /// let pool = TenantPool::builder()
    ///     .tenant_roles(TenantRoles::new().read_shared("public.plans"))
    ///     .build("postgres://app_owner@localhost/app")?;
    /// let router = SyncRouter::new(pool.clone(), TENANT);
    /// router.migrate_shared()?; // grants SELECT on public.plans to the tenant roles
    /// let acme = router.create_tenant(&NewTenant::named("Acme"))?; // its role too
    /// router.sync_tenant_roles()?; // roles for tenants made before roles were on
    ///
    /// let mut conn = pool.tenant(&acme.schema_name)?; // runs as acme's role
    /// # Ok(()) }
    /// ```
    pub fn tenant_roles(mut self, roles: TenantRoles) -> Self {
        self.connections.set_tenant_roles(Some(Arc::new(roles)));
        self
    }

    /// Lets the pool serve row tenants ([`Scope::Rows`](crate::Scope::Rows),
    /// [`Scope::AllRows`](crate::Scope::AllRows)), whose tables live in the row schema
    /// (`tenant_rows` unless [`row_schema`](Self::row_schema) names another). Defaults to
    /// off.
    ///
    /// With row tenants on, `build` refuses a login role that row-level security would
    /// not bind (a superuser or a `BYPASSRLS` role) with
    /// [`Error::RowSecurity`](crate::Error::RowSecurity), and every checkout resets the
    /// role before its proof. See the crate docs, "Choosing a mode".
    pub fn row_tenants(mut self, enabled: bool) -> Self {
        self.connections.set_row_tenants(enabled);
        self
    }

    /// The schema that holds row tenants' tables (and turns row tenants on). Defaults to
    /// `tenant_rows`. No schema tenant may be given this schema.
    pub fn row_schema(mut self, schema: SchemaName) -> Self {
        self.connections.set_row_schema(schema);
        self
    }

    /// Whether [`tenant_roles`](Self::tenant_roles) was set.
    #[cfg(feature = "rocket")]
    pub(crate) fn has_tenant_roles(&self) -> bool {
        self.connections.tenant_roles().is_some()
    }

    /// Turns tenant roles off again (the Rocket fairing's `tenancy.tenant_roles = false`).
    #[cfg(feature = "rocket")]
    pub(crate) fn without_tenant_roles(mut self) -> Self {
        self.connections.set_tenant_roles(None);
        self
    }

    /// The connection manager these settings describe, for use with another r2d2-based
    /// pool (e.g. `rocket_sync_db_pools`). Its connections are [`ManagedConnection`]s,
    /// which expose a `PgConnection` only inside a scope.
    ///
    /// [`ManagedConnection`]: crate::ManagedConnection
    pub fn manager(&self, database_url: &str) -> Result<ConnectionManager> {
        self.connections.validate()?;
        Ok(ConnectionManager::new(
            database_url,
            self.connections.clone(),
        ))
    }

    /// Builds the pool and opens its initial connections, failing if the database cannot
    /// be reached within the connection timeout.
    ///
    /// It first probes for a transaction pooler (two extra connections, three round
    /// trips) and fails with [`Error::SessionModeBehindPooler`](crate::Error::SessionModeBehindPooler) if it finds one in
    /// [`PoolMode::Session`]; see
    /// [`dangerous_skip_pooler_check`](Self::dangerous_skip_pooler_check). A manager made
    /// with [`manager`](Self::manager) runs the same probe before its first connection.
    /// With [tenant roles](Self::tenant_roles) on, it fails with [`Error::Citus`](crate::Error::Citus) on a
    /// Citus database, where they cannot work (see "Scaling out with Citus").
    pub fn build(self, database_url: &str) -> Result<TenantPool> {
        let manager = self.manager(database_url)?;
        manager.probe()?;
        if let Some(what) = self.connections.nologin_roles() {
            super::citus::refuse_nologin_roles_at(database_url, what)?;
        }
        if self.connections.row_tenants() {
            // Before r2d2 opens connections: its build retries a failing connect until the
            // connection timeout instead of returning this error.
            super::row_security::refuse_unbound_login_at(database_url)?;
        }
        let settings = manager.settings();
        let inner = r2d2::Pool::builder()
            .max_size(self.max_size)
            .min_idle(self.min_idle)
            .connection_timeout(self.connection_timeout)
            .max_lifetime(self.max_lifetime)
            .idle_timeout(self.idle_timeout)
            .test_on_check_out(self.test_on_check_out)
            .build(manager)?;
        Ok(TenantPool::from_r2d2(inner, settings))
    }

    /// Builds the async pool ([`AsyncTenantPool`](crate::AsyncTenantPool), feature
    /// `async`) with these settings, and opens one connection to fail now if the database
    /// cannot be reached within the connection timeout.
    ///
    /// It runs the same checks as [`build`](Self::build) first (the transaction pooler
    /// probe, the Citus and row-security refusals), on a blocking thread. `min_idle` and
    /// `test_on_check_out` do not apply: deadpool opens connections on demand, and every
    /// checkout is a round trip that proves the connection anyway. `max_lifetime` and
    /// `idle_timeout` are checked when a connection is handed out.
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn build_async(self, database_url: &str) -> Result<crate::AsyncTenantPool> {
        let manager = self.manager(database_url)?;
        let url = database_url.to_owned();
        let checks = self.connections.clone();
        let behind_pooler = tokio::task::spawn_blocking(move || -> Result<bool> {
            let pooler = manager.probe()?;
            if let Some(what) = checks.nologin_roles() {
                super::citus::refuse_nologin_roles_at(&url, what)?;
            }
            if checks.row_tenants() {
                super::row_security::refuse_unbound_login_at(&url)?;
            }
            Ok(pooler)
        })
        .await
        .map_err(|e| crate::Error::Unavailable {
            what: "the pool builder's blocking task",
            reason: e.to_string(),
        })??;
        let settings = Arc::new(self.connections);
        let manager = super::async_manager::AsyncManager::new(
            database_url.to_owned(),
            Arc::clone(&settings),
            behind_pooler,
            self.max_lifetime,
            self.idle_timeout,
        );
        let max_size = usize::try_from(self.max_size).unwrap_or(usize::MAX);
        let inner = deadpool::managed::Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(self.connection_timeout))
            .create_timeout(Some(self.connection_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| crate::Error::Config(format!("the async pool: {e}")))?;
        let pool = super::async_pool::AsyncTenantPool::new(inner, settings);
        pool.warm_up().await?;
        Ok(pool)
    }
}

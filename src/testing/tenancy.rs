//! [`TestTenancy`]: a throwaway database with the shared set applied and a router over
//! it, for tests of multi-tenant code (django-tenants' `TenantTestCase`).

use diesel::migration::MigrationSource;
use diesel::pg::Pg;

use super::database::{no_server, server_url, TestDatabase};
use super::template;
use crate::database_url::with_database;
use crate::error::{Error, Result};
use crate::migrate::{NewTenant, SyncRouter};
use crate::pool::{TenantPool, TenantPoolBuilder};
use crate::registry::Tenant;

type MakeRouter = Box<dyn FnOnce(TenantPool) -> SyncRouter>;

/// A [`TestDatabase`] with the shared set applied and a [`SyncRouter`] over it, ready for
/// tenants: one call makes a tenant (schema migrated, hooks run), and everything goes
/// when the value drops, after a panic too.
///
/// ```no_run
/// use diesel::prelude::*;
/// use diesel_migrations::{embed_migrations, EmbeddedMigrations};
/// use diesel_tenancy::testing::TestTenancy;
///
/// const TENANT: EmbeddedMigrations = embed_migrations!("migrations_tenant");
///
/// // A test (`#[test]`) in the application's `tests/`:
/// fn tenants_see_only_their_hotels() {
///     let tenancy = TestTenancy::new(TENANT);
///     let acme = tenancy.create_tenant("acme");
///     let mut conn = tenancy.pool().tenant(&acme.schema_name).unwrap();
///     // ... queries in acme's schema ...
/// }
/// # fn main() { tenants_see_only_their_hotels() }
/// ```
///
/// With the application's shared migrations, hooks or pool settings, use the
/// [`builder`](Self::builder).
pub struct TestTenancy {
    // Declared first so it drops first: the pool lets go of its connections before the
    // database is dropped.
    router: SyncRouter,
    database: TestDatabase,
    template: Option<String>,
}

impl std::fmt::Debug for TestTenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTenancy")
            .field("database", &self.database)
            .field("router", &self.router)
            .field("template", &self.template)
            .finish()
    }
}

impl TestTenancy {
    /// A new test database on the [`server_url`] server with the crate's registry
    /// applied, and a router applying `tenant_migrations` to each tenant.
    ///
    /// # Panics
    /// If the server cannot be reached or the migrations fail, saying which.
    pub fn new(tenant_migrations: impl MigrationSource<Pg> + Send + Sync + 'static) -> Self {
        TestTenancy::builder(tenant_migrations).start()
    }

    /// Settings for a test tenancy: the application's shared migrations and hooks (with
    /// [`router`](TestTenancyBuilder::router)), the pool, the server.
    pub fn builder(
        tenant_migrations: impl MigrationSource<Pg> + Send + Sync + 'static,
    ) -> TestTenancyBuilder {
        TestTenancyBuilder {
            make: Box::new(move |pool| SyncRouter::new(pool, tenant_migrations)),
            pool: None,
            server_url: None,
            template: None,
        }
    }

    /// Creates the tenant `name` (schema derived from the name, no domains) through the
    /// router: one transaction, tenant migrations applied, `after_create` hooks run.
    ///
    /// # Panics
    /// If the tenant cannot be created (an invalid or taken name, a failing hook), with
    /// the error.
    pub fn create_tenant(&self, name: &str) -> Tenant {
        self.create_tenant_with(&NewTenant::named(name))
    }

    /// Like [`create_tenant`](Self::create_tenant), with a schema name or domains.
    ///
    /// # Panics
    /// If the tenant cannot be created, with the error.
    pub fn create_tenant_with(&self, new: &NewTenant) -> Tenant {
        self.router
            .create_tenant(new)
            .unwrap_or_else(|e| panic!("could not create test tenant `{}`: {e}", new.name))
    }

    /// The router (the same hooks and sets as the application's, if built so).
    pub fn router(&self) -> &SyncRouter {
        &self.router
    }

    /// The router's pool.
    pub fn pool(&self) -> &TenantPool {
        self.router.pool()
    }

    /// The database's URL, e.g. for the application's configuration.
    pub fn url(&self) -> &str {
        self.database.url()
    }

    /// The test database.
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// The template database this one was copied from, if built with
    /// [`template`](TestTenancyBuilder::template).
    pub fn template(&self) -> Option<&str> {
        self.template.as_deref()
    }

    /// Rocket's configuration (`Rocket.toml`, `ROCKET_*`) with `databases.<database>.url`
    /// set to this test database, for the application under test; its `pool_size`
    /// defaults to 4 there (instead of 10) unless the configuration sets one, so that
    /// parallel tests stay far from the server's connection limit.
    #[cfg(feature = "rocket")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rocket")))]
    pub fn figment(&self, database: &str) -> ::rocket::figment::Figment {
        ::rocket::Config::figment()
            .merge((format!("databases.{database}.url"), self.url()))
            .join((format!("databases.{database}.pool_size"), 4))
    }
}

/// Configures a [`TestTenancy`].
#[must_use]
pub struct TestTenancyBuilder {
    make: MakeRouter,
    pool: Option<TenantPoolBuilder>,
    server_url: Option<String>,
    template: Option<usize>,
}

impl std::fmt::Debug for TestTenancyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTenancyBuilder")
            .field("pool", &self.pool)
            .field(
                "server_url",
                &self.server_url.as_deref().map(crate::database_url::redact),
            )
            .finish_non_exhaustive()
    }
}

impl TestTenancyBuilder {
    /// Adjusts the router before the shared set is applied, e.g. to add the
    /// application's shared migrations and hooks:
    /// `.router(|r| r.shared(SHARED).hooks(app::hooks()))`. Defaults to the router as
    /// [`SyncRouter::new`] makes it. Calls compose.
    pub fn router(mut self, adjust: impl FnOnce(SyncRouter) -> SyncRouter + 'static) -> Self {
        let make = self.make;
        self.make = Box::new(move |pool| adjust(make(pool)));
        self
    }

    /// The pool settings. Defaults to [`TestDatabase::pool_builder`]: 4 connections,
    /// none kept idle, a 5 second checkout timeout.
    pub fn pool(mut self, builder: TenantPoolBuilder) -> Self {
        self.pool = Some(builder);
        self
    }

    /// The server to create the database on. Defaults to [`server_url`]
    /// (`DATABASE_URL`, else [`DEFAULT_SERVER_URL`](super::DEFAULT_SERVER_URL)).
    pub fn server_url(mut self, url: impl Into<String>) -> Self {
        self.server_url = Some(url.into());
        self
    }

    /// Copies each test database from a template database that holds the shared set
    /// and `spares` spare tenant schemas, built once per test executable and migration
    /// set and kept on the server for later runs. Defaults to off: each test database
    /// is migrated.
    ///
    /// A test then costs a copy of the template instead of the shared migrations, and
    /// up to `spares` tenants are a rename instead of building their tables (see
    /// [`SyncRouter::prepare_spares`]); worth it when the migrations are many.
    /// [`SyncRouter::migrate_shared`] still runs on the copy and applies whatever the
    /// template lacks.
    ///
    /// ### Warning
    /// A template is keyed on the test executable (path, size, modification time) and
    /// the migration versions, not on the migrations' text: migrations embedded with
    /// `embed_migrations!` are part of the executable, so changing one gives a new
    /// template; migrations read from files at run time are not, so an edited file with
    /// an unchanged version would be missed. Templates are named
    /// [`TEMPLATE_PREFIX`](super::TEMPLATE_PREFIX)`…`; an executable's new build drops
    /// its older ones, and [`drop_templates`](super::drop_templates) drops them all.
    /// Nobody may be connected to a template while tests copy it.
    pub fn template(mut self, spares: usize) -> Self {
        self.template = Some(spares);
        self
    }

    /// Creates the database, builds the pool and router, and applies the shared set.
    pub fn build(self) -> Result<TestTenancy> {
        let server = self.server_url.unwrap_or_else(server_url);
        let pool = self.pool.unwrap_or_else(TestDatabase::default_pool_builder);
        let Some(spares) = self.template else {
            let database = TestDatabase::create(&server)?;
            let router = (self.make)(pool.build(database.url())?);
            router.migrate_shared()?;
            return Ok(TestTenancy {
                router,
                database,
                template: None,
            });
        };
        // The router's sets name the template before any database exists: make it over
        // a pool that never connects, then move it to the real one.
        let unused = TestDatabase::default_pool_builder()
            .dangerous_skip_pooler_check()
            .build(&with_database(&server, "postgres")?)?;
        let router = (self.make)(unused);
        let names = template::name_for(&router, spares)?;
        template::ensure(&server, &names, &router, spares, &pool)?;
        let database = TestDatabase::copy_of(&server, &names.2)?;
        let router = router.with_pool(pool.build(database.url())?);
        router.migrate_shared()?;
        Ok(TestTenancy {
            router,
            database,
            template: Some(names.2),
        })
    }

    /// Like [`build`](Self::build), for tests that would only unwrap it.
    ///
    /// # Panics
    /// If the server cannot be reached (the message says how to point the tests at
    /// one) or the shared migrations fail.
    pub fn start(self) -> TestTenancy {
        let server = self.server_url.clone().unwrap_or_else(server_url);
        self.build().unwrap_or_else(|e| match e {
            Error::Connection(_) | Error::Pool(_) => panic!("{}", no_server(&server, &e)),
            other => panic!("could not set up the test tenancy: {other}"),
        })
    }
}

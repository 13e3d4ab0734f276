//! [`SyncRouter`]: applies the shared set to `public` and the tenant set to every tenant.

use std::sync::Arc;
use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::domain_name::DomainName;
use crate::error::{Error, Place, Result};
use crate::hooks::TenantHooks;
use crate::migration_set::{MigrationSet, Source};
use crate::pool::TenantPool;
use crate::registry::{Tenant, TenantRegistry};
use crate::report::{MigrateOptions, MigrateReport, TenantReport};
use crate::role_provision::{ensure_tenant_role, Context};
use crate::schema_name::{SchemaName, SchemaRules};
use crate::scope::Scope;
use crate::tenant_name::validate_tenant_name;

/// The crate's own shared migrations: the tenant registry.
pub const REGISTRY_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// First key of every advisory lock this crate takes (ASCII `tent`).
pub(crate) const LOCK_CLASS: i32 = 0x7465_6e74;

/// A tenant to provision with [`SyncRouter::create_tenant`].
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    /// Free-form name, unique case-insensitively.
    pub name: String,
    /// The schema to create; derived from the name when `None`.
    pub schema_name: Option<SchemaName>,
    /// Domains to register; the first is the primary one.
    pub domains: Vec<DomainName>,
}

impl NewTenant {
    /// A tenant with a derived schema and no domains.
    pub fn named(name: impl Into<String>) -> Self {
        NewTenant {
            name: name.into(),
            ..NewTenant::default()
        }
    }
}

/// Routes migrations: the shared set (the crate's registry plus the app's shared
/// migrations) to `public`, the tenant set to every tenant schema, each schema with its
/// own `__diesel_schema_migrations`.
///
/// ```no_run
/// use diesel_migrations::{embed_migrations, EmbeddedMigrations};
/// use diesel_tenancy::{NewTenant, SyncRouter, TenantPool};
///
/// const TENANT: EmbeddedMigrations = embed_migrations!("migrations_tenant");
///
/// # fn main() -> diesel_tenancy::Result<()> {
/// let pool = TenantPool::builder().build("postgres://localhost/app")?;
/// let router = SyncRouter::new(pool, TENANT);
/// router.migrate_shared()?;
/// let acme = router.create_tenant(&NewTenant::named("Acme"))?;
/// assert_eq!(acme.schema_name.as_str(), "acme");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SyncRouter {
    pub(crate) pool: TenantPool,
    shared: Vec<Source>,
    pub(crate) tenant: MigrationSet,
    public_tenant: bool,
    rules: SchemaRules,
    hooks: TenantHooks,
    /// Citus: shared tables become reference tables (`citus/reference.rs`).
    pub(crate) reference_tables: bool,
}

impl std::fmt::Debug for SyncRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRouter")
            .field("pool", &self.pool)
            .field("shared_sources", &self.shared.len())
            .field("public_tenant", &self.public_tenant)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl SyncRouter {
    /// A router applying `tenant` to every tenant schema. The shared set starts with the
    /// crate's registry migrations.
    pub fn new(pool: TenantPool, tenant: impl MigrationSource<Pg> + Send + Sync + 'static) -> Self {
        SyncRouter {
            pool,
            shared: vec![Arc::new(REGISTRY_MIGRATIONS)],
            tenant: MigrationSet::new(vec![Arc::new(tenant)]),
            public_tenant: false,
            rules: SchemaRules::default(),
            hooks: TenantHooks::default(),
            reference_tables: false,
        }
    }

    /// Adds the application's shared migrations, applied to `public`.
    pub fn shared(mut self, source: impl MigrationSource<Pg> + Send + Sync + 'static) -> Self {
        self.shared.push(Arc::new(source));
        self
    }

    /// Also applies the tenant set to `public`, so `public` holds the tenant tables too
    /// (django-tenants' "public tenant"). Defaults to `false`.
    ///
    /// `public` then tracks both sets in one table, so their versions must differ:
    /// [`migrate_shared`](Self::migrate_shared) refuses to run if they collide.
    pub fn public_tenant(mut self, enabled: bool) -> Self {
        self.public_tenant = enabled;
        self
    }

    /// The rules new schema names are checked against. Defaults to [`SchemaRules::default`].
    pub fn schema_rules(mut self, rules: SchemaRules) -> Self {
        self.rules = rules;
        self
    }

    /// The lifecycle hooks run when a tenant is created, deleted or renamed through this
    /// router. Defaults to none. Replaces hooks set before.
    pub fn hooks(mut self, hooks: TenantHooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Whether the tenant set is also applied to `public`.
    pub fn is_public_tenant(&self) -> bool {
        self.public_tenant
    }

    /// The pool this router works through.
    pub fn pool(&self) -> &TenantPool {
        &self.pool
    }

    /// The same router (sets, hooks, rules) working through another pool.
    #[cfg(feature = "testing")]
    pub(crate) fn with_pool(&self, pool: TenantPool) -> SyncRouter {
        SyncRouter {
            pool,
            ..self.clone()
        }
    }

    /// The set applied to `public`, checked for version collisions.
    pub(crate) fn shared_set(&self) -> Result<MigrationSet> {
        let mut sources = self.shared.clone();
        if self.public_tenant {
            sources.push(Arc::new(self.tenant.clone()));
        }
        let set = MigrationSet::new(sources);
        set.versions(&Place::Public)?;
        Ok(set)
    }

    /// Versions of the tenant set, sorted.
    pub fn tenant_versions(&self) -> Result<Vec<String>> {
        self.tenant.versions(&Place::Schema("<tenant set>".into()))
    }

    /// Applies the pending shared migrations to `public` under an advisory lock and
    /// returns the versions applied.
    pub fn migrate_shared(&self) -> Result<Vec<String>> {
        let set = self.shared_set()?;
        self.pool.with_public(|conn| {
            conn.transaction(|conn| {
                set_local_path(conn, "\"public\"")?;
                lock(conn, "public")?;
                let applied = run_shared(conn, &set)?;
                // Stored tenant-name keys follow the crate's current rule (or the
                // migration fails, naming tenants the rule makes equal).
                crate::name_keys::rekey(conn)?;
                if let Some(roles) = self.pool.tenant_roles() {
                    crate::role_provision::sync_shared_grants(conn, roles)?;
                }
                if self.reference_tables {
                    crate::citus::reference::reference_shared_tables(conn)?;
                }
                Ok(applied)
            })
        })
    }

    /// Registers a tenant, creates its schema, applies the tenant set to it, adds its
    /// domains and runs the [`after_create`](TenantHooks::after_create) hooks, all in one
    /// transaction: any failure leaves no row and no schema behind.
    ///
    /// If spare schemas were prepared ([`prepare_spares`](Self::prepare_spares)), one is
    /// claimed and renamed instead of building the schema, which is several times faster.
    ///
    /// With [tenant roles](crate::TenantPoolBuilder::tenant_roles) on, the tenant's role
    /// is created and granted its schema in the same transaction.
    pub fn create_tenant(&self, new: &NewTenant) -> Result<Tenant> {
        let name = validate_tenant_name(&new.name)?;
        let schema = match &new.schema_name {
            Some(s) => self.rules.validate(s.as_str())?,
            None => self.rules.derive_from(name)?,
        };
        self.pool.with_public(|conn| {
            conn.transaction(|conn| {
                // Without CREATEROLE, fail before doing any work.
                let roles = match self.pool.tenant_roles() {
                    Some(roles) => Some((roles, Context::managing(conn)?)),
                    None => None,
                };
                lock(conn, schema.as_str())?;
                let tenant = TenantRegistry::create(conn, name, &schema)?;
                if schema_exists(conn, &schema)? {
                    return Err(Error::SchemaExists {
                        tenant: name.to_owned(),
                        schema: schema.to_string(),
                    });
                }
                // On Citus, the schema is a distributed schema (whatever the database's
                // setting says); a spare made before Citus is distributed once migrated.
                let citus = crate::citus::provision::shard_new_schemas(conn)?;
                if !crate::spares::claim_spare(conn, &schema)? {
                    conn.batch_execute(&format!("CREATE SCHEMA {}", schema.quoted()))?;
                }
                set_local_path(conn, &schema.quoted())?;
                run_pending(conn, &self.tenant, &Place::Schema(schema.to_string()))?;
                if citus {
                    crate::citus::provision::ensure_distributed(conn, &schema)?;
                }
                if let Some((roles, context)) = &roles {
                    ensure_tenant_role(conn, context, roles, &schema)?;
                }
                for (i, domain) in new.domains.iter().enumerate() {
                    TenantRegistry::add_domain(conn, name, domain, i == 0)?;
                }
                self.hooks
                    .run_after_create(conn, &self.tenant_path(&schema), &tenant)?;
                Ok(tenant)
            })
        })
    }

    /// Deletes a tenant's registry row (and domains) and its tenant role, if it has one.
    /// The schema and its data are dropped only when `drop_schema` is true. The
    /// [`before_delete`](TenantHooks::before_delete) hooks run first, in the same
    /// transaction, and can veto it.
    pub fn delete_tenant(&self, name: &str, drop_schema: bool) -> Result<Tenant> {
        self.pool.with_public(|conn| {
            conn.transaction(|conn| {
                let tenant = TenantRegistry::get_by_name(conn, name)?;
                lock(conn, tenant.schema_name.as_str())?;
                let path = self.tenant_path(&tenant.schema_name);
                self.hooks
                    .run_before_delete(conn, &path, &tenant, drop_schema)?;
                TenantRegistry::delete(conn, name)?;
                // Whatever this pool's setting: a role made by another process goes too.
                crate::role_provision::drop_tenant_role(conn, &tenant.schema_name)?;
                if drop_schema {
                    conn.batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS {} CASCADE",
                        tenant.schema_name.quoted()
                    ))?;
                }
                Ok(tenant)
            })
        })
    }

    /// Renames a tenant (its schema keeps its name) and runs the
    /// [`after_rename`](TenantHooks::after_rename) hooks, in one transaction.
    pub fn rename_tenant(&self, old: &str, new: &str) -> Result<Tenant> {
        self.pool.with_public(|conn| {
            conn.transaction(|conn| {
                let before = TenantRegistry::get_by_name(conn, old)?;
                let after = TenantRegistry::rename(conn, &before.name, new)?;
                let path = self.tenant_path(&after.schema_name);
                self.hooks
                    .run_after_rename(conn, &path, &after, &before.name)?;
                Ok(after)
            })
        })
    }

    /// The `search_path` a checkout of the tenant in `schema` sets.
    fn tenant_path(&self, schema: &SchemaName) -> String {
        self.pool.search_path(&Scope::Tenant(schema.clone()))
    }

    /// Applies the pending tenant migrations to one schema, in one transaction under the
    /// schema's advisory lock, and returns the versions applied.
    ///
    /// With [tenant roles](crate::TenantPoolBuilder::tenant_roles) on, when something was
    /// applied the tenant's role is granted what the migrations created (and made, if it
    /// was missing), in the same transaction.
    pub fn migrate_tenant(&self, schema: &SchemaName) -> Result<Vec<String>> {
        let place = Place::Schema(schema.to_string());
        self.pool.with_public(|conn| {
            conn.transaction(|conn| {
                lock(conn, schema.as_str())?;
                if !schema_exists(conn, schema)? {
                    return Err(Error::SchemaMissing {
                        schema: schema.to_string(),
                    });
                }
                set_local_path(conn, &schema.quoted())?;
                let applied = run_pending(conn, &self.tenant, &place)?;
                if let Some(roles) = self.pool.tenant_roles().filter(|_| !applied.is_empty()) {
                    let context = Context::managing(conn)?;
                    ensure_tenant_role(conn, &context, roles, schema)?;
                }
                Ok(applied)
            })
        })
    }

    /// Migrates every tenant with pending migrations, `options.jobs` at a time.
    ///
    /// Pending work is found with [`status`](Self::status) (a bounded number of
    /// queries), so up-to-date tenants cost nothing. Each tenant migrates in its own
    /// transaction; a failing tenant is rolled back whole and, with `keep_going`, the
    /// others still run.
    pub fn migrate_all(&self, options: &MigrateOptions) -> Result<MigrateReport> {
        let status = self.status()?;
        let todo = options.select(&status)?;
        let jobs = options.jobs.clamp(1, self.pool.max_size().max(1) as usize);
        let started = Instant::now();
        let tenants = crate::batch::run_parallel(todo, jobs, options, |tenant: &Tenant| {
            let t0 = Instant::now();
            let result = self.migrate_tenant(&tenant.schema_name);
            TenantReport::new(tenant, result, t0.elapsed())
        });
        Ok(MigrateReport {
            tenants,
            up_to_date: status
                .tenants
                .iter()
                .filter(|t| t.pending.is_empty())
                .count(),
            duration: started.elapsed(),
        })
    }
}

/// `SET LOCAL search_path` for the current transaction; `path` is already quoted.
pub(crate) fn set_local_path(conn: &mut PgConnection, path: &str) -> Result<()> {
    conn.batch_execute(&format!("SET LOCAL search_path TO {path}"))?;
    Ok(())
}

/// Takes the transaction-scoped advisory lock of one schema.
pub(crate) fn lock(conn: &mut PgConnection, schema: &str) -> Result<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Text, _>(schema)
        .execute(conn)?;
    Ok(())
}

/// Whether `schema` exists.
pub(crate) fn schema_exists(conn: &mut PgConnection, schema: &SchemaName) -> Result<bool> {
    crate::sql::schema_exists(conn, schema.as_str())
}

/// The registry migration that adds `tenants.name_key`; the crate fills it right after.
const NAME_KEY_MIGRATION: &str = "0000-00-00-000003_diesel_tenancy_name_key";

/// Applies the pending shared migrations one by one, filling the tenant name keys as
/// soon as the migration that adds their column has run (the next one makes them
/// unique and `NOT NULL`).
fn run_shared(conn: &mut PgConnection, set: &MigrationSet) -> Result<Vec<String>> {
    let place = Place::Public;
    set.versions(&place)?;
    let failed = |source| Error::Migration {
        place: Place::Public,
        source,
    };
    let pending = conn.pending_migrations(set.clone()).map_err(failed)?;
    let mut applied = Vec::with_capacity(pending.len());
    for migration in pending {
        let version = conn.run_migration(&*migration).map_err(failed)?;
        if migration.name().to_string() == NAME_KEY_MIGRATION {
            TenantRegistry::backfill_name_keys(conn)?;
        }
        applied.push(version.to_string());
    }
    Ok(applied)
}

pub(crate) fn run_pending(
    conn: &mut PgConnection,
    set: &MigrationSet,
    place: &Place,
) -> Result<Vec<String>> {
    set.versions(place)?;
    let applied = conn
        .run_pending_migrations(set.clone())
        .map_err(|source| Error::Migration {
            place: place.clone(),
            source,
        })?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

//! [`SyncRouter`]: applies the shared set to `public` and the tenant set to every tenant,
//! and creates, deletes and renames tenants. Its methods are the module's public face;
//! the work is done by the module's parts (`apply.rs`, `lifecycle.rs`, `status.rs`,
//! `spares.rs`, `each_tenant.rs`, `role_sync.rs`), each given what it needs.

use std::sync::Arc;

use diesel::migration::MigrationSource;
use diesel::pg::{Pg, PgConnection};

use super::apply::{self, REGISTRY_MIGRATIONS};
use super::batch::BatchOptions;
use super::citus::{
    self, moves::TenantMove, moves::TransferMode, placement::CitusNode, placement::TenantPlacement,
    provision::Distributed,
};
use super::each_tenant::{self, EachReport, TenantRun};
use super::hooks::TenantHooks;
use super::lifecycle::{self, Creation, NewTenant};
use super::migration_set::{MigrationSet, Source};
use super::report::{MigrateOptions, MigrateReport, MigrationStatus};
use super::role_sync::{self, RoleReport};
use super::row_schema;
use super::row_tenants;
use super::spares;
use super::status;
use crate::error::{Error, Result, SchemaRef};
use crate::pool::TenantPool;
use crate::registry::{Tenant, TenantMode};
use crate::schema_name::{SchemaName, SchemaRules};

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
    pool: TenantPool,
    shared: Vec<Source>,
    tenant: MigrationSet,
    public_tenant: bool,
    rules: SchemaRules,
    hooks: TenantHooks,
    /// Citus: `migrate_shared` makes the shared tables reference tables.
    reference_tables: bool,
    /// The mode of a new tenant that names none.
    tenant_mode: TenantMode,
}

impl std::fmt::Debug for SyncRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRouter")
            .field("pool", &self.pool)
            .field("shared_sources", &self.shared.len())
            .field("public_tenant", &self.public_tenant)
            .field("hooks", &self.hooks)
            .field("reference_tables", &self.reference_tables)
            .field("tenant_mode", &self.tenant_mode)
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
            tenant_mode: TenantMode::Schema,
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

    /// The mode of new tenants whose [`NewTenant::mode`] is `None`: their own schema, or
    /// rows in the pool's row schema. Defaults to [`TenantMode::Schema`]. Row tenants
    /// need a pool built with
    /// [`row_tenants`](crate::TenantPoolBuilder::row_tenants); one application can hold
    /// tenants of both modes.
    pub fn tenant_mode(mut self, mode: TenantMode) -> Self {
        self.tenant_mode = mode;
        self
    }

    /// The mode of new tenants that name none ([`tenant_mode`](Self::tenant_mode)).
    pub fn default_tenant_mode(&self) -> TenantMode {
        self.tenant_mode
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
    fn shared_set(&self) -> Result<MigrationSet> {
        let mut sources = self.shared.clone();
        if self.public_tenant {
            sources.push(Arc::new(self.tenant.clone()));
        }
        let set = MigrationSet::new(sources);
        set.versions(&SchemaRef::Public)?;
        Ok(set)
    }

    /// Versions of the shared set (with the tenant set, for the public tenant), sorted.
    pub(crate) fn shared_versions(&self) -> Result<Vec<String>> {
        self.shared_set()?.versions(&SchemaRef::Public)
    }

    /// Versions of the tenant set, sorted.
    pub fn tenant_versions(&self) -> Result<Vec<String>> {
        self.tenant
            .versions(&SchemaRef::Schema("<tenant set>".into()))
    }

    /// Applies the pending shared migrations to `public` under an advisory lock and
    /// returns the versions applied.
    ///
    /// When the pool serves [row tenants](crate::TenantPoolBuilder::row_tenants), it then
    /// provisions the row schema in a second transaction, under the row schema's lock:
    /// the schema and its sentinel table, the row role and its grants, the tenant set
    /// applied to it (as the login role), and the proof that every relation in it is
    /// protected by forced row-level security; any failure rolls that transaction back
    /// with [`Error::RowSecurity`] naming the table and the fix. It refuses a login role
    /// that is a superuser or has `BYPASSRLS` (row-level security never binds them).
    pub fn migrate_shared(&self) -> Result<Vec<String>> {
        let applied =
            apply::migrate_shared(&self.pool, &self.shared_set()?, self.reference_tables)?;
        if self.pool.has_row_tenants() {
            row_schema::migrate(&self.pool, &self.tenant)?;
        }
        Ok(applied)
    }

    /// The rules new tenants' schema names follow: the router's, and, with row tenants
    /// on, the row schema reserved.
    fn creation_rules(&self) -> SchemaRules {
        match self.pool.has_row_tenants() {
            true => self.rules.clone().reserve(self.pool.row_schema().as_str()),
            false => self.rules.clone(),
        }
    }

    fn creation<'a>(&'a self, rules: &'a SchemaRules) -> Creation<'a> {
        Creation {
            pool: &self.pool,
            tenant_set: &self.tenant,
            rules,
            hooks: &self.hooks,
            default_mode: self.tenant_mode,
        }
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
    ///
    /// A row tenant ([`NewTenant::mode`], or the router's
    /// [`tenant_mode`](Self::tenant_mode)) is one registry row (its derived
    /// `schema_name` reserved for it, never created) and its domains: no DDL. Its
    /// `after_create` hooks run in its scope (the row schema on the path, as the row
    /// role, with its id in `diesel_tenancy.tenant`), in the same transaction. Fails with
    /// [`Error::Config`] when the pool does not serve row tenants or the row schema is
    /// not provisioned yet ([`migrate_shared`](Self::migrate_shared)).
    pub fn create_tenant(&self, new: &NewTenant) -> Result<Tenant> {
        let rules = self.creation_rules();
        lifecycle::create(&self.creation(&rules), new)
    }

    /// Creates many row tenants at once, in one transaction (all or none): 1,000 per
    /// multi-row `INSERT`, then each one's domains and `after_create` hooks (in its
    /// scope). Returns them in the order given. Each [`NewTenant`]'s mode must be `None`
    /// or [`TenantMode::Rows`]; a name or schema already registered, or repeated in
    /// `new`, fails with [`Error::TenantExists`] or [`Error::SchemaExists`] and creates
    /// nothing.
    pub fn create_row_tenants(&self, new: &[NewTenant]) -> Result<Vec<Tenant>> {
        let rules = self.creation_rules();
        row_tenants::create_many(&self.creation(&rules), new)
    }

    /// Deletes a tenant's registry row (and domains) and its tenant role, if it has one.
    /// The schema and its data are dropped only when `drop_schema` is true. The
    /// [`before_delete`](TenantHooks::before_delete) hooks run first, in the same
    /// transaction, and can veto it.
    ///
    /// For a row tenant, `drop_schema` deletes its rows from every table of the row
    /// schema that has a `tenant_id` column (as the login role, which sees every row), in
    /// the same transaction; without it the rows are kept, and no tenant sees them (ids
    /// are never reused). Its hooks run in its scope.
    pub fn delete_tenant(&self, name: &str, drop_schema: bool) -> Result<Tenant> {
        lifecycle::delete(&self.pool, &self.hooks, name, drop_schema)
    }

    /// Renames a tenant (its schema keeps its name) and runs the
    /// [`after_rename`](TenantHooks::after_rename) hooks, in one transaction.
    pub fn rename_tenant(&self, old: &str, new: &str) -> Result<Tenant> {
        lifecycle::rename(&self.pool, &self.hooks, old, new)
    }

    /// Applies the pending tenant migrations to one schema, in one transaction under the
    /// schema's advisory lock, and returns the versions applied.
    ///
    /// With [tenant roles](crate::TenantPoolBuilder::tenant_roles) on, when something was
    /// applied the tenant's role is granted what the migrations created (and made, if it
    /// was missing), in the same transaction.
    pub fn migrate_tenant(&self, schema: &SchemaName) -> Result<Vec<String>> {
        apply::migrate_tenant(&self.pool, &self.tenant, schema)
    }

    /// Migrates every tenant with pending migrations, `options.jobs` at a time.
    ///
    /// Pending work is found with [`status`](Self::status) (a bounded number of
    /// queries), so up-to-date tenants cost nothing. Each tenant migrates in its own
    /// transaction; a failing tenant is rolled back whole and, with `keep_going`, the
    /// others still run.
    ///
    /// Row tenants have no schema of their own: with row tenants on, the row schema is
    /// migrated first, as one unit of the report listed under the row schema's name (as
    /// [`migrate_shared`](Self::migrate_shared) provisions it), unless `options.only`
    /// names tenants or `options.skip` names the row schema.
    pub fn migrate_all(&self, options: &MigrateOptions) -> Result<MigrateReport> {
        let status = self.status()?;
        apply::migrate_all(&self.pool, &self.tenant, &status, options)
    }

    /// Which schemas have pending migrations, plus registry/catalog mismatches.
    ///
    /// Costs `8 + tenants / 500` queries (9 on Citus) whatever the number of tenants: the catalog
    /// says which schemas have a tracking table, and their versions are read with one
    /// `UNION ALL` query per 500 schemas, spread over up to 4 pooled connections.
    pub fn status(&self) -> Result<MigrationStatus> {
        status::status(
            &self.pool,
            &self.shared_versions()?,
            &self.tenant_versions()?,
        )
    }

    /// Builds `count` spare schemas, each fully migrated with the tenant set, each in its
    /// own transaction. Returns how many spares exist afterwards.
    ///
    /// Later [`create_tenant`](Self::create_tenant) calls claim them. A spare that is
    /// behind the tenant set when claimed is migrated then, in the creating transaction.
    pub fn prepare_spares(&self, count: usize) -> Result<i64> {
        spares::prepare(&self.pool, &self.tenant, count)
    }

    /// How many spare schemas are ready.
    pub fn spare_count(&self) -> Result<i64> {
        spares::count_spares(&self.pool)
    }

    /// Runs `work` in the scope of every registered tenant (or those `options` select),
    /// `options.jobs` tenants at a time, and reports per tenant.
    ///
    /// Each tenant's work runs on a connection checked out for that tenant (so
    /// `search_path` is its schema, as in a request), inside one transaction: committed
    /// when `work` returns `Ok`, rolled back when it returns `Err` — all or nothing per
    /// tenant. A tenant whose schema is missing fails with [`Error::SchemaMissing`]
    /// before `work` runs. `work` must not end the transaction itself (`COMMIT`,
    /// `ROLLBACK`) nor ignore a failed statement: the crate checks with the server and
    /// reports [`Error::TransactionBroken`] for that tenant. Without
    /// `options.keep_going` no tenant is started after the first failure.
    ///
    /// The error type `E` is the caller's (anything that converts from this crate's
    /// [`Error`] and Diesel's, e.g. `anyhow::Error`); the outer `Result` fails only when
    /// the tenant list cannot be read or `options.only` names an unknown tenant. The
    /// `public` schema is not a registered tenant and is not included.
    ///
    /// ```no_run
    /// use diesel::prelude::*;
    /// use diesel_tenancy::{BatchOptions, SyncRouter};
    ///
    /// # fn run(router: &SyncRouter) -> diesel_tenancy::Result<()> {
    /// let options = BatchOptions { jobs: 4, keep_going: true, ..Default::default() };
    /// let report = router.for_each_tenant(&options, |conn, _tenant| {
    ///     let n: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM hotels")
    ///         .get_result(conn)?;
    ///     Ok::<_, diesel_tenancy::Error>(n)
    /// })?;
    /// for run in &report.tenants {
    ///     match &run.result {
    ///         Ok(n) => println!("{}: {n} hotels", run.tenant),
    ///         Err(e) => eprintln!("{}: {e}", run.tenant),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn for_each_tenant<T, E, F>(
        &self,
        options: &BatchOptions<TenantRun<T, E>>,
        work: F,
    ) -> Result<EachReport<T, E>>
    where
        F: Fn(&mut PgConnection, &Tenant) -> std::result::Result<T, E> + Sync,
        T: Send,
        E: From<Error> + From<diesel::result::Error> + Send,
    {
        each_tenant::for_each_tenant(&self.pool, options, work)
    }

    /// The name of the tenant role of `schema` in this router's database (whether or not
    /// it exists).
    pub fn tenant_role_name(&self, schema: &SchemaName) -> Result<String> {
        role_sync::tenant_role_name(&self.pool, schema)
    }

    /// The registered tenants whose role does not exist (tenant roles on or off).
    pub fn tenants_without_role(&self) -> Result<Vec<Tenant>> {
        role_sync::tenants_without_role(&self.pool)
    }

    /// Makes every registered tenant's role, or repairs it (grants again what it should
    /// have), and makes the shared grants exactly the declared ones: the backfill after
    /// turning tenant roles on, and the repair after tables were added by hand. Each
    /// tenant is done in its own transaction under its schema's advisory lock; a tenant
    /// that fails is reported and the others still run.
    ///
    /// Fails with [`Error::Config`] when the pool has no
    /// [`tenant_roles`](crate::TenantPoolBuilder::tenant_roles), and with
    /// [`Error::TenantRolesNotPermitted`] without `CREATEROLE`.
    pub fn sync_tenant_roles(&self) -> Result<RoleReport> {
        role_sync::sync_roles(&self.pool, false)
    }

    /// Like [`sync_tenant_roles`](Self::sync_tenant_roles), but only for the tenants
    /// whose role does not exist yet (one query when none is missing). The Rocket
    /// fairing runs it at launch.
    pub fn sync_missing_tenant_roles(&self) -> Result<RoleReport> {
        role_sync::sync_roles(&self.pool, true)
    }

    // Citus (`citus/`): see "Scaling out with Citus" in the crate docs.

    /// Makes the tenant `name`'s schema a Citus distributed schema if it is not one (a
    /// tenant created before Citus was installed, or by other code), in one transaction
    /// under the schema's advisory lock: its tables and data move to a worker node.
    /// Writes to the tenant wait while its data is copied.
    ///
    /// Fails with [`Error::NeedsCitus`] on plain PostgreSQL; a failure (e.g. a foreign
    /// key to another schema, which Citus refuses) changes nothing.
    pub fn distribute_tenant(&self, name: &str) -> Result<Distributed> {
        citus::provision::distribute_tenant(&self.pool, name)
    }

    /// [`distribute_tenant`](Self::distribute_tenant) for every tenant that status finds
    /// undistributed, one transaction each; a failure is reported for its tenant and the
    /// others still run.
    pub fn distribute_all(&self) -> Result<Vec<Distributed>> {
        citus::provision::distribute_all(&self.pool)
    }

    /// Where every schema tenant lives: its node and its size, tenants in registry order
    /// (row tenants live in the row schema and are not listed).
    /// Fails with [`Error::NeedsCitus`] on plain PostgreSQL.
    pub fn placement(&self) -> Result<Vec<TenantPlacement>> {
        citus::placement::placement(&self.pool)
    }

    /// Moves tenant `name`'s tables to node `to` (a worker of the cluster), with
    /// `citus_schema_move`. `mode` `None` moves online where the node the tenant leaves
    /// has `wal_level = logical` and with writes blocked otherwise; the returned
    /// [`TenantMove`] says which. Requests keep being served during the move (writes
    /// wait while they are blocked); a failure leaves the tenant where it was.
    ///
    /// Fails with [`Error::NeedsCitus`] on plain PostgreSQL, and with [`Error::Citus`]
    /// when the tenant's schema is not distributed or already lives on `to`.
    pub fn move_tenant(
        &self,
        name: &str,
        to: &CitusNode,
        mode: Option<TransferMode>,
    ) -> Result<TenantMove> {
        citus::moves::move_tenant(&self.pool, name, to, mode)
    }

    /// Spreads the tenants evenly over the workers (Citus's rebalancer,
    /// `rebalance_table_shards`: each tenant's schema moves as one, by shard count) and
    /// returns the tenants that moved. With `dry_run` nothing moves and the tenants the
    /// rebalancer would move are returned. `mode` as for
    /// [`move_tenant`](Self::move_tenant), checked on every worker.
    ///
    /// Fails with [`Error::NeedsCitus`] on plain PostgreSQL.
    pub fn rebalance(&self, mode: Option<TransferMode>, dry_run: bool) -> Result<Vec<TenantMove>> {
        citus::moves::rebalance(&self.pool, mode, dry_run)
    }

    /// Makes [`migrate_shared`](Self::migrate_shared) turn every table of `public` (the
    /// crate's registry and the application's shared tables; Diesel's tracking table
    /// aside) into a Citus reference table, in the same transaction as the migrations:
    /// a copy of each on every node, so tenant queries that join them run on the
    /// tenant's worker. Tables later shared migrations add are converted when they run.
    /// Does nothing on plain PostgreSQL. Defaults to `false`.
    ///
    /// Reference tables cost more to write (every write goes to every node, in a
    /// distributed transaction) and take room on every node: choose it for small tables
    /// that tenant queries join and that change rarely. See "Scaling out with Citus" in
    /// the crate docs.
    pub fn citus_reference_tables(mut self, enabled: bool) -> Self {
        self.reference_tables = enabled;
        self
    }

    /// Turns every table of `public` (Diesel's tracking table aside) into a Citus
    /// reference table now, in one transaction under `public`'s advisory lock, and
    /// returns the tables converted. Fails with [`Error::NeedsCitus`] on plain PostgreSQL.
    pub fn make_reference_tables(&self) -> Result<Vec<String>> {
        citus::reference::make_reference_tables(&self.pool)
    }
}

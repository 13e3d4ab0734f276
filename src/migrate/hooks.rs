//! [`TenantHooks`]: application code run when a tenant is created, deleted or renamed,
//! inside the transaction that does it.

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;

use super::transaction_mark::TransactionMark;
use crate::error::{Error, Hook, HookError, Result, SchemaRef};
use crate::registry::Tenant;
use crate::schema_name::{quote_ident, SchemaName};

/// What a hook returns: `Ok(())`, or any error (boxed), which rolls the whole change back.
pub type HookResult = std::result::Result<(), HookError>;

type AfterCreate = Arc<dyn Fn(&mut PgConnection, &Tenant) -> HookResult + Send + Sync>;
type BeforeDelete = Arc<dyn Fn(&mut PgConnection, &Tenant, bool) -> HookResult + Send + Sync>;
type AfterRename = Arc<dyn Fn(&mut PgConnection, &Tenant, &str) -> HookResult + Send + Sync>;

/// Callbacks an application registers on a [`SyncRouter`](crate::SyncRouter) (or a
/// Rocket [`TenancyFairing`](crate::rocket::TenancyFairing)), run inside the one
/// transaction that creates, deletes or renames a tenant, on a connection whose
/// `search_path` is the tenant's schema (as a checkout of that tenant sets it):
///
/// | hook | runs | an error |
/// |---|---|---|
/// | [`after_create`](Self::after_create) | after the registry row, the schema, the tenant migrations and the domains; also when the schema was a claimed spare | rolls everything back: no row, no schema, no domains |
/// | [`before_delete`](Self::before_delete) | before the row is deleted (and the schema dropped, with `drop_schema`) | vetoes the deletion: nothing is deleted |
/// | [`after_rename`](Self::after_rename) | after the row got its new name | rolls the rename back |
///
/// Every creation path goes through [`SyncRouter::create_tenant`](crate::SyncRouter::create_tenant)
/// (the CLI's `tenant create`, [`Tenancy::create_tenant`](crate::rocket::Tenancy::create_tenant)),
/// so the hooks run for all of them; [`TenantRegistry`](crate::TenantRegistry)'s
/// functions touch rows only and run none. Several hooks of one kind run in the order
/// they were added; the first error stops the rest. A failure is [`Error::Hook`], naming
/// the hook and the tenant. Return a [`Refusal`] for a deliberate "no" (the Rocket
/// integration answers it with 409 and its reason; any other error is a 500).
///
/// Hooks run as the role that runs the router's migrations (the schema's owner), like a
/// data migration, also with [tenant roles](crate::TenantPoolBuilder::tenant_roles) on:
/// what a hook writes is then readable and writable by the tenant's role through the
/// grants every tenant table gets, but the hook itself is not confined to the tenant.
///
/// A [row tenant](crate::TenantMode::Rows)'s hooks run in its scope as a checkout of it
/// sets it: the row schema on the path, as the row role, with the tenant's id in
/// `diesel_tenancy.tenant`, so row-level security shows them that tenant's rows only and
/// what they insert gets its `tenant_id`. After them the transaction runs as the login
/// role again.
///
/// A hook must not end the transaction itself (`COMMIT`, `ROLLBACK`) nor swallow a failed
/// statement's error: the crate checks with the server after the hooks and fails with
/// [`Error::TransactionBroken`] if the transaction is not the one it opened or is
/// aborted (`tests/hooks.rs`). A hook that committed has committed, though, and a
/// hook that rolls back to a savepoint it did not make (Diesel's, which wraps the
/// creation in [`PoolMode::TransactionLocal`](crate::PoolMode::TransactionLocal)) undoes
/// the creation unseen: keep transaction control out of hooks.
///
/// ```no_run
/// use diesel::prelude::*;
/// use diesel_migrations::{embed_migrations, EmbeddedMigrations};
/// use diesel_tenancy::{NewTenant, Refusal, SyncRouter, TenantHooks, TenantPool};
///
/// const TENANT: EmbeddedMigrations = embed_migrations!("migrations_tenant");
///
/// # fn main() -> diesel_tenancy::Result<()> {
/// let hooks = TenantHooks::new()
///     // Seed every new tenant: `hotels` is the new tenant's table.
///     .after_create(|conn, tenant| {
///         diesel::sql_query("INSERT INTO hotels (name, location, description) \
///                            VALUES ('Demo', 'Paris', 'A first hotel')")
///             .execute(conn)?;
///         log::info!("seeded {}", tenant.name);
///         Ok(())
///     })
///     // Keep tenants that still have data.
///     .before_delete(|conn, tenant, drop_schema| {
///         let n: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM hotels")
///             .get_result(conn)?;
///         if drop_schema && n > 0 {
///             return Err(Refusal::new(format!("{} still has {n} hotels", tenant.name)).into());
///         }
///         Ok(())
///     });
/// let pool = TenantPool::builder().build("postgres://localhost/app")?;
/// let router = SyncRouter::new(pool, TENANT).hooks(hooks);
/// router.create_tenant(&NewTenant::named("acme"))?; // seeded, or not created at all
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct TenantHooks {
    after_create: Vec<AfterCreate>,
    before_delete: Vec<BeforeDelete>,
    after_rename: Vec<AfterRename>,
}

impl std::fmt::Debug for TenantHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantHooks")
            .field("after_create", &self.after_create.len())
            .field("before_delete", &self.before_delete.len())
            .field("after_rename", &self.after_rename.len())
            .finish()
    }
}

impl TenantHooks {
    /// No hooks.
    pub fn new() -> Self {
        TenantHooks::default()
    }

    /// Runs `hook` after a tenant is created, inside the creation transaction, in the new
    /// tenant's scope: seed rows, create per-tenant objects the migrations cannot.
    pub fn after_create<F>(mut self, hook: F) -> Self
    where
        F: Fn(&mut PgConnection, &Tenant) -> HookResult + Send + Sync + 'static,
    {
        self.after_create.push(Arc::new(hook));
        self
    }

    /// Runs `hook` before a tenant is deleted, inside the deletion transaction, in the
    /// tenant's scope (if its schema exists). The third argument says whether the schema
    /// and its data (a row tenant's rows) are about to be dropped. An error vetoes the
    /// deletion.
    pub fn before_delete<F>(mut self, hook: F) -> Self
    where
        F: Fn(&mut PgConnection, &Tenant, bool) -> HookResult + Send + Sync + 'static,
    {
        self.before_delete.push(Arc::new(hook));
        self
    }

    /// Runs `hook` after a tenant is renamed, inside the renaming transaction, in the
    /// tenant's scope. It gets the tenant under its new name and the old name.
    pub fn after_rename<F>(mut self, hook: F) -> Self
    where
        F: Fn(&mut PgConnection, &Tenant, &str) -> HookResult + Send + Sync + 'static,
    {
        self.after_rename.push(Arc::new(hook));
        self
    }

    /// Whether no hook is registered.
    pub fn is_empty(&self) -> bool {
        self.after_create.is_empty()
            && self.before_delete.is_empty()
            && self.after_rename.is_empty()
    }

    /// Whether an after-create hook is registered.
    pub(crate) fn has_after_create(&self) -> bool {
        !self.after_create.is_empty()
    }

    pub(crate) fn run_after_create(
        &self,
        conn: &mut PgConnection,
        scope: &HookScope,
        tenant: &Tenant,
    ) -> Result<()> {
        run(
            conn,
            scope,
            tenant,
            Hook::AfterCreate,
            &self.after_create,
            |h, c| h(c, tenant),
        )
    }

    pub(crate) fn run_before_delete(
        &self,
        conn: &mut PgConnection,
        scope: &HookScope,
        tenant: &Tenant,
        drop_schema: bool,
    ) -> Result<()> {
        run(
            conn,
            scope,
            tenant,
            Hook::BeforeDelete,
            &self.before_delete,
            |h, c| h(c, tenant, drop_schema),
        )
    }

    pub(crate) fn run_after_rename(
        &self,
        conn: &mut PgConnection,
        scope: &HookScope,
        tenant: &Tenant,
        old_name: &str,
    ) -> Result<()> {
        run(
            conn,
            scope,
            tenant,
            Hook::AfterRename,
            &self.after_rename,
            |h, c| h(c, tenant, old_name),
        )
    }
}

/// Where hooks run: the statements that put the crate's transaction into a tenant's
/// scope (as a checkout of that tenant would) and take it out again, and the place
/// errors name.
#[derive(Debug, Clone)]
pub(crate) struct HookScope {
    enter: String,
    leave: Option<String>,
    place: SchemaRef,
}

impl HookScope {
    /// A schema tenant's scope: `path` (rendered by `Scope::search_path`) for the rest of
    /// the transaction. Hooks run as the login role.
    pub(crate) fn schema(path: &str, schema: &SchemaName) -> HookScope {
        HookScope {
            enter: format!("SET LOCAL search_path TO {path}"),
            leave: None,
            place: SchemaRef::Schema(schema.to_string()),
        }
    }

    /// Row tenant `tenant`'s scope: `path` (the row schema's), the row role `role` and
    /// the tenant setting, for the hooks only; the transaction goes back to the login
    /// role and no tenant after them.
    pub(crate) fn rows(path: &str, role: &str, tenant: i64) -> HookScope {
        HookScope {
            enter: format!(
                "SET LOCAL search_path TO {path}; SET LOCAL ROLE {}; \
                 SET LOCAL diesel_tenancy.tenant TO '{tenant}'",
                quote_ident(role)
            ),
            leave: Some("SET LOCAL ROLE NONE; SET LOCAL diesel_tenancy.tenant TO ''".into()),
            place: SchemaRef::RowTenant(tenant),
        }
    }
}

/// Enters the tenant's scope, runs `hooks` in order, proves the transaction is still the
/// one the crate opened and not aborted, and leaves the scope.
fn run<H>(
    conn: &mut PgConnection,
    scope: &HookScope,
    tenant: &Tenant,
    hook: Hook,
    hooks: &[H],
    call: impl Fn(&H, &mut PgConnection) -> HookResult,
) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    // Rendered from validated names, a quoted role and an integer.
    conn.batch_execute(&scope.enter)?;
    let mark = TransactionMark::take(conn)?;
    for h in hooks {
        call(h, conn).map_err(|source| Error::Hook {
            hook,
            tenant: tenant.name.clone(),
            source,
        })?;
    }
    mark.check(conn, &scope.place, &format!("the {hook} hook"))?;
    if let Some(leave) = &scope.leave {
        conn.batch_execute(leave)?;
    }
    Ok(())
}

/// A hook's deliberate "no": return it (`Err(Refusal::new("…").into())`) to veto a
/// change. It fails like any hook error ([`Error::Hook`]); the Rocket integration
/// answers it with 409 Conflict and the reason, where other hook errors are a 500.
///
/// ```
/// use diesel_tenancy::Refusal;
///
/// let no = Refusal::new("tenant `acme` has unpaid invoices");
/// assert_eq!(no.to_string(), "tenant `acme` has unpaid invoices");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    reason: String,
}

impl Refusal {
    /// A refusal with the reason to show.
    pub fn new(reason: impl Into<String>) -> Self {
        Refusal {
            reason: reason.into(),
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Refusal {}

//! The crate's one error type.

use std::fmt;

/// A boxed error coming from Diesel's migration harness.
pub type MigrationError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`enum@Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A schema named in an error: the public schema or one tenant's schema, by name.
///
/// Every failure names the schema (and so the tenant) it concerns. Unlike a
/// [`Scope`](crate::Scope), which a connection is checked out into, it only names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SchemaRef {
    /// The `public` schema (shared tables, tenant registry).
    Public,
    /// A tenant schema, by its schema name.
    Schema(String),
    /// One row tenant's rows in the row schema, by the tenant's registry id.
    RowTenant(i64),
    /// Every row tenant's rows (the row schema as its owner).
    AllRows,
}

impl fmt::Display for SchemaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaRef::Public => f.write_str("the public schema"),
            SchemaRef::Schema(s) => write!(f, "tenant schema `{s}`"),
            SchemaRef::RowTenant(id) => write!(f, "the rows of row tenant {id}"),
            SchemaRef::AllRows => f.write_str("every row tenant's rows"),
        }
    }
}

/// A boxed error returned by an application's tenant lifecycle hook.
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which tenant lifecycle hook ran (see [`TenantHooks`](crate::TenantHooks)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// After a tenant was created, inside the creation transaction.
    AfterCreate,
    /// Before a tenant is deleted, inside the deletion transaction.
    BeforeDelete,
    /// After a tenant was renamed, inside the renaming transaction.
    AfterRename,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::AfterCreate => "after-create",
            Hook::BeforeDelete => "before-delete",
            Hook::AfterRename => "after-rename",
        })
    }
}

/// Everything that can go wrong in `diesel-tenancy`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A schema name broke the naming rules; `reason` says which.
    #[error("invalid schema name `{name}`: {reason}")]
    InvalidSchemaName {
        /// The rejected input (possibly shortened for display).
        name: String,
        /// A human explanation of the rule that was broken.
        reason: &'static str,
    },

    /// A tenant name was empty, too long or contained control characters.
    #[error("invalid tenant name `{name}`: {reason}")]
    InvalidTenantName {
        /// The rejected input (possibly shortened for display).
        name: String,
        /// A human explanation of the rule that was broken.
        reason: &'static str,
    },

    /// A domain name was not a valid host name.
    #[error("invalid domain `{domain}`: {reason}")]
    InvalidDomain {
        /// The rejected input (possibly shortened for display).
        domain: String,
        /// A human explanation of the rule that was broken.
        reason: &'static str,
    },

    /// No tenant is registered under this name.
    #[error("unknown tenant `{name}`")]
    UnknownTenant {
        /// The name that was looked up.
        name: String,
    },

    /// No domain is registered under this name.
    #[error("unknown domain `{domain}`")]
    UnknownDomain {
        /// The domain that was looked up.
        domain: String,
    },

    /// The tenant registry's tables (`public.tenants`, `public.domains`) do not exist: the
    /// database has not been set up. Run the shared migrations first
    /// ([`SyncRouter::migrate_shared`](crate::SyncRouter::migrate_shared), the `migrate`
    /// command, or the Rocket fairing's launch).
    #[error(
        "the tenant registry is missing: {table} does not exist (did you forget to run \
         `migrate`? the shared migrations create it)"
    )]
    RegistryMissing {
        /// The registry table a query did not find.
        table: &'static str,
    },

    /// A tenant with this name (compared case-insensitively) already exists.
    #[error("a tenant named `{name}` already exists")]
    TenantExists {
        /// The conflicting name.
        name: String,
    },

    /// The schema a new tenant would use already exists (another tenant's, or a stray one).
    #[error("schema `{schema}` already exists; refusing to reuse it for tenant `{tenant}`")]
    SchemaExists {
        /// The tenant being created or renamed.
        tenant: String,
        /// The schema that already exists.
        schema: String,
    },

    /// A registered tenant's schema does not exist.
    #[error("schema `{schema}` does not exist (its registry row has no schema)")]
    SchemaMissing {
        /// The missing schema.
        schema: String,
    },

    /// The domain (compared case-insensitively) is already registered.
    #[error("domain `{domain}` is already registered")]
    DomainExists {
        /// The conflicting domain.
        domain: String,
    },

    /// The scope of a connection was to be changed while a transaction is open on it.
    #[error("cannot change the scope of a connection to {wanted} inside an open transaction")]
    ScopeChangeInTransaction {
        /// The scope that was asked for.
        wanted: SchemaRef,
    },

    /// Setting `search_path` failed; the connection was discarded.
    #[error("could not set search_path for {place}: {source}")]
    SetScope {
        /// The scope being entered.
        place: SchemaRef,
        /// The database error.
        #[source]
        source: diesel::result::Error,
    },

    /// The checkout could not prove a pooled connection's session clean (a transaction
    /// block left open, another role, temporary objects, open cursors, `LISTEN`
    /// registrations, the pool's prepared statement gone, ...). Every such connection is
    /// discarded and another one tried; this is returned when all the tries failed.
    #[error("no connection could be proven clean for {place}: {reason}")]
    UncleanSession {
        /// The scope being entered.
        place: SchemaRef,
        /// What the last failed proof reported.
        reason: String,
    },

    /// A cached route named a tenant schema by an identity (its OID) that the database
    /// no longer has under that name: the tenant was deleted with its schema, or its
    /// schema was dropped and created again. Proven by the checkout; the connection was
    /// not used.
    #[error(
        "the route to schema `{schema}` is stale: the schema it named was dropped or replaced"
    )]
    StaleRoute {
        /// The schema the route named.
        schema: String,
    },

    /// A tenant scope's database role could not be used (tenant roles on): it does not
    /// exist (the tenant was made before roles were turned on, or by a process without
    /// them: run [`SyncRouter::sync_tenant_roles`](crate::SyncRouter::sync_tenant_roles)
    /// or the `tenant roles` command), the login role may not `SET ROLE` to it, it failed
    /// the checkout's role proof (it is a superuser), or, where roles are made, migrated
    /// or repaired, it has `CREATEROLE` or `BYPASSRLS` or is a member of another role. At
    /// checkout the connection was discarded; no other one is tried.
    #[error("tenant role `{role}` cannot be used for {place}: {reason}")]
    TenantRole {
        /// The scope being entered.
        place: SchemaRef,
        /// The tenant role.
        role: String,
        /// What PostgreSQL or the role proof reported.
        reason: String,
    },

    /// Row tenants cannot be kept apart on this database as it stands, so nothing was
    /// done: the pool logs in as a superuser or a `BYPASSRLS` role (row-level security
    /// never applies to them), the row role is missing or may bypass the policies, or a
    /// table of the row schema has no forced tenant policy. `reason` says which, and how
    /// to fix it (which role to create, which table to give the policy).
    #[error("row tenants cannot be isolated here: {reason}")]
    RowSecurity {
        /// What was found, and how to fix it.
        reason: String,
    },

    /// Tenant roles are on, but the role that creates, repairs or drops them has neither
    /// `CREATEROLE` nor superuser.
    #[error(
        "role `{login}` may not create or drop tenant roles: give it CREATEROLE \
         (ALTER ROLE {login} CREATEROLE) or turn tenant roles off"
    )]
    TenantRolesNotPermitted {
        /// The role that lacks the attribute (`current_user`).
        login: String,
    },

    /// No connection could be checked out of the pool in time, or one could not be opened.
    #[error("could not get a database connection: {0}")]
    Pool(#[source] r2d2::Error),

    /// Opening a connection failed.
    #[error("could not connect to the database: {0}")]
    Connection(#[source] diesel::ConnectionError),

    /// A query failed.
    #[error("query failed: {0}")]
    Query(#[source] diesel::result::Error),

    /// A migration failed; everything it did in that schema was rolled back.
    #[error("while migrating {place}: {source}")]
    Migration {
        /// The schema being migrated.
        place: SchemaRef,
        /// The harness error.
        #[source]
        source: MigrationError,
    },

    /// Two migration sets that share a tracking table use the same version.
    #[error(
        "migration version `{version}` appears in both the shared and the tenant set; \
         they share `public.__diesel_schema_migrations` when the public tenant is on, \
         so versions must be distinct"
    )]
    MigrationVersionConflict {
        /// The duplicated version.
        version: String,
    },

    /// A `Session`-mode pool was pointed at a transaction pooler (e.g. PgBouncer in
    /// `pool_mode = transaction`), where a session `SET search_path` leaks to other clients.
    #[error(
        "the database URL leads to a transaction pooler (two client sessions shared one \
         server backend); session-mode search_path would leak between clients: use \
         PoolMode::TransactionLocal"
    )]
    SessionModeBehindPooler,

    /// An application's lifecycle hook failed (or refused, see
    /// [`Refusal`](crate::Refusal)); the transaction it ran in was rolled back, so the
    /// tenant was not created, deleted or renamed.
    #[error("the {hook} hook failed for tenant `{tenant}`: {source}")]
    Hook {
        /// The hook that failed.
        hook: Hook,
        /// The tenant's name.
        tenant: String,
        /// What the hook returned.
        #[source]
        source: HookError,
    },

    /// Code the crate ran inside a transaction it opened (a lifecycle hook, a closure
    /// given to [`SyncRouter::for_each_tenant`](crate::SyncRouter::for_each_tenant), the
    /// SQL of `tenant sql`) ended that transaction itself or left it aborted. The crate's
    /// own work in that transaction is rolled back; what the code ran before a `COMMIT`
    /// of its own is not.
    #[error("{by} broke the transaction it ran in, in {place}: {reason}")]
    TransactionBroken {
        /// Where it ran.
        place: SchemaRef,
        /// What ran, e.g. "the after-create hook".
        by: String,
        /// What it did to the transaction.
        reason: &'static str,
    },

    /// The operation works only on a Citus cluster (placement, moves, rebalancing,
    /// distribution), and the database has no `citus` extension.
    #[error(
        "{what} needs Citus: this database has no citus extension \
         (see \"Scaling out with Citus\" in the crate docs)"
    )]
    NeedsCitus {
        /// What was asked for, e.g. "`tenant placement`".
        what: &'static str,
    },

    /// A feature that cannot work on a Citus database was asked for there, or a Citus
    /// operation was refused; `reason` says why and what to do instead.
    #[error("{what} cannot be used on this Citus database: {reason}")]
    Citus {
        /// What was asked for, e.g. "tenant roles".
        what: &'static str,
        /// Why not, and what to do.
        reason: String,
    },

    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A background part of the crate (the registry cache's listener, a blocking
    /// database task) has stopped or did not answer in time.
    #[error("{what} is unavailable: {reason}")]
    Unavailable {
        /// The part that is unavailable.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl From<diesel::result::Error> for Error {
    /// [`Error::RegistryMissing`] for a query that met a missing registry table,
    /// [`Error::Query`] for anything else.
    fn from(e: diesel::result::Error) -> Self {
        match registry_table_missing(&e) {
            Some(table) => Error::RegistryMissing { table },
            None => Error::Query(e),
        }
    }
}

/// The registry table `e` says does not exist, if it says so: PostgreSQL's
/// `relation "public.tenants" does not exist` (the registry's queries name their tables
/// schema-qualified). Diesel reports no SQLSTATE, so this reads the message; a server
/// with `lc_messages` in another language keeps the plain [`Error::Query`].
fn registry_table_missing(e: &diesel::result::Error) -> Option<&'static str> {
    let diesel::result::Error::DatabaseError(_, info) = e else {
        return None;
    };
    ["public.tenants", "public.domains", "public.tenant_spares"]
        .into_iter()
        .find(|table| info.message() == format!("relation \"{table}\" does not exist"))
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Pool(e)
    }
}

impl From<diesel::ConnectionError> for Error {
    fn from(e: diesel::ConnectionError) -> Self {
        Error::Connection(e)
    }
}

impl Error {
    /// True when the error means the database could not be reached in time
    /// (pool timeout, refused or lost connection): a service should answer 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Pool(_) | Error::Connection(_) | Error::Unavailable { .. } => true,
            Error::Query(e) | Error::SetScope { source: e, .. } => connection_lost(e),
            _ => false,
        }
    }
}

/// True when a Diesel error means the connection is gone or unusable.
pub(crate) fn connection_lost(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error as D};
    matches!(
        e,
        D::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        ) | D::BrokenTransactionManager
    )
}

/// Shortens user input kept in error values, so a 10 KB header does not become a 10 KB message.
pub(crate) fn shorten(input: &str) -> String {
    const MAX: usize = 80;
    if input.len() <= MAX {
        return input.escape_debug().to_string();
    }
    let mut end = MAX;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", input[..end].escape_debug())
}

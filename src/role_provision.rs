//! Creating, granting and dropping tenant roles ([`TenantRoles`]), inside the transactions
//! the router already runs, and [`SyncRouter::sync_tenant_roles`], the backfill.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text};
use serde::Serialize;

use crate::error::{Error, Place, Result};
use crate::migrate::{lock, schema_exists, SyncRouter};
use crate::registry::{Tenant, TenantRegistry};
use crate::schema_name::{quote_ident, SchemaName};
use crate::tenant_roles::{schema_grants_sql, RoleNames, SchemaObjects, TenantRoles};

/// The advisory-lock key under which a database's group role is created (it cannot be a
/// schema name, so it never shares a lock with a tenant).
const GROUP_LOCK: &str = "diesel-tenancy tenant roles";

/// Who is asking, in which database: read once per transaction that manages roles.
#[derive(QueryableByName)]
pub(crate) struct Context {
    #[diesel(sql_type = BigInt)]
    database: i64,
    #[diesel(sql_type = Text)]
    login: String,
    #[diesel(sql_type = Bool)]
    superuser: bool,
    #[diesel(sql_type = Bool)]
    createrole: bool,
}

impl Context {
    /// Reads the context and fails with [`Error::TenantRolesNotPermitted`] unless the
    /// current role may create and drop roles.
    pub(crate) fn managing(conn: &mut PgConnection) -> Result<Context> {
        let context = Context::read(conn)?;
        context.require_createrole()?;
        Ok(context)
    }

    fn read(conn: &mut PgConnection) -> Result<Context> {
        Ok(diesel::sql_query(
            "SELECT d.oid::int8 AS database, r.rolname::text AS login, \
             r.rolsuper AS superuser, r.rolcreaterole AS createrole \
             FROM pg_catalog.pg_database d, pg_catalog.pg_roles r \
             WHERE d.datname = pg_catalog.current_database() AND r.rolname = current_user",
        )
        .get_result(conn)?)
    }

    fn names(&self) -> Result<RoleNames> {
        u32::try_from(self.database)
            .map(RoleNames::new)
            .map_err(|_| Error::Config(format!("database OID {} out of range", self.database)))
    }

    /// Fails unless the current role may create and drop roles.
    fn require_createrole(&self) -> Result<()> {
        if self.superuser || self.createrole {
            Ok(())
        } else {
            Err(Error::TenantRolesNotPermitted {
                login: self.login.clone(),
            })
        }
    }
}

#[derive(QueryableByName)]
struct ExistingRole {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    can_login: bool,
}

/// Which of `names` exist, and whether each can log in.
fn existing_roles(conn: &mut PgConnection, names: &[String]) -> Result<HashMap<String, bool>> {
    Ok(diesel::sql_query(
        "SELECT rolname::text AS name, rolcanlogin AS can_login \
         FROM pg_catalog.pg_roles WHERE rolname = ANY($1)",
    )
    .bind::<Array<Text>, _>(names)
    .load::<ExistingRole>(conn)?
    .into_iter()
    .map(|r| (r.name, r.can_login))
    .collect())
}

/// A role this crate would use but must not: one that can log in is someone's account.
fn refuse_login_role(place: Place, role: &str) -> Error {
    Error::TenantRole {
        place,
        role: role.to_owned(),
        reason: "a role of that name exists and can log in; it is not a tenant role this \
                 crate made, and it is neither used nor dropped"
            .into(),
    }
}

/// Creates the database's group role unless it exists (under an advisory lock, so two
/// first tenants do not both create it), with the declared shared grants.
/// `known`: what an earlier look-up found of the group (`None`: look it up).
fn ensure_group(
    conn: &mut PgConnection,
    names: &RoleNames,
    roles: &TenantRoles,
    known: Option<&HashMap<String, bool>>,
) -> Result<()> {
    let group = names.group();
    let found = match known {
        Some(known) => known.get(&group).copied(),
        None => existing_roles(conn, std::slice::from_ref(&group))?
            .get(&group)
            .copied(),
    };
    match found {
        Some(true) => return Err(refuse_login_role(Place::Public, &group)),
        Some(false) => return Ok(()),
        None => {}
    }
    lock(conn, GROUP_LOCK)?;
    match existing_roles(conn, std::slice::from_ref(&group))?.get(&group) {
        Some(true) => return Err(refuse_login_role(Place::Public, &group)),
        Some(false) => return Ok(()),
        None => {}
    }
    conn.batch_execute(&format!(
        "CREATE ROLE {} NOLOGIN; {}",
        quote_ident(&group),
        roles.shared_grants_sql(&group)
    ))?;
    Ok(())
}

/// Creates `schema`'s tenant role unless it exists, lets the current role `SET ROLE` to
/// it, and grants it its schema (see [`schema_grants_sql`]); the tracking table is
/// revoked. Idempotent; runs in the caller's transaction, which should hold the schema's
/// advisory lock. Returns the role's name and whether it was created.
pub(crate) fn ensure_tenant_role(
    conn: &mut PgConnection,
    context: &Context,
    roles: &TenantRoles,
    schema: &SchemaName,
) -> Result<(String, bool)> {
    let names = context.names()?;
    let (group, role) = (names.group(), names.tenant(schema));
    let (existing, objects) = look_up(conn, &[group.clone(), role.clone()], schema)?;
    ensure_group(conn, &names, roles, Some(&existing))?;
    let place = Place::Schema(schema.to_string());
    if existing.get(&role) == Some(&true) {
        return Err(refuse_login_role(place, &role));
    }
    let created = !existing.contains_key(&role);
    let (quoted_role, quoted_group) = (quote_ident(&role), quote_ident(&group));
    let mut sql = if created {
        format!("CREATE ROLE {quoted_role} NOLOGIN IN ROLE {quoted_group}; ")
    } else {
        format!("GRANT {quoted_group} TO {quoted_role}; ")
    };
    if !context.superuser {
        // `SET ROLE` needs membership (a superuser may set any role).
        sql.push_str(&format!("GRANT {quoted_role} TO CURRENT_USER; "));
    }
    sql.push_str(&schema_grants_sql(schema, &role, &objects));
    sql.push_str("; ");
    sql.push_str(&audit_sql(&group, &role));
    conn.batch_execute(&sql).map_err(|e| match &e {
        diesel::result::Error::DatabaseError(_, info) => match crate::proof::reason(info.message())
        {
            Some(reason) => Error::TenantRole {
                place,
                role: role.clone(),
                reason: format!("{reason}; a tenant role must have its grants and nothing more"),
            },
            None => Error::Query(e),
        },
        _ => Error::Query(e),
    })?;
    Ok((role, created))
}

/// A `SELECT` that raises an error carrying [`crate::proof::MARK`] and the reasons unless
/// the tenant role `role` and the group are what the crate made: no superuser,
/// `CREATEROLE` or `BYPASSRLS`; the role a member of the group only, the group of no role.
/// A tenant role given more (by hand, or by SQL that changed the role in a checkout) would
/// reach past its grants. Run wherever roles are made or repaired, in the batch that
/// grants, not on every checkout, where reading these shared catalogs is costly.
fn audit_sql(group: &str, role: &str) -> String {
    let (g, r) = (crate::proof::literal(group), crate::proof::literal(role));
    let mark = crate::proof::MARK;
    format!(
        "SELECT CASE WHEN a.problems = '' THEN 0 ELSE pg_catalog.int4in(pg_catalog.textout(\
           pg_catalog.concat('{mark}', a.problems))) END \
         FROM (SELECT pg_catalog.concat_ws('; ', \
           (SELECT pg_catalog.string_agg(pg_catalog.concat('role ', r.rolname, \
              ' is a superuser or has CREATEROLE or BYPASSRLS'), '; ') \
            FROM pg_catalog.pg_roles r WHERE r.rolname IN ({g}, {r}) \
            AND (r.rolsuper OR r.rolcreaterole OR r.rolbypassrls)), \
           (SELECT pg_catalog.string_agg(pg_catalog.concat('role ', r.rolname, \
              ' is a member of ', h.rolname), '; ') \
            FROM pg_catalog.pg_auth_members m \
            JOIN pg_catalog.pg_roles r ON r.oid = m.member \
            JOIN pg_catalog.pg_roles h ON h.oid = m.roleid \
            WHERE r.rolname IN ({g}, {r}) AND NOT (r.rolname = {r} AND h.rolname = {g})) \
         ) AS problems) AS a"
    )
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    flag: bool,
}

/// In one query: which of the roles `names` exist (and whether each can log in), and the
/// tables and sequences of `schema`, found through `pg_depend`'s index on the referenced
/// object (every relation depends on its schema), not by scanning `pg_class`.
fn look_up(
    conn: &mut PgConnection,
    names: &[String],
    schema: &SchemaName,
) -> Result<(HashMap<String, bool>, SchemaObjects)> {
    let found: Vec<Found> = diesel::sql_query(
        "SELECT 'role' AS kind, rolname::text AS name, rolcanlogin AS flag \
         FROM pg_catalog.pg_roles WHERE rolname = ANY($1) \
         UNION ALL \
         SELECT 'relation', c.relname::text, c.relkind = 'S' \
         FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid \
         WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass \
         AND d.refobjid = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $2) \
         AND d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 \
         AND c.relnamespace = d.refobjid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
         ORDER BY 1, 2",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<Text, _>(schema.as_str())
    .load(conn)?;
    let mut roles = HashMap::new();
    let mut objects = SchemaObjects::default();
    for f in found {
        match (f.kind.as_str(), f.flag) {
            ("role", can_login) => {
                roles.insert(f.name, can_login);
            }
            (_, true) => objects.sequences.push(f.name),
            (_, false) => objects.tables.push(f.name),
        }
    }
    Ok((roles, objects))
}

/// Drops `schema`'s tenant role if it exists: anything it owns goes to the current role
/// (so no data is lost), its privileges are revoked, and the role is dropped. Runs in
/// the caller's transaction.
pub(crate) fn drop_tenant_role(conn: &mut PgConnection, schema: &SchemaName) -> Result<()> {
    let context = Context::read(conn)?;
    let role = context.names()?.tenant(schema);
    match existing_roles(conn, std::slice::from_ref(&role))?.get(&role) {
        None => return Ok(()),
        Some(true) => return Err(refuse_login_role(Place::Schema(schema.to_string()), &role)),
        Some(false) => {}
    }
    context.require_createrole()?;
    let r = quote_ident(&role);
    conn.batch_execute(&format!(
        "REASSIGN OWNED BY {r} TO CURRENT_USER; DROP OWNED BY {r}; DROP ROLE {r}"
    ))?;
    Ok(())
}

#[derive(QueryableByName)]
struct Granted {
    #[diesel(sql_type = Text)]
    schema_name: String,
    #[diesel(sql_type = Text)]
    table_name: String,
}

/// Makes the group's table grants exactly the declared shared reads: creates the group
/// if missing, grants what is declared, revokes from tables no longer declared (found
/// through `pg_shdepend`, which records every grant to a role).
pub(crate) fn sync_shared_grants(conn: &mut PgConnection, roles: &TenantRoles) -> Result<()> {
    let context = Context::managing(conn)?;
    let names = context.names()?;
    ensure_group(conn, &names, roles, None)?;
    let group = names.group();
    for table in roles.shared_reads() {
        let qualified = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&table.table)
        );
        if !crate::sql::table_exists(conn, &qualified)? {
            return Err(Error::Config(format!(
                "TenantRoles::read_shared names {qualified}, which does not exist: declare \
                 tables the shared set creates"
            )));
        }
    }
    let granted: Vec<Granted> = diesel::sql_query(
        "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name \
         FROM pg_catalog.pg_shdepend s \
         JOIN pg_catalog.pg_class c ON c.oid = s.objid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass \
         AND s.refobjid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1) \
         AND s.classid = 'pg_catalog.pg_class'::regclass AND s.deptype = 'a' \
         AND s.dbid = (SELECT oid FROM pg_catalog.pg_database \
                       WHERE datname = pg_catalog.current_database())",
    )
    .bind::<Text, _>(&group)
    .load(conn)?;
    let mut sql = roles.shared_grants_sql(&group);
    for stale in granted
        .iter()
        .filter(|g| !roles.reads(&g.schema_name, &g.table_name))
    {
        sql.push_str(&format!(
            "REVOKE ALL ON {}.{} FROM {}; ",
            quote_ident(&stale.schema_name),
            quote_ident(&stale.table_name),
            quote_ident(&group)
        ));
    }
    if !sql.is_empty() {
        conn.batch_execute(&sql)?;
    }
    Ok(())
}

/// Drops the roles made for the database whose OID was `database` (after the database
/// itself was dropped: `DROP DATABASE` leaves roles, which live in the cluster). Only
/// roles named like this crate names them and that cannot log in are dropped. Returns
/// how many.
pub(crate) fn drop_database_roles(admin: &mut PgConnection, database: u32) -> Result<usize> {
    let names = RoleNames::new(database);
    let found: Vec<ExistingRole> = diesel::sql_query(
        "SELECT rolname::text AS name, rolcanlogin AS can_login FROM pg_catalog.pg_roles \
         WHERE NOT rolcanlogin AND (rolname = $1 OR pg_catalog.starts_with(rolname, $2))",
    )
    .bind::<Text, _>(names.group())
    .bind::<Text, _>(names.tenant_prefix())
    .load(admin)?;
    if found.is_empty() {
        return Ok(0);
    }
    let list: Vec<String> = found.iter().map(|r| quote_ident(&r.name)).collect();
    admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", list.join(", ")))?;
    Ok(found.len())
}

/// The OID of database `name`, if it exists.
pub(crate) fn database_oid(admin: &mut PgConnection, name: &str) -> Result<Option<u32>> {
    #[derive(QueryableByName)]
    struct Oid {
        #[diesel(sql_type = BigInt)]
        oid: i64,
    }
    let found: Option<Oid> =
        diesel::sql_query("SELECT oid::int8 AS oid FROM pg_catalog.pg_database WHERE datname = $1")
            .bind::<Text, _>(name)
            .get_result(admin)
            .optional()?;
    Ok(found.and_then(|o| u32::try_from(o.oid).ok()))
}

/// The tenants of `tenants` whose role does not exist.
fn without_role(
    conn: &mut PgConnection,
    names: &RoleNames,
    mut tenants: Vec<Tenant>,
) -> Result<Vec<Tenant>> {
    let wanted: Vec<String> = tenants
        .iter()
        .map(|t| names.tenant(&t.schema_name))
        .collect();
    let existing = existing_roles(conn, &wanted)?;
    tenants.retain(|t| !existing.contains_key(&names.tenant(&t.schema_name)));
    Ok(tenants)
}

/// What [`SyncRouter::sync_tenant_roles`] did for one tenant.
#[derive(Debug, Serialize)]
pub struct TenantRoleReport {
    /// Tenant name.
    pub tenant: String,
    /// Tenant schema.
    pub schema: String,
    /// The tenant's role.
    pub role: String,
    /// Whether the role was created (otherwise it existed and was granted again).
    pub created: bool,
    /// Time taken.
    pub duration: Duration,
    /// Why it failed, if it did (nothing was changed for that tenant).
    #[serde(serialize_with = "crate::report::error_text")]
    pub error: Option<Error>,
}

/// What [`SyncRouter::sync_tenant_roles`] did.
#[derive(Debug, Serialize)]
pub struct RoleReport {
    /// One entry per registered tenant, in name order.
    pub tenants: Vec<TenantRoleReport>,
    /// Wall time.
    pub duration: Duration,
}

impl RoleReport {
    /// Tenants whose role could not be made or granted.
    pub fn failures(&self) -> impl Iterator<Item = &TenantRoleReport> {
        self.tenants.iter().filter(|t| t.error.is_some())
    }
}

impl SyncRouter {
    /// The name of the tenant role of `schema` in this router's database (whether or not
    /// it exists).
    pub fn tenant_role_name(&self, schema: &SchemaName) -> Result<String> {
        self.pool
            .with_public(|conn| Context::read(conn)?.names())
            .map(|names| names.tenant(schema))
    }

    /// The registered tenants whose role does not exist (tenant roles on or off).
    pub fn tenants_without_role(&self) -> Result<Vec<Tenant>> {
        self.pool.with_public(|conn| {
            let names = Context::read(conn)?.names()?;
            let tenants = TenantRegistry::list(conn)?;
            without_role(conn, &names, tenants)
        })
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
        self.sync_roles(false)
    }

    /// Like [`sync_tenant_roles`](Self::sync_tenant_roles), but only for the tenants
    /// whose role does not exist yet (one query when none is missing). The Rocket
    /// fairing runs it at launch.
    pub fn sync_missing_tenant_roles(&self) -> Result<RoleReport> {
        self.sync_roles(true)
    }

    fn sync_roles(&self, only_missing: bool) -> Result<RoleReport> {
        let started = Instant::now();
        let roles = self.pool.tenant_roles().cloned().ok_or_else(|| {
            Error::Config(
                "tenant roles are off for this pool: build it with \
                 TenantPoolBuilder::tenant_roles"
                    .into(),
            )
        })?;
        let (names, tenants) = self.pool.with_public(|conn| {
            conn.transaction(|conn| sync_shared_grants(conn, &roles))?;
            let names = Context::read(conn)?.names()?;
            let mut tenants = TenantRegistry::list(conn)?;
            if only_missing {
                tenants = without_role(conn, &names, tenants)?;
            }
            Ok::<_, Error>((names, tenants))
        })?;
        let tenants = tenants
            .into_iter()
            .map(|tenant| self.sync_one(&roles, &names, tenant))
            .collect();
        Ok(RoleReport {
            tenants,
            duration: started.elapsed(),
        })
    }

    fn sync_one(&self, roles: &TenantRoles, names: &RoleNames, tenant: Tenant) -> TenantRoleReport {
        let started = Instant::now();
        let schema = &tenant.schema_name;
        let result = self.pool.with_public(|conn| {
            conn.transaction(|conn| {
                lock(conn, schema.as_str())?;
                if !schema_exists(conn, schema)? {
                    return Err(Error::SchemaMissing {
                        schema: schema.to_string(),
                    });
                }
                let context = Context::managing(conn)?;
                ensure_tenant_role(conn, &context, roles, schema)
            })
        });
        let (created, error) = match result {
            Ok((_, created)) => (created, None),
            Err(e) => (false, Some(e)),
        };
        TenantRoleReport {
            role: names.tenant(schema),
            schema: schema.to_string(),
            tenant: tenant.name,
            created,
            duration: started.elapsed(),
            error,
        }
    }
}

//! Creating, granting, auditing and dropping tenant roles ([`TenantRoles`]), inside the
//! transactions the router already runs.

use std::collections::HashMap;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text};

use crate::error::{Error, Result, SchemaRef};
use crate::pool::lock;
use crate::pool::{schema_grants_sql, RoleNames, SchemaObjects, TenantRoles};
use crate::schema_name::{quote_ident, SchemaName};

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
    #[diesel(sql_type = Bool)]
    bypassrls: bool,
    #[diesel(sql_type = Text)]
    database_name: String,
}

impl Context {
    /// Reads the context and fails with [`Error::TenantRolesNotPermitted`] unless the
    /// current role may create and drop roles.
    pub(crate) fn managing(conn: &mut PgConnection) -> Result<Context> {
        let context = Context::read(conn)?;
        context.require_createrole()?;
        Ok(context)
    }

    pub(crate) fn read(conn: &mut PgConnection) -> Result<Context> {
        Ok(diesel::sql_query(
            "SELECT d.oid::int8 AS database, r.rolname::text AS login, \
             r.rolsuper AS superuser, r.rolcreaterole AS createrole, \
             r.rolbypassrls AS bypassrls, d.datname::text AS database_name \
             FROM pg_catalog.pg_database d, pg_catalog.pg_roles r \
             WHERE d.datname = pg_catalog.current_database() AND r.rolname = current_user",
        )
        .get_result(conn)?)
    }

    pub(crate) fn names(&self) -> Result<RoleNames> {
        u32::try_from(self.database)
            .map(RoleNames::new)
            .map_err(|_| Error::Config(format!("database OID {} out of range", self.database)))
    }

    /// The role the work runs as (the pool's login role).
    pub(crate) fn login(&self) -> &str {
        &self.login
    }

    /// Whether row-level security would not bind the current role (a superuser or a
    /// `BYPASSRLS` role): then row tenants cannot be kept apart.
    pub(crate) fn escapes_row_security(&self) -> bool {
        self.superuser || self.bypassrls
    }

    /// Whether the current role is a superuser.
    pub(crate) fn is_superuser(&self) -> bool {
        self.superuser
    }

    /// The current database's name.
    pub(crate) fn database_name(&self) -> &str {
        &self.database_name
    }

    /// Whether the current role may create roles.
    pub(crate) fn may_create_roles(&self) -> bool {
        self.superuser || self.createrole
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

/// What a role is, as far as tenant roles go.
#[derive(QueryableByName)]
pub(crate) struct RoleState {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    can_login: bool,
    /// Superuser, `CREATEROLE` or `BYPASSRLS`.
    #[diesel(sql_type = Bool)]
    powerful: bool,
    /// The roles it is a direct member of.
    #[diesel(sql_type = Array<Text>)]
    member_of: Vec<String>,
}

impl RoleState {
    /// Whether the role is a direct member of `role`.
    pub(crate) fn is_member_of(&self, role: &str) -> bool {
        self.member_of.iter().any(|m| m == role)
    }

    /// Fails unless the role is what the crate makes: it cannot log in (then it is
    /// someone's account, never used nor dropped), it is no superuser and has neither
    /// `CREATEROLE` nor `BYPASSRLS`, and it is a member of `allowed` roles only. A tenant
    /// role given more (by hand, or by SQL that changed the role in a checkout) would
    /// reach past its grants. Checked wherever roles are made or repaired, not on every
    /// checkout, where reading these shared catalogs is costly.
    pub(crate) fn audit(
        &self,
        place: &SchemaRef,
        tenant_role: &str,
        allowed: &[&str],
    ) -> Result<()> {
        let extra: Vec<&str> = self
            .member_of
            .iter()
            .map(String::as_str)
            .filter(|m| !allowed.contains(m))
            .collect();
        let reason = if self.can_login {
            format!(
                "role `{}` can log in: it is not a tenant role this crate made, and it is \
                 neither used nor dropped",
                self.name
            )
        } else if self.powerful {
            format!(
                "role `{}` is a superuser or has CREATEROLE or BYPASSRLS; a tenant role must \
                 have its grants and nothing more",
                self.name
            )
        } else if !extra.is_empty() {
            format!(
                "role `{}` is a member of {}; a tenant role must have its grants and nothing \
                 more",
                self.name,
                extra.join(", ")
            )
        } else {
            return Ok(());
        };
        Err(Error::TenantRole {
            place: place.clone(),
            role: tenant_role.to_owned(),
            reason,
        })
    }
}

/// The columns of [`RoleState`] for the roles of `pg_roles r` (a query fragment).
const ROLE_STATE: &str = "r.rolname::text AS name, r.rolcanlogin AS can_login, \
    r.rolsuper OR r.rolcreaterole OR r.rolbypassrls AS powerful, \
    ARRAY(SELECT g.rolname::text FROM pg_catalog.pg_auth_members m \
          JOIN pg_catalog.pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) \
    AS member_of";

/// The roles of `names` that exist.
pub(crate) fn existing_roles(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<HashMap<String, RoleState>> {
    Ok(diesel::sql_query(format!(
        "SELECT {ROLE_STATE} FROM pg_catalog.pg_roles r WHERE r.rolname = ANY($1)"
    ))
    .bind::<Array<Text>, _>(names)
    .load::<RoleState>(conn)?
    .into_iter()
    .map(|r| (r.name.clone(), r))
    .collect())
}

/// Creates the database's group role unless it exists (under an advisory lock, so two
/// first tenants do not both create it), with the declared shared grants; audits it if
/// it existed. `known`: the roles an earlier look-up found (`None`: look it up).
/// `place` and `tenant_role` name what was being done, for errors.
pub(super) fn ensure_group(
    conn: &mut PgConnection,
    names: &RoleNames,
    roles: &TenantRoles,
    known: Option<&HashMap<String, RoleState>>,
    (place, tenant_role): (&SchemaRef, &str),
) -> Result<()> {
    let group = names.group();
    let looked_up;
    let known = match known {
        Some(known) => known,
        None => {
            looked_up = existing_roles(conn, std::slice::from_ref(&group))?;
            &looked_up
        }
    };
    if let Some(found) = known.get(&group) {
        return found.audit(place, tenant_role, &[]);
    }
    lock(conn, GROUP_LOCK)?;
    if let Some(found) = existing_roles(conn, std::slice::from_ref(&group))?.get(&group) {
        return found.audit(place, tenant_role, &[]);
    }
    conn.batch_execute(&format!(
        "CREATE ROLE {} NOLOGIN; {}",
        quote_ident(&group),
        roles.shared_grants_sql(&group)
    ))?;
    Ok(())
}

/// Creates `schema`'s tenant role unless it exists (audits it if it did), lets the
/// current role `SET ROLE` to it, and grants it its schema (see [`schema_grants_sql`]).
/// Idempotent; runs in the caller's transaction, which should hold the schema's advisory
/// lock. Returns the role's name and whether it was created.
pub(crate) fn ensure_tenant_role(
    conn: &mut PgConnection,
    context: &Context,
    roles: &TenantRoles,
    schema: &SchemaName,
) -> Result<(String, bool)> {
    let names = context.names()?;
    let (group, role) = (names.group(), names.tenant(schema));
    let place = SchemaRef::Schema(schema.to_string());
    let (existing, objects) = look_up(conn, &[group.clone(), role.clone()], schema)?;
    ensure_group(conn, &names, roles, Some(&existing), (&place, &role))?;
    if let Some(found) = existing.get(&role) {
        found.audit(&place, &role, &[&group])?;
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
    conn.batch_execute(&sql)?;
    Ok((role, created))
}

#[derive(QueryableByName)]
struct Found {
    /// `role`, `table` or `sequence`.
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(embed)]
    state: RoleState,
}

/// In one round trip: the roles of `names` that exist, and the tables and sequences of
/// `schema`, found through `pg_depend`'s index on the referenced object (every relation
/// depends on its schema), not by scanning `pg_class`.
pub(super) fn look_up(
    conn: &mut PgConnection,
    names: &[String],
    schema: &SchemaName,
) -> Result<(HashMap<String, RoleState>, SchemaObjects)> {
    let found: Vec<Found> = diesel::sql_query(format!(
        "SELECT 'role' AS kind, {ROLE_STATE} FROM pg_catalog.pg_roles r \
         WHERE r.rolname = ANY($1) \
         UNION ALL \
         SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, \
           c.relname::text, false, false, '{{}}'::text[] \
         FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid \
         WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass \
         AND d.refobjid = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $2) \
         AND d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 \
         AND c.relnamespace = d.refobjid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') \
         ORDER BY 1, 2"
    ))
    .bind::<Array<Text>, _>(names)
    .bind::<Text, _>(schema.as_str())
    .load(conn)?;
    let mut roles = HashMap::new();
    let mut objects = SchemaObjects::default();
    for f in found {
        match f.kind.as_str() {
            "role" => {
                roles.insert(f.state.name.clone(), f.state);
            }
            "sequence" => objects.add_sequence(f.state.name),
            _ => objects.add_table(f.state.name),
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
        Some(found) if found.can_login => {
            // Someone's account that happens to have the name: not ours to drop.
            log::warn!(
                "diesel-tenancy: role `{}` can log in, so it is not a tenant role this crate \
                 made; it is left alone",
                found.name
            );
            return Ok(());
        }
        Some(_) => {}
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
    ensure_group(
        conn,
        &names,
        roles,
        None,
        (&SchemaRef::Public, &names.group()),
    )?;
    let group = names.group();
    for table in roles.shared_reads() {
        let qualified = table.quoted();
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
    let found: Vec<RoleState> = diesel::sql_query(format!(
        "SELECT {ROLE_STATE} FROM pg_catalog.pg_roles r WHERE NOT r.rolcanlogin \
         AND (r.rolname = $1 OR pg_catalog.starts_with(r.rolname, $2))"
    ))
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

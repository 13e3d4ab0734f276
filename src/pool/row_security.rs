//! Row tenants' part of the verified checkout: the statements that prove a
//! [`Scope::Rows`](super::Scope::Rows) session is bound by row-level security to exactly
//! its tenant, and the check that refuses a login role row security never binds.
//!
//! A row scope's message (see `proof.rs` for the rest) sets `diesel_tenancy.tenant` to
//! the tenant's registry id before the main proof, then runs, still as the login role,
//! [`TENANT_STATEMENT`]: it fails unless the setting names a registered row tenant (a
//! deleted one is a stale route): the value the row policies compare with, read back
//! from the session rather than passed again. After the path it sets the row role and
//! runs [`ROLE_STATEMENT`], which fails unless the session now runs as the row role under
//! the login role, is no superuser, has `row_security` on, still has a tenant set, and
//! PostgreSQL itself reports row security active for it on the row schema's sentinel
//! table (`row_security_active`, which answers no for a superuser, a `BYPASSRLS` role
//! and the owner of an unforced table). That every *other* table of the row schema is
//! forced and has the tenant policy is checked where tables are made (migrations) and by
//! `migrate --check`; a checkout reads the registry's row for its tenant (an index
//! lookup) and no catalog beyond the sentinel's cached entry.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use super::proof::{literal, MARK};
use super::tenant_roles::RoleNames;
use crate::error::{Error, Result};
use crate::schema_name::{quote_ident, SchemaName};

/// The setting that carries a row scope's tenant (its registry id) to the row policies.
pub(super) const TENANT_SETTING: &str = "diesel_tenancy.tenant";

/// The table that marks a schema as a row schema; the checkout asks PostgreSQL whether
/// row security binds the session on it.
pub(crate) const SENTINEL_TABLE: &str = "__diesel_tenancy_rows";

/// The prepared statement that proves a row scope's tenant is a registered row tenant.
pub(crate) const TENANT_STATEMENT: &str = "diesel_tenancy_row_tenant";

/// The prepared statement that proves a row scope's role and row security.
pub(crate) const ROLE_STATEMENT: &str = "diesel_tenancy_row_role";

/// Starts the reason the proof gives for a row tenant that is gone.
pub(crate) const STALE_ROW_TENANT: &str = "stale route: no row tenant has the id ";

/// How one connection proves row scopes: the names it checks against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowProof {
    /// The login role, as an SQL literal.
    login: String,
    /// The row role (`dt<oid>_<row schema>`).
    role: String,
    /// The row schema.
    schema: SchemaName,
}

impl RowProof {
    pub(crate) fn new(login: &str, names: RoleNames, schema: SchemaName) -> Self {
        RowProof {
            login: literal(login),
            role: names.tenant(&schema),
            schema,
        }
    }

    /// The row role, which every [`Scope::Rows`](super::Scope::Rows) checkout sets.
    pub(crate) fn role(&self) -> &str {
        &self.role
    }

    /// `PREPARE` of both row statements, sent with the first row checkout of a
    /// connection (they read the registry, which a new database does not have yet).
    pub(crate) fn prepare(&self) -> String {
        format!(
            "PREPARE {TENANT_STATEMENT} AS {}; PREPARE {ROLE_STATEMENT} AS {}",
            self.tenant_select(),
            self.role_select()
        )
    }

    /// The tenant check: `EXECUTE` of the prepared statement, or the `SELECT` itself
    /// (behind a transaction pooler).
    pub(crate) fn tenant_check(&self, prepared: bool) -> String {
        if prepared {
            format!("EXECUTE {TENANT_STATEMENT}")
        } else {
            self.tenant_select()
        }
    }

    /// The role proof, prepared or inline.
    pub(crate) fn role_check(&self, prepared: bool) -> String {
        if prepared {
            format!("EXECUTE {ROLE_STATEMENT}")
        } else {
            self.role_select()
        }
    }

    /// Fails unless the tenant setting (set earlier in the same message) names a
    /// registered row tenant: the very value the row policies compare with. Runs as the
    /// login role, which may read the registry. Parameterless, so PostgreSQL plans it once
    /// (a parameter made it plan the statement anew for each tenant id).
    fn tenant_select(&self) -> String {
        format!(
            "SELECT CASE WHEN EXISTS (SELECT FROM public.tenants t \
                 WHERE t.id OPERATOR(pg_catalog.=) pg_catalog.int8in(pg_catalog.textout( \
                   pg_catalog.current_setting('{TENANT_SETTING}'))) \
                 AND t.mode OPERATOR(pg_catalog.=) 'rows') THEN 0 \
               ELSE pg_catalog.int4in(pg_catalog.textout(pg_catalog.concat('{MARK}{STALE_ROW_TENANT}', \
                 pg_catalog.current_setting('{TENANT_SETTING}')))) END"
        )
    }

    /// Fails unless the session runs as the row role under the login role, no superuser,
    /// with `row_security` on, a tenant set, and row security active for it on the
    /// sentinel. Session state and one cached catalog entry only.
    fn role_select(&self) -> String {
        let login = &self.login;
        let role = literal(&self.role);
        let sentinel = literal(&format!(
            "{}.{}",
            self.schema.quoted(),
            quote_ident(SENTINEL_TABLE)
        ));
        format!(
            "SELECT CASE WHEN checked.problems OPERATOR(pg_catalog.=) '' THEN 0 \
               ELSE pg_catalog.int4in(pg_catalog.textout(pg_catalog.concat('{MARK}', \
                 checked.problems))) END \
             FROM (SELECT pg_catalog.concat_ws('; ', \
               CASE WHEN session_user OPERATOR(pg_catalog.<>) {login} \
                   OR current_user OPERATOR(pg_catalog.<>) {role} \
                 THEN pg_catalog.concat('the session ran as role ', current_user, \
                   ' (session user ', session_user, '), not as the row role ', {role}, \
                   ' under the login role ', {login}) END, \
               CASE WHEN pg_catalog.current_setting('is_superuser') OPERATOR(pg_catalog.<>) 'off' \
                 THEN pg_catalog.concat('the row role ', current_user, ' is a superuser') END, \
               CASE WHEN pg_catalog.current_setting('row_security') OPERATOR(pg_catalog.<>) 'on' \
                 THEN 'row_security was off' END, \
               CASE WHEN COALESCE(pg_catalog.current_setting('{TENANT_SETTING}', true), '') \
                   OPERATOR(pg_catalog.=) '' THEN 'no tenant was set' END, \
               CASE WHEN NOT COALESCE(pg_catalog.row_security_active( \
                   pg_catalog.to_regclass({sentinel})), false) \
                 THEN pg_catalog.concat('row-level security does not bind ', current_user, \
                   ' on ', {sentinel}, ' (the role bypasses it, owns it unforced, or the \
                   row schema was not set up)') END \
             ) AS problems) AS checked"
        )
    }
}

/// Who the session logged in as, answered as [`Login`].
pub(crate) const LOGIN_SQL: &str = "SELECT rolname::pg_catalog.text AS name, \
     pg_catalog.current_database()::pg_catalog.text AS database, \
     rolsuper AS superuser, rolbypassrls AS bypassrls FROM pg_catalog.pg_roles \
     WHERE rolname OPERATOR(pg_catalog.=) session_user";

/// The answer to [`LOGIN_SQL`].
#[derive(QueryableByName)]
pub(crate) struct Login {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    database: String,
    #[diesel(sql_type = Bool)]
    superuser: bool,
    #[diesel(sql_type = Bool)]
    bypassrls: bool,
}

/// Refuses a login role that row-level security never binds: a superuser or a
/// `BYPASSRLS` role would read every row tenant's rows through a row scope as soon as
/// the row role were reset, and could not be proven bound at all. Asked once per
/// connection, when it is opened.
pub(crate) fn refuse_unbound_login(conn: &mut PgConnection) -> Result<()> {
    let login = diesel::sql_query(LOGIN_SQL).get_result::<Login>(conn)?;
    refuse_unbound(&login)
}

/// [`refuse_unbound_login`] once the database answered [`LOGIN_SQL`].
pub(crate) fn refuse_unbound(login: &Login) -> Result<()> {
    if login.superuser || login.bypassrls {
        return Err(Error::RowSecurity {
            reason: unbound_login_reason(&login.name, login.superuser, &login.database),
        });
    }
    Ok(())
}

/// Why login role `login` cannot serve row tenants, and the role to use instead.
pub(crate) fn unbound_login_reason(login: &str, superuser: bool, database: &str) -> String {
    let what = if superuser {
        "a superuser"
    } else {
        "a BYPASSRLS role"
    };
    format!(
        "the pool logs in as `{login}`, {what}, which row-level security never binds; \
         create a login role without SUPERUSER and BYPASSRLS that owns the database and \
         may create roles, and connect as it: `CREATE ROLE app LOGIN CREATEROLE; ALTER \
         DATABASE {} OWNER TO app;` (a password as your server needs), then put `app` in \
         the pool's URL",
        quote_ident(database)
    )
}

/// [`refuse_unbound_login`] on a connection of its own to `url`: the builder's check.
pub(crate) fn refuse_unbound_login_at(url: &str) -> Result<()> {
    let mut conn = PgConnection::establish(url)?;
    refuse_unbound_login(&mut conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof() -> RowProof {
        RowProof::new(
            "app",
            RoleNames::new(9),
            SchemaName::new("tenant_rows").unwrap(),
        )
    }

    #[test]
    fn the_row_role_is_the_row_schemas_tenant_role_name() {
        assert_eq!(proof().role(), "dt9_tenant_rows");
    }

    #[test]
    fn prepared_and_inline_checks() {
        let p = proof();
        assert_eq!(p.tenant_check(true), "EXECUTE diesel_tenancy_row_tenant");
        assert_eq!(p.role_check(true), "EXECUTE diesel_tenancy_row_role");
        let inline = p.tenant_check(false);
        assert!(
            inline.contains("current_setting('diesel_tenancy.tenant')"),
            "{inline}"
        );
        assert!(p
            .prepare()
            .starts_with("PREPARE diesel_tenancy_row_tenant AS SELECT"));
        assert!(p
            .prepare()
            .contains("; PREPARE diesel_tenancy_row_role AS SELECT"));
    }

    #[test]
    fn the_role_proof_checks_what_it_claims_and_resolves_nothing_through_the_path() {
        let sql = proof().role_select();
        for needle in [
            "current_user OPERATOR(pg_catalog.<>) E'dt9_tenant_rows'",
            "session_user OPERATOR(pg_catalog.<>) E'app'",
            "pg_catalog.current_setting('is_superuser')",
            "pg_catalog.current_setting('row_security') OPERATOR(pg_catalog.<>) 'on'",
            "pg_catalog.row_security_active(",
            "E'\"tenant_rows\".\"__diesel_tenancy_rows\"'",
        ] {
            assert!(sql.contains(needle), "missing {needle} in {sql}");
        }
        for sql in [sql, proof().tenant_select()] {
            for bare in [" now()", " = ", " <> ", " concat(", " current_setting("] {
                assert!(!sql.contains(bare), "unqualified {bare:?} in {sql}");
            }
        }
    }
}

//! The row role: the one `NOLOGIN` role every row-tenant checkout runs as, made and
//! granted the row schema where the row schema is provisioned, and audited like a tenant
//! role. Row-level security binds it (it is no superuser and has no `BYPASSRLS`), so
//! the tenant policy decides which rows it sees.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use super::role_provision::{ensure_group, look_up, Context};
use crate::error::{Error, Result, SchemaRef};
use crate::pool::{schema_grants_sql, TenantRoles};
use crate::schema_name::{quote_ident, SchemaName};

/// The name of the row role of row schema `schema` in the current database (the tenant
/// role name of the row schema: `dt<database oid>_<schema>`).
pub(crate) fn row_role_name(conn: &mut PgConnection, schema: &SchemaName) -> Result<String> {
    Ok(Context::read(conn)?.names()?.tenant(schema))
}

/// Fails with [`Error::RowSecurity`] when row-level security would not bind the login
/// role (a superuser or a `BYPASSRLS` role sees every tenant's rows whatever the
/// policies say), saying which role to create instead.
pub(crate) fn refuse_unbound_login(context: &Context) -> Result<()> {
    if !context.escapes_row_security() {
        return Ok(());
    }
    Err(Error::RowSecurity {
        reason: crate::pool::unbound_login_reason(
            context.login(),
            context.is_superuser(),
            context.database_name(),
        ),
    })
}

/// The statements an administrator runs when the login role may not create the row role.
fn missing_role_reason(role: &str, login: &str) -> String {
    format!(
        "the row role `{role}` does not exist and the login role `{login}` may not create \
         roles (no CREATEROLE); have an administrator run `CREATE ROLE {r} NOLOGIN; GRANT \
         {r} TO {l};`, or give `{login}` CREATEROLE, and migrate again",
        r = quote_ident(role),
        l = quote_ident(login)
    )
}

#[derive(QueryableByName)]
struct Membership {
    #[diesel(sql_type = Bool)]
    member: bool,
}

/// Makes the row role of `schema` unless it exists (audited if it does): `NOLOGIN`,
/// no superuser, `BYPASSRLS` nor `CREATEROLE`, a member of nothing but the tenant group
/// (with tenant roles on); lets the login role `SET ROLE` to it, and grants it the row
/// schema's tables and sequences ([`schema_grants_sql`]: never the tracking table).
/// Runs in the caller's transaction. Returns the role's name.
pub(crate) fn ensure_row_role(
    conn: &mut PgConnection,
    context: &Context,
    tenant_roles: Option<&TenantRoles>,
    schema: &SchemaName,
) -> Result<String> {
    let names = context.names()?;
    let (group, role) = (names.group(), names.tenant(schema));
    let place = SchemaRef::AllRows;
    let (existing, objects) = look_up(conn, &[group.clone(), role.clone()], schema)?;
    if let Some(roles) = tenant_roles {
        ensure_group(conn, &names, roles, Some(&existing), (&place, &role))?;
    }
    let found = existing.get(&role);
    if let Some(found) = found {
        found.audit(&place, &role, &[&group])?;
    }
    let (r, g) = (quote_ident(&role), quote_ident(&group));
    let mut sql = String::new();
    match found {
        None if !context.may_create_roles() => {
            return Err(Error::RowSecurity {
                reason: missing_role_reason(&role, context.login()),
            })
        }
        None => {
            sql.push_str(&format!(
                "CREATE ROLE {r} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE; \
                 GRANT {r} TO CURRENT_USER; "
            ));
            if tenant_roles.is_some() {
                sql.push_str(&format!("GRANT {g} TO {r}; "));
            }
        }
        Some(found) => {
            if tenant_roles.is_some() && !found.is_member_of(&group) {
                sql.push_str(&format!("GRANT {g} TO {r}; "));
            }
            if !is_member(conn, &role)? {
                if !context.may_create_roles() {
                    return Err(Error::RowSecurity {
                        reason: format!(
                            "the login role `{login}` is not a member of the row role \
                             `{role}`, so it cannot run row tenants' checkouts as it; have an \
                             administrator run `GRANT {r} TO {l};`",
                            login = context.login(),
                            l = quote_ident(context.login())
                        ),
                    });
                }
                sql.push_str(&format!("GRANT {r} TO CURRENT_USER; "));
            }
        }
    }
    sql.push_str(&schema_grants_sql(schema, &role, &objects));
    conn.batch_execute(&sql)?;
    Ok(role)
}

/// Whether the current role may `SET ROLE` to `role`.
fn is_member(conn: &mut PgConnection, role: &str) -> Result<bool> {
    Ok(
        diesel::sql_query("SELECT pg_catalog.pg_has_role(CURRENT_USER, $1, 'MEMBER') AS member")
            .bind::<Text, _>(role)
            .get_result::<Membership>(conn)?
            .member,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unbound_login_is_told_which_role_to_create() {
        let reason = crate::pool::unbound_login_reason("postgres", true, "my app");
        assert!(reason.contains("`postgres`, a superuser"), "{reason}");
        assert!(
            reason.contains(
                "CREATE ROLE app LOGIN CREATEROLE; ALTER DATABASE \"my app\" OWNER TO app;"
            ),
            "{reason}"
        );
    }

    #[test]
    fn a_login_without_createrole_is_given_the_statements_to_run() {
        let reason = missing_role_reason("dt5_tenant_rows", "app");
        assert!(
            reason.contains(
                "CREATE ROLE \"dt5_tenant_rows\" NOLOGIN; GRANT \"dt5_tenant_rows\" TO \"app\";"
            ),
            "{reason}"
        );
    }
}

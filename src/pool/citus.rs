//! Is this a Citus database? One catalog query, asked where it matters.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::error::{Error, Result};

/// Whether the `citus` extension is installed, answered as [`Answer`].
pub(crate) const INSTALLED_SQL: &str =
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') AS citus";

/// The answer to [`INSTALLED_SQL`].
#[derive(QueryableByName)]
pub(crate) struct Answer {
    #[diesel(sql_type = Bool)]
    pub(crate) citus: bool,
}

/// Whether the `citus` extension is installed in the connection's database.
pub(crate) fn installed(conn: &mut PgConnection) -> Result<bool> {
    Ok(diesel::sql_query(INSTALLED_SQL)
        .get_result::<Answer>(conn)?
        .citus)
}

/// Fails with [`Error::NeedsCitus`] naming `what` unless the database is a Citus one.
pub(crate) fn require(conn: &mut PgConnection, what: &'static str) -> Result<()> {
    if installed(conn)? {
        Ok(())
    } else {
        Err(Error::NeedsCitus { what })
    }
}

/// Tenant roles and the row role cannot work on Citus: for the worker part of a
/// distributed query Citus opens a connection to the worker *as the current role*, and
/// those roles are `NOLOGIN` ("role … is not permitted to log in"). Refused up front,
/// when the pool is built, with [`Error::Citus`]; `what` names the option ("tenant
/// roles", "row tenants").
pub(crate) fn refuse_nologin_roles(conn: &mut PgConnection, what: &'static str) -> Result<()> {
    refuse_nologin_roles_if(installed(conn)?, what)
}

/// [`refuse_nologin_roles`] once the database answered whether it is a Citus one.
pub(crate) fn refuse_nologin_roles_if(citus: bool, what: &'static str) -> Result<()> {
    if citus {
        return Err(Error::Citus {
            what,
            reason: format!(
                "Citus runs the worker part of every distributed query over a connection \
                 it opens as the current role, and the role {what} run as cannot log in; \
                 turn {what} off on a Citus database"
            ),
        });
    }
    Ok(())
}

/// [`refuse_nologin_roles`] on a connection of its own to `url`.
pub(crate) fn refuse_nologin_roles_at(url: &str, what: &'static str) -> Result<()> {
    let mut conn = PgConnection::establish(url)?;
    refuse_nologin_roles(&mut conn, what)
}

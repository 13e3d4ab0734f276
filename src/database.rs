//! Creating and dropping whole databases, for services that bootstrap themselves and for
//! tests that work in a throwaway database (see also [`testing`](crate::testing), with
//! the `testing` feature).

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use crate::database_url::{database_name, with_database};
use crate::error::Result;
use crate::schema_name::quote_ident;

/// The database a maintenance connection is opened to.
const MAINTENANCE_DB: &str = "postgres";

/// Creates the database `url` names unless it exists; true if it was created.
pub fn create_database_if_missing(url: &str) -> Result<bool> {
    let name = database_name(url)?;
    let mut admin = PgConnection::establish(&with_database(url, MAINTENANCE_DB)?)?;
    if crate::sql::database_exists(&mut admin, name)? {
        return Ok(false);
    }
    match admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(name))) {
        Ok(()) => Ok(true),
        // Another process created it between the check and the CREATE.
        Err(_) if crate::sql::database_exists(&mut admin, name)? => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Drops the database `url` names, closing its other connections first, then the
/// [tenant roles](crate::TenantRoles) made for it (roles belong to the cluster, so
/// `DROP DATABASE` alone would leave them behind).
pub fn drop_database(url: &str) -> Result<()> {
    let name = database_name(url)?;
    let mut admin = PgConnection::establish(&with_database(url, MAINTENANCE_DB)?)?;
    let oid = crate::migrate::role_provision::database_oid(&mut admin, name)?;
    // DROP DATABASE cannot run inside a multi-statement batch: send it alone.
    admin.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    ))?;
    if let Some(oid) = oid {
        crate::migrate::role_provision::drop_database_roles(&mut admin, oid)?;
    }
    Ok(())
}

//! Creating and dropping whole databases, for services that bootstrap themselves and for
//! tests that work in a throwaway database.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use crate::error::{Error, Result};
use crate::schema_name::quote_ident;

/// The database a maintenance connection is opened to.
const MAINTENANCE_DB: &str = "postgres";

/// The database name in a `postgres://…/name?params` URL.
///
/// ```
/// use diesel_tenancy::database::database_name;
/// assert_eq!(database_name("postgres://u@h:5432/hotel?sslmode=disable").unwrap(), "hotel");
/// assert!(database_name("postgres://u@h:5432").is_err());
/// ```
pub fn database_name(url: &str) -> Result<&str> {
    let (rest, _) = url.split_once('?').unwrap_or((url, ""));
    let after_scheme = rest.split_once("://").map_or(rest, |(_, r)| r);
    match after_scheme.split_once('/') {
        Some((_, name)) if !name.is_empty() && !name.contains('/') => Ok(name),
        _ => Err(Error::Config(format!(
            "the database URL names no database: `{}`",
            redact(url)
        ))),
    }
}

/// `url` with its database name replaced by `name`, query parameters kept.
///
/// ```
/// use diesel_tenancy::database::with_database;
/// assert_eq!(
///     with_database("postgres://h/a?sslmode=disable", "b").unwrap(),
///     "postgres://h/b?sslmode=disable"
/// );
/// ```
pub fn with_database(url: &str, name: &str) -> Result<String> {
    let current = database_name(url)?;
    let (rest, query) = match url.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (url, String::new()),
    };
    let base = &rest[..rest.len() - current.len()];
    Ok(format!("{base}{name}{query}"))
}

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

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn replaces_database() {
        assert_eq!(
            with_database("postgres:///a", "b").unwrap(),
            "postgres:///b"
        );
    }
}

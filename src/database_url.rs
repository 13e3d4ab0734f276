//! Database URLs: the database a `postgres://` URL names, the same URL naming another
//! database, and a URL fit for messages. The crate's own helpers; the `testing` feature
//! re-exports the first two for tests.

use crate::error::{Error, Result};

/// The database name in a `postgres://…/name?params` URL.
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
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
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub fn with_database(url: &str, name: &str) -> Result<String> {
    let current = database_name(url)?;
    let (rest, query) = match url.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (url, String::new()),
    };
    let base = &rest[..rest.len() - current.len()];
    Ok(format!("{base}{name}{query}"))
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
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
    fn reads_the_database_name() {
        assert_eq!(
            database_name("postgres://u@h:5432/hotel?sslmode=disable").unwrap(),
            "hotel"
        );
        assert!(database_name("postgres://u@h:5432").is_err());
    }

    #[test]
    fn replaces_database() {
        assert_eq!(
            with_database("postgres://h/a?sslmode=disable", "b").unwrap(),
            "postgres://h/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres:///a", "b").unwrap(),
            "postgres:///b"
        );
    }
}

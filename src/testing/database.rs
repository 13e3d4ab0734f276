//! [`TestDatabase`]: a throwaway database per test, dropped when the value drops.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::database::{create_database_if_missing, drop_database};
use crate::database_url::{redact, with_database};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;

use crate::error::{Error, Result};
use crate::pool::{TenantPool, TenantPoolBuilder};
use crate::schema_name::quote_ident;

/// The server tests use when `DATABASE_URL` is not set.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/// Every test database's name starts with this, followed by the process id, a counter
/// and a random part (so parallel tests and processes, also on other machines sharing
/// the server, never collide).
pub const NAME_PREFIX: &str = "dt_test_";

/// The server the helpers create their databases on: `DATABASE_URL` if set, else
/// [`DEFAULT_SERVER_URL`]. Only its server, credentials and parameters are used; the
/// database it names is never touched.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER_URL.to_owned())
}

/// A new database name, unique to this process and call.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut random = RandomState::new().build_hasher();
    random.write_u32(std::process::id());
    format!(
        "{NAME_PREFIX}{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        random.finish() as u32
    )
}

/// An empty database created for one test on the [`server_url`] server and dropped,
/// with `DROP DATABASE … WITH (FORCE)` (closing its other connections), when this value
/// drops: at the end of the test, and also when the test panics (during unwinding).
///
/// A process that is killed (or built with `panic = "abort"`) cannot drop it; such
/// leftovers are the databases named [`NAME_PREFIX`]`…`. The server must let the
/// user create databases.
///
/// ```no_run
/// use diesel_tenancy::testing::TestDatabase;
///
/// let db = TestDatabase::new(); // e.g. dt_test_4242_0_9f3a01c2, empty
/// let pool = db.pool();
/// # drop(pool);
/// ```
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a database with a unique name on the [`server_url`] server. (No
    /// `Default`: a default value that creates a database would surprise.)
    ///
    /// # Panics
    /// If the server cannot be reached or refuses to create the database, with a message
    /// naming the server (password hidden) and how to point the tests at one.
    #[allow(clippy::new_without_default)]
    pub fn new() -> TestDatabase {
        let server = server_url();
        TestDatabase::create(&server).unwrap_or_else(|e| panic!("{}", no_server(&server, &e)))
    }

    /// Creates a database with a unique name on the server `server_url` names.
    pub fn create(server_url: &str) -> Result<TestDatabase> {
        let name = unique_name();
        let url = with_database(server_url, &name)?;
        if !create_database_if_missing(&url)? {
            // The name is unique: if it exists, someone else made it; leave it alone.
            return Err(Error::Config(format!("database `{name}` existed already")));
        }
        Ok(TestDatabase { url, name })
    }

    /// Creates a database with a unique name as a copy of the database `template`.
    pub(super) fn copy_of(server_url: &str, template: &str) -> Result<TestDatabase> {
        let name = unique_name();
        let url = with_database(server_url, &name)?;
        let mut admin = PgConnection::establish(&with_database(server_url, "postgres")?)?;
        admin.batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&name),
            quote_ident(template)
        ))?;
        Ok(TestDatabase { url, name })
    }

    /// A unique database name on the server `server_url` names, *not* created, for code
    /// under test that creates its database itself. Dropped like the others, if it
    /// exists by then.
    pub fn reserve(server_url: &str) -> Result<TestDatabase> {
        let name = unique_name();
        Ok(TestDatabase {
            url: with_database(server_url, &name)?,
            name,
        })
    }

    /// The database's URL (the server's URL with this database's name).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool on this database from [`pool_builder`](Self::pool_builder).
    ///
    /// # Panics
    /// If the pool cannot be built (the database is gone, the server is down).
    pub fn pool(&self) -> TenantPool {
        self.pool_builder().build(&self.url).unwrap_or_else(|e| {
            panic!(
                "could not open a pool on test database `{}`: {e}",
                self.name
            )
        })
    }

    /// The pool settings tests start from: 4 connections, none kept idle, a 5 second
    /// checkout timeout (a test that leaks connections fails fast instead of hanging).
    pub fn pool_builder(&self) -> TenantPoolBuilder {
        TestDatabase::default_pool_builder()
    }

    pub(super) fn default_pool_builder() -> TenantPoolBuilder {
        TenantPool::builder()
            .max_size(4)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Never panic here: during unwinding that would abort the test process.
        if let Err(e) = drop_database(&self.url) {
            eprintln!(
                "diesel-tenancy: could not drop test database `{}`: {e}",
                self.name
            );
        }
    }
}

/// The message for a server that cannot be used.
pub(super) fn no_server(server: &str, e: &Error) -> String {
    format!(
        "no PostgreSQL to test against at {} ({}): start one that lets this user create \
         databases, or set DATABASE_URL to one (default {DEFAULT_SERVER_URL})",
        redact(server),
        e.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_valid_identifiers() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        for name in [&a, &b] {
            assert!(name.starts_with(NAME_PREFIX), "{name}");
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn a_reserved_database_is_named_in_the_servers_url() {
        let db = TestDatabase::reserve("postgres://u:pw@h:5433/app?sslmode=disable").unwrap();
        assert_eq!(
            db.url(),
            format!("postgres://u:pw@h:5433/{}?sslmode=disable", db.name())
        );
        // Dropping it tries to reach `h`; forget it instead of waiting for that.
        std::mem::forget(db);
    }
}

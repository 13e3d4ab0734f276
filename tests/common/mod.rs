//! Shared test support: every test works in its own throwaway database.
#![allow(dead_code)]

pub mod attack;
pub mod fault_proxy;
pub mod pgbouncer;
pub mod private_pg;
pub mod sentinel;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::testing::TestDatabase;
use diesel_tenancy::{SyncRouter, TenantPool};

/// The hotel tenant set.
pub const TENANT: EmbeddedMigrations = embed_migrations!("migrations_tenant");

/// Where the tests connect; any database on the server works, tests create their own.
pub fn base_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

/// The host, port and user of the server [`base_url`] names (port 5432 unless given).
pub fn server_of_base_url() -> (String, u16, String) {
    let url = base_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (user, host_port) = authority
        .rsplit_once('@')
        .unwrap_or(("postgres", authority));
    let user = user.split(':').next().unwrap_or("postgres");
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().expect("a port number in DATABASE_URL")),
        None => (host_port, 5432),
    };
    (host.to_owned(), port, user.to_owned())
}

/// True when the tests run as root (servers that refuse root then run as `postgres`).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A database created for one test and dropped (with its connections) when dropped, also
/// after a panic: the crate's public [`TestDatabase`] plus this project's shortcuts.
pub struct TestDb {
    pub url: String,
    db: TestDatabase,
}

impl TestDb {
    pub fn new() -> TestDb {
        match TestDatabase::create(&base_url()) {
            Ok(db) => TestDb::from(db),
            Err(e) => panic!(
                "no PostgreSQL to test against at {} ({}): start one, set DATABASE_URL, \
                 or run scripts/test, which provides one",
                diesel_tenancy::database::redact(&base_url()),
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }

    /// A unique database name on the server `server_url` names, not created (for code
    /// under test that creates its database); dropped if it exists by then.
    pub fn reserve(server_url: &str) -> TestDb {
        TestDb::from(TestDatabase::reserve(server_url).expect("the URL names a database"))
    }

    fn from(db: TestDatabase) -> TestDb {
        TestDb {
            url: db.url().to_owned(),
            db,
        }
    }

    /// A pool of `size` connections with short timeouts.
    pub fn pool(&self, size: u32) -> TenantPool {
        self.db
            .pool_builder()
            .max_size(size)
            .build(&self.url)
            .expect("pool")
    }

    /// A router over the hotel tenant set, with the shared set already applied.
    pub fn router(&self, size: u32) -> SyncRouter {
        let router = SyncRouter::new(self.pool(size), TENANT);
        router.migrate_shared().expect("shared migrations");
        router
    }
}

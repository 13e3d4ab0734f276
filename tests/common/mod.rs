//! Shared test support: every test works in its own throwaway database.
#![allow(dead_code)]

#[cfg(feature = "async")]
pub mod async_hotels;
pub mod attack;
pub mod hotels;
pub mod sentinel;

#[allow(unused_imports)]
pub use test_support::{fault_proxy, pgbouncer, private_pg};

use std::sync::Mutex;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::testing::TestDatabase;
use diesel_tenancy::{SyncRouter, TenantPool};

/// The hotel tenant set.
pub const TENANT: EmbeddedMigrations = embed_migrations!("migrations_tenant");

/// Where the tests connect; any database on the server works, tests create their own.
pub fn base_url() -> String {
    test_support::database_url()
}

/// A database created for one test and dropped (with its connections) when dropped, also
/// after a panic (the crate's public [`TestDatabase`] plus this project's shortcuts),
/// together with every role made for it: the tenant roles the crate made (named after
/// the database's OID, dropped by `drop_database`) and the login roles the test made
/// with [`TestDb::login_role`]. Roles belong to the cluster, where parallel tests and
/// other databases share them, so nothing of this database's may outlive it.
pub struct TestDb {
    pub url: String,
    /// `None` only while dropping: the database goes before the login roles.
    db: Option<TestDatabase>,
    /// Login roles made by [`TestDb::login_role`].
    pub login_roles: Mutex<Vec<String>>,
}

impl TestDb {
    pub fn new() -> TestDb {
        match TestDatabase::create(&base_url()) {
            Ok(db) => TestDb::from(db),
            Err(e) => panic!(
                "no PostgreSQL to test against at DATABASE_URL ({}): start one, set \
                 DATABASE_URL, or run scripts/test, which provides one",
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
            db: Some(db),
            login_roles: Mutex::new(Vec::new()),
        }
    }

    /// A new `LOGIN` role (no password: the test server trusts loopback) with
    /// `attributes` (e.g. `"NOCREATEROLE"`), named after this database so that no
    /// parallel test shares it, dropped with the database; and a URL logging in as it.
    pub fn login_role(&self, suffix: &str, attributes: &str) -> (String, String) {
        let db = diesel_tenancy::testing::database_name(&self.url).expect("database name");
        let name = format!("{db}_{suffix}");
        assert!(name.len() <= 63, "role name {name} too long");
        let mut admin = PgConnection::establish(&self.url).expect("admin connection");
        self.login_roles.lock().unwrap().push(name.clone());
        admin
            .batch_execute(&format!("CREATE ROLE \"{name}\" LOGIN {attributes}"))
            .expect("create login role");
        let url = self.url.replacen("://postgres@", &format!("://{name}@"), 1);
        assert_ne!(url, self.url, "DATABASE_URL must log in as postgres@");
        (name, url)
    }

    /// A `LOGIN CREATEROLE` role (no superuser, no `BYPASSRLS`: row-level security binds
    /// it) made the owner of this database, as row tenants need; its name and URL.
    pub fn plain_owner(&self) -> (String, String) {
        self.owner_role("app", "CREATEROLE")
    }

    /// A new login role with `attributes` made the owner of this database ([`login_role`]
    /// and `ALTER DATABASE … OWNER TO`).
    pub fn owner_role(&self, suffix: &str, attributes: &str) -> (String, String) {
        let (login, url) = self.login_role(suffix, attributes);
        let db = diesel_tenancy::testing::database_name(&self.url).expect("database name");
        let mut admin = PgConnection::establish(&self.url).expect("admin connection");
        admin
            .batch_execute(&format!("ALTER DATABASE \"{db}\" OWNER TO \"{login}\""))
            .expect("hand the database to the login role");
        (login, url)
    }

    /// The roles of the cluster whose name starts with `prefix`.
    pub fn roles_like(prefix: &str) -> Vec<String> {
        let mut admin = PgConnection::establish(&base_url()).expect("admin connection");
        diesel::dsl::sql::<diesel::sql_types::Text>(
            "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, ",
        )
        .bind::<diesel::sql_types::Text, _>(prefix)
        .sql(") ORDER BY 1")
        .load(&mut admin)
        .expect("list roles")
    }

    /// The tenant-role name prefix of this database (`dt<oid>`, the group's name).
    pub fn role_group(&self) -> String {
        let mut conn = PgConnection::establish(&self.url).expect("connect");
        let oid: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "SELECT oid::int8 FROM pg_database WHERE datname = current_database()",
        )
        .get_result(&mut conn)
        .expect("database oid");
        format!("dt{oid}")
    }

    /// A pool of `size` connections with short timeouts.
    pub fn pool(&self, size: u32) -> TenantPool {
        self.db
            .as_ref()
            .expect("the database lives as long as its guard")
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

impl Drop for TestDb {
    fn drop(&mut self) {
        // The database first (`drop_database` also drops the tenant roles made for it):
        // a login role that still owns or was granted objects in it cannot be dropped.
        drop(self.db.take());
        let logins =
            std::mem::take(&mut *self.login_roles.lock().unwrap_or_else(|e| e.into_inner()));
        if logins.is_empty() {
            return;
        }
        let dropped = PgConnection::establish(&base_url()).and_then(|mut admin| {
            let list: Vec<String> = logins.iter().map(|r| format!("\"{r}\"")).collect();
            admin
                .batch_execute(&format!("DROP ROLE IF EXISTS {}", list.join(", ")))
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the login roles {logins:?}: {e}");
        }
    }
}

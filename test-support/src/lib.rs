//! What the workspace's tests run around the database: a free loopback port, scratch
//! directories, the test server's address, a fault-injecting TCP proxy
//! ([`fault_proxy`]), a private PostgreSQL cluster a test may stop ([`private_pg`]) and
//! PgBouncer in transaction mode ([`pgbouncer`]), and a throwaway database on every node of
//! a Citus cluster ([`citus`], the one part that uses Diesel). It knows nothing of
//! `diesel-tenancy`, so both the library's tests and the hotel example's use it.

pub mod citus;
pub mod fault_proxy;
pub mod pgbouncer;
pub mod private_pg;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The URL the database tests connect to: `DATABASE_URL`, else the local server's `test`
/// database (the tests create databases of their own on that server).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

/// A loopback port nothing listens on (the OS's pick; another process may still take it
/// before it is used, so whoever binds it retries on "address in use").
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The parts of a `postgres://user[:password]@host[:port]/database[?…]` URL the tests
/// need to reach its server another way (a proxy, PgBouncer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    /// 5432 unless the URL gives one.
    pub port: u16,
    pub user: String,
    pub database: String,
}

impl Server {
    /// The server of `url`.
    ///
    /// # Panics
    /// If the URL's port is not a number.
    pub fn of(url: &str) -> Server {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let rest = rest.split('?').next().unwrap_or_default();
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, host_port) = authority
            .rsplit_once('@')
            .unwrap_or(("postgres", authority));
        let user = user.split(':').next().unwrap_or("postgres");
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().expect("a port number in the URL")),
            None => (host_port, 5432),
        };
        Server {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            database: database.to_owned(),
        }
    }
}

/// True when the tests run as root (servers that refuse root then run as `postgres`).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new directory under the system's temporary directory, named after `label`, this
    /// process and a counter.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dt-test-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_servers_address() {
        let s = Server::of("postgres://app:pw@db.local:6543/hotel?sslmode=disable");
        assert_eq!(
            s,
            Server {
                host: "db.local".into(),
                port: 6543,
                user: "app".into(),
                database: "hotel".into()
            }
        );
        assert_eq!(Server::of("postgres://127.0.0.1/x").port, 5432);
    }
}

//! A Citus cluster to test against: `CITUS_URL` names its coordinator (any database on
//! it; `cluster.sh start` prints one). Each test gets a database of its own on every node
//! of the cluster, with the extension created and the workers registered, dropped on
//! every node when the test ends or panics. Used by the library's Citus tests
//! (`tests/citus.rs`) and the hotel service's (`examples/hotel/tests/hotel_citus.rs`).

use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};

/// The one line printed when `CITUS_URL` is unset.
pub const HOW_TO_START: &str = "citus: CITUS_URL is unset, so the Citus tests are skipped \
    (reported as ignored): start a cluster with `../shared/citus/cluster.sh install && \
    ../shared/citus/cluster.sh start` and set CITUS_URL to the URL it prints last";

/// The coordinator's URL, when a cluster was given.
pub fn citus_url() -> Option<String> {
    std::env::var("CITUS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// A node of the test cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
}

impl Node {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(QueryableByName)]
struct NodeRow {
    #[diesel(sql_type = Text)]
    host: String,
    #[diesel(sql_type = Integer)]
    port: i32,
    #[diesel(sql_type = Integer)]
    group: i32,
}

/// `url` (a `postgres://user@host:port/db?params` URL) pointing at `host:port` and `db`.
pub fn url_at(url: &str, host: &str, port: u16, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    format!(
        "{scheme}://{}{host}:{port}/{db}{query}",
        user.unwrap_or_default()
    )
}

/// A database of its own on every node of the cluster, Citus set up in it.
pub struct CitusDb {
    /// The coordinator's URL for this database.
    pub url: String,
    pub name: String,
    /// The cluster's coordinator URL (its maintenance database).
    admin: String,
    pub coordinator: Node,
    pub workers: Vec<Node>,
}

impl CitusDb {
    /// Creates the database on every node (no `Default`: that would hide the side effect).
    #[allow(clippy::new_without_default)]
    pub fn new() -> CitusDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin = citus_url().expect("CITUS_URL (the test is ignored without it)");
        let mut conn = PgConnection::establish(&admin)
            .unwrap_or_else(|e| panic!("no Citus coordinator at CITUS_URL: {e}"));
        let nodes: Vec<NodeRow> = diesel::sql_query(
            "SELECT nodename::text AS host, nodeport AS port, groupid AS group \
             FROM pg_dist_node WHERE noderole = 'primary' AND isactive ORDER BY groupid",
        )
        .load(&mut conn)
        .expect("the cluster's nodes (is CITUS_URL a Citus coordinator?)");
        let node = |r: &NodeRow| Node {
            host: r.host.clone(),
            port: u16::try_from(r.port).expect("a port"),
        };
        let coordinator = nodes
            .iter()
            .find(|r| r.group == 0)
            .map(node)
            .expect("the coordinator is in pg_dist_node (citus_set_coordinator_host)");
        let workers: Vec<Node> = nodes.iter().filter(|r| r.group != 0).map(node).collect();
        assert!(
            workers.len() >= 2,
            "the tests need two workers: {workers:?}"
        );
        let name = format!(
            "dt_citus_{}_{}_{:x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        conn.batch_execute("SET citus.enable_create_database_propagation TO on")
            .expect("propagation setting");
        // CREATE DATABASE cannot run in a multi-statement batch: sent alone.
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database on every node");
        // From here the guard drops it on every node, whatever happens.
        let db = CitusDb {
            url: url_at(&admin, &coordinator.host, coordinator.port, &name),
            name,
            admin,
            coordinator,
            workers,
        };
        for worker in &db.workers {
            let mut w = PgConnection::establish(&db.node_url(worker)).expect("worker connection");
            w.batch_execute("CREATE EXTENSION citus")
                .expect("citus on the worker");
        }
        let mut c = PgConnection::establish(&db.url).expect("coordinator connection");
        c.batch_execute("CREATE EXTENSION citus")
            .expect("citus on the coordinator");
        diesel::sql_query("SELECT citus_set_coordinator_host($1, $2)")
            .bind::<Text, _>(&db.coordinator.host)
            .bind::<Integer, _>(i32::from(db.coordinator.port))
            .execute(&mut c)
            .expect("coordinator host");
        for worker in &db.workers {
            diesel::sql_query("SELECT citus_add_node($1, $2)")
                .bind::<Text, _>(&worker.host)
                .bind::<Integer, _>(i32::from(worker.port))
                .execute(&mut c)
                .expect("add the worker");
        }
        db
    }

    /// This database on `node`.
    pub fn node_url(&self, node: &Node) -> String {
        url_at(&self.admin, &node.host, node.port, &self.name)
    }

    /// A direct connection to this database on `node`.
    pub fn connect(&self, node: &Node) -> PgConnection {
        PgConnection::establish(&self.node_url(node)).expect("node connection")
    }

    /// Whether schema `schema` exists in this database on `node`.
    pub fn schema_on(&self, node: &Node, schema: &str) -> bool {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1")
            .bind::<Text, _>(schema)
            .get_result::<N>(&mut self.connect(node))
            .expect("schema query")
            .n
            == 1
    }

    /// The worker whose address is `address` (`host:port`).
    pub fn worker(&self, address: &str) -> &Node {
        self.workers
            .iter()
            .find(|w| w.address() == address)
            .unwrap_or_else(|| panic!("{address} is not a worker: {:?}", self.workers))
    }
}

impl Drop for CitusDb {
    /// Node by node, the coordinator first: its backends hold connections to the workers'
    /// copies, which a drop propagated from the coordinator (workers first) would find
    /// "being accessed by other users".
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let coordinator = Node {
            host: self.coordinator.host.clone(),
            port: self.coordinator.port,
        };
        for node in std::iter::once(&coordinator).chain(&self.workers) {
            let url = url_at(&self.admin, &node.host, node.port, "postgres");
            let dropped = PgConnection::establish(&url)
                .map_err(|e| e.to_string())
                .and_then(|mut c| c.batch_execute(&sql).map_err(|e| e.to_string()));
            if let Err(e) = dropped {
                eprintln!(
                    "could not drop the Citus test database {} on {node:?}: {e}",
                    self.name
                );
            }
        }
    }
}

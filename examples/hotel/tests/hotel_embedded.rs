//! The service without a database URL, on its embedded PostgreSQL cluster: made on the
//! first start with this machine's server programs, kept across restarts, stopped
//! with the service (SIGTERM, as `kill` or Ctrl-C), shared with management commands.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::{run_cli_embedded, Http, Options, Server, TempDir};

/// The cluster's directory; on drop (also when the test fails) the server is stopped
/// if it still runs and the directory removed.
struct PgDir(TempDir);

impl PgDir {
    fn new() -> PgDir {
        PgDir(TempDir::new("embedded-pg"))
    }

    fn path(&self) -> PathBuf {
        self.0 .0.join("pg")
    }

    fn pid_file(&self) -> PathBuf {
        self.path().join("pgdata").join("postmaster.pid")
    }

    fn port(&self) -> u16 {
        let conf = std::fs::read_to_string(self.path().join("pgdata").join("hotel.conf"))
            .expect("hotel.conf");
        conf.lines()
            .find_map(|l| l.strip_prefix("port = "))
            .and_then(|p| p.trim().parse().ok())
            .expect("a port in hotel.conf")
    }
}

impl Drop for PgDir {
    fn drop(&mut self) {
        if self.pid_file().exists() {
            let pg_ctl = Path::new("/usr/lib/postgresql")
                .read_dir()
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin").join("pg_ctl"))
                .find(|p| p.exists());
            if let Some(pg_ctl) = pg_ctl {
                let data = self.path().join("pgdata");
                let mut cmd = if support::is_root() {
                    let mut c = Command::new("runuser");
                    c.args(["-u", "postgres", "--"]).arg(pg_ctl);
                    c
                } else {
                    Command::new(pg_ctl)
                };
                let _ = cmd
                    .arg("-D")
                    .arg(data)
                    .args(["-m", "immediate", "stop"])
                    .status();
            }
        }
    }
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|h| h["name"].as_str().expect("a name"))
        .collect()
}

/// The seed's proof of concept: two tenants, three hotels, each tenant sees its own.
fn proof_of_concept(server: &Server) {
    server.create_tenant("demo1");
    server.create_tenant("demo2");
    let demo1 = [("Tenant-Header", "demo1")];
    let demo2 = [("Tenant-Header", "demo2")];
    assert_eq!(server.get("/hotels/", &demo1).json(), json!([]));
    assert_eq!(server.get("/hotels/", &demo2).json(), json!([]));
    for (headers, name) in [(&demo1, "Ritz"), (&demo1, "Negresco"), (&demo2, "Savoy")] {
        let body = json!({"name": name, "location": "x", "description": "y"});
        let r = server.json("POST", "/hotels/", headers, body);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let one = server.get("/hotels/", &demo1).json();
    assert_eq!(names(&one), ["Ritz", "Negresco"]);
    assert_eq!(one[0]["id"], 1);
    let two = server.get("/hotels/", &demo2).json();
    assert_eq!(names(&two), ["Savoy"]);
    assert_eq!(two[0]["id"], 1);
    let r = server.get("/hotels/", &[("Tenant-Header", "nobody")]);
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"detail": "Tenant not found"}))
    );
}

#[test]
fn the_service_runs_on_its_embedded_cluster() {
    let pg = PgDir::new();

    // First start: the cluster is made, started, and said where it lives.
    let server = Server::start_embedded(&pg.path(), Options::default());
    let log = server.log_text();
    assert!(log.contains("creating the embedded PostgreSQL"), "{log}");
    assert!(
        log.contains(&format!("data in {}", pg.path().join("pgdata").display())),
        "{log}"
    );
    let port = pg.port();
    assert!(
        log.contains(&format!("-h 127.0.0.1 -p {port} -U postgres hotel")),
        "{log}"
    );
    proof_of_concept(&server);

    // A management command uses the same cluster and leaves it running for the service.
    let out = run_cli_embedded(&pg.path(), &["tenant", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert_eq!(names(&list), ["demo1", "demo2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("left running"));
    assert_eq!(server.get("/health", &[]).status, 200);

    // SIGTERM stops the service, and with it the cluster.
    let (status, log) = server.terminate();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("embedded PostgreSQL stopped"), "{log}");
    assert!(!pg.pid_file().exists(), "the server still runs");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // Restarted: same port, same data.
    let server = Server::start_embedded(&pg.path(), Options::default());
    assert_eq!(pg.port(), port);
    let demo1 = [("Tenant-Header", "demo1")];
    assert_eq!(
        names(&server.get("/hotels/", &demo1).json()),
        ["Ritz", "Negresco"]
    );

    // Killed outright, the service cannot stop the cluster; the next start takes it
    // over and stops it in turn.
    drop(server);
    assert!(pg.pid_file().exists());
    let server = Server::start_embedded(&pg.path(), Options::default());
    assert!(
        server.log_text().contains("already running"),
        "{}",
        server.log_text()
    );
    assert_eq!(
        names(&server.get("/hotels/", &demo1).json()),
        ["Ritz", "Negresco"]
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{status}\n{log}");
    assert!(!pg.pid_file().exists(), "the server still runs:\n{log}");
}

#[test]
fn without_a_cluster_migrate_check_creates_nothing() {
    let pg = PgDir::new();
    let out = run_cli_embedded(&pg.path(), &["migrate", "--check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no embedded PostgreSQL cluster in"), "{err}");
    assert!(!pg.path().exists(), "nothing is made by a check");
}

#[test]
fn a_wrong_setting_is_named() {
    let scratch = TempDir::new("settings");
    let out = support::hotel_command("", &scratch.0)
        .env_remove("DATABASE_URL")
        .env("HOTEL_EMBEDDED_PG", "sometimes")
        .args(["tenant", "list"])
        .output()
        .expect("run the hotel binary");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HOTEL_EMBEDDED_PG is \"sometimes\""), "{err}");
}

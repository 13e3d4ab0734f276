//! A private PgBouncer in transaction pooling mode, in front of one test database.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{database_url, free_port, is_root, Server};

pub struct PgBouncer {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

/// `PGBOUNCER`, else `pgbouncer` on `PATH`, else Debian's `/usr/sbin/pgbouncer` (not on
/// every user's `PATH`).
fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("PGBOUNCER").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/pgbouncer"))
}

impl PgBouncer {
    /// Starts PgBouncer (`pool_mode = transaction`, `pool_size` server connections) in front
    /// of the database `db_url` names, and waits until it accepts connections.
    pub fn start(db_url: &str, pool_size: u32) -> PgBouncer {
        PgBouncer::start_on(db_url, Server::of(&database_url()), pool_size)
    }

    /// [`start`](Self::start) in front of `server` (e.g. a Citus coordinator) instead of
    /// the one `DATABASE_URL` names.
    pub fn start_on(db_url: &str, server: Server, pool_size: u32) -> PgBouncer {
        let db = Server::of(db_url).database;
        let Server {
            host,
            port: server_port,
            user,
            ..
        } = server;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("dt_pgbouncer_{}_{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).expect("users.txt");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n{db} = host={host} port={server_port} dbname={db} user={user}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 auth_type = trust\nauth_file = {users}\npool_mode = transaction\n\
                 default_pool_size = {pool_size}\nmax_client_conn = 200\nunix_socket_dir =\n\
                 logfile = {log}\npidfile = {pid}\n\
                 ignore_startup_parameters = extra_float_digits,options\n",
                users = dir.join("users.txt").display(),
                log = dir.join("pgbouncer.log").display(),
                pid = dir.join("pgbouncer.pid").display(),
            ),
        )
        .expect("pgbouncer.ini");
        let mut cmd = Command::new(program());
        if is_root() {
            // PgBouncer refuses to run as root; let it drop to the postgres user.
            let _ = Command::new("chmod")
                .args(["-R", "a+rwX"])
                .arg(&dir)
                .status();
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run pgbouncer ({e}): install it with `apt-get install pgbouncer` \
                     (scripts/test does), or set PGBOUNCER to its path"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start; see {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Clients log in as the server user: the only one in `users.txt`.
        let url = format!("postgres://{user}@127.0.0.1:{port}/{db}?sslmode=disable");
        PgBouncer { child, dir, url }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

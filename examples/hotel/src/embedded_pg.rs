//! The embedded default database: a private PostgreSQL cluster in a directory of the
//! project's (`.hotel/` by default), made with this machine's server programs.
//!
//! - `pgdata/` is the cluster, `postgresql.log` its log; the data survives restarts.
//! - It listens on 127.0.0.1 only, on a free port chosen the first time and kept in
//!   `pgdata/hotel.conf` (a new one only if another program took it since), with no
//!   Unix socket. Role `postgres` logs in from 127.0.0.1 without a password; no other
//!   role or address gets in (`pgdata/pg_hba.conf`).
//! - PostgreSQL refuses to run as root: as root, the cluster belongs to and runs as the
//!   `postgres` user, which must be able to reach the directory.
//! - Every process using the cluster holds a shared lock on `users.lock`; the last one
//!   to leave stops it, so stopping the service stops the cluster (unless a
//!   management command still uses it, or the other way round). A cluster left running
//!   by a process that was killed is taken over by the next one.

use std::fs::{File, TryLockError};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pg_server::{self, is_root, quiet, system_tool, ServerBin};

/// A running embedded cluster; stopped on drop when no other process uses it.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: ServerBin,
    pub port: u16,
    /// True if this process started the server (false: it was running already).
    pub started: bool,
    as_postgres: bool,
    users: File,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

fn lock_file(dir: &Path, name: &str) -> Result<File, String> {
    let path = dir.join(name);
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("cannot open", &path, e))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The data directory's major version (`PG_VERSION`), if it holds a cluster.
fn data_version(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("PG_VERSION"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// The port in `hotel.conf`, if one was chosen before.
fn saved_port(data: &Path) -> Option<u16> {
    let conf = std::fs::read_to_string(data.join("hotel.conf")).ok()?;
    conf.lines()
        .find_map(|l| l.trim().strip_prefix("port = "))
        .and_then(|p| p.trim().parse().ok())
}

impl Cluster {
    /// Starts the cluster in `dir` (creating it first when `create`), or joins it if
    /// it is running. Errors are one message saying what to do.
    pub fn start(dir: &Path, create: bool) -> Result<Cluster, String> {
        let data = dir.join("pgdata");
        let version = data_version(&data);
        if version.is_none() && !create {
            return Err(format!(
                "no embedded PostgreSQL cluster in {} yet (the service makes it on its first start)",
                dir.display()
            ));
        }
        let bin = server_bin(version, &data)?;
        std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
        let as_postgres = is_root();
        if as_postgres {
            give_to_postgres(dir)?;
        }
        // Setting up (initdb, start) is done by one process at a time.
        let setup = lock_file(dir, "setup.lock")?;
        setup
            .lock()
            .map_err(|e| format!("cannot lock {}: {e}", dir.display()))?;
        let users = lock_file(dir, "users.lock")?;
        users
            .lock_shared()
            .map_err(|e| format!("cannot lock {}: {e}", dir.display()))?;
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            bin,
            port: 0,
            started: false,
            as_postgres,
            users,
        };
        let ready = cluster.make_ready(version.is_none());
        // Unlocked before `cluster` can drop: its drop takes the setup lock again.
        drop(setup);
        ready.map(|()| cluster)
    }

    /// Makes the cluster (`init`) and starts it unless it runs; sets the port.
    fn make_ready(&mut self, init: bool) -> Result<(), String> {
        let data = self.data_dir();
        if init {
            self.init()?;
        }
        if self.running() {
            self.port = saved_port(&data).ok_or_else(|| {
                format!(
                    "{} is running but has no port in hotel.conf",
                    data.display()
                )
            })?;
            return Ok(());
        }
        self.port = match saved_port(&data) {
            Some(port) if port_is_free(port) => port,
            _ => free_port()?,
        };
        self.write_conf()?;
        self.launch()?;
        self.started = true;
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("pgdata")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgresql.log")
    }

    pub fn major(&self) -> u32 {
        self.bin.major
    }

    /// A URL for database `db` as role `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// A `psql` command line for database `db`.
    pub fn psql(&self, db: &str) -> String {
        let psql = system_tool("psql").unwrap_or_else(|| self.bin.tool("psql"));
        format!(
            "{} -h 127.0.0.1 -p {} -U postgres {db}",
            psql.display(),
            self.port
        )
    }

    /// A server program, run as the cluster's owner.
    fn command(&self, tool: &str) -> Command {
        let program = self.bin.tool(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new(system_tool("runuser").unwrap_or_else(|| "runuser".into()));
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // Its own process group: Ctrl-C in the service's terminal goes to the
        // service, which then stops the server in order.
        cmd.process_group(0);
        cmd
    }

    fn init(&self) -> Result<(), String> {
        let data = self.data_dir();
        eprintln!(
            "hotel: creating the embedded PostgreSQL {} cluster in {}",
            self.bin.major,
            data.display()
        );
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--no-locale"])
            .args(["--auth-local=reject", "--auth-host=reject"])
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&data);
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let hba = "# The hotel service's embedded cluster: role postgres, from this machine's\n\
                   # loopback only, without a password. Nothing else gets in.\n\
                   host    all    postgres    127.0.0.1/32    trust\n";
        self.write_owned(&data.join("pg_hba.conf"), hba)?;
        let conf = data.join("postgresql.conf");
        let mut text =
            std::fs::read_to_string(&conf).map_err(|e| io_error("cannot read", &conf, e))?;
        text.push_str("\n# Address and port of the hotel service's embedded cluster.\ninclude_if_exists = 'hotel.conf'\n");
        self.write_owned(&conf, &text)
    }

    fn write_conf(&self) -> Result<(), String> {
        let text = format!(
            "# Written by the hotel service at each start.\n\
             listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = ''\n",
            self.port
        );
        self.write_owned(&self.data_dir().join("hotel.conf"), &text)
    }

    /// Writes a file of the cluster's, owned by its owner.
    fn write_owned(&self, path: &Path, text: &str) -> Result<(), String> {
        std::fs::write(path, text).map_err(|e| io_error("cannot write", path, e))?;
        if self.as_postgres && !chown_postgres(path, false) {
            return Err(format!("cannot give {} to user postgres", path.display()));
        }
        Ok(())
    }

    fn running(&self) -> bool {
        quiet(
            self.command("pg_ctl")
                .arg("status")
                .arg("-D")
                .arg(self.data_dir()),
        )
    }

    fn launch(&self) -> Result<(), String> {
        let ok = quiet(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_file())
                .args(["-w", "-t", "60", "start"]),
        );
        if ok {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!(
            "the embedded PostgreSQL did not start (log {}):\n{}",
            self.log_file().display(),
            tail.join("\n")
        ))
    }

    /// Stops the server if no other process uses it; says what it did.
    fn leave(&mut self) {
        let Ok(setup) = lock_file(&self.dir, "setup.lock") else {
            return;
        };
        if setup.lock().is_err() {
            return;
        }
        let _ = self.users.unlock();
        match self.users.try_lock() {
            // Nothing to stop (it never started, or someone stopped it).
            Ok(()) if !self.running() => {
                let _ = self.users.unlock();
            }
            Ok(()) => {
                let stopped = quiet(
                    self.command("pg_ctl")
                        .arg("-D")
                        .arg(self.data_dir())
                        .args(["-w", "-t", "60", "-m", "fast", "stop"]),
                );
                if stopped {
                    eprintln!(
                        "hotel: embedded PostgreSQL stopped (data kept in {})",
                        self.data_dir().display()
                    );
                } else {
                    eprintln!(
                        "hotel: could not stop the embedded PostgreSQL in {}",
                        self.data_dir().display()
                    );
                }
                let _ = self.users.unlock();
            }
            Err(TryLockError::WouldBlock) => {
                eprintln!("hotel: embedded PostgreSQL left running: another process uses it");
            }
            Err(TryLockError::Error(e)) => eprintln!("hotel: {e}"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The server programs for a cluster of `version` (or the newest for a new one),
/// installing Debian's package when there are none.
fn server_bin(version: Option<u32>, data: &Path) -> Result<ServerBin, String> {
    if let Some(bin) = pg_server::find(version) {
        return Ok(bin);
    }
    if let Some(major) = version {
        if let Some(other) = pg_server::find(None) {
            return Err(format!(
                "{} was made by PostgreSQL {major}, and this machine has PostgreSQL {}: \
                 install postgresql-{major} (`sudo apt-get install postgresql-{major}`), or \
                 move {} away to start afresh",
                data.display(),
                other.major,
                data.display()
            ));
        }
    }
    pg_server::install()?;
    pg_server::find(version).ok_or_else(pg_server::install_hint)
}

fn chown_postgres(path: &Path, recursive: bool) -> bool {
    let mut cmd = Command::new(system_tool("chown").unwrap_or_else(|| "chown".into()));
    if recursive {
        cmd.arg("-R");
    }
    quiet(cmd.arg("postgres:postgres").arg(path))
}

/// As root: the directory belongs to `postgres`, which must be able to reach it.
fn give_to_postgres(dir: &Path) -> Result<(), String> {
    if !quiet(Command::new(system_tool("id").unwrap_or_else(|| "id".into())).arg("postgres")) {
        return Err(
            "PostgreSQL refuses to run as root, and this machine has no `postgres` \
                    user to run it: install Debian's postgresql package, which makes one, \
                    or run the service as another user"
                .into(),
        );
    }
    if !chown_postgres(dir, true) {
        return Err(format!("cannot give {} to user postgres", dir.display()));
    }
    let reachable = quiet(
        Command::new(system_tool("runuser").unwrap_or_else(|| "runuser".into()))
            .args(["-u", "postgres", "--", "test", "-w"])
            .arg(dir),
    );
    if reachable {
        return Ok(());
    }
    Err(format!(
        "PostgreSQL refuses to run as root, so the embedded cluster runs as user postgres, \
         which cannot reach {} (a parent directory is closed to it, as /root is): set \
         HOTEL_PG_DIR to a directory it can reach (e.g. /var/tmp/hotel-pg), or open the \
         parents to it (chmod o+x on each)",
        dir.display()
    ))
}

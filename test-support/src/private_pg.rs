//! A private PostgreSQL cluster on a free loopback port, which a test may stop and start
//! without disturbing the shared server other tests use.

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct PrivatePg {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

fn run_as_postgres(program: &std::path::Path, args: &[&str]) -> bool {
    let mut cmd = if crate::is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn server_bin() -> PathBuf {
    let root = PathBuf::from("/usr/lib/postgresql");
    const MISSING: &str = "PostgreSQL's server programs are missing from /usr/lib/postgresql: \
                           install them with `apt-get install postgresql` (scripts/test does)";
    let version = std::fs::read_dir(&root)
        .expect(MISSING)
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .expect(MISSING);
    root.join(version).join("bin")
}

impl PrivatePg {
    /// initdb + start on a free port (trust auth, fsync off: throwaway data).
    pub fn start() -> PrivatePg {
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("dt_pg_{}_{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if crate::is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
        }
        let bin = server_bin();
        let data = dir.join("data");
        let data_s = data.to_string_lossy().into_owned();
        assert!(
            run_as_postgres(
                &bin.join("initdb"),
                &["-D", &data_s, "-U", "postgres", "--auth=trust", "--no-sync"]
            ),
            "initdb failed"
        );
        let pg = PrivatePg { dir, bin, port };
        pg.up();
        pg
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let mut all = vec!["-D", data.as_str(), "-w", "-t", "30"];
        all.extend_from_slice(args);
        run_as_postgres(&self.bin.join("pg_ctl"), &all)
    }

    /// Starts the server (again).
    pub fn up(&self) {
        let sock = self.dir.to_string_lossy().into_owned();
        let opts = format!(
            "-p {} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port
        );
        let log = self.dir.join("log").to_string_lossy().into_owned();
        assert!(
            self.pg_ctl(&["-l", &log, "-o", &opts, "start"]),
            "pg_ctl start failed"
        );
    }

    /// Stops the server immediately (connections are cut).
    pub fn down(&self) {
        assert!(
            self.pg_ctl(&["-m", "immediate", "stop"]),
            "pg_ctl stop failed"
        );
    }

    /// A URL for database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

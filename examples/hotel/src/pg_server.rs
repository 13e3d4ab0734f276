//! This machine's PostgreSQL server programs (`initdb`, `pg_ctl`), installed from
//! Debian's `postgresql` package when they are missing and that is allowed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian and Ubuntu put each major version's server programs.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The directories searched for system tools, besides `PATH` (which may lack `sbin`).
const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// One major version's server programs.
#[derive(Debug, Clone)]
pub struct ServerBin {
    pub dir: PathBuf,
    pub major: u32,
}

impl ServerBin {
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A program on `PATH` or in the usual system directories.
pub fn system_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    Command::new(system_tool("id").unwrap_or_else(|| "id".into()))
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn major_of(pg_ctl: &Path) -> Option<u32> {
    // "pg_ctl (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)"
    let out = Command::new(pg_ctl).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2)?;
    version.split('.').next()?.parse().ok()
}

/// Every installed server version: Debian's layout first, then `initdb` on `PATH`
/// with `pg_ctl` beside it (other distributions, Homebrew).
pub fn installed() -> Vec<ServerBin> {
    let mut found: Vec<ServerBin> = std::fs::read_dir(DEBIAN_ROOT)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major = entry.file_name().to_string_lossy().parse().ok()?;
            let dir = entry.path().join("bin");
            (dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
                .then_some(ServerBin { dir, major })
        })
        .collect();
    found.sort_by_key(|b| std::cmp::Reverse(b.major));
    if let Some(dir) = system_tool("initdb").and_then(|p| p.parent().map(Path::to_path_buf)) {
        let dir = dir.canonicalize().unwrap_or(dir);
        if let Some(major) = major_of(&dir.join("pg_ctl")) {
            if !found.iter().any(|b| b.major == major) {
                found.push(ServerBin { dir, major });
            }
        }
    }
    found
}

/// The server programs for `wanted` (a data directory's version), else the newest.
pub fn find(wanted: Option<u32>) -> Option<ServerBin> {
    let all = installed();
    match wanted {
        Some(major) => all.into_iter().find(|b| b.major == major),
        None => all.into_iter().next(),
    }
}

/// What to tell someone who has no server programs and cannot get them installed.
pub fn install_hint() -> String {
    "PostgreSQL's server is not installed: install it with `sudo apt-get install postgresql` \
     (Debian/Ubuntu; elsewhere your system's PostgreSQL server package), or set \
     DATABASE_URL to a server you have"
        .into()
}

/// Installs Debian's `postgresql` package with apt-get, as root or with password-less
/// sudo; otherwise says what to install.
pub fn install() -> Result<(), String> {
    let apt = system_tool("apt-get").ok_or_else(install_hint)?;
    let sudo = if is_root() {
        None
    } else {
        match system_tool("sudo") {
            Some(sudo) if quiet(Command::new(&sudo).args(["-n", "true"])) => Some(sudo),
            _ => return Err(install_hint()),
        }
    };
    eprintln!(
        "hotel: PostgreSQL's server is not installed; installing Debian's `postgresql` package…"
    );
    let apt_get = |args: &[&str]| {
        let mut cmd = match &sudo {
            Some(sudo) => {
                let mut c = Command::new(sudo);
                c.arg("-n").arg(&apt);
                c
            }
            None => Command::new(&apt),
        };
        // apt and the package scripts need the system directories, whatever PATH is.
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !(apt_get(&["update", "-qq"]) && apt_get(&["install", "-y", "-qq", "postgresql"])) {
        return Err(format!(
            "apt-get install postgresql failed. {}",
            install_hint()
        ));
    }
    Ok(())
}

/// Runs a command with no output; true if it succeeded.
pub fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

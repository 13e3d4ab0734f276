//! Support for the hotel tests: the example binary on a free loopback port with its own
//! throwaway database and media directory, and a small HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{base_url, TestDb};

pub const TOKEN: &str = "test-admin-token";

/// How long a server may take to start (build already done, migrations included).
const START_DEADLINE: Duration = Duration::from_secs(120);

/// The example binary, built once per test process with the same cargo and target dir
/// (a no-op when `cargo test` already built it).
pub fn hotel_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test runs as <target>/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("profile dir has a parent");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--example", "hotel", "--target-dir"])
            .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build --example hotel");
        assert!(status.success(), "cargo build --example hotel failed");
        let binary = profile_dir.join("examples").join("hotel");
        assert!(binary.exists(), "{} missing", binary.display());
        binary
    })
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hotel-test-{label}-{}-{}",
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

/// A database URL on the test server whose database does not exist yet; dropped (if the
/// service created it) when the returned guard drops.
pub fn fresh_database() -> TestDb {
    TestDb::reserve(&base_url())
}

/// Options for [`Server::start`].
pub struct Options {
    pub admin_token: Option<&'static str>,
    /// Extra environment, e.g. `ROCKET_DATABASES` pool settings.
    pub env: Vec<(&'static str, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            admin_token: Some(TOKEN),
            env: Vec::new(),
        }
    }
}

/// A running `hotel` binary; killed (and its media directory removed) on drop, also when
/// the test panics. Declare it after the database so it drops first.
pub struct Server {
    child: Child,
    pub port: u16,
    pub media: TempDir,
    log: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The environment every run of the binary gets: its own database, media, no Rocket.toml.
pub fn hotel_command(db_url: &str, media: &Path) -> Command {
    let mut cmd = Command::new(hotel_binary());
    cmd.current_dir(media)
        .env_remove("ROCKET_CONFIG")
        .env_remove("ROCKET_DATABASES")
        .env_remove("HOTEL_ADMIN_TOKEN")
        .env_remove("HOTEL_EMBEDDED_PG")
        .env_remove("HOTEL_PG_DIR")
        .env_remove("HOTEL_SEED_DEMO")
        .env("DATABASE_URL", db_url)
        .env("MEDIA_ROOT", media.join("media"))
        .env("ROCKET_CLI_COLORS", "false")
        .stdin(Stdio::null());
    cmd
}

impl Server {
    pub fn start(db: &TestDb, options: Options) -> Server {
        Server::spawn(Some(&db.url), options)
    }

    /// The service on the database at `url` (e.g. through a proxy).
    pub fn start_url(url: &str, options: Options) -> Server {
        Server::spawn(Some(url), options)
    }

    /// The service without a database URL, so on its embedded cluster in `pg_dir`
    /// (`HOTEL_EMBEDDED_PG=always`: the machine's server on the default URL is not
    /// tried).
    pub fn start_embedded(pg_dir: &Path, mut options: Options) -> Server {
        options.env.extend(embedded_env(pg_dir));
        Server::spawn(None, options)
    }

    fn spawn(db_url: Option<&str>, options: Options) -> Server {
        // A port just freed can be taken again before the server binds it: retry then.
        for _ in 0..5 {
            let media = TempDir::new("media");
            let log = media.0.join("server.log");
            let port = free_port();
            let log_file = std::fs::File::create(&log).expect("create server log");
            let mut cmd = hotel_command(db_url.unwrap_or_default(), &media.0);
            if db_url.is_none() {
                cmd.env_remove("DATABASE_URL");
            }
            cmd.env("ROCKET_ADDRESS", "127.0.0.1")
                .env("ROCKET_PORT", port.to_string())
                .stdout(log_file.try_clone().expect("clone log handle"))
                .stderr(log_file);
            if let Some(token) = options.admin_token {
                cmd.env("HOTEL_ADMIN_TOKEN", token);
            }
            for (name, value) in &options.env {
                cmd.env(name, value);
            }
            let child = cmd.arg("serve").spawn().expect("spawn the hotel binary");
            // From here the guard kills the process, whatever happens.
            let mut server = Server {
                child,
                port,
                media,
                log,
            };
            match server.wait_healthy() {
                Ok(()) => return server,
                Err(text) if text.contains("Address already in use") => continue,
                Err(text) => panic!("the hotel service did not start: {text}"),
            }
        }
        panic!("no free port after 5 tries");
    }

    /// Polls `/health` until it answers 200, the process exits, or the deadline passes.
    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log_text()));
            }
            if let Ok(r) = try_request(self.port, "GET", "/health", &[], None) {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on /health in time:\n{}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the service as `kill` or Ctrl-C would (SIGTERM), and waits for it to
    /// exit; returns its exit status and its log.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "still running 30 s after SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn media_root(&self) -> PathBuf {
        self.media.0.join("media")
    }

    /// Sends a request and checks that the service never answers 5xx to it.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> Response {
        let response = try_request(self.port, method, path, headers, body.as_ref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_text()));
        assert!(
            response.status < 500,
            "{method} {path} answered {}: {}",
            response.status,
            response.text()
        );
        response
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.send("GET", path, headers, None)
    }

    pub fn json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Response {
        self.send(method, path, headers, Some(Body::json(&body)))
    }

    /// The admin API with the right token.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let auth = format!("Bearer {TOKEN}");
        let headers = [("Authorization", auth.as_str())];
        self.send(method, path, &headers, body.map(|b| Body::json(&b)))
    }

    pub fn create_tenant(&self, name: &str) -> Value {
        let r = self.admin(
            "POST",
            "/tenants",
            Some(serde_json::json!({ "name": name })),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request body with its content type.
pub struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Body {
    pub fn json(value: &Value) -> Body {
        Body::raw("application/json", value.to_string().into_bytes())
    }

    pub fn raw(content_type: &str, bytes: Vec<u8>) -> Body {
        Body {
            content_type: content_type.to_owned(),
            bytes,
        }
    }

    /// `multipart/form-data` with text fields and files `(field, file name, bytes)`.
    pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Body {
        let boundary = "----hotel-test-boundary-7d93a1";
        let mut bytes = Vec::new();
        for (name, value) in fields {
            bytes.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        for (name, file_name, content) in files {
            bytes.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            bytes.extend_from_slice(content);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Body::raw(&format!("multipart/form-data; boundary={boundary}"), bytes)
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 exchange over a fresh connection (`Connection: close`).
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Body>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: {}\r\nContent-Length: {}\r\n",
            body.content_type,
            body.bytes.len()
        ));
    } else if matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        // The server may answer (413) and close before reading everything.
        if let Err(e) = stream.write_all(&body.bytes) {
            if e.kind() != std::io::ErrorKind::BrokenPipe
                && e.kind() != std::io::ErrorKind::ConnectionReset
            {
                return Err(e);
            }
        }
    }
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        if raw.is_empty() || e.kind() != std::io::ErrorKind::ConnectionReset {
            return Err(e);
        }
    }
    parse_response(&raw)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| invalid("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("bad chunk"))?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| invalid("bad chunk"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| invalid("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(invalid("short chunk"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The environment that puts the binary on its embedded cluster in `pg_dir`.
pub fn embedded_env(pg_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("HOTEL_EMBEDDED_PG", "always".to_owned()),
        ("HOTEL_PG_DIR", pg_dir.display().to_string()),
    ]
}

/// Runs the binary with management arguments on its embedded cluster in `pg_dir`.
pub fn run_cli_embedded(pg_dir: &Path, args: &[&str]) -> Output {
    let scratch = TempDir::new("cli");
    let mut cmd = hotel_command("", &scratch.0);
    cmd.env_remove("DATABASE_URL").envs(embedded_env(pg_dir));
    cmd.args(args).output().expect("run the hotel binary")
}

/// Runs the binary with management arguments against `db_url`.
pub fn run_cli(db_url: &str, args: &[&str]) -> Output {
    let scratch = TempDir::new("cli");
    hotel_command(db_url, &scratch.0)
        .args(args)
        .output()
        .expect("run the hotel binary")
}

/// A small image in `format`, encoded by the `image` crate.
pub fn image_bytes(format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let img = image::RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8 * 60, y as u8 * 80, 128]));
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .expect("encode test image");
    out.into_inner()
}

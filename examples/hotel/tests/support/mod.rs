//! Support for the hotel service's tests, one module for all of them:
//!
//! - [`App`]: the service in this process, driven through `rocket::local` (the HTTP
//!   tests), on a database of its own.
//! - [`Server`]: the `hotel` binary on a free loopback port, for the tests where the
//!   process is the point (outages, the command line, the embedded cluster, a browser,
//!   raw sockets, load); [`http`] is their client.
//! - Both answer [`Http`]: the same request helpers whichever runs the service.
//! - [`panel`]: a cookie-keeping visitor of the admin panel, and its forms.
#![allow(dead_code)]

pub mod http;
pub mod panel;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_tenancy::testing::{server_url, TestDatabase};
use hotel::config::Settings;
use rocket::figment::value::Value as FigmentValue;
use rocket::figment::Figment;
use rocket::http::{ContentType, Cookie, Header, Method};
use rocket::local::blocking::Client;
use serde_json::Value;

#[allow(unused_imports)]
pub use test_support::{free_port, is_root, TempDir};

pub const TOKEN: &str = "test-admin-token";

/// How long a server may take to start (build already done, migrations included).
const START_DEADLINE: Duration = Duration::from_secs(120);

/// A database of its own on the test server, dropped (with its tenant roles) when the
/// value drops.
pub fn test_database() -> TestDatabase {
    TestDatabase::create(&server_url()).expect("a test database")
}

/// A database name on the test server that does not exist yet, for the service to
/// create; dropped (if it was created) when the value drops.
pub fn fresh_database() -> TestDatabase {
    TestDatabase::reserve(&server_url()).expect("a database name")
}

/// A database of its own owned by a plain login role (no superuser: row security binds
/// it), for row mode; the role is dropped after the database.
pub struct OwnedDatabase {
    db: Option<TestDatabase>,
    /// The login role.
    pub role: String,
    /// The database's URL, logging in as the role.
    pub url: String,
    /// The same database as the test server's superuser.
    pub admin_url: String,
}

impl OwnedDatabase {
    pub fn new() -> OwnedDatabase {
        use diesel::connection::SimpleConnection;
        let db = test_database();
        let name = diesel_tenancy::testing::database_name(db.url()).expect("database name");
        let role = format!("{name}_app");
        let mut admin = PgConnection::establish(db.url()).expect("admin connection");
        admin
            .batch_execute(&format!(
                "CREATE ROLE \"{role}\" LOGIN CREATEROLE; ALTER DATABASE \"{name}\" OWNER TO \"{role}\""
            ))
            .expect("a plain login role owning the database");
        let url = db.url().replacen("://postgres@", &format!("://{role}@"), 1);
        assert_ne!(
            url,
            db.url(),
            "the test server URL must log in as postgres@"
        );
        OwnedDatabase {
            admin_url: db.url().to_owned(),
            db: Some(db),
            role,
            url,
        }
    }
}

impl Drop for OwnedDatabase {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection;
        drop(self.db.take());
        if let Ok(mut admin) = PgConnection::establish(&server_url()) {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", self.role));
        }
    }
}

/// The group role of the tenant roles of the database `url` names (`dt<oid>`).
pub fn role_group(url: &str) -> String {
    let mut conn = PgConnection::establish(url).expect("connect");
    let oid: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "SELECT oid::int8 FROM pg_database WHERE datname = current_database()",
    )
    .get_result(&mut conn)
    .expect("database oid");
    format!("dt{oid}")
}

/// The roles of the cluster whose name starts with `prefix`.
pub fn roles_like(prefix: &str) -> Vec<String> {
    let mut admin = PgConnection::establish(&server_url()).expect("admin connection");
    diesel::dsl::sql::<diesel::sql_types::Text>(
        "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, ",
    )
    .bind::<diesel::sql_types::Text, _>(prefix)
    .sql(") ORDER BY 1")
    .load(&mut admin)
    .expect("list roles")
}

/// How the service is started: its admin token and extra environment (e.g.
/// `HOTEL_TENANT_ROLES`, `ROCKET_TENANCY`), the same for [`App`] and [`Server`].
pub struct Options {
    pub admin_token: Option<&'static str>,
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

/// An answer: status, header fields in order, body.
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

/// The service, however it runs: one request at a time, and the helpers on top.
pub trait Http {
    /// One exchange, whatever its status.
    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> Response;

    /// Where the service keeps pictures (`MEDIA_ROOT`).
    fn media_root(&self) -> PathBuf;

    /// Sends a request and checks that the service never answers 5xx to it.
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> Response {
        let response = self.exchange(method, path, headers, body);
        assert!(
            response.status < 500,
            "{method} {path} answered {}: {}",
            response.status,
            response.text()
        );
        response
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.send("GET", path, headers, None)
    }

    fn json(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Value) -> Response {
        self.send(method, path, headers, Some(Body::json(&body)))
    }

    /// The admin API with the right token.
    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let auth = format!("Bearer {TOKEN}");
        let headers = [("Authorization", auth.as_str())];
        self.send(method, path, &headers, body.map(|b| Body::json(&b)))
    }

    fn create_tenant(&self, name: &str) -> Value {
        let r = self.admin(
            "POST",
            "/tenants",
            Some(serde_json::json!({ "name": name })),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()
    }
}

/// The hotel service in this process, on `rocket::local`: its configuration read from
/// [`Options`] as the binary reads it from the environment.
pub struct App {
    client: Client,
    media: TempDir,
}

impl App {
    /// The service on `db` (which may not exist yet: the service creates it).
    pub fn start(db: &TestDatabase, options: Options) -> App {
        App::start_url(db.url(), options)
    }

    /// The service on the database at `url`.
    pub fn start_url(url: &str, options: Options) -> App {
        let media = TempDir::new("media");
        let mut env: HashMap<&str, String> = HashMap::new();
        env.insert("MEDIA_ROOT", media.0.join("media").display().to_string());
        if let Some(token) = options.admin_token {
            env.insert("HOTEL_ADMIN_TOKEN", token.to_owned());
        }
        // `ROCKET_*` variables go into Rocket's configuration, as Rocket reads them.
        let mut figment = Figment::from(rocket::Config::debug_default());
        for (name, value) in &options.env {
            match name.strip_prefix("ROCKET_") {
                Some(key) => {
                    let value = FigmentValue::from_str(value).expect("a configuration value");
                    figment = figment.merge((key.to_ascii_lowercase(), value));
                }
                None => {
                    env.insert(name, value.clone());
                }
            }
        }
        let settings = Settings::from_env(&|name| env.get(name).cloned(), figment)
            .expect("the service's settings");
        let rocket = hotel::service(&settings, url).expect("the service");
        let client = Client::untracked(rocket).expect("the service launches");
        App { client, media }
    }

    /// The `rocket::local` client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Http for App {
    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> Response {
        let method = Method::from_str(method).expect("an HTTP method");
        let mut request = self.client.req(method, path.to_owned());
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("cookie") {
                // A local request carries its cookies apart from its header fields.
                for pair in value.split(';') {
                    let (name, value) = pair.trim().split_once('=').expect("name=value");
                    request = request.cookie(Cookie::new(name.to_owned(), value.to_owned()));
                }
            } else {
                request.add_header(Header::new(name.to_string(), value.to_string()));
            }
        }
        if let Some(body) = body {
            let content_type =
                ContentType::parse_flexible(&body.content_type).expect("a content type");
            request.add_header(content_type);
            request.add_header(Header::new("Content-Length", body.bytes.len().to_string()));
            request.set_body(body.bytes);
        } else if matches!(method, Method::Post | Method::Put | Method::Patch) {
            request.add_header(Header::new("Content-Length", "0"));
        }
        let response = request.dispatch();
        let status = response.status().code;
        let headers = response
            .headers()
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_owned()))
            .collect();
        let body = response.into_bytes().unwrap_or_default();
        Response {
            status,
            headers,
            body,
        }
    }

    fn media_root(&self) -> PathBuf {
        self.media.0.join("media")
    }
}

/// The environment every run of the binary gets: its own database, media, no Rocket.toml.
pub fn hotel_command(db_url: &str, media: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotel"));
    cmd.current_dir(media)
        .env_remove("ROCKET_CONFIG")
        .env_remove("ROCKET_DATABASES")
        .env_remove("HOTEL_ADMIN_TOKEN")
        .env_remove("HOTEL_EMBEDDED_PG")
        .env_remove("HOTEL_PG_DIR")
        .env_remove("HOTEL_SEED_DEMO")
        .env_remove("HOTEL_FACE")
        .env("DATABASE_URL", db_url)
        .env("MEDIA_ROOT", media.join("media"))
        .env("ROCKET_CLI_COLORS", "false")
        .stdin(Stdio::null());
    cmd
}

/// A running `hotel` binary; killed (and its media directory removed) on drop, also when
/// the test panics. Declare it after the database so it drops first.
pub struct Server {
    child: Child,
    pub port: u16,
    pub media: TempDir,
    log: PathBuf,
}

impl Server {
    pub fn start(db: &TestDatabase, options: Options) -> Server {
        Server::spawn(Some(db.url()), options)
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
            if let Ok(r) = http::request(self.port, "GET", "/health", &[], None) {
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
}

impl Http for Server {
    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> Response {
        http::request(self.port, method, path, headers, body.as_ref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_text()))
    }

    fn media_root(&self) -> PathBuf {
        self.media.0.join("media")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

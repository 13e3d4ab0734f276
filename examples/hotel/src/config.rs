//! Settings from the environment, then Rocket's configuration, then defaults.
//!
//! | setting | environment | Rocket config | default |
//! |---|---|---|---|
//! | database | `DATABASE_URL` | `databases.hotel.url` | [`DEFAULT_DATABASE_URL`] if a server logs in there, else the embedded cluster (the database is created if missing) |
//! | embedded cluster | `HOTEL_EMBEDDED_PG` | | `auto`; `always` skips the default URL, `never` the cluster |
//! | embedded cluster's directory | `HOTEL_PG_DIR` | | `.hotel/` in the project |
//! | address, port | `ROCKET_ADDRESS`, `ROCKET_PORT` | `address`, `port` | 127.0.0.1:8000 |
//! | media files | `MEDIA_ROOT` | `media_root` | `./media` |
//! | admin API and panel | `HOTEL_ADMIN_TOKEN` | `admin_token` | off |
//! | a demo hotel in every new tenant | `HOTEL_SEED_DEMO` (`1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`) | `seed_demo` | off |
//! | a database role per tenant (each request runs as its tenant's role) | `HOTEL_TENANT_ROLES` (as `HOTEL_SEED_DEMO`) | | off |
//! | the web stack serving `/hotels/` ([`Face`]): Rocket on the sync pool, Rocket awaiting diesel-async queries on the async pool, or axum on the async pool (the admin API too; JSON bodies only, no panel or media) | `HOTEL_FACE` (`rocket`, `rocket-async` or `axum`) | | `rocket` |
//! | the mode of new tenants: a schema each, or rows in shared tables (row-level security; the login role must be a plain role, not a superuser) | `HOTEL_TENANT_MODE` (`schema` or `rows`) | `tenancy.tenant_mode` | `schema` |

use std::path::{Path, PathBuf};

use diesel_tenancy::TenantMode;

use crate::face::Face;
use rocket::data::ToByteUnit;
use rocket::figment::Figment;

/// The Rocket database name the tenancy fairing reads (`databases.hotel`).
pub const DATABASE: &str = "hotel";

/// A local database named `hotel`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/hotel?sslmode=disable";

/// The maintenance database of [`DEFAULT_DATABASE_URL`]'s server, which tells whether a
/// server logs `postgres` in there before the `hotel` database exists.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/// Where the embedded cluster lives unless `HOTEL_PG_DIR` says otherwise: `.hotel/` at
/// the repository's root.
fn default_embedded_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root).join(".hotel")
}

/// When to use the embedded cluster (without a database URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddedMode {
    /// When no server logs in at the default URL.
    Auto,
    /// Without trying the default URL.
    Always,
    /// Never: the default URL, whether it answers or not.
    Never,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL` or `databases.hotel.url`, if set.
    pub database_url: Option<String>,
    pub embedded: EmbeddedMode,
    pub embedded_dir: PathBuf,
    pub media_root: PathBuf,
    /// The admin API's bearer token, also the admin panel's login; both are off (404)
    /// without one.
    pub admin_token: Option<String>,
    /// Whether new tenants start with a demo hotel (see `seed.rs`).
    pub seed_demo: bool,
    /// Per-tenant database roles (`diesel_tenancy::TenantRoles`): PostgreSQL refuses a
    /// request's SQL that names another tenant's schema. The login role needs CREATEROLE.
    pub tenant_roles: bool,
    /// The mode of new tenants (`diesel_tenancy::TenantMode`): `Rows` keeps them in the
    /// shared row schema's tables, apart by row-level security.
    pub tenant_mode: TenantMode,
    /// The web stack serving the hotel API.
    pub face: Face,
    figment: Figment,
}

/// Where pictures live, shared by the hotel and media routes.
#[derive(Debug, Clone)]
pub struct MediaRoot(pub PathBuf);

/// The variables the settings are read from: the process's environment, or a test's.
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A variable of `env`, trimmed; `None` when unset or blank.
fn var(env: Env<'_>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// An on/off switch from the environment (`1`/`true`/`yes`/`on` or
/// `0`/`false`/`no`/`off`, any case), or `unset` when the variable is not set.
fn switch(env: Env<'_>, name: &str, unset: bool) -> Result<bool, String> {
    match var(env, name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None => Ok(unset),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(format!("{name} is {other:?}: use on (or 1) or off (or 0)")),
    }
}

impl Settings {
    /// The settings, or a message naming the setting that is wrong.
    pub fn load() -> Result<Settings, String> {
        Settings::from_env(&|name| std::env::var(name).ok(), rocket::Config::figment())
    }

    /// The settings from the variables `env` gives and the Rocket configuration `base`
    /// (what [`load`](Self::load) reads from the process; the tests give their own).
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        base: Figment,
    ) -> Result<Settings, String> {
        let from_rocket = |key: &str| {
            base.extract_inner::<String>(key)
                .ok()
                .filter(|v| !v.trim().is_empty())
        };
        let database_url = var(env, "DATABASE_URL").or_else(|| from_rocket("databases.hotel.url"));
        let embedded = match var(env, "HOTEL_EMBEDDED_PG").as_deref() {
            None | Some("auto") => EmbeddedMode::Auto,
            Some("always") => EmbeddedMode::Always,
            Some("never") => EmbeddedMode::Never,
            Some(other) => {
                return Err(format!(
                    "HOTEL_EMBEDDED_PG is {other:?}: use auto (the default), always or never"
                ))
            }
        };
        let embedded_dir =
            var(env, "HOTEL_PG_DIR").map_or_else(default_embedded_dir, PathBuf::from);
        let media_root = var(env, "MEDIA_ROOT")
            .or_else(|| from_rocket("media_root"))
            .unwrap_or_else(|| "./media".into());
        let admin_token = var(env, "HOTEL_ADMIN_TOKEN").or_else(|| from_rocket("admin_token"));
        let seed_demo = switch(
            env,
            "HOTEL_SEED_DEMO",
            base.extract_inner::<bool>("seed_demo").unwrap_or(false),
        )?;
        let tenant_roles = switch(env, "HOTEL_TENANT_ROLES", false)?;
        let tenant_mode =
            match var(env, "HOTEL_TENANT_MODE").or_else(|| from_rocket("tenancy.tenant_mode")) {
                None => TenantMode::Schema,
                Some(mode) => TenantMode::parse(&mode).ok_or_else(|| {
                    format!("HOTEL_TENANT_MODE is {mode:?}: use schema (the default) or rows")
                })?,
            };
        let face = var(env, "HOTEL_FACE").map_or(Ok(Face::Rocket), |f| Face::parse(&f))?;
        let figment = base
            .merge(("limits.json", 1.mebibytes()))
            .merge(("limits.string", 64.kibibytes()))
            .merge(("limits.file", 5.mebibytes()))
            .merge(("limits.data-form", 6.mebibytes()));
        Ok(Settings {
            database_url,
            embedded,
            embedded_dir,
            media_root: PathBuf::from(media_root),
            admin_token,
            seed_demo,
            tenant_roles,
            tenant_mode,
            face,
            figment,
        })
    }

    /// Rocket's configuration with the database URL and the body limits (JSON 1 MiB,
    /// pictures 5 MiB, multipart bodies 6 MiB) filled in.
    pub fn figment(&self, database_url: &str) -> Figment {
        self.figment
            .clone()
            .merge(("databases.hotel.url", database_url))
    }
}

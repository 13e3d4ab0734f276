//! Settings from the environment, then Rocket's configuration, then defaults.
//!
//! | setting | environment | Rocket config | default |
//! |---|---|---|---|
//! | database | `DATABASE_URL` | `databases.hotel.url` | [`DEFAULT_DATABASE_URL`] (created if missing) |
//! | address, port | `ROCKET_ADDRESS`, `ROCKET_PORT` | `address`, `port` | 127.0.0.1:8000 |
//! | media files | `MEDIA_ROOT` | `media_root` | `./media` |
//! | admin API and panel | `HOTEL_ADMIN_TOKEN` | `admin_token` | off |

use std::path::PathBuf;

use rocket::data::ToByteUnit;
use rocket::figment::Figment;

/// The Rocket database name the tenancy fairing reads (`databases.hotel`).
pub const DATABASE: &str = "hotel";

/// A local database named `hotel`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/hotel?sslmode=disable";

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub media_root: PathBuf,
    /// The admin API's bearer token, also the admin panel's login; both are off (404)
    /// without one.
    pub admin_token: Option<String>,
    figment: Figment,
}

/// Where pictures live, shared by the hotel and media routes.
#[derive(Debug, Clone)]
pub struct MediaRoot(pub PathBuf);

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Settings {
    pub fn load() -> Settings {
        let base = rocket::Config::figment();
        let from_rocket = |key: &str| {
            base.extract_inner::<String>(key)
                .ok()
                .filter(|v| !v.trim().is_empty())
        };
        let database_url = env("DATABASE_URL")
            .or_else(|| from_rocket("databases.hotel.url"))
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let media_root = env("MEDIA_ROOT")
            .or_else(|| from_rocket("media_root"))
            .unwrap_or_else(|| "./media".into());
        let admin_token = env("HOTEL_ADMIN_TOKEN").or_else(|| from_rocket("admin_token"));
        let figment = base
            .merge(("databases.hotel.url", &database_url))
            .merge(("limits.json", 1.mebibytes()))
            .merge(("limits.string", 64.kibibytes()))
            .merge(("limits.file", 5.mebibytes()))
            .merge(("limits.data-form", 6.mebibytes()));
        Settings {
            database_url,
            media_root: PathBuf::from(media_root),
            admin_token,
            figment,
        }
    }

    /// Rocket's configuration with the database URL and the body limits (JSON 1 MiB, pictures 5 MiB, multipart bodies 6 MiB) filled in.
    pub fn figment(&self) -> Figment {
        self.figment.clone()
    }
}

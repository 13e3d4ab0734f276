//! The service: the tenancy fairing over the hotel tenant set, and one stage per
//! resource module.

use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::database::create_database_if_missing;
use diesel_tenancy::rocket::TenancyFairing;
use diesel_tenancy::TenantRoles;
use rocket::{Build, Rocket};

use crate::config::{self, MediaRoot, Settings};
use crate::face::Face;
use crate::{admin, health, hotels, media, oversize, panel, problem, seed};

/// The hotels table (the library's `migrations_tenant/`), applied to every tenant schema and, with the public-tenant option,
/// to `public`.
pub const TENANT_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations_tenant");

/// The service: every resource module adds its stage.
pub fn rocket(settings: &Settings, database_url: &str) -> Rocket<Build> {
    let mut tenancy = TenancyFairing::new(config::DATABASE, TENANT_MIGRATIONS).public_tenant(true);
    if settings.tenant_roles {
        tenancy = tenancy.tenant_roles(TenantRoles::new());
    }
    tenancy = tenancy.tenant_mode(settings.tenant_mode);
    // The async face's hotel handlers check out from the async pool.
    tenancy = tenancy.async_pool(settings.face == Face::RocketAsync);
    rocket::custom(settings.figment(database_url))
        .manage(settings.face)
        .attach(tenancy.hooks(seed::hooks(settings.seed_demo)))
        .manage(MediaRoot(settings.media_root.clone()))
        .attach(problem::stage())
        .attach(health::stage())
        .attach(admin::stage(settings.admin_token.clone()))
        .attach(panel::stage(settings.admin_token.clone()))
        .attach(hotels::stage())
        .attach(media::stage())
        .attach(oversize::stage())
}

/// The service on the database `database_url` names, created first if it does not exist
/// (what `serve` runs).
pub fn service(settings: &Settings, database_url: &str) -> Result<Rocket<Build>, String> {
    create_database_if_missing(database_url).map_err(|e| e.to_string())?;
    Ok(rocket(settings, database_url))
}

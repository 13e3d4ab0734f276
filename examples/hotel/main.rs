//! The seed's hotel service on `diesel-tenancy`: one PostgreSQL schema per tenant, the
//! tenant chosen per request by `Tenant-Header` or the Host's registered domain.
//!
//! ```text
//! cargo run --example hotel                      # find or start a database, migrate, serve
//! cargo run --example hotel -- tenant create demo1
//! cargo run --example hotel -- migrate --check
//! ```
//!
//! See `examples/hotel/README.md` for the walkthrough and `config.rs` for the settings.

mod admin;
mod body;
mod config;
mod database;
mod embedded_pg;
mod health;
mod hotels;
mod media;
mod model;
mod oversize;
mod panel;
mod pg_server;
mod picture;
mod problem;
mod seed;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use diesel_tenancy::database::create_database_if_missing;
use diesel_tenancy::rocket::TenancyFairing;
use diesel_tenancy::{cli, SyncRouter, TenantPool, TenantPoolBuilder, TenantRoles};
use rocket::{Build, Rocket};

use crate::config::{MediaRoot, Settings};

/// The hotels table, applied to every tenant schema and, with the public-tenant option,
/// to `public`.
const TENANT_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations_tenant");

/// The seed's multi-tenant hotel service.
#[derive(Parser)]
#[command(name = "hotel", version)]
struct Hotel {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default): creates the database if missing, migrates,
    /// then serves.
    Serve,
    #[command(flatten)]
    Manage(cli::Command),
}

/// The service: every resource module adds its stage.
fn rocket(settings: &Settings, database_url: &str) -> Rocket<Build> {
    let mut tenancy = TenancyFairing::new(config::DATABASE, TENANT_MIGRATIONS).public_tenant(true);
    if settings.tenant_roles {
        tenancy = tenancy.tenant_roles(TenantRoles::new());
    }
    rocket::custom(settings.figment(database_url))
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

fn main() -> ExitCode {
    let args = Hotel::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => return fail(&e),
    };
    let command = args.command.unwrap_or(Command::Serve);
    // `migrate --check` changes nothing, not even by creating a database or a cluster.
    let check = matches!(&command, Command::Manage(cli::Command::Migrate(m)) if m.check);
    // Dropped last: an embedded cluster stops once the work is done.
    let serving = matches!(command, Command::Serve);
    let database = match database::open(&settings, !check, serving) {
        Ok(database) => database,
        Err(e) => return fail(&e),
    };
    let url = database.url.as_str();
    match command {
        Command::Serve => serve(&settings, url),
        Command::Manage(command) => manage(&settings, url, &command, check),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn serve(settings: &Settings, database_url: &str) -> ExitCode {
    if let Err(e) = create_database_if_missing(database_url) {
        return cli::fail(&e);
    }
    match rocket::execute(rocket(settings, database_url).launch()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => cli::fail(&e),
    }
}

/// The management commands' pool: the service's settings, sized for `migrate --jobs`.
fn manage_pool(settings: &Settings, jobs: u32) -> TenantPoolBuilder {
    let builder = TenantPool::builder()
        .max_size(jobs.clamp(2, 64))
        .min_idle(Some(0));
    if settings.tenant_roles {
        builder.tenant_roles(TenantRoles::new())
    } else {
        builder
    }
}

fn manage(
    settings: &Settings,
    database_url: &str,
    command: &cli::Command,
    check: bool,
) -> ExitCode {
    if !check {
        if let Err(e) = create_database_if_missing(database_url) {
            return cli::fail(&e);
        }
    }
    let jobs = match command {
        cli::Command::Migrate(m) => m.jobs.get() as u32,
        cli::Command::Tenant(cli::TenantArgs {
            command: cli::TenantCommand::Sql(sql),
            ..
        }) => sql.jobs.get() as u32,
        _ => 1,
    };
    let pool = match manage_pool(settings, jobs).build(database_url) {
        Ok(pool) => pool,
        Err(e) => return cli::fail(&e),
    };
    let router = SyncRouter::new(pool, TENANT_MIGRATIONS)
        .public_tenant(true)
        .hooks(seed::hooks(settings.seed_demo));
    // Registry commands on a fresh database: set up `public` first, as `serve` would.
    if !matches!(command, cli::Command::Migrate(_)) {
        if let Err(e) = router.migrate_shared() {
            return cli::fail(&e);
        }
    }
    cli::run_stdio(command, &router)
}

//! The command line: `serve` (the default) or a management command of
//! `diesel_tenancy::cli`, each on the database `database.rs` finds.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diesel_tenancy::database::create_database_if_missing;
use diesel_tenancy::{cli, SyncRouter, TenantMode, TenantPool, TenantPoolBuilder, TenantRoles};

use crate::config::Settings;
use crate::face::Face;
use crate::service::{service, TENANT_MIGRATIONS};
use crate::{database, seed};

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

/// Runs the command the process was started with; its exit code.
pub fn run() -> ExitCode {
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
    if settings.face == Face::Axum {
        return match crate::axum_face::serve(settings, database_url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let rocket = match service(settings, database_url) {
        Ok(rocket) => rocket,
        Err(e) => return cli::fail(&e),
    };
    println!("hotel: the hotel API runs on the {} face", settings.face);
    match rocket::execute(rocket.launch()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => cli::fail(&e),
    }
}

/// The management commands' pool: the service's settings, sized for `migrate --jobs`.
fn manage_pool(settings: &Settings, jobs: u32) -> TenantPoolBuilder {
    let builder = TenantPool::builder()
        .max_size(jobs.clamp(2, 64))
        .min_idle(Some(0))
        .row_tenants(settings.tenant_mode == TenantMode::Rows);
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
        .tenant_mode(settings.tenant_mode)
        .hooks(seed::hooks(settings.seed_demo));
    // Registry commands on a fresh database: set up `public` first, as `serve` would.
    if !matches!(command, cli::Command::Migrate(_)) {
        if let Err(e) = router.migrate_shared() {
            return cli::fail(&e);
        }
    }
    cli::run_stdio(command, &router)
}

//! A management CLI an application embeds, as Django apps use `manage.py` (feature `cli`).
//!
//! [`Command`] is a clap [`Subcommand`]: flatten it into the application's own command
//! enum, build the application's [`SyncRouter`], and hand both to [`run`] (any writers,
//! for tests) or [`run_stdio`] (stdout and stderr, returning the process exit code).
//!
//! | command | does |
//! |---|---|
//! | `migrate [--jobs N] [--tenant NAME]… [--skip NAME]… [--keep-going] [--check]` | the shared set, then every tenant with something pending |
//! | `tenant create NAME [--schema S] [--domain D]… [--mode schema\|rows]` | registers a tenant, creates and migrates its schema (a row tenant: the registry row only) |
//! | `tenant list` | every tenant with its mode, schema and domains |
//! | `tenant delete NAME [--drop-schema]` | removes the registry row; the data (a row tenant's rows) only with `--drop-schema` (or `--drop-data`) |
//! | `tenant rename OLD NEW` | changes the name; the schema keeps its name |
//! | `tenant sql (SQL \| --file PATH) [--tenant NAME]… [--skip NAME]… [--jobs N] [--keep-going]` | runs SQL in each tenant's scope, one transaction per tenant (see [`SqlArgs`]) |
//! | `tenant roles` | makes or repairs every tenant's database role ([tenant roles](crate::TenantRoles) on) |
//! | `tenant placement` | each tenant's Citus node and size ([`CitusCommand`]; these four need Citus) |
//! | `tenant move NAME HOST:PORT [--block-writes]` | moves a tenant to another Citus node, online where `wal_level = logical` |
//! | `tenant rebalance [--dry-run] [--block-writes]` | spreads the tenants evenly over the Citus workers |
//! | `tenant distribute (NAME \| --all)` | makes tenant schemas Citus distributed schemas |
//! | `domain add TENANT DOMAIN [--primary]` | registers a domain for a tenant |
//! | `domain remove DOMAIN` | unregisters a domain |
//!
//! Every command prints human text, or JSON with `--json`. Exit codes ([`Outcome`]): `0`
//! success, `1` something is pending (`migrate --check` only), `2` failure, with one line
//! on stderr saying what failed (`migrate --check` also fails when a table of the row
//! schema has no forced tenant policy: one line per table, with the fix).
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use clap::{Parser, Subcommand};
//! use diesel_migrations::{embed_migrations, EmbeddedMigrations};
//! use diesel_tenancy::{cli, SyncRouter, TenantPool};
//!
//! const TENANT: EmbeddedMigrations = embed_migrations!("migrations_tenant");
//!
//! #[derive(Parser)]
//! struct App {
//!     #[command(subcommand)]
//!     command: AppCommand,
//! }
//!
//! #[derive(Subcommand)]
//! enum AppCommand {
//!     /// Serve HTTP.
//!     Serve,
//!     #[command(flatten)]
//!     Manage(cli::Command),
//! }
//!
//! fn main() -> ExitCode {
//!     let app = App::parse();
//!     let router = match TenantPool::builder().build("postgres://localhost/app") {
//!         Ok(pool) => SyncRouter::new(pool, TENANT),
//!         Err(e) => return cli::fail(&e),
//!     };
//!     match app.command {
//!         AppCommand::Serve => ExitCode::SUCCESS,
//!         AppCommand::Manage(command) => cli::run_stdio(&command, &router),
//!     }
//! }
//! ```

mod citus;
mod migrate;
mod progress;
mod roles;
mod tenant;
mod tenant_sql;

pub use citus::CitusCommand;
pub use tenant_sql::SqlArgs;

use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::error::Error;
use crate::registry::TenantMode;

use crate::migrate::SyncRouter;

/// The management commands. Flatten into an application's own [`Subcommand`] enum.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Apply the shared migrations to `public`, then the tenant migrations to every tenant.
    Migrate(MigrateArgs),
    /// Create, list, rename and delete tenants.
    Tenant(TenantArgs),
    /// Add and remove the domains tenants are reached at.
    Domain(DomainArgs),
}

/// The output format, shared by every command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct OutputArgs {
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `migrate`: the shared set, then every tenant.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct MigrateArgs {
    /// Tenants migrated at once; capped at the pool size.
    #[arg(long, short, value_name = "N", default_value = "1")]
    pub jobs: NonZeroUsize,
    /// Only this tenant (repeatable; names compare case-insensitively).
    #[arg(long = "tenant", value_name = "NAME")]
    pub tenants: Vec<String>,
    /// Never this tenant (repeatable).
    #[arg(long = "skip", value_name = "NAME")]
    pub skip: Vec<String>,
    /// Go on with the other tenants after one fails.
    #[arg(long)]
    pub keep_going: bool,
    /// Apply nothing; exit 1 if anything is pending.
    #[arg(long)]
    pub check: bool,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `tenant …`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TenantArgs {
    #[allow(missing_docs)]
    #[command(subcommand)]
    pub command: TenantCommand,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The `tenant` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TenantCommand {
    /// Register a tenant, create its schema and apply the tenant migrations to it.
    Create {
        /// The tenant's name (unique, compared case-insensitively).
        name: String,
        /// The schema to create; derived from the name by default.
        #[arg(long, value_name = "S")]
        schema: Option<String>,
        /// A domain the tenant is reached at (repeatable; the first is primary).
        #[arg(long = "domain", value_name = "D")]
        domains: Vec<String>,
        /// `schema` (its own schema) or `rows` (rows in the shared row schema); the
        /// application's default when not given.
        #[arg(long, value_name = "MODE", value_parser = parse_mode)]
        mode: Option<TenantMode>,
    },
    /// List every tenant.
    List,
    /// Unregister a tenant. Its schema and data (a row tenant's rows) are kept unless
    /// --drop-schema is given.
    Delete {
        /// The tenant's name.
        name: String,
        /// Also drop the tenant's schema and all its data; for a row tenant, delete its
        /// rows from every table of the row schema.
        #[arg(long, visible_alias = "drop-data")]
        drop_schema: bool,
    },
    /// Rename a tenant; its schema keeps its name.
    Rename {
        /// The current name.
        old: String,
        /// The new name.
        new: String,
    },
    /// Run one SQL statement (or a file) in each tenant's scope, each tenant in its own
    /// transaction; print each tenant's rows or rows affected.
    Sql(SqlArgs),
    /// Make (or repair) every tenant's database role: the backfill after turning tenant
    /// roles on. Needs a pool built with tenant roles and a login role with CREATEROLE.
    Roles,
    #[allow(missing_docs)]
    #[command(flatten)]
    Citus(CitusCommand),
}

/// `domain …`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DomainArgs {
    #[allow(missing_docs)]
    #[command(subcommand)]
    pub command: DomainCommand,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The `domain` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum DomainCommand {
    /// Register a domain for a tenant.
    Add {
        /// The tenant's name.
        tenant: String,
        /// The domain, e.g. demo1.example.com (no port).
        domain: String,
        /// Make it the tenant's primary domain.
        #[arg(long)]
        primary: bool,
    },
    /// Unregister a domain.
    Remove {
        /// The domain.
        domain: String,
    },
}

/// How a command ended; converts into the process [`ExitCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done. Exit code 0.
    Success,
    /// `migrate --check` found pending migrations. Exit code 1.
    Pending,
    /// The command failed (a line on stderr says why). Exit code 2.
    Failed,
}

impl Outcome {
    /// The numeric exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Pending => 1,
            Outcome::Failed => 2,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> ExitCode {
        ExitCode::from(outcome.code())
    }
}

impl Command {
    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        match self {
            Command::Migrate(a) => a.output.json,
            Command::Tenant(a) => a.output.json,
            Command::Domain(a) => a.output.json,
        }
    }
}

/// What a command produced before it is written out.
pub(crate) struct Done {
    outcome: Outcome,
    /// Text or JSON for stdout.
    output: String,
    /// A one-line reason, for a command that ran but did not fully succeed.
    problem: Option<String>,
}

impl Done {
    pub(crate) fn ok(output: String) -> Done {
        Done {
            outcome: Outcome::Success,
            output,
            problem: None,
        }
    }

    /// A command that ran over tenants: a failure when `problem` says one failed.
    pub(crate) fn unless(problem: Option<String>, output: String) -> Done {
        Done {
            outcome: match problem {
                Some(_) => Outcome::Failed,
                None => Outcome::Success,
            },
            output,
            problem,
        }
    }
}

/// Runs `command` against `router`, writing results to `out` and one line per failure to
/// `err`. Draws no progress bar.
pub fn run(
    command: &Command,
    router: &SyncRouter,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Outcome {
    run_with(command, router, out, err, false)
}

/// Runs `command` on stdout and stderr and returns the exit code. `migrate` and
/// `tenant sql` draw a progress bar when stderr is a terminal and `--json` is not given.
pub fn run_stdio(command: &Command, router: &SyncRouter) -> ExitCode {
    let bar = std::io::stderr().is_terminal() && !command.json();
    let outcome = run_with(
        command,
        router,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
        bar,
    );
    outcome.into()
}

/// Prints `error` as one line on stderr and returns the failure exit code; for errors an
/// application meets before it can [`run`] (e.g. building the pool).
pub fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {}", one_line(&error.to_string()));
    Outcome::Failed.into()
}

fn run_with(
    command: &Command,
    router: &SyncRouter,
    out: &mut dyn Write,
    err: &mut dyn Write,
    bar: bool,
) -> Outcome {
    let result = match command {
        Command::Migrate(args) => migrate::run(args, router, bar),
        Command::Tenant(TenantArgs {
            command: TenantCommand::Sql(sql),
            output,
        }) => tenant_sql::run(sql, output.json, router, bar),
        Command::Tenant(args) => tenant::run_tenant(&args.command, args.output.json, router),
        Command::Domain(args) => tenant::run_domain(&args.command, args.output.json, router),
    };
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = writeln!(err, "error: {}", one_line(&e.to_string()));
            return Outcome::Failed;
        }
    };
    if let Err(e) = out
        .write_all(done.output.as_bytes())
        .and_then(|()| out.flush())
    {
        let _ = writeln!(err, "error: could not write the output: {e}");
        return Outcome::Failed;
    }
    if let Some(problem) = &done.problem {
        let _ = writeln!(err, "error: {}", one_line(problem));
    }
    done.outcome
}

/// The line for a command over tenants where some failed: "<what> failed for 2 of 5
/// tenant(s); first: tenant `a`: <error>"; `None` when `failures` is empty.
fn first_failure<'a>(
    what: &str,
    total: usize,
    mut failures: impl Iterator<Item = (&'a str, &'a Error)>,
) -> Option<String> {
    let (tenant, error) = failures.next()?;
    Some(format!(
        "{what} failed for {} of {total} tenant(s); first: tenant `{tenant}`: {error}",
        1 + failures.count()
    ))
}

/// `value` as pretty JSON and a newline. (The crate's types serialize with string keys
/// only, so `to_value` cannot fail for them.)
fn json_text(value: &impl serde::Serialize) -> String {
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    format!("{value:#}\n")
}

/// Reads `--mode`: `schema` or `rows`.
fn parse_mode(text: &str) -> Result<TenantMode, String> {
    TenantMode::parse(text).ok_or_else(|| format!("`{text}` is not a tenant mode: schema or rows"))
}

/// Collapses a message onto one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct App {
        #[command(subcommand)]
        command: Command,
    }

    pub(super) fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        App::try_parse_from(std::iter::once("app").chain(args.iter().copied())).map(|a| a.command)
    }

    #[test]
    fn definition_is_consistent() {
        App::command().debug_assert();
    }

    #[test]
    fn migrate_defaults_and_flags() {
        let Command::Migrate(m) = parse(&["migrate"]).unwrap() else {
            panic!("not migrate")
        };
        assert_eq!(m.jobs.get(), 1);
        assert!(m.tenants.is_empty() && m.skip.is_empty());
        assert!(!m.keep_going && !m.check && !m.output.json);

        let Command::Migrate(m) = parse(&[
            "migrate",
            "--jobs",
            "4",
            "--tenant",
            "a",
            "--tenant",
            "b",
            "--skip",
            "c",
            "--keep-going",
            "--check",
            "--json",
        ])
        .unwrap() else {
            panic!("not migrate")
        };
        assert_eq!(m.jobs.get(), 4);
        assert_eq!(m.tenants, ["a", "b"]);
        assert_eq!(m.skip, ["c"]);
        assert!(m.keep_going && m.check && m.output.json);
    }

    #[test]
    fn migrate_rejects_bad_jobs() {
        for bad in ["0", "-1", "many"] {
            assert!(parse(&["migrate", "--jobs", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_commands() {
        let c = parse(&[
            "tenant", "create", "Demo 1", "--schema", "demo1", "--domain", "a.test", "--domain",
            "b.test",
        ])
        .unwrap();
        assert_eq!(
            c,
            Command::Tenant(TenantArgs {
                command: TenantCommand::Create {
                    name: "Demo 1".into(),
                    schema: Some("demo1".into()),
                    domains: vec!["a.test".into(), "b.test".into()],
                    mode: None,
                },
                output: OutputArgs::default(),
            })
        );
        // --json is accepted before or after the subcommand.
        assert!(parse(&["tenant", "--json", "list"]).unwrap().json());
        assert!(parse(&["tenant", "list", "--json"]).unwrap().json());
        let Command::Tenant(t) = parse(&["tenant", "delete", "x", "--drop-schema"]).unwrap() else {
            panic!("not tenant")
        };
        assert_eq!(
            t.command,
            TenantCommand::Delete {
                name: "x".into(),
                drop_schema: true
            }
        );
        let Command::Tenant(t) = parse(&["tenant", "rename", "a", "b"]).unwrap() else {
            panic!("not tenant")
        };
        assert_eq!(
            t.command,
            TenantCommand::Rename {
                old: "a".into(),
                new: "b".into()
            }
        );
        let Command::Tenant(t) = parse(&["tenant", "create", "r", "--mode", "rows"]).unwrap()
        else {
            panic!("not tenant")
        };
        assert!(
            matches!(
                t.command,
                TenantCommand::Create {
                    mode: Some(TenantMode::Rows),
                    ..
                }
            ),
            "{t:?}"
        );
        assert!(parse(&["tenant", "create", "r", "--mode", "cells"]).is_err());
        let Command::Tenant(t) = parse(&["tenant", "delete", "x", "--drop-data"]).unwrap() else {
            panic!("not tenant")
        };
        assert!(matches!(
            t.command,
            TenantCommand::Delete {
                drop_schema: true,
                ..
            }
        ));
        assert!(parse(&["tenant", "create"]).is_err());
        assert!(parse(&["tenant", "rename", "a"]).is_err());
        assert!(parse(&["tenant"]).is_err());
    }

    #[test]
    fn domain_commands() {
        let Command::Domain(d) = parse(&["domain", "add", "t", "t.test", "--primary"]).unwrap()
        else {
            panic!("not domain")
        };
        assert_eq!(
            d.command,
            DomainCommand::Add {
                tenant: "t".into(),
                domain: "t.test".into(),
                primary: true
            }
        );
        let Command::Domain(d) = parse(&["domain", "remove", "t.test"]).unwrap() else {
            panic!("not domain")
        };
        assert_eq!(
            d.command,
            DomainCommand::Remove {
                domain: "t.test".into()
            }
        );
        assert!(parse(&["domain", "add", "t"]).is_err());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::Success.code(), 0);
        assert_eq!(Outcome::Pending.code(), 1);
        assert_eq!(Outcome::Failed.code(), 2);
    }

    #[test]
    fn messages_fit_on_one_line() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }
}

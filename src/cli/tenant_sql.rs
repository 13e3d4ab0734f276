//! `tenant sql`: one SQL statement, or a file of them, in every selected tenant's scope,
//! each tenant in its own transaction.

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::value::RawValue;

use super::progress::{self, Bar};
use super::Done;
use crate::error::{Error, Result};
use crate::migrate::Selection;
use crate::migrate::SyncRouter;
use crate::migrate::{EachReport, TenantRun};
use crate::registry::TenantRegistry;

/// `tenant sql`: run SQL in each selected tenant's scope.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["statement", "file"])))]
pub struct SqlArgs {
    /// One SQL statement. Its rows are printed when it returns rows (a query, or
    /// `RETURNING`), else the number of rows it affected.
    #[arg(value_name = "SQL")]
    pub statement: Option<String>,
    /// A file of SQL statements, sent as one batch; only success or failure is printed.
    #[arg(long, short, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Only this tenant (repeatable; names compare case-insensitively).
    #[arg(long = "tenant", value_name = "NAME")]
    pub tenants: Vec<String>,
    /// Never this tenant (repeatable).
    #[arg(long = "skip", value_name = "NAME")]
    pub skip: Vec<String>,
    /// Tenants worked on at once; capped at the pool size.
    #[arg(long, short, value_name = "N", default_value = "1")]
    pub jobs: NonZeroUsize,
    /// Go on with the other tenants after one fails.
    #[arg(long)]
    pub keep_going: bool,
}

/// What the SQL gave in one tenant.
#[derive(Debug)]
enum Output {
    /// Rows, each one JSON object as PostgreSQL rendered it (`row_to_json`), in order.
    Rows(Vec<String>),
    /// Rows affected by a statement that returns none.
    Affected(usize),
    /// A file ran.
    Done,
}

type Report = EachReport<Output>;

/// The SQL to run, read once.
enum Sql {
    Statement(String),
    File(String),
}

pub(super) fn run(args: &SqlArgs, json: bool, router: &SyncRouter, bar: bool) -> Result<Done> {
    let sql = read(args)?;
    let bar = if bar && !json {
        Some(Bar::start(selected(args, router)?))
    } else {
        None
    };
    let options = progress::options(
        bar.as_ref(),
        args.jobs,
        &args.tenants,
        &args.skip,
        args.keep_going,
    );
    let started = Instant::now();
    let report = router.for_each_tenant(&options, |conn, _| match &sql {
        Sql::Statement(s) => statement(conn, s),
        Sql::File(s) => {
            conn.batch_execute(s)?;
            Ok(Output::Done)
        }
    });
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = report?;
    let output = if json {
        json_output(&report, started)?
    } else {
        human(&report, started)
    };
    let failed = report.failures().count();
    let problem = report.failures().next().map(|first| {
        let mut line = format!(
            "the SQL failed in {failed} of {} tenant(s); first: tenant `{}`: {}",
            report.tenants.len(),
            first.tenant,
            error_of(first)
        );
        if report.not_run > 0 {
            let _ = write!(
                line,
                " (stopped at the first failure, {} tenant(s) not run; --keep-going runs them)",
                report.not_run
            );
        }
        line
    });
    Ok(Done::unless(problem, output))
}

fn read(args: &SqlArgs) -> Result<Sql> {
    let sql = match (&args.statement, &args.file) {
        (Some(statement), _) => Sql::Statement(trim_statement(statement).to_owned()),
        (None, Some(path)) => Sql::File(std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read the SQL file `{}`: {e}",
                path.display()
            ))
        })?),
        (None, None) => return Err(Error::Config("give one SQL statement or --file".into())),
    };
    let text = match &sql {
        Sql::Statement(s) | Sql::File(s) => s,
    };
    if text.trim().is_empty() {
        return Err(Error::Config("the SQL is empty".into()));
    }
    Ok(sql)
}

/// The statement without surrounding blanks and trailing semicolons.
fn trim_statement(statement: &str) -> &str {
    statement
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

/// How many tenants the options select (for the progress bar).
fn selected(args: &SqlArgs, router: &SyncRouter) -> Result<usize> {
    let tenants = router.pool().with_public(TenantRegistry::list)?;
    let selection = Selection::new(
        &args.tenants,
        &args.skip,
        tenants.iter().map(|t| t.name.as_str()),
    )?;
    Ok(tenants.iter().filter(|t| selection.admits(&t.name)).count())
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    row: String,
}

/// The statement as the body of a CTE whose rows come back as JSON text: a query, or a
/// data-modifying statement with `RETURNING`. The newline before `)` ends a trailing
/// `--` comment.
fn as_rows(statement: &str) -> String {
    format!(
        "WITH diesel_tenancy_sql AS MATERIALIZED (\n{statement}\n) \
         SELECT row_to_json(diesel_tenancy_sql)::text AS row FROM diesel_tenancy_sql"
    )
}

/// Runs one statement: its rows if it returns rows, else the count it affected. The
/// attempt to read rows runs under a savepoint; a statement that cannot be a CTE
/// (`UPDATE` without `RETURNING`, DDL, …) fails there before it executes and is then
/// sent as it is.
fn statement(conn: &mut PgConnection, statement: &str) -> Result<Output> {
    let rows = conn.transaction(|c| diesel::sql_query(as_rows(statement)).load::<JsonRow>(c));
    match rows {
        Ok(rows) => Ok(Output::Rows(rows.into_iter().map(|r| r.row).collect())),
        Err(_) => Ok(Output::Affected(
            diesel::sql_query(statement).execute(conn)?,
        )),
    }
}

fn error_of(run: &TenantRun<Output>) -> String {
    run.result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn human(report: &Report, started: Instant) -> String {
    if report.tenants.is_empty() {
        return "No tenants.\n".into();
    }
    let mut out = String::new();
    for run in &report.tenants {
        let (name, schema) = (&run.tenant, &run.schema);
        match &run.result {
            Ok(Output::Rows(rows)) => {
                let _ = writeln!(out, "{name} ({schema}): {} row(s)", rows.len());
                for row in rows {
                    let _ = writeln!(out, "  {row}");
                }
            }
            Ok(Output::Affected(n)) => {
                let _ = writeln!(out, "{name} ({schema}): {n} row(s) affected");
            }
            Ok(Output::Done) => {
                let _ = writeln!(out, "{name} ({schema}): done");
            }
            Err(e) => {
                let _ = writeln!(out, "FAILED {name} ({schema}): {e}");
            }
        }
    }
    let failed = report.failures().count();
    let _ = write!(
        out,
        "Tenants: {} succeeded, {failed} failed",
        report.tenants.len() - failed
    );
    if report.not_run > 0 {
        let _ = write!(out, ", {} not run", report.not_run);
    }
    let _ = writeln!(out, ", in {:.2} s.", started.elapsed().as_secs_f64());
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    tenants: Vec<JsonTenant<'a>>,
    succeeded: usize,
    failed: usize,
    not_run: usize,
    duration_ms: u64,
}

#[derive(Serialize)]
struct JsonTenant<'a> {
    tenant: &'a str,
    schema: &'a str,
    /// The rows, exactly as PostgreSQL rendered them; `null` when none were returned.
    rows: Option<Vec<Box<RawValue>>>,
    rows_affected: Option<usize>,
    error: Option<String>,
    duration_ms: u64,
}

fn json_output(report: &Report, started: Instant) -> Result<String> {
    let mut tenants = Vec::with_capacity(report.tenants.len());
    for run in &report.tenants {
        let (rows, rows_affected) = match &run.result {
            Ok(Output::Rows(rows)) => (Some(raw_rows(rows)?), None),
            Ok(Output::Affected(n)) => (None, Some(*n)),
            Ok(Output::Done) | Err(_) => (None, None),
        };
        tenants.push(JsonTenant {
            tenant: &run.tenant,
            schema: &run.schema,
            rows,
            rows_affected,
            error: run.result.as_ref().err().map(ToString::to_string),
            duration_ms: run.duration.as_millis() as u64,
        });
    }
    let failed = report.failures().count();
    let value = JsonReport {
        succeeded: tenants.len() - failed,
        tenants,
        failed,
        not_run: report.not_run,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    serde_json::to_string_pretty(&value)
        .map(|s| s + "\n")
        .map_err(|e| Error::Config(format!("could not render the JSON output: {e}")))
}

/// PostgreSQL's JSON text of each row, checked to be JSON and kept byte for byte (column
/// order, numeric precision).
fn raw_rows(rows: &[String]) -> Result<Vec<Box<RawValue>>> {
    rows.iter()
        .map(|row| {
            RawValue::from_string(row.clone()).map_err(|e| {
                Error::Config(format!("PostgreSQL returned a row that is not JSON: {e}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{tests::parse as parse_command, Command, TenantCommand};

    fn parse(args: &[&str]) -> std::result::Result<SqlArgs, clap::Error> {
        let words: Vec<&str> = ["tenant", "sql"].iter().chain(args).copied().collect();
        match parse_command(&words)? {
            Command::Tenant(t) => match t.command {
                TenantCommand::Sql(sql) => Ok(sql),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arguments() {
        let a = parse(&[
            "SELECT 1",
            "--tenant",
            "a",
            "--skip",
            "b",
            "-j",
            "3",
            "--keep-going",
        ])
        .unwrap();
        assert_eq!(a.statement.as_deref(), Some("SELECT 1"));
        assert_eq!(
            (a.tenants, a.skip),
            (vec!["a".to_owned()], vec!["b".to_owned()])
        );
        assert!(a.keep_going && a.jobs.get() == 3 && a.file.is_none());
        let f = parse(&["--file", "x.sql"]).unwrap();
        assert_eq!(f.file, Some(PathBuf::from("x.sql")));
        assert!(f.statement.is_none() && f.jobs.get() == 1 && !f.keep_going);
        assert!(parse(&[]).is_err(), "SQL or --file is required");
        assert!(parse(&["SELECT 1", "--file", "x.sql"]).is_err(), "not both");
        assert!(parse(&["SELECT 1", "--jobs", "0"]).is_err());
    }

    #[test]
    fn statements_lose_blanks_and_trailing_semicolons_only() {
        assert_eq!(trim_statement("  SELECT 1 ;; \n"), "SELECT 1");
        assert_eq!(trim_statement("SELECT ';'"), "SELECT ';'");
        assert_eq!(trim_statement(" ; "), "");
    }

    #[test]
    fn the_rows_wrapper_ends_a_trailing_comment() {
        let sql = as_rows("SELECT 1 -- one");
        assert!(sql.contains("SELECT 1 -- one\n)"), "{sql}");
    }
}

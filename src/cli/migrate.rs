//! `migrate`: the shared set, then every tenant; or, with `--check`, only what is pending.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::progress::{self, Bar};
use super::{first_failure, Done, MigrateArgs, Outcome};
use crate::error::Result;
use crate::migrate::SyncRouter;
use crate::migrate::{MigrateOptions, MigrateReport, MigrationStatus, TenantStatus};

/// Migrated tenants listed one per line in the human summary; more are counted only.
const LISTED: usize = 50;

pub(super) fn run(args: &MigrateArgs, router: &SyncRouter, bar: bool) -> Result<Done> {
    if args.check {
        return check(args, router);
    }
    let started = Instant::now();
    let shared = router.migrate_shared()?;
    let bar = if bar {
        let status = router.status()?;
        Some(Bar::start(selected(args, &status)?.len()))
    } else {
        None
    };
    let options: MigrateOptions = progress::options(
        bar.as_ref(),
        args.jobs,
        &args.tenants,
        &args.skip,
        args.keep_going,
    );
    let report = router.migrate_all(&options);
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = report?;
    Ok(summarize(args, &shared, &report, started.elapsed()))
}

fn summarize(
    args: &MigrateArgs,
    shared: &[String],
    report: &MigrateReport,
    took: Duration,
) -> Done {
    let output = if args.output.json {
        let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut value {
            fields.insert("shared_applied".into(), json!(shared));
            // The whole command's time, the shared migrations included.
            fields.insert("duration_ms".into(), json!(took.as_millis() as u64));
        }
        format!("{value:#}\n")
    } else {
        human_summary(shared, report, took)
    };
    let failures = report
        .tenants
        .iter()
        .filter_map(|t| Some((t.tenant.as_str(), t.error.as_ref()?)));
    let problem = first_failure("migration", report.tenants.len(), failures).map(|mut line| {
        if !args.keep_going {
            line.push_str(" (stopped at the first failure; --keep-going migrates the others)");
        }
        line
    });
    Done::unless(problem, output)
}

fn human_summary(shared: &[String], report: &MigrateReport, took: Duration) -> String {
    let mut out = String::new();
    if shared.is_empty() {
        out.push_str("Shared: up to date.\n");
    } else {
        let _ = writeln!(
            out,
            "Shared: applied {} migration(s) to public: {}.",
            shared.len(),
            shared.join(", ")
        );
    }
    let mut listed = 0;
    for t in &report.tenants {
        match &t.error {
            Some(e) => {
                let _ = writeln!(out, "  FAILED {} ({}): {e}", t.tenant, t.schema);
            }
            None if listed < LISTED => {
                listed += 1;
                let _ = writeln!(
                    out,
                    "  {} ({}): {}",
                    t.tenant,
                    t.schema,
                    t.applied.join(", ")
                );
            }
            None => listed += 1,
        }
    }
    if listed > LISTED {
        let _ = writeln!(out, "  … and {} more", listed - LISTED);
    }
    let failed = report.failures().count();
    let _ = writeln!(
        out,
        "Tenants: {} migrated ({} migration(s)), {} up to date, {} failed, in {:.2} s.",
        report.tenants.len() - failed,
        report.applied_count(),
        report.up_to_date,
        failed,
        took.as_secs_f64()
    );
    out
}

/// The tenants `--tenant`/`--skip` select that have something pending.
fn selected<'a>(args: &MigrateArgs, status: &'a MigrationStatus) -> Result<Vec<&'a TenantStatus>> {
    status.pending_tenants(&args.tenants, &args.skip)
}

fn check(args: &MigrateArgs, router: &SyncRouter) -> Result<Done> {
    let status = router.status()?;
    let tenants = selected(args, &status)?;
    let rows_pending = status
        .row_schema
        .as_ref()
        .is_some_and(|r| r.needs_migration());
    let pending = !status.shared_pending.is_empty()
        || !tenants.is_empty()
        || status.name_keys.needs_work()
        || rows_pending;
    let output = if args.output.json {
        let list: Vec<Value> = tenants
            .iter()
            .map(|t| {
                json!({
                    "tenant": t.tenant.name,
                    "schema": t.tenant.schema_name.as_str(),
                    "pending": t.pending,
                    "schema_missing": t.schema_missing,
                })
            })
            .collect();
        let value = json!({
            "pending": pending,
            "shared_pending": status.shared_pending,
            "tenants": list,
            "orphan_schemas": status.orphan_schemas,
            "relation_files": status.relation_files,
            "max_files_per_process": status.max_files_per_process,
            "file_limit_exceeded": status.file_limit_exceeded(),
            "name_keys": status.name_keys,
            "citus": status.citus,
            "row_schema": status.row_schema,
            "unprotected_row_tables": status.unprotected_row_tables,
        });
        format!("{value:#}\n")
    } else {
        human_check(&status, &tenants)
    };
    let unprotected = status.unprotected_row_tables.len();
    Ok(Done {
        outcome: if unprotected > 0 {
            Outcome::Failed
        } else if pending {
            Outcome::Pending
        } else {
            Outcome::Success
        },
        output,
        problem: (unprotected > 0).then(|| {
            format!(
                "{unprotected} relation(s) of the row schema would show one row tenant's rows \
                 to another; each is listed with its fix"
            )
        }),
    })
}

fn human_check(status: &MigrationStatus, tenants: &[&TenantStatus]) -> String {
    let mut out = String::new();
    if !status.shared_pending.is_empty() {
        let _ = writeln!(
            out,
            "public: {} pending: {}",
            status.shared_pending.len(),
            status.shared_pending.join(", ")
        );
    }
    if let Some(rows) = status.row_schema.as_ref() {
        if rows.schema_missing {
            let _ = writeln!(
                out,
                "row schema `{}`: not provisioned (`migrate` provisions it)",
                rows.schema
            );
        } else if !rows.pending.is_empty() {
            let _ = writeln!(
                out,
                "row schema `{}`: {} pending: {}",
                rows.schema,
                rows.pending.len(),
                rows.pending.join(", ")
            );
        }
    }
    for table in &status.unprotected_row_tables {
        let _ = writeln!(out, "error: row table {table}");
    }
    for t in tenants.iter().take(LISTED) {
        let (name, schema) = (&t.tenant.name, &t.tenant.schema_name);
        if t.schema_missing {
            let _ = writeln!(out, "{name} ({schema}): schema missing");
        } else {
            let _ = writeln!(
                out,
                "{name} ({schema}): {} pending: {}",
                t.pending.len(),
                t.pending.join(", ")
            );
        }
    }
    if tenants.len() > LISTED {
        let _ = writeln!(out, "… and {} more tenant(s)", tenants.len() - LISTED);
    }
    for orphan in &status.orphan_schemas {
        let _ = writeln!(out, "note: schema `{orphan}` has migrations but no tenant");
    }
    if let Some(max) = status
        .max_files_per_process
        .filter(|_| status.file_limit_exceeded())
    {
        let _ = writeln!(
            out,
            "note: the tenant schemas hold {} relation files, more than PostgreSQL's \
             max_files_per_process ({max}): backends serving many tenants will keep \
             reopening files; raise it above {} (needs a server restart)",
            status.relation_files, status.relation_files
        );
    }
    name_key_lines(&mut out, &status.name_keys);
    super::citus::check_lines(&mut out, status);
    let rows_pending = status
        .row_schema
        .as_ref()
        .is_some_and(|r| r.needs_migration());
    if status.shared_pending.is_empty()
        && tenants.is_empty()
        && !status.name_keys.needs_work()
        && !rows_pending
    {
        out.push_str("Nothing pending.\n");
    } else {
        let _ = writeln!(
            out,
            "Pending: {} shared migration(s), {} tenant(s) to migrate{}.",
            status.shared_pending.len(),
            tenants.len(),
            if rows_pending { ", the row schema" } else { "" }
        );
    }
    out
}

/// What the name rule says about the stored keys (`migrate` re-keys, or refuses).
fn name_key_lines(out: &mut String, keys: &crate::NameKeys) {
    for group in &keys.collisions {
        let _ = writeln!(
            out,
            "error: tenants {} are the same name under the tenant-name rule: `migrate` \
             will refuse until all but one are renamed",
            group
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !keys.stale.is_empty() {
        let _ = writeln!(
            out,
            "public: {} tenant name key(s) to recompute under the current rule: {}",
            keys.stale.len(),
            keys.stale.join(", ")
        );
    }
    for name in &keys.refused {
        let _ = writeln!(
            out,
            "note: tenant `{name}` has a name the current rule refuses for new tenants; \
             consider renaming it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::report::file_status as status;

    #[test]
    fn the_check_reports_name_keys_to_recompute_and_collisions() {
        let mut s = status(0, None);
        s.name_keys.stale = vec!["Ᲊa".into()];
        s.name_keys.collisions = vec![vec!["ᲀx".into(), "вx".into()]];
        let text = human_check(&s, &[]);
        assert!(
            text.contains("error: tenants `ᲀx`, `вx` are the same name"),
            "{text}"
        );
        assert!(text.contains("1 tenant name key(s) to recompute"), "{text}");
        assert!(!text.contains("Nothing pending"), "{text}");
    }

    #[test]
    fn the_check_notes_a_file_limit_below_the_tenant_relation_files() {
        let over = human_check(&status(5005, Some(1000)), &[]);
        assert!(
            over.contains("5005 relation files")
                && over.contains("max_files_per_process (1000)")
                && over.ends_with("Nothing pending.\n"),
            "{over}"
        );
        let under = human_check(&status(10, Some(1000)), &[]);
        assert_eq!(under, "Nothing pending.\n");
    }
}

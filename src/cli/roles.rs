//! `tenant roles`: the backfill of per-tenant database roles.

use std::fmt::Write as _;

use serde_json::json;

use super::{Done, Outcome};
use crate::error::Result;
use crate::migrate::RoleReport;
use crate::migrate::SyncRouter;

pub(super) fn run(router: &SyncRouter, json: bool) -> Result<Done> {
    let report = router.sync_tenant_roles()?;
    let failed: Vec<_> = report.failures().collect();
    let problem = failed.first().map(|first| {
        format!(
            "tenant roles failed for {} of {} tenant(s); first: tenant `{}`: {}",
            failed.len(),
            report.tenants.len(),
            first.tenant,
            first
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        )
    });
    Ok(Done {
        outcome: if problem.is_some() {
            Outcome::Failed
        } else {
            Outcome::Success
        },
        output: if json {
            format!("{:#}\n", json_of(&report))
        } else {
            human(&report)
        },
        problem,
    })
}

fn json_of(report: &RoleReport) -> serde_json::Value {
    let tenants: Vec<_> = report
        .tenants
        .iter()
        .map(|t| {
            json!({
                "tenant": t.tenant,
                "schema": t.schema,
                "role": t.role,
                "created": t.created,
                "error": t.error.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    json!({
        "tenants": tenants,
        "created": report.tenants.iter().filter(|t| t.created).count(),
        "failed": report.failures().count(),
        "duration_ms": report.duration.as_millis() as u64,
    })
}

fn human(report: &RoleReport) -> String {
    let mut text = String::new();
    for t in &report.tenants {
        let _ = match &t.error {
            Some(e) => writeln!(text, "tenant `{}`: failed: {e}", t.tenant),
            None if t.created => {
                writeln!(text, "Created role `{}` for tenant `{}`.", t.role, t.tenant)
            }
            None => writeln!(
                text,
                "Granted role `{}` of tenant `{}` again.",
                t.role, t.tenant
            ),
        };
    }
    let created = report.tenants.iter().filter(|t| t.created).count();
    let _ = writeln!(
        text,
        "Tenant roles: {created} created, {} already there, {} failed ({:.1} s).",
        report.tenants.len() - created - report.failures().count(),
        report.failures().count(),
        report.duration.as_secs_f64()
    );
    text
}

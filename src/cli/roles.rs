//! `tenant roles`: the backfill of per-tenant database roles.

use std::fmt::Write as _;

use super::{first_failure, json_text, Done, Outcome};
use crate::error::Result;
use crate::migrate::RoleReport;
use crate::migrate::SyncRouter;

pub(super) fn run(router: &SyncRouter, json: bool) -> Result<Done> {
    let report = router.sync_tenant_roles()?;
    let failures = report
        .tenants
        .iter()
        .filter_map(|t| Some((t.tenant.as_str(), t.error.as_ref()?)));
    let problem = first_failure("tenant roles", report.tenants.len(), failures);
    Ok(Done {
        outcome: if problem.is_some() {
            Outcome::Failed
        } else {
            Outcome::Success
        },
        output: if json {
            json_text(&report)
        } else {
            human(&report)
        },
        problem,
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

//! `tenant placement`, `tenant move`, `tenant rebalance`, `tenant distribute`: where
//! tenants live on a Citus cluster. On plain PostgreSQL each fails with one line saying
//! that it needs Citus.

use std::fmt::Write as _;
use std::time::Instant;

use clap::Subcommand;
use serde_json::json;

use super::Done;
use crate::error::Result;
use crate::migrate::MigrationStatus;
use crate::migrate::SyncRouter;
use crate::migrate::{CitusNode, Distributed, TenantMove, TransferMode};

/// The Citus subcommands of `tenant` (flattened into [`TenantCommand`](super::TenantCommand)).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum CitusCommand {
    /// Show the node each tenant lives on and its size (Citus).
    Placement,
    /// Move a tenant to another node (Citus): online where the node it leaves has
    /// wal_level = logical, with its writes blocked during the copy otherwise.
    Move {
        /// The tenant's name.
        name: String,
        /// The node to move it to, as HOST:PORT (as registered with citus_add_node).
        node: String,
        /// Block the tenant's writes during the copy instead of moving online.
        #[arg(long)]
        block_writes: bool,
    },
    /// Spread the tenants evenly over the workers (Citus's rebalancer).
    Rebalance {
        /// Only show the tenants that would move.
        #[arg(long)]
        dry_run: bool,
        /// Block the moving tenants' writes during their copy instead of moving online.
        #[arg(long)]
        block_writes: bool,
    },
    /// Make a tenant's schema a Citus distributed schema (or every tenant's that is not).
    Distribute {
        /// The tenant's name.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every tenant whose schema is not distributed.
        #[arg(long)]
        all: bool,
    },
}

pub(super) fn run(command: &CitusCommand, json: bool, router: &SyncRouter) -> Result<Done> {
    match command {
        CitusCommand::Placement => placement(router, json),
        CitusCommand::Move {
            name,
            node,
            block_writes,
        } => {
            let node: CitusNode = node.parse()?;
            let started = Instant::now();
            let moved = router.move_tenant(name, &node, mode(*block_writes))?;
            Ok(Done::ok(moves(&[moved], json, false, started)))
        }
        CitusCommand::Rebalance {
            dry_run,
            block_writes,
        } => {
            let started = Instant::now();
            let moved = router.rebalance(mode(*block_writes), *dry_run)?;
            Ok(Done::ok(moves(&moved, json, *dry_run, started)))
        }
        CitusCommand::Distribute { name, all } => {
            let done = match (name, all) {
                (Some(name), false) => vec![router.distribute_tenant(name)?],
                _ => router.distribute_all()?,
            };
            Ok(distributed(&done, json))
        }
    }
}

fn mode(block_writes: bool) -> Option<TransferMode> {
    block_writes.then_some(TransferMode::BlockWrites)
}

fn placement(router: &SyncRouter, json: bool) -> Result<Done> {
    let placed = router.placement()?;
    if json {
        let list: Vec<_> = placed
            .iter()
            .map(|p| {
                json!({
                    "tenant": p.tenant.name,
                    "schema": p.tenant.schema_name.as_str(),
                    "distributed": p.distributed,
                    "node": p.node.as_ref().map(ToString::to_string),
                    "size_bytes": p.size_bytes,
                })
            })
            .collect();
        return Ok(Done::ok(format!("{:#}\n", serde_json::Value::Array(list))));
    }
    if placed.is_empty() {
        return Ok(Done::ok("No tenants.\n".into()));
    }
    let rows: Vec<[String; 4]> = placed
        .iter()
        .map(|p| {
            let node = match (&p.node, p.distributed) {
                (Some(node), _) => node.to_string(),
                (None, true) => "(no tables)".into(),
                (None, false) => "coordinator (not distributed)".into(),
            };
            [
                p.tenant.name.clone(),
                p.tenant.schema_name.to_string(),
                node,
                human_size(p.size_bytes),
            ]
        })
        .collect();
    Ok(Done::ok(super::tenant::table(
        ["TENANT", "SCHEMA", "NODE", "SIZE"],
        &rows,
    )))
}

fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.0} {}", UNITS[unit])
}

fn moves(moved: &[TenantMove], json: bool, dry_run: bool, started: Instant) -> String {
    let took = started.elapsed();
    if json {
        let value = json!({
            "moves": moved,
            "dry_run": dry_run,
            "duration_ms": took.as_millis() as u64,
        });
        return format!("{value:#}\n");
    }
    let mut out = String::new();
    let verb = if dry_run { "Would move" } else { "Moved" };
    for m in moved {
        let how = match (m.mode, dry_run) {
            (TransferMode::Online, _) => "online",
            (TransferMode::BlockWrites, false) => {
                "with its writes blocked during the copy (wal_level is not logical there, or \
                 --block-writes)"
            }
            (TransferMode::BlockWrites, true) => "with its writes blocked during the copy",
        };
        let _ = writeln!(
            out,
            "{verb} tenant `{}` ({}) from {} to {}, {how}.",
            m.tenant, m.schema, m.from, m.to
        );
    }
    if moved.is_empty() {
        out.push_str(if dry_run {
            "Nothing to move: the tenants are balanced.\n"
        } else {
            "Nothing moved: the tenants are balanced.\n"
        });
    }
    if !dry_run {
        let _ = writeln!(out, "Took {:.2} s.", took.as_secs_f64());
    }
    out
}

fn distributed(done: &[Distributed], json: bool) -> Done {
    let failed: Vec<&Distributed> = done.iter().filter(|d| d.error.is_some()).collect();
    let output = if json {
        let value = json!({
            "tenants": done,
            "distributed": done.iter().filter(|d| d.distributed_now).count(),
            "failed": failed.len(),
        });
        format!("{value:#}\n")
    } else {
        let mut out = String::new();
        for d in done {
            let _ = match &d.error {
                Some(e) => writeln!(out, "FAILED {} ({}): {e}", d.tenant, d.schema),
                None if d.distributed_now => writeln!(
                    out,
                    "Distributed tenant `{}` ({}) in {:.2} s.",
                    d.tenant,
                    d.schema,
                    d.duration.as_secs_f64()
                ),
                None => writeln!(
                    out,
                    "Tenant `{}` ({}) already was distributed.",
                    d.tenant, d.schema
                ),
            };
        }
        if done.is_empty() {
            out.push_str("Every tenant schema is distributed.\n");
        }
        out
    };
    let problem = failed.first().map(|first| {
        format!(
            "distribution failed for {} of {} tenant(s); first: tenant `{}`: {}",
            failed.len(),
            done.len(),
            first.tenant,
            first
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        )
    });
    Done::unless(problem, output)
}

/// `migrate --check`'s lines about a Citus database: the tenant schemas that are not
/// distributed, with the command that fixes them.
pub(super) fn check_lines(out: &mut String, status: &MigrationStatus) {
    let Some(citus) = &status.citus else {
        return;
    };
    for tenant in citus.undistributed.iter().take(50) {
        let _ = writeln!(
            out,
            "warning: tenant `{}` ({}) is not a Citus distributed schema: its tables live \
             on the coordinator; run `tenant distribute {}`",
            tenant.name, tenant.schema_name, tenant.name
        );
    }
    match citus.undistributed.len() {
        0 => {}
        n if n > 50 => {
            let _ = writeln!(
                out,
                "warning: … and {} more; `tenant distribute --all` distributes all {n}",
                n - 50
            );
        }
        n if n > 1 => {
            let _ = writeln!(out, "note: `tenant distribute --all` distributes all {n}");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::parse;
    use crate::cli::{Command, TenantCommand};

    fn citus(args: &[&str]) -> CitusCommand {
        match parse(args).unwrap() {
            Command::Tenant(t) => match t.command {
                TenantCommand::Citus(c) => c,
                other => panic!("not a Citus command: {other:?}"),
            },
            other => panic!("not tenant: {other:?}"),
        }
    }

    #[test]
    fn the_citus_commands_parse() {
        assert_eq!(citus(&["tenant", "placement"]), CitusCommand::Placement);
        assert_eq!(
            citus(&["tenant", "move", "acme", "10.0.0.2:5432", "--block-writes"]),
            CitusCommand::Move {
                name: "acme".into(),
                node: "10.0.0.2:5432".into(),
                block_writes: true
            }
        );
        assert_eq!(
            citus(&["tenant", "rebalance", "--dry-run"]),
            CitusCommand::Rebalance {
                dry_run: true,
                block_writes: false
            }
        );
        assert_eq!(
            citus(&["tenant", "distribute", "--all"]),
            CitusCommand::Distribute {
                name: None,
                all: true
            }
        );
        assert_eq!(
            citus(&["tenant", "distribute", "acme"]),
            CitusCommand::Distribute {
                name: Some("acme".into()),
                all: false
            }
        );
        assert!(parse(&["tenant", "distribute"]).is_err());
        assert!(parse(&["tenant", "distribute", "acme", "--all"]).is_err());
        assert!(parse(&["tenant", "move", "acme"]).is_err());
    }

    #[test]
    fn sizes_read_like_du() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(16384), "16 kB");
        assert_eq!(human_size(3 * 1024 * 1024), "3 MB");
    }

    #[test]
    fn the_check_names_undistributed_tenants_and_the_fix() {
        let mut status = crate::migrate::report::file_status(0, None);
        let mut text = String::new();
        check_lines(&mut text, &status);
        assert_eq!(text, "");
        status.citus = Some(Default::default());
        check_lines(&mut text, &status);
        assert_eq!(text, "");
        let tenant = |name: &str| crate::Tenant {
            id: 1,
            name: name.into(),
            schema_name: crate::SchemaName::new(name).unwrap(),
            created_at: chrono::Utc::now(),
            mode: crate::TenantMode::Schema,
        };
        status.citus = Some(crate::CitusStatus {
            undistributed: vec![tenant("acme"), tenant("globex")],
        });
        check_lines(&mut text, &status);
        assert!(
            text.contains("tenant `acme` (acme) is not a Citus distributed schema")
                && text.contains("run `tenant distribute globex`")
                && text.ends_with("note: `tenant distribute --all` distributes all 2\n"),
            "{text}"
        );
    }
}

//! `tenant …` and `domain …`: the registry commands.

use std::fmt::Write as _;

use serde_json::json;

use super::{json_text, DomainCommand, Done, TenantCommand};
use crate::error::Result;
use crate::migrate::{NewTenant, SyncRouter};
use crate::registry::TenantRegistry;
use crate::registry::{DomainName, TenantMode};
use crate::schema_name::SchemaName;

pub(super) fn run_tenant(command: &TenantCommand, json: bool, router: &SyncRouter) -> Result<Done> {
    match command {
        TenantCommand::Create {
            name,
            schema,
            domains,
            mode,
        } => create(router, name, schema.as_deref(), domains, *mode, json),
        TenantCommand::List => list(router, json),
        TenantCommand::Delete { name, drop_schema } => delete(router, name, *drop_schema, json),
        TenantCommand::Rename { old, new } => rename(router, old, new, json),
        TenantCommand::Sql(args) => super::tenant_sql::run(args, json, router, false),
        TenantCommand::Roles => super::roles::run(router, json),
        TenantCommand::Citus(command) => super::citus::run(command, json, router),
    }
}

pub(super) fn run_domain(command: &DomainCommand, json: bool, router: &SyncRouter) -> Result<Done> {
    match command {
        DomainCommand::Add {
            tenant,
            domain,
            primary,
        } => add_domain(router, tenant, domain, *primary, json),
        DomainCommand::Remove { domain } => remove_domain(router, domain, json),
    }
}

fn create(
    router: &SyncRouter,
    name: &str,
    schema: Option<&str>,
    domains: &[String],
    mode: Option<TenantMode>,
    json: bool,
) -> Result<Done> {
    let new = NewTenant {
        name: name.to_owned(),
        schema_name: schema.map(SchemaName::new).transpose()?,
        domains: domains
            .iter()
            .map(|d| DomainName::new(d))
            .collect::<Result<_>>()?,
        mode,
    };
    let tenant = router.create_tenant(&new)?;
    let listed = router
        .pool()
        .with_public(|conn| TenantRegistry::with_domains(conn, tenant))?;
    Ok(Done::ok(if json {
        json_text(&listed)
    } else {
        let mut text = match listed.tenant.mode {
            TenantMode::Rows => format!(
                "Created row tenant `{}` (id {}, rows in schema `{}`)",
                listed.tenant.name,
                listed.tenant.id,
                router.pool().row_schema()
            ),
            _ => format!(
                "Created tenant `{}` in schema `{}`",
                listed.tenant.name, listed.tenant.schema_name
            ),
        };
        if !listed.domains.is_empty() {
            let _ = write!(text, " (domains: {})", listed.domain_names().join(", "));
        }
        text + ".\n"
    }))
}

fn list(router: &SyncRouter, json: bool) -> Result<Done> {
    let tenants = router
        .pool()
        .with_public(TenantRegistry::list_with_domains)?;
    if json {
        return Ok(Done::ok(json_text(&tenants)));
    }
    if tenants.is_empty() {
        return Ok(Done::ok("No tenants.\n".into()));
    }
    let rows: Vec<[String; 5]> = tenants
        .iter()
        .map(|t| {
            [
                t.tenant.name.clone(),
                t.tenant.mode.to_string(),
                t.tenant.schema_name.to_string(),
                t.tenant
                    .created_at
                    .format("%Y-%m-%d %H:%M:%S UTC")
                    .to_string(),
                t.domain_names().join(", "),
            ]
        })
        .collect();
    Ok(Done::ok(table(
        ["NAME", "MODE", "SCHEMA", "CREATED", "DOMAINS"],
        &rows,
    )))
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(super) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < N {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn delete(router: &SyncRouter, name: &str, drop_schema: bool, json: bool) -> Result<Done> {
    let tenant = router.delete_tenant(name, drop_schema)?;
    Ok(Done::ok(if json {
        format!(
            "{:#}\n",
            json!({
                "name": tenant.name,
                "schema_name": tenant.schema_name.as_str(),
                "schema_dropped": drop_schema,
            })
        )
    } else if tenant.mode == TenantMode::Rows && drop_schema {
        format!(
            "Deleted row tenant `{}` and its rows in schema `{}`.\n",
            tenant.name,
            router.pool().row_schema()
        )
    } else if tenant.mode == TenantMode::Rows {
        format!(
            "Deleted row tenant `{}`; its rows in schema `{}` were kept (use --drop-schema to delete them).\n",
            tenant.name,
            router.pool().row_schema()
        )
    } else if drop_schema {
        format!(
            "Deleted tenant `{}` and dropped schema `{}`.\n",
            tenant.name, tenant.schema_name
        )
    } else {
        format!(
            "Deleted tenant `{}`; schema `{}` and its data were kept (use --drop-schema to drop them).\n",
            tenant.name, tenant.schema_name
        )
    }))
}

fn rename(router: &SyncRouter, old: &str, new: &str, json: bool) -> Result<Done> {
    let tenant = router.rename_tenant(old, new)?;
    let listed = router
        .pool()
        .with_public(|conn| TenantRegistry::with_domains(conn, tenant))?;
    Ok(Done::ok(if json {
        json_text(&listed)
    } else {
        format!(
            "Renamed tenant `{}` to `{}`; schema `{}` unchanged.\n",
            old.trim(),
            listed.tenant.name,
            listed.tenant.schema_name
        )
    }))
}

fn add_domain(
    router: &SyncRouter,
    tenant: &str,
    domain: &str,
    primary: bool,
    json: bool,
) -> Result<Done> {
    let domain = DomainName::new(domain)?;
    let (owner, row) = router.pool().with_public(|conn| {
        let row = TenantRegistry::add_domain(conn, tenant, &domain, primary)?;
        let owner = TenantRegistry::get_by_name(conn, tenant)?;
        Ok::<_, crate::Error>((owner, row))
    })?;
    Ok(Done::ok(if json {
        format!(
            "{:#}\n",
            json!({"domain": row.domain, "tenant": owner.name, "is_primary": row.is_primary})
        )
    } else {
        format!(
            "Added {}domain `{}` to tenant `{}`.\n",
            if row.is_primary { "primary " } else { "" },
            row.domain,
            owner.name
        )
    }))
}

fn remove_domain(router: &SyncRouter, domain: &str, json: bool) -> Result<Done> {
    let domain = DomainName::new(domain)?;
    let row = router
        .pool()
        .with_public(|conn| TenantRegistry::remove_domain(conn, &domain))?;
    Ok(Done::ok(if json {
        format!("{:#}\n", json!({"domain": row.domain, "removed": true}))
    } else {
        format!("Removed domain `{}`.\n", row.domain)
    }))
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn table_aligns_columns() {
        let rows = [
            ["demo1".to_string(), "demo1".to_string()],
            ["a".to_string(), "".to_string()],
        ];
        assert_eq!(
            table(["NAME", "SCHEMA"], &rows),
            "NAME   SCHEMA\ndemo1  demo1\na\n"
        );
    }
}

//! What migrations did and what is pending: options, per-tenant reports, status.

use std::time::Duration;

use serde::Serialize;

use super::batch::{BatchOptions, Outcome, Progress, Selection};
use super::row_check::UnprotectedTable;
use crate::error::{Error, Result};
use crate::registry::{tenant_name_key, Tenant, TenantMode};
use crate::schema_name::SchemaName;

/// Called after each tenant is migrated (e.g. to advance a progress bar).
pub type ProgressFn = Progress<TenantReport>;

/// Options for [`SyncRouter::migrate_all`](crate::SyncRouter::migrate_all): which
/// tenants, how many at once, whether to go on after a failure, progress.
///
/// ```
/// use diesel_tenancy::MigrateOptions;
///
/// let options = MigrateOptions { jobs: 4, keep_going: true, ..Default::default() };
/// assert!(options.only.is_empty() && options.skip.is_empty());
/// ```
pub type MigrateOptions = BatchOptions<TenantReport>;

impl MigrateOptions {
    /// Whether these options let `migrate_all` migrate the row schema: no tenants named
    /// in `only`, and the row schema's name not in `skip`.
    pub(crate) fn admits_row_schema(&self, rows: &RowSchemaStatus) -> bool {
        let key = tenant_name_key(rows.schema.as_str());
        self.only.is_empty() && !self.skip.iter().any(|s| tenant_name_key(s) == key)
    }

    /// The tenants with pending migrations that these options select.
    pub(crate) fn select(&self, status: &MigrationStatus) -> Result<Vec<Tenant>> {
        Ok(status
            .pending_tenants(&self.only, &self.skip)?
            .into_iter()
            .map(|t| t.tenant.clone())
            .collect())
    }
}

/// What migrating one tenant did.
///
/// It serializes as the `migrate --json` command prints it: `{"tenant", "schema",
/// "applied", "error" (text or null), "duration_ms"}`.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct TenantReport {
    /// Tenant name.
    pub tenant: String,
    /// Tenant schema.
    pub schema: String,
    /// Versions applied (empty on failure: the tenant was rolled back whole).
    pub applied: Vec<String>,
    /// Time taken.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// Why it failed, if it did.
    #[serde(serialize_with = "error_text")]
    pub error: Option<Error>,
}

/// A duration as whole milliseconds, as the reports serialize it.
pub(crate) fn millis<S: serde::Serializer>(
    d: &Duration,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An error as its message, as the reports serialize it.
pub(crate) fn error_text<S: serde::Serializer>(
    e: &Option<Error>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}

impl TenantReport {
    pub(crate) fn new(tenant: &Tenant, result: Result<Vec<String>>, duration: Duration) -> Self {
        let (applied, error) = match result {
            Ok(applied) => (applied, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        TenantReport {
            tenant: tenant.name.clone(),
            schema: tenant.schema_name.to_string(),
            applied,
            duration,
            error,
        }
    }
}

impl TenantReport {
    /// The report of migrating the row schema `schema`, listed under its name.
    pub(crate) fn for_row_schema(
        schema: &SchemaName,
        result: Result<Vec<String>>,
        duration: Duration,
    ) -> Self {
        let (applied, error) = match result {
            Ok(applied) => (applied, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        TenantReport {
            tenant: schema.to_string(),
            schema: schema.to_string(),
            applied,
            duration,
            error,
        }
    }
}

impl Outcome for TenantReport {
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// What [`SyncRouter::migrate_all`](crate::SyncRouter::migrate_all) did.
///
/// It serializes as the `migrate --json` command prints it (which adds
/// `shared_applied`): `{"tenants": [TenantReport…], "migrated", "failed", "up_to_date",
/// "duration_ms"}`.
#[derive(Debug)]
#[non_exhaustive]
pub struct MigrateReport {
    /// One entry per tenant that was attempted.
    pub tenants: Vec<TenantReport>,
    /// Tenants that had nothing pending.
    pub up_to_date: usize,
    /// Wall time.
    pub duration: Duration,
}

impl Serialize for MigrateReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let failed = self.failures().count();
        let mut st = s.serialize_struct("MigrateReport", 5)?;
        st.serialize_field("tenants", &self.tenants)?;
        st.serialize_field("migrated", &(self.tenants.len() - failed))?;
        st.serialize_field("failed", &failed)?;
        st.serialize_field("up_to_date", &self.up_to_date)?;
        st.serialize_field("duration_ms", &Millis(self.duration))?;
        st.end()
    }
}

/// A duration serialized as whole milliseconds.
pub(crate) struct Millis(pub(crate) Duration);

impl Serialize for Millis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        millis(&self.0, s)
    }
}

impl MigrateReport {
    /// Tenants whose migration failed.
    pub fn failures(&self) -> impl Iterator<Item = &TenantReport> {
        self.tenants.iter().filter(|t| t.error.is_some())
    }

    /// Total versions applied over all tenants.
    pub fn applied_count(&self) -> usize {
        self.tenants.iter().map(|t| t.applied.len()).sum()
    }
}

/// Migration state of one tenant.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TenantStatus {
    /// The tenant.
    pub tenant: Tenant,
    /// Versions of the tenant set not applied in its schema.
    pub pending: Vec<String>,
    /// Versions applied in its schema that the tenant set does not know.
    pub unknown_applied: Vec<String>,
    /// The registry row names a schema that does not exist.
    pub schema_missing: bool,
}

/// Migration state of the row schema, the one schema every row tenant's rows live in.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RowSchemaStatus {
    /// The row schema.
    pub schema: SchemaName,
    /// Versions of the tenant set not applied in it.
    pub pending: Vec<String>,
    /// Versions applied in it that the tenant set does not know.
    pub unknown_applied: Vec<String>,
    /// The row schema does not exist yet (`migrate_shared` provisions it).
    pub schema_missing: bool,
}

impl RowSchemaStatus {
    /// Whether `migrate_all` has work to do in the row schema.
    pub fn needs_migration(&self) -> bool {
        self.schema_missing || !self.pending.is_empty()
    }
}

/// Migration state of the whole database, from [`SyncRouter::status`](crate::SyncRouter::status).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MigrationStatus {
    /// Shared (and, with the public tenant, tenant) versions not applied to `public`.
    pub shared_pending: Vec<String>,
    /// Every registered tenant. A row tenant has no schema: its `pending` is empty and
    /// its schema never missing; its tables' state is [`row_schema`](Self::row_schema)'s.
    pub tenants: Vec<TenantStatus>,
    /// With row tenants on, the row schema's migration state; `None` otherwise.
    pub row_schema: Option<RowSchemaStatus>,
    /// Relations of the row schema whose rows row-level security does not keep apart
    /// by tenant (no `tenant_id`, row security off or not forced, no tenant policy, a
    /// policy that widens it, a view that reads as its owner). `migrate --check` fails
    /// while any is listed, and migrating the row schema refuses to commit one.
    pub unprotected_row_tables: Vec<UnprotectedTable>,
    /// Schemas that hold a Diesel tracking table but have no registry row.
    pub orphan_schemas: Vec<String>,
    /// Relations with storage (tables, indexes, sequences, materialized views) in the
    /// registered tenants' schemas: the files a backend serving every tenant keeps open.
    /// Counted in the first tenant's schema and multiplied by the schemas that exist
    /// (tenant schemas share one tenant set).
    pub relation_files: u64,
    /// PostgreSQL's `max_files_per_process`; `None` when no tenant schema exists.
    pub max_files_per_process: Option<u64>,
    /// Stored tenant-name keys the current rule computes differently, names it refuses,
    /// names it makes equal.
    pub name_keys: crate::registry::NameKeys,
    /// On a Citus database, what status found about the tenants' placement (tenant
    /// schemas that are not distributed); `None` on plain PostgreSQL. Not counted by
    /// [`has_pending`](Self::has_pending): `migrate` does not distribute schemas.
    pub citus: Option<super::citus::provision::CitusStatus>,
}

impl MigrationStatus {
    /// Whether a backend serving every tenant needs more relation files than
    /// `max_files_per_process` lets it keep open. PostgreSQL then closes and reopens
    /// files as tenants alternate; raise the setting (a server restart) above
    /// [`relation_files`](Self::relation_files). Under random traffic over 1,000
    /// one-table tenants, reopening files took ~4 % of the backends' CPU.
    pub fn file_limit_exceeded(&self) -> bool {
        self.max_files_per_process
            .is_some_and(|max| self.relation_files > max)
    }

    /// The tenants with something pending (or a missing schema), restricted to `only`
    /// (if not empty) and without `skip`; names compare by
    /// [`tenant_name_key`](crate::tenant_name_key). A name in `only` that is not
    /// registered is [`Error::UnknownTenant`].
    pub fn pending_tenants(&self, only: &[String], skip: &[String]) -> Result<Vec<&TenantStatus>> {
        let selection = Selection::new(
            only,
            skip,
            self.tenants.iter().map(|t| t.tenant.name.as_str()),
        )?;
        Ok(self
            .tenants
            .iter()
            .filter(|t| t.tenant.mode == TenantMode::Schema)
            .filter(|t| !t.pending.is_empty() || t.schema_missing)
            .filter(|t| selection.admits(&t.tenant.name))
            .collect())
    }

    /// True if anything, shared or tenant, is pending, or stored tenant-name keys need
    /// recomputing (or collide) under the current name rule.
    pub fn has_pending(&self) -> bool {
        !self.shared_pending.is_empty()
            || self.name_keys.needs_work()
            || self
                .row_schema
                .as_ref()
                .is_some_and(RowSchemaStatus::needs_migration)
            || self
                .tenants
                .iter()
                .any(|t| !t.pending.is_empty() || t.schema_missing)
    }
}

/// A status with nothing pending and the given file figures, for unit tests.
#[cfg(test)]
pub(crate) fn file_status(
    relation_files: u64,
    max_files_per_process: Option<u64>,
) -> MigrationStatus {
    MigrationStatus {
        shared_pending: Vec::new(),
        tenants: Vec::new(),
        row_schema: None,
        unprotected_row_tables: Vec::new(),
        orphan_schemas: Vec::new(),
        relation_files,
        max_files_per_process,
        name_keys: Default::default(),
        citus: None,
    }
}

#[cfg(test)]
mod tests {
    use super::file_status as status;
    use super::*;

    #[test]
    fn a_migration_report_has_one_json_shape() {
        let tenant =
            |name: &str| Tenant::new(1, name, SchemaName::new(name).unwrap(), chrono::Utc::now());
        let report = MigrateReport {
            tenants: vec![
                TenantReport::new(&tenant("a"), Ok(vec!["1".into()]), Duration::from_millis(7)),
                TenantReport::new(
                    &tenant("b"),
                    Err(Error::Config("no".into())),
                    Duration::from_micros(2500),
                ),
            ],
            up_to_date: 3,
            duration: Duration::from_millis(1234),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "tenants": [
                    {"tenant": "a", "schema": "a", "applied": ["1"], "error": null, "duration_ms": 7},
                    {"tenant": "b", "schema": "b", "applied": [], "error": "invalid configuration: no",
                     "duration_ms": 2},
                ],
                "migrated": 1, "failed": 1, "up_to_date": 3, "duration_ms": 1234,
            })
        );
    }

    #[test]
    fn the_file_limit_is_exceeded_only_past_the_server_setting() {
        assert!(!status(10, Some(1000)).file_limit_exceeded());
        assert!(!status(1000, Some(1000)).file_limit_exceeded());
        assert!(status(5005, Some(1000)).file_limit_exceeded());
        assert!(!status(5005, None).file_limit_exceeded());
    }
}

//! The sync router: the shared migration set to `public`, the tenant set to every tenant
//! schema, and everything else that changes tenant schemas. One folder because all of it
//! runs inside the router's transactions, under the schemas' advisory locks, through one
//! [`SyncRouter`] (`router.rs`, the only `impl SyncRouter`), whose methods hand each part
//! what it needs:
//!
//! - `apply.rs`: migrating `public` and tenant schemas, over a [`MigrationSet`]
//!   (`migration_set.rs`: several sources, one tracking table);
//! - `lifecycle.rs`: creating ([`NewTenant`]), deleting and renaming tenants, running the
//!   application's [`TenantHooks`] (`hooks.rs`) in the same transaction;
//!   `spares.rs`: schemas built ahead of time, claimed by creation;
//! - `status.rs`: what is pending everywhere, in a bounded number of queries; `report.rs`:
//!   what migrating reported ([`MigrateReport`], [`MigrationStatus`]);
//! - `batch.rs`: work over many tenants (selection, parallelism, progress), shared by
//!   `migrate_all` and `each_tenant.rs` ([`SyncRouter::for_each_tenant`]);
//! - `transaction_mark.rs`: proves that code run in the crate's transaction (hooks, work
//!   per tenant) left it open and healthy;
//! - `role_provision.rs`: creating, granting and dropping tenant roles in those
//!   transactions; `role_sync.rs`: the backfill ([`SyncRouter::sync_tenant_roles`]);
//! - row tenants: `row_schema.rs` provisions and migrates the row schema (and deletes a
//!   tenant's rows), `row_role.rs` makes and grants the row role, `row_check.rs` proves
//!   every row table protected by forced row-level security ([`UnprotectedTable`]),
//!   `row_tenants.rs` creates (one or many) and deletes row tenants;
//! - `citus/`: tenant schemas as Citus distributed schemas, where tenants live, moving
//!   them, shared tables as reference tables.

mod apply;
mod batch;
mod citus;
mod each_tenant;
mod hooks;
mod lifecycle;
mod migration_set;
pub(crate) mod report;
pub(crate) mod role_provision;
mod role_sync;
mod router;
mod row_check;
mod row_role;
mod row_schema;
mod row_tenants;
mod spares;
mod status;
mod transaction_mark;

pub use apply::REGISTRY_MIGRATIONS;
pub use batch::{BatchOptions, Progress};
pub use citus::moves::{TenantMove, TransferMode};
pub use citus::placement::{CitusNode, TenantPlacement};
pub use citus::provision::{CitusStatus, Distributed};
pub use each_tenant::{EachReport, TenantRun};
pub use hooks::{HookResult, Refusal, TenantHooks};
pub use lifecycle::NewTenant;
pub use report::{
    MigrateOptions, MigrateReport, MigrationStatus, ProgressFn, RowSchemaStatus, TenantReport,
    TenantStatus,
};
pub use role_sync::{RoleReport, TenantRoleReport};
pub use router::SyncRouter;
pub use row_check::UnprotectedTable;

#[cfg(feature = "cli")]
pub(crate) use batch::{Outcome, Selection};
#[cfg(feature = "rocket")]
pub(crate) use migration_set::Source;

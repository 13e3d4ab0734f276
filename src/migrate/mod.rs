//! The sync router: the shared migration set to `public`, the tenant set to every tenant
//! schema, and everything else the router does to tenant schemas.

mod batch;
mod each_tenant;
mod hooks;
mod migration_set;
pub(crate) mod report;
pub(crate) mod role_provision;
mod role_sync;
mod router;
mod spares;
mod status;
mod transaction_mark;

pub use batch::{BatchOptions, Progress};
pub use each_tenant::{EachReport, TenantRun};
pub use hooks::{HookResult, Refusal, TenantHooks};
pub use migration_set::Source;
pub use report::{MigrateOptions, MigrateReport, ProgressFn, Status, TenantReport, TenantStatus};
pub use role_sync::{RoleReport, TenantRoleReport};
pub use router::{NewTenant, SyncRouter, REGISTRY_MIGRATIONS};

pub(crate) use batch::{Outcome, Selection};

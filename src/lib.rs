#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![deny(rustdoc::broken_intra_doc_links)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;
pub mod database;
mod database_url;
mod error;
mod migrate;
mod pool;
mod registry;
pub mod resolve;
#[cfg(feature = "rocket")]
#[cfg_attr(docsrs, doc(cfg(feature = "rocket")))]
pub mod rocket;
mod schema_name;
mod schema_union;
mod sql;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use error::{Error, Hook, HookError, MigrationError, Result, SchemaRef};
pub use migrate::{
    BatchOptions, CitusNode, CitusStatus, Distributed, EachReport, HookResult, MigrateOptions,
    MigrateReport, MigrationStatus, NewTenant, Progress, ProgressFn, Refusal, RoleReport,
    RowSchemaStatus, SyncRouter, TenantHooks, TenantMove, TenantPlacement, TenantReport,
    TenantRoleReport, TenantRun, TenantStatus, TransferMode, UnprotectedTable, REGISTRY_MIGRATIONS,
};
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use pool::{AsyncTenantConnection, AsyncTenantPool};
pub use pool::{
    ConnectionManager, ManagedConnection, PoolMode, Scope, TenantConnection, TenantPool,
    TenantPoolBuilder, TenantRoles,
};
pub use registry::{
    schema, tenant_name_key, validate_tenant_name, Domain, DomainName, NameKeys, RegistryCache,
    RegistryCacheBuilder, RegistrySnapshot, Tenant, TenantMode, TenantRegistry, TenantWithDomains,
    MAX_TENANT_NAME_LEN,
};
pub use schema_name::{SchemaName, SchemaRules};
pub use schema_union::SchemaUnion;

pub use diesel;
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub use diesel_async;
pub use diesel_migrations;
pub use r2d2;

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

mod batch;
mod citus;
#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;
mod connection;
pub mod database;
mod domain_name;
mod each_tenant;
mod error;
mod hooks;
mod manager;
mod migrate;
mod migration_set;
mod name_keys;
mod pool;
mod pooler;
mod proof;
mod registry;
mod registry_cache;
mod registry_link;
mod registry_listener;
mod report;
pub mod resolve;
#[cfg(feature = "rocket")]
#[cfg_attr(docsrs, doc(cfg(feature = "rocket")))]
pub mod rocket;
mod role_provision;
mod role_sync;
pub mod schema;
mod schema_name;
mod scope;
mod spares;
mod sql;
mod status;
mod tenant_name;
mod tenant_name_table;
mod tenant_roles;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod transaction_mark;
mod watch;

pub use batch::{BatchOptions, Progress};
pub use citus::{CitusNode, CitusStatus, Distributed, TenantMove, TenantPlacement, TransferMode};
pub use connection::TenantConnection;
pub use domain_name::DomainName;
pub use each_tenant::{EachReport, TenantRun};
pub use error::{Error, Hook, HookError, MigrationError, Place, Result};
pub use hooks::{HookResult, Refusal, TenantHooks};
pub use manager::{ConnectionManager, ManagedConnection, PoolMode};
pub use migrate::{NewTenant, SyncRouter, REGISTRY_MIGRATIONS};
pub use migration_set::Source;
pub use name_keys::NameKeys;
pub use pool::{TenantPool, TenantPoolBuilder};
pub use registry::{Domain, Tenant, TenantRegistry};
pub use registry_cache::{RegistryCache, RegistryCacheBuilder, Snapshot};
pub use report::{MigrateOptions, MigrateReport, ProgressFn, Status, TenantReport, TenantStatus};
pub use role_sync::{RoleReport, TenantRoleReport};
pub use schema_name::{SchemaName, SchemaRules};
pub use scope::Scope;
pub use tenant_name::{tenant_name_key, validate_tenant_name, MAX_TENANT_NAME_LEN};
pub use tenant_roles::TenantRoles;

pub use diesel;
pub use diesel_migrations;
pub use r2d2;

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
mod connection;
pub mod database;
mod domain_name;
mod error;
mod manager;
mod migrate;
mod migration_set;
mod pool;
mod pooler;
mod proof;
mod registry;
mod registry_cache;
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
mod tenant_roles;
mod watch;

pub use connection::TenantConnection;
pub use domain_name::DomainName;
pub use error::{Error, MigrationError, Place, Result};
pub use manager::{ConnectionManager, ManagedConnection, PoolMode};
pub use migrate::{NewTenant, SyncRouter, REGISTRY_MIGRATIONS};
pub use migration_set::Source;
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

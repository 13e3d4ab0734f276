//! The pool: connections that are always scoped to one tenant schema or to `public`, and
//! proven clean by the server on every checkout.
//!
//! - [`TenantPool`] (`tenant_pool.rs`), built by [`TenantPoolBuilder`] (`builder.rs`,
//!   whose connection settings are `settings.rs`): an r2d2 pool whose every checkout
//!   names a [`Scope`] (`scope.rs`) and returns a [`TenantConnection`]
//!   (`connection.rs`), in a [`PoolMode`] (`mode.rs`).
//! - [`ConnectionManager`] (`manager.rs`): the r2d2 manager; it probes for a transaction
//!   pooler (`pooler.rs`) and opens [`ManagedConnection`]s (`managed.rs`), which enter a
//!   scope on every checkout and leave it on every check-in.
//! - The verified checkout (`proof.rs`): one message that resets the session, proves it
//!   clean and sets the path; `watch.rs` records what the server reported.
//! - [`TenantRoles`] (`tenant_roles.rs`): the settings and names of per-tenant database
//!   roles, which every tenant checkout sets.
//! - With the `async` feature, [`AsyncTenantPool`] (`async_pool.rs`): the same on
//!   diesel-async and deadpool (`async_manager.rs`), handing out
//!   [`AsyncTenantConnection`]s (`async_connection.rs`) over `async_managed.rs`. Both
//!   faces leave every decision to `session.rs` and only do their own I/O.
//! - `citus.rs`: whether the database is a Citus one (tenant roles are refused there).
//! - `schema_lock.rs`: the advisory lock of a schema, shared by a checkout of a pinned
//!   route and taken exclusively by the router.

#[cfg(feature = "async")]
mod async_connection;
#[cfg(feature = "async")]
mod async_managed;
#[cfg(feature = "async")]
mod async_manager;
#[cfg(feature = "async")]
mod async_pool;
mod builder;
pub(crate) mod citus;
mod connection;
mod managed;
mod manager;
mod mode;
mod pooler;
mod proof;
mod row_security;
mod schema_lock;
mod scope;
mod session;
mod settings;
mod tenant_pool;
mod tenant_roles;
mod watch;

#[cfg(feature = "async")]
pub use async_connection::AsyncTenantConnection;
#[cfg(feature = "async")]
pub use async_pool::AsyncTenantPool;
pub use builder::TenantPoolBuilder;
pub use connection::TenantConnection;
pub use managed::ManagedConnection;
pub use manager::ConnectionManager;
pub use mode::PoolMode;
pub use scope::Scope;
pub use tenant_pool::TenantPool;
pub use tenant_roles::TenantRoles;

pub(crate) use row_security::{unbound_login_reason, SENTINEL_TABLE};
pub(crate) use schema_lock::lock;
#[cfg(feature = "rocket")]
pub(crate) use tenant_pool::Routed;
pub(crate) use tenant_roles::{schema_grants_sql, RoleNames, SchemaObjects, TRACKING_TABLE};

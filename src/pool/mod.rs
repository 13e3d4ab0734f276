//! The pool: connections that are always scoped to one tenant schema or to `public`, and
//! proven clean by the server on every checkout.
//!
//! - [`TenantPool`] (`tenant_pool.rs`) and its builder: an r2d2 pool whose every checkout
//!   names a [`Scope`] (`scope.rs`).
//! - [`ConnectionManager`] (`manager.rs`): the r2d2 manager; its pooled type,
//!   [`ManagedConnection`], enters a scope on checkout and leaves it on check-in.
//! - The verified checkout (`proof.rs`): one message that resets the session, proves it
//!   clean and sets the path; `watch.rs` notices what the server reported; `pooler.rs`
//!   finds a transaction pooler in front of the database.
//! - [`TenantConnection`] (`connection.rs`): the guard a checkout returns.
//! - [`TenantRoles`] (`tenant_roles.rs`): the settings and role names of per-tenant
//!   database roles, which every tenant checkout sets.

mod connection;
mod manager;
mod pooler;
mod proof;
mod scope;
mod tenant_pool;
mod tenant_roles;
mod watch;

pub use connection::TenantConnection;
pub use manager::{ConnectionManager, ManagedConnection, PoolMode};
pub use scope::Scope;
pub use tenant_pool::{TenantPool, TenantPoolBuilder};
pub use tenant_roles::TenantRoles;

pub(crate) use tenant_pool::Routed;
pub(crate) use tenant_roles::{schema_grants_sql, RoleNames, SchemaObjects};

//! The tenant registry: tenants and their domains in `public`, the rules their names
//! follow, and the registry held in memory.

mod cache;
mod domain_name;
mod link;
mod listener;
pub(crate) mod name_keys;
pub mod schema;
mod tenant_name;
mod tenant_name_table;
mod tenant_registry;

pub use cache::{RegistryCache, RegistryCacheBuilder, Snapshot};
pub use domain_name::DomainName;
pub use name_keys::NameKeys;
pub use tenant_name::{tenant_name_key, validate_tenant_name, MAX_TENANT_NAME_LEN};
pub use tenant_registry::{Domain, Tenant, TenantRegistry};

pub(crate) use cache::{DEFAULT_MAX_AGE, MIN_MAX_AGE};

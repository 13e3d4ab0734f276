//! [`ConnectionSettings`]: what every connection of one pool is opened and scoped with,
//! as [`TenantPoolBuilder`](super::TenantPoolBuilder) set it.

use std::sync::Arc;

use diesel::connection::Instrumentation;

use super::mode::PoolMode;
use super::scope::Scope;
use super::tenant_roles::TenantRoles;
use super::watch::InstrumentationFactory;
use crate::error::{Error, Result};
use crate::schema_name::SchemaName;

/// The row schema's name unless the builder names another.
pub(crate) const DEFAULT_ROW_SCHEMA: &str = "tenant_rows";

/// The settings a pool's connections share. The defaults are the ones
/// [`TenantPoolBuilder`](super::TenantPoolBuilder)'s setters document.
#[derive(Debug, Clone)]
pub(super) struct ConnectionSettings {
    mode: PoolMode,
    extra_schemas: Vec<String>,
    statement_cache: bool,
    reset_statements_on_switch: bool,
    instrumentation: Option<InstrumentationFactory>,
    max_schemas_per_connection: usize,
    check_pooler: bool,
    tenant_roles: Option<Arc<TenantRoles>>,
    /// The shared schema of row tenants' tables.
    row_schema: SchemaName,
    /// Whether row scopes are checked at build time and every checkout resets the role.
    row_tenants: bool,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            mode: PoolMode::Session,
            extra_schemas: Vec::new(),
            statement_cache: true,
            reset_statements_on_switch: false,
            instrumentation: None,
            max_schemas_per_connection: 2000,
            check_pooler: true,
            tenant_roles: None,
            row_schema: SchemaName::from_static(DEFAULT_ROW_SCHEMA),
            row_tenants: false,
        }
    }
}

impl ConnectionSettings {
    pub(super) fn set_mode(&mut self, mode: PoolMode) {
        self.mode = mode;
    }

    pub(super) fn add_extra_schema(&mut self, schema: String) {
        self.extra_schemas.push(schema);
    }

    pub(super) fn set_statement_cache(&mut self, enabled: bool) {
        self.statement_cache = enabled;
    }

    pub(super) fn set_reset_statements_on_switch(&mut self, enabled: bool) {
        self.reset_statements_on_switch = enabled;
    }

    pub(super) fn set_instrumentation(&mut self, make: InstrumentationFactory) {
        self.instrumentation = Some(make);
    }

    pub(super) fn set_max_schemas_per_connection(&mut self, n: usize) {
        self.max_schemas_per_connection = n;
    }

    pub(super) fn skip_pooler_check(&mut self) {
        self.check_pooler = false;
    }

    pub(super) fn set_row_tenants(&mut self, enabled: bool) {
        self.row_tenants = enabled;
    }

    pub(super) fn set_row_schema(&mut self, schema: SchemaName) {
        self.row_schema = schema;
        self.row_tenants = true;
    }

    pub(super) fn row_tenants(&self) -> bool {
        self.row_tenants
    }

    /// What makes checkouts run as a `NOLOGIN` role, which Citus cannot use: tenant roles
    /// (named first, when both are on) or row tenants. One Citus check covers both.
    pub(super) fn nologin_roles(&self) -> Option<&'static str> {
        if self.tenant_roles.is_some() {
            Some("tenant roles")
        } else if self.row_tenants {
            Some("row tenants")
        } else {
            None
        }
    }

    pub(super) fn row_schema(&self) -> &SchemaName {
        &self.row_schema
    }

    pub(super) fn set_tenant_roles(&mut self, roles: Option<Arc<TenantRoles>>) {
        self.tenant_roles = roles;
    }

    /// Refuses settings no connection could be scoped with: `public` or an invalid name
    /// as an extra schema, shared tables tenant roles cannot be given.
    pub(super) fn validate(&self) -> Result<()> {
        for schema in &self.extra_schemas {
            if schema == "public" {
                return Err(Error::Config(
                    "`public` cannot be an extra schema: tenant tables would fall through to it"
                        .into(),
                ));
            }
            SchemaName::from_stored(schema)?;
        }
        if let Some(roles) = &self.tenant_roles {
            roles.validate()?;
        }
        Ok(())
    }

    pub(super) fn mode(&self) -> PoolMode {
        self.mode
    }

    pub(super) fn statement_cache(&self) -> bool {
        self.statement_cache
    }

    pub(super) fn reset_statements_on_switch(&self) -> bool {
        self.reset_statements_on_switch
    }

    /// The application's own instrumentation for a new connection, if it gave one.
    pub(super) fn make_instrumentation(&self) -> Option<Box<dyn Instrumentation>> {
        self.instrumentation
            .as_ref()
            .map(InstrumentationFactory::make)
    }

    pub(super) fn max_schemas_per_connection(&self) -> usize {
        self.max_schemas_per_connection
    }

    pub(super) fn check_pooler(&self) -> bool {
        self.check_pooler
    }

    pub(super) fn tenant_roles(&self) -> Option<&TenantRoles> {
        self.tenant_roles.as_deref()
    }

    /// The `search_path` a checkout into `scope` sets (with the extra schemas).
    pub(super) fn search_path(&self, scope: &Scope) -> String {
        scope.search_path(&self.extra_schemas, &self.row_schema)
    }
}

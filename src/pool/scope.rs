//! [`Scope`]: which schema a connection works in.

use crate::error::SchemaRef;
use crate::schema_name::{quote_ident, SchemaName};

/// The schema a checked-out connection is bound to.
///
/// There is no unscoped variant: every checkout names one of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// The `public` schema: shared tables and the tenant registry.
    Public,
    /// One tenant's schema, alone on the path (plus configured extension schemas).
    Tenant(SchemaName),
    /// One tenant's schema as the registry named it when a route was made: the checkout
    /// also proves, in its one round trip, that the schema called `schema` is still the
    /// one with this `oid`. A schema dropped (its tenant deleted) or dropped and created
    /// again under the same name fails the checkout with [`Error::StaleRoute`]
    /// instead of reaching whoever owns that name now.
    ///
    /// [`Error::StaleRoute`]: crate::Error::StaleRoute
    Pinned {
        /// The schema.
        schema: SchemaName,
        /// Its `pg_namespace` OID when the route was made.
        oid: u32,
    },
    /// One row tenant's rows: the pool's row schema on the path, the session running as
    /// the row role with `diesel_tenancy.tenant` set to `tenant`, so row-level security
    /// shows and accepts that tenant's rows only. The checkout proves the setting, the
    /// role, that row security applies to it, and that `tenant` is still a registered
    /// row tenant (a deleted one fails with [`Error::StaleRoute`](crate::Error::StaleRoute)).
    Rows {
        /// The row tenant's registry id (`public.tenants.id`, never reused).
        tenant: i64,
    },
    /// Every row tenant's rows at once: the row schema on the path, the session running
    /// as the login role, which owns the row tables and is exempt from their tenant
    /// policy. The explicit scope of work across all row tenants (migrations, deleting a
    /// tenant's rows, reports); never what a request gets.
    AllRows,
}

impl Scope {
    /// The place this scope names, for error messages.
    pub fn schema_ref(&self) -> SchemaRef {
        match self {
            Scope::Rows { tenant } => SchemaRef::RowTenant(*tenant),
            Scope::AllRows => SchemaRef::AllRows,
            _ => match self.schema() {
                None => SchemaRef::Public,
                Some(s) => SchemaRef::Schema(s.as_str().to_owned()),
            },
        }
    }

    /// The tenant schema of a schema-tenant scope; `None` for `public` and the row scopes.
    pub fn schema(&self) -> Option<&SchemaName> {
        match self {
            Scope::Public | Scope::Rows { .. } | Scope::AllRows => None,
            Scope::Tenant(s) | Scope::Pinned { schema: s, .. } => Some(s),
        }
    }

    /// The row tenant's id of a [`Scope::Rows`].
    pub fn row_tenant(&self) -> Option<i64> {
        match self {
            Scope::Rows { tenant } => Some(*tenant),
            _ => None,
        }
    }

    /// Whether the scope puts the row schema on the path ([`Scope::Rows`], [`Scope::AllRows`]).
    pub fn is_rows(&self) -> bool {
        matches!(self, Scope::Rows { .. } | Scope::AllRows)
    }

    /// The value of the checkout's `diesel_tenancy.route` setting (`<oid>:<schema>`,
    /// digits, `:` and a validated name: safe in a literal), for a pinned scope.
    pub(crate) fn route(&self) -> Option<String> {
        match self {
            Scope::Pinned { schema, oid } => Some(format!("{oid}:{}", schema.as_str())),
            _ => None,
        }
    }

    /// Renders the `search_path` value for this scope: the scope's schema first, then
    /// `extra` (already validated extension schemas), each as a quoted identifier, and
    /// `pg_temp` last.
    ///
    /// `public` is never added to a tenant's path, so an unqualified tenant table
    /// missing from the tenant schema is an error rather than a read of `public`.
    /// PostgreSQL searches the session's temporary schema *first* unless the path names
    /// it, so naming it last means a temporary table or view can never shadow a table of
    /// the scope (the checkout also proves that no temporary objects survive a borrower).
    /// `rows`: the pool's row schema, which the row scopes name first.
    pub(crate) fn search_path(&self, extra: &[String], rows: &SchemaName) -> String {
        let first = match (self, self.schema()) {
            (Scope::Rows { .. } | Scope::AllRows, _) => rows.quoted(),
            (_, None) => quote_ident("public"),
            (_, Some(s)) => s.quoted(),
        };
        let mut path = extra.iter().fold(first, |mut path, schema| {
            path.push_str(", ");
            path.push_str(&quote_ident(schema));
            path
        });
        path.push_str(", pg_temp");
        path
    }
}

impl From<SchemaName> for Scope {
    fn from(s: SchemaName) -> Self {
        Scope::Tenant(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_quoted_paths() {
        let rows = SchemaName::new("tenant_rows").unwrap();
        assert_eq!(
            Scope::Rows { tenant: 7 }.search_path(&[], &rows),
            "\"tenant_rows\", pg_temp"
        );
        assert_eq!(
            Scope::AllRows.search_path(&[], &rows),
            "\"tenant_rows\", pg_temp"
        );
        assert_eq!(
            Scope::Rows { tenant: 7 }.schema_ref(),
            SchemaRef::RowTenant(7)
        );
        let acme = Scope::Tenant(SchemaName::new("acme").unwrap());
        assert_eq!(acme.search_path(&[], &rows), "\"acme\", pg_temp");
        assert_eq!(
            acme.search_path(&["extensions".into()], &rows),
            "\"acme\", \"extensions\", pg_temp"
        );
        assert_eq!(Scope::Public.search_path(&[], &rows), "\"public\", pg_temp");
        let pinned = Scope::Pinned {
            schema: SchemaName::new("acme").unwrap(),
            oid: 16384,
        };
        assert_eq!(pinned.search_path(&[], &rows), "\"acme\", pg_temp");
        assert_eq!(pinned.route().as_deref(), Some("16384:acme"));
        assert_eq!(acme.route(), None);
    }
}

//! [`SchemaUnion`]: one table read in many tenant schemas with a bounded number of
//! queries: the catalog first, then `UNION ALL`.

use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::SqlQuery;
use diesel::sql_types::{Array, Text};

use crate::error::Result;
use crate::schema_name::{quote_ident, SchemaName};

/// Schemas read per statement; keeps each `UNION ALL` statement a sane size.
const CHUNK: usize = 500;

/// The same table read in many schemas in `1 + schemas / 500` queries, instead of one
/// query per schema: the catalog says which of the schemas have the table (a schema
/// whose table was dropped is left out instead of failing the whole read), then one
/// statement per 500 of them reads it, each part
/// `SELECT '<schema>'::text AS schema_name, <columns> FROM "<schema>"."<table>"`
/// joined with `UNION ALL`. Run it on a connection in any scope (`public` is usual):
/// every name is schema-qualified. The crate's own status check reads every tenant's
/// migration table this way.
///
/// `columns` is SQL the application writes (like `diesel::sql_query`'s), never input
/// from a request; the rows type reads `schema_name` (`Text`) and those columns.
///
/// ```no_run
/// use diesel::prelude::*;
/// use diesel::sql_types::{BigInt, Text};
/// use diesel_tenancy::{SchemaName, SchemaUnion, TenantPool};
///
/// #[derive(QueryableByName)]
/// struct Count {
///     #[diesel(sql_type = Text)]
///     schema_name: String,
///     #[diesel(sql_type = BigInt)]
///     n: i64,
/// }
///
/// # fn main() -> diesel_tenancy::Result<()> {
/// let pool = TenantPool::builder().build("postgres://localhost/app")?;
/// let schemas = vec![SchemaName::new("acme")?, SchemaName::new("globex")?];
/// let counts: Vec<Count> = pool.with_public(|conn| {
///     SchemaUnion::new("hotels", "count(*) AS n").load(conn, &schemas)
/// })?;
/// for c in counts {
///     println!("{}: {} hotels", c.schema_name, c.n);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaUnion {
    table: String,
    columns: String,
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = Text)]
    schema_name: String,
}

impl SchemaUnion {
    /// Reads `columns` of the table `table` (unqualified: each schema's own).
    pub fn new(table: impl Into<String>, columns: impl Into<String>) -> Self {
        SchemaUnion {
            table: table.into(),
            columns: columns.into(),
        }
    }

    /// The rows of every schema of `schemas` that has the table, in two queries (more
    /// past 500 schemas).
    pub fn load<R>(&self, conn: &mut PgConnection, schemas: &[SchemaName]) -> Result<Vec<R>>
    where
        R: QueryableByName<Pg> + 'static,
    {
        let present = self.present(conn, Some(schemas))?;
        let present: Vec<SchemaName> = schemas
            .iter()
            .filter(|s| present.iter().any(|p| p == s.as_str()))
            .cloned()
            .collect();
        let mut rows = Vec::new();
        for statement in self.statements(&present) {
            rows.extend(statement.load::<R>(conn)?);
        }
        Ok(rows)
    }

    /// The schemas that have the table (a plain or partitioned table of that name),
    /// among `among`, or among every schema of the database when `None`, in one catalog
    /// query.
    pub(crate) fn present(
        &self,
        conn: &mut PgConnection,
        among: Option<&[SchemaName]>,
    ) -> Result<Vec<String>> {
        let base = "SELECT n.nspname::text AS schema_name FROM pg_catalog.pg_class c \
                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                    WHERE c.relname = $1 AND c.relkind IN ('r', 'p')";
        let query = diesel::sql_query(match among {
            Some(_) => format!("{base} AND n.nspname = ANY($2)"),
            None => base.to_owned(),
        })
        .bind::<Text, _>(&self.table);
        let rows: Vec<Present> = match among {
            Some(schemas) => {
                let names: Vec<&str> = schemas.iter().map(SchemaName::as_str).collect();
                query.bind::<Array<Text>, _>(names).load(conn)?
            }
            None => query.load(conn)?,
        };
        Ok(rows.into_iter().map(|r| r.schema_name).collect())
    }

    /// The statements that read `schemas` (which must have the table), one per 500.
    pub(crate) fn statements(&self, schemas: &[SchemaName]) -> Vec<SqlQuery> {
        schemas
            .chunks(CHUNK)
            .map(|chunk| diesel::sql_query(self.union(chunk)))
            .collect()
    }

    /// One `UNION ALL` statement over `schemas`.
    fn union(&self, schemas: &[SchemaName]) -> String {
        let table = quote_ident(&self.table);
        schemas
            .iter()
            .map(|s| {
                // A SchemaName holds only [a-z0-9_]: safe as a literal and quoted as an
                // identifier.
                format!(
                    "SELECT '{name}'::text AS schema_name, {columns} FROM {schema}.{table}",
                    name = s.as_str(),
                    columns = self.columns,
                    schema = s.quoted(),
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_per_500_schemas_each_part_qualified() {
        let union = SchemaUnion::new("hotels", "count(*) AS n");
        let schemas: Vec<SchemaName> = (0..1001)
            .map(|i| SchemaName::new(&format!("t{i}")).unwrap())
            .collect();
        assert_eq!(union.statements(&schemas).len(), 3);
        assert_eq!(
            union.union(&schemas[..2]),
            "SELECT 't0'::text AS schema_name, count(*) AS n FROM \"t0\".\"hotels\" \
             UNION ALL SELECT 't1'::text AS schema_name, count(*) AS n FROM \"t1\".\"hotels\""
        );
        assert!(union.statements(&[]).is_empty());
    }
}

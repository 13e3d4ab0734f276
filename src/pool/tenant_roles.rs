//! [`TenantRoles`]: every tenant its own database role, so that PostgreSQL itself refuses
//! a query that names another tenant's schema (opt-in).
//!
//! `search_path` decides where an *unqualified* name resolves; it does not stop SQL that
//! names a schema (`SELECT * FROM other.hotels`). With tenant roles on, every checkout of
//! a tenant scope also runs `SET ROLE` to that tenant's role, which may use its own schema
//! and nothing else (plus what the application declares of the shared set), and the
//! checkout proves the role it set. This file holds the pure part: the settings, the
//! role names and the SQL that grants; `role_provision.rs` runs it.

use crate::error::{Error, Result};
use crate::schema_name::{quote_ident, SchemaName};

/// The longest role name PostgreSQL keeps (`NAMEDATALEN - 1` bytes).
const MAX_ROLE_LEN: usize = 63;

/// Hex digits of the hash that ends a shortened role name.
const HASH_DIGITS: usize = 8;

/// Privileges a tenant role gets on every table of its schema.
pub(crate) const TABLE_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE";

/// Privileges a tenant role gets on every sequence of its schema (`nextval`, `currval`,
/// `setval`).
pub(crate) const SEQUENCE_PRIVILEGES: &str = "USAGE, SELECT, UPDATE";

/// Diesel's migration tracking table, which the tenant role is never given.
pub(crate) const TRACKING_TABLE: &str = "__diesel_schema_migrations";

/// Per-tenant database roles, turned on with
/// [`TenantPoolBuilder::tenant_roles`](crate::TenantPoolBuilder::tenant_roles).
///
/// Each tenant gets a `NOLOGIN` role, created with its schema in the same transaction
/// and dropped with the tenant. It may use its schema (`USAGE`), read and write its
/// tables (`SELECT, INSERT, UPDATE, DELETE`) and use its sequences, including what later
/// tenant migrations add, and read the shared tables named with
/// [`read_shared`](Self::read_shared); nothing else. Every tenant checkout runs as that
/// role (`public` runs as the login role), so a query in tenant `a`'s scope that names
/// `b.hotels` fails with "permission denied".
///
/// Roles are named after the database's OID and the schema: `dt<oid>_<schema>` (longer
/// names are shortened and end with a hash), all members of the group role `dt<oid>`,
/// which holds the shared grants. The role that creates tenants needs `CREATEROLE` (or
/// superuser); see the crate docs, "Tenant roles", for what roles stop and what they do
/// not.
///
/// ```no_run
/// use diesel_tenancy::{TenantPool, TenantRoles};
///
/// # fn main() -> diesel_tenancy::Result<()> {
/// let pool = TenantPool::builder()
///     .tenant_roles(TenantRoles::new().read_shared("public.currencies"))
///     .build("postgres://app_owner@localhost/app")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRoles {
    shared_reads: Vec<SharedTable>,
}

/// A table of the shared set that tenant roles may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedTable {
    schema: String,
    table: String,
}

impl SharedTable {
    /// `"schema"."table"`.
    pub(crate) fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

impl TenantRoles {
    /// Tenant roles that read nothing outside their own schema.
    pub fn new() -> Self {
        TenantRoles::default()
    }

    /// Lets every tenant role read (`SELECT`) a table of the shared set: `"currencies"`
    /// (in `public`) or `"schema.table"`. Defaults to none.
    ///
    /// The grants go to the group role and are made exact (grants to the group that are
    /// no longer declared are revoked) by
    /// [`SyncRouter::migrate_shared`](crate::SyncRouter::migrate_shared) and
    /// [`SyncRouter::sync_tenant_roles`](crate::SyncRouter::sync_tenant_roles). The
    /// table must exist then: declare tables the shared set creates. The name is checked
    /// when the pool is built.
    pub fn read_shared(mut self, table: impl Into<String>) -> Self {
        let table = table.into();
        let (schema, table) = match table.split_once('.') {
            Some((schema, table)) => (schema.to_owned(), table.to_owned()),
            None => ("public".to_owned(), table),
        };
        self.shared_reads.push(SharedTable { schema, table });
        self
    }

    /// The declared shared tables, as `(schema, table)`.
    pub(crate) fn shared_reads(&self) -> &[SharedTable] {
        &self.shared_reads
    }

    /// Refuses names PostgreSQL would not keep as they are.
    pub(crate) fn validate(&self) -> Result<()> {
        for t in &self.shared_reads {
            for part in [&t.schema, &t.table] {
                if part.is_empty() || part.len() > MAX_ROLE_LEN || part.contains('\0') {
                    return Err(Error::Config(format!(
                        "`{}.{}` is not a table name tenant roles can be given \
                         (each part 1 to 63 bytes, no NUL)",
                        crate::error::shorten(&t.schema),
                        crate::error::shorten(&t.table)
                    )));
                }
            }
        }
        Ok(())
    }

    /// `GRANT USAGE` on the declared tables' schemas and `GRANT SELECT` on the tables, to
    /// `group`. Empty when nothing is declared.
    pub(crate) fn shared_grants_sql(&self, group: &str) -> String {
        let group = quote_ident(group);
        let mut schemas: Vec<&str> = self.shared_reads.iter().map(|t| &*t.schema).collect();
        schemas.sort_unstable();
        schemas.dedup();
        let mut sql = String::new();
        for schema in schemas {
            sql.push_str(&format!(
                "GRANT USAGE ON SCHEMA {} TO {group}; ",
                quote_ident(schema)
            ));
        }
        for table in &self.shared_reads {
            sql.push_str(&format!("GRANT SELECT ON {} TO {group}; ", table.quoted()));
        }
        sql
    }

    /// Whether `(schema, table)` is declared.
    pub(crate) fn reads(&self, schema: &str, table: &str) -> bool {
        self.shared_reads
            .iter()
            .any(|t| t.schema == schema && t.table == table)
    }
}

/// The role names of one database, derived from its OID (unique in the cluster, where
/// roles live: tests and applications sharing a server never collide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoleNames {
    database: u32,
}

impl RoleNames {
    pub(crate) fn new(database: u32) -> Self {
        RoleNames { database }
    }

    /// The group role every tenant role of this database is a member of: `dt<oid>`.
    pub(crate) fn group(&self) -> String {
        format!("dt{}", self.database)
    }

    /// What every tenant role name of this database starts with: `dt<oid>_`.
    pub(crate) fn tenant_prefix(&self) -> String {
        format!("dt{}_", self.database)
    }

    /// The role of tenant schema `schema`: `dt<oid>_<schema>`, or, when that is longer
    /// than 63 bytes, the schema cut short and an 8-digit hash of the whole schema name.
    pub(crate) fn tenant(&self, schema: &SchemaName) -> String {
        let prefix = self.tenant_prefix();
        let schema = schema.as_str();
        if prefix.len() + schema.len() <= MAX_ROLE_LEN {
            return format!("{prefix}{schema}");
        }
        // Schema names are ASCII, so any byte index is a character boundary.
        let keep = MAX_ROLE_LEN - prefix.len() - 1 - HASH_DIGITS;
        format!(
            "{prefix}{}_{:0width$x}",
            &schema[..keep],
            fnv1a(schema.as_bytes()),
            width = HASH_DIGITS
        )
    }
}

/// 32-bit FNV-1a: a stable hash (the same in every build and process).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The relations of a tenant schema that its role is granted, by name (unquoted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SchemaObjects {
    /// Tables, views, materialized views, foreign and partitioned tables.
    tables: Vec<String>,
    /// Sequences (identity and serial columns' included).
    sequences: Vec<String>,
}

impl SchemaObjects {
    /// Adds a table (or view, materialized view, foreign or partitioned table).
    pub(crate) fn add_table(&mut self, name: String) {
        self.tables.push(name);
    }

    /// Adds a sequence.
    pub(crate) fn add_sequence(&mut self, name: String) {
        self.sequences.push(name);
    }
}

/// The grants of tenant role `role` on schema `schema`: `USAGE` on the schema, DML on
/// `objects` (named one by one: `ON ALL TABLES IN SCHEMA` makes PostgreSQL scan the
/// whole `pg_class`, slow with thousands of tenants), and the same by default on what
/// the current role (the migrator) creates there later. [`TRACKING_TABLE`] is never
/// granted, and is revoked if a default privilege gave it.
pub(crate) fn schema_grants_sql(
    schema: &SchemaName,
    role: &str,
    objects: &SchemaObjects,
) -> String {
    let (s, r) = (schema.quoted(), quote_ident(role));
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("{s}.{}", quote_ident(n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tables: Vec<String> = objects
        .tables
        .iter()
        .filter(|t| *t != TRACKING_TABLE)
        .cloned()
        .collect();
    let mut sql = format!("GRANT USAGE ON SCHEMA {s} TO {r}; ");
    if !tables.is_empty() {
        sql.push_str(&format!(
            "GRANT {TABLE_PRIVILEGES} ON TABLE {} TO {r}; ",
            list(&tables)
        ));
    }
    if !objects.sequences.is_empty() {
        sql.push_str(&format!(
            "GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCE {} TO {r}; ",
            list(&objects.sequences)
        ));
    }
    if tables.len() < objects.tables.len() {
        sql.push_str(&format!(
            "REVOKE ALL ON TABLE {s}.{} FROM {r}; ",
            quote_ident(TRACKING_TABLE)
        ));
    }
    sql.push_str(&format!(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT {TABLE_PRIVILEGES} ON TABLES TO {r}; \
         ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO {r}"
    ));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str) -> SchemaName {
        SchemaName::new(name).unwrap()
    }

    #[test]
    fn roles_are_named_after_the_database_and_the_schema() {
        let names = RoleNames::new(16384);
        assert_eq!(names.group(), "dt16384");
        assert_eq!(names.tenant(&schema("acme")), "dt16384_acme");
        assert!(names
            .tenant(&schema("acme"))
            .starts_with(&names.tenant_prefix()));
        // Another database never shares a name, even when one OID prefixes the other:
        // `dt1638_` would need a schema `4_acme`, and schema names start with a letter.
        let other = RoleNames::new(1638);
        assert!(SchemaName::new("4_acme").is_err());
        assert!(!names
            .tenant(&schema("x"))
            .starts_with(&other.tenant_prefix()));
        assert!(!names.group().starts_with(&other.tenant_prefix()));
    }

    #[test]
    fn long_schema_names_give_distinct_roles_of_at_most_63_bytes() {
        let names = RoleNames::new(u32::MAX);
        let a = "a".repeat(63);
        let b = format!("{}b", "a".repeat(62));
        let (ra, rb) = (names.tenant(&schema(&a)), names.tenant(&schema(&b)));
        assert_eq!((ra.len(), rb.len()), (63, 63));
        assert_ne!(ra, rb);
        assert!(ra.starts_with("dt4294967295_aaaa"), "{ra}");
        // The longest name that still fits is kept whole.
        let fits = "c".repeat(63 - "dt4294967295_".len());
        assert_eq!(names.tenant(&schema(&fits)), format!("dt4294967295_{fits}"));
        // Stable across runs: the hash is FNV-1a, not the process's random hasher.
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
    }

    #[test]
    fn schema_grants_name_each_table_and_sequence_and_cover_later_objects() {
        let objects = SchemaObjects {
            tables: vec!["hotels".into(), TRACKING_TABLE.into(), "Odd\"Name".into()],
            sequences: vec!["hotels_id_seq".into()],
        };
        let sql = schema_grants_sql(&schema("acme"), "dt1_acme", &objects);
        assert_eq!(
            sql,
            "GRANT USAGE ON SCHEMA \"acme\" TO \"dt1_acme\"; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE \"acme\".\"hotels\", \
             \"acme\".\"Odd\"\"Name\" TO \"dt1_acme\"; \
             GRANT USAGE, SELECT, UPDATE ON SEQUENCE \"acme\".\"hotels_id_seq\" TO \"dt1_acme\"; \
             REVOKE ALL ON TABLE \"acme\".\"__diesel_schema_migrations\" FROM \"dt1_acme\"; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA \"acme\" GRANT SELECT, INSERT, UPDATE, DELETE \
             ON TABLES TO \"dt1_acme\"; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA \"acme\" GRANT USAGE, SELECT, UPDATE ON SEQUENCES \
             TO \"dt1_acme\""
        );
        // An empty schema: usage and the defaults only, no empty lists.
        let empty = schema_grants_sql(&schema("acme"), "r", &SchemaObjects::default());
        assert!(
            !empty.contains("ON TABLE ") && !empty.contains("ON SEQUENCE "),
            "{empty}"
        );
        assert!(!empty.contains("REVOKE"), "{empty}");
    }

    #[test]
    fn shared_reads_are_quoted_and_default_to_public() {
        let roles = TenantRoles::new()
            .read_shared("currencies")
            .read_shared("ext.Plans")
            .read_shared("public.x\"y");
        roles.validate().unwrap();
        assert!(roles.reads("public", "currencies") && roles.reads("ext", "Plans"));
        assert!(!roles.reads("public", "plans"));
        let sql = roles.shared_grants_sql("dt7");
        assert_eq!(
            sql,
            "GRANT USAGE ON SCHEMA \"ext\" TO \"dt7\"; GRANT USAGE ON SCHEMA \"public\" TO \"dt7\"; \
             GRANT SELECT ON \"public\".\"currencies\" TO \"dt7\"; \
             GRANT SELECT ON \"ext\".\"Plans\" TO \"dt7\"; \
             GRANT SELECT ON \"public\".\"x\"\"y\" TO \"dt7\"; "
        );
        assert_eq!(TenantRoles::new().shared_grants_sql("dt7"), "");
    }

    #[test]
    fn unusable_shared_table_names_are_refused() {
        for bad in ["", ".x", "x.", "a\0b", &"t".repeat(64)] {
            let err = TenantRoles::new().read_shared(bad).validate().unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad:?}: {err}");
        }
    }
}

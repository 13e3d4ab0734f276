//! [`SchemaName`]: the validated name of a tenant schema.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use crate::error::{shorten, Error, Result};

/// Longest schema name PostgreSQL keeps (`NAMEDATALEN - 1`); longer names are silently cut.
pub(crate) const MAX_LEN: usize = 63;

/// Names that are never tenant schemas.
const SYSTEM: [&str; 4] = ["public", "information_schema", "pg_catalog", "pg_toast"];

/// Prefix [`SchemaName::derive_from`] puts before names that could not start a schema name.
const DERIVED_PREFIX: &str = "t_";

/// A validated PostgreSQL schema name for a tenant.
///
/// This is the only way a schema name reaches SQL in this crate. A valid name:
/// - is 1 to 63 bytes of ASCII lowercase letters, digits and `_`;
/// - starts with a letter or `_`, and not with `pg_`;
/// - is not `public`, `information_schema`, `pg_catalog`, `pg_toast`, nor in the
///   extra reserved list of the [`SchemaRules`] used.
///
/// Because of these rules a `SchemaName` never needs escaping; it is still always
/// written as a quoted identifier.
///
/// ```
/// use diesel_tenancy::SchemaName;
///
/// assert!(SchemaName::new("acme").is_ok());
/// assert!(SchemaName::new("Acme").is_err());
/// assert!(SchemaName::new("pg_acme").is_err());
/// assert_eq!(SchemaName::derive_from("Hôtel 1").unwrap().as_str(), "h_tel_1");
/// assert_eq!(SchemaName::derive_from("1st").unwrap().as_str(), "t_1st");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaName(Arc<str>);

impl SchemaName {
    /// Validates `name` with the default rules (no extra reserved names).
    pub fn new(name: &str) -> Result<Self> {
        SchemaRules::default().validate(name)
    }

    /// Makes a valid schema name from a free-form tenant name, with the default rules.
    ///
    /// See [`SchemaRules::derive_from`].
    pub fn derive_from(tenant_name: &str) -> Result<Self> {
        SchemaRules::default().derive_from(tenant_name)
    }

    /// The name, as stored in `pg_namespace`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier, e.g. `"acme"`.
    pub fn quoted(&self) -> String {
        quote_ident(&self.0)
    }

    /// A name the crate itself spells (a constant that follows the rules).
    pub(crate) fn from_static(name: &'static str) -> Self {
        debug_assert!(check_chars(name).is_ok(), "{name}");
        SchemaName(Arc::from(name))
    }

    /// Trusts a name read back from the catalog or the registry.
    ///
    /// Still checks the character rules, so a hand-edited registry row cannot
    /// smuggle text into SQL.
    pub(crate) fn from_stored(name: &str) -> Result<Self> {
        check_chars(name).map(|()| SchemaName(Arc::from(name)))
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for SchemaName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl AsRef<str> for SchemaName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SchemaName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SchemaName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SchemaName::new(s)
    }
}

/// Writes `ident` as a double-quoted SQL identifier, doubling any `"`.
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The rules schema names are checked against: the fixed ones plus a reserved list.
///
/// ```
/// use diesel_tenancy::SchemaRules;
///
/// let rules = SchemaRules::default().reserve("admin");
/// assert!(rules.validate("admin").is_err());
/// assert_eq!(rules.derive_from("Admin").unwrap().as_str(), "t_admin");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SchemaRules {
    reserved: Vec<String>,
}

impl SchemaRules {
    /// Adds a name no tenant may use. Defaults to none beyond the system schemas.
    pub fn reserve(mut self, name: impl Into<String>) -> Self {
        self.reserved.push(name.into());
        self
    }

    /// Checks `name` against every rule.
    pub fn validate(&self, name: &str) -> Result<SchemaName> {
        check_chars(name)?;
        if name.starts_with("pg_") {
            return Err(invalid(
                name,
                "names starting with `pg_` are reserved by PostgreSQL",
            ));
        }
        if self.is_reserved(name) {
            return Err(invalid(name, "this name is reserved"));
        }
        Ok(SchemaName(Arc::from(name)))
    }

    /// Makes a valid schema name from a free-form tenant name.
    ///
    /// ASCII letters are lowercased, every other character that is not a digit or `_`
    /// becomes `_`; `t_` is put in front when the result would start with a digit or
    /// `pg_`, or be a reserved name; the result is cut to 63 bytes. Different tenant names
    /// can derive the same schema name: creating the second tenant then fails with
    /// [`Error::SchemaExists`], it never shares the first tenant's schema.
    pub fn derive_from(&self, tenant_name: &str) -> Result<SchemaName> {
        let trimmed = tenant_name.trim();
        if trimmed.is_empty() {
            return Err(Error::InvalidTenantName {
                name: shorten(tenant_name),
                reason: "a tenant name cannot be empty",
            });
        }
        let mut out: String = trimmed
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '_' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '_',
            })
            .take(MAX_LEN)
            .collect();
        let needs_prefix = out.starts_with(|c: char| c.is_ascii_digit())
            || out.starts_with("pg_")
            || self.is_reserved(&out);
        if needs_prefix {
            out.insert_str(0, DERIVED_PREFIX);
            out.truncate(MAX_LEN);
        }
        self.validate(&out)
    }

    fn is_reserved(&self, name: &str) -> bool {
        SYSTEM.contains(&name) || self.reserved.iter().any(|r| r == name)
    }
}

/// The character and length rules, shared by validation and by names read back from storage.
fn check_chars(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(invalid(name, "a schema name cannot be empty"));
    }
    if name.len() > MAX_LEN {
        return Err(invalid(name, "a schema name is at most 63 bytes"));
    }
    if !name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
    {
        return Err(invalid(
            name,
            "only ASCII lowercase letters, digits and `_` are allowed",
        ));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(invalid(
            name,
            "a schema name must start with a letter or `_`",
        ));
    }
    Ok(())
}

fn invalid(name: &str, reason: &'static str) -> Error {
    Error::InvalidSchemaName {
        name: shorten(name),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(name: &str) -> &'static str {
        match SchemaName::new(name) {
            Err(Error::InvalidSchemaName { reason, .. }) => reason,
            other => panic!("expected InvalidSchemaName for {name:?}, got {other:?}"),
        }
    }

    #[test]
    fn length_limit_is_63_bytes() {
        let ok = "a".repeat(63);
        assert_eq!(SchemaName::new(&ok).unwrap().as_str(), ok);
        assert_eq!(reason(&"a".repeat(64)), "a schema name is at most 63 bytes");
        assert_eq!(reason(""), "a schema name cannot be empty");
    }

    #[test]
    fn character_rules() {
        assert!(SchemaName::new("acme_2").is_ok());
        assert!(SchemaName::new("_acme").is_ok());
        for bad in [
            "Acme", "ac-me", "ac me", "acmé", "a\"b", "a'b", "a;drop", "a\0b",
        ] {
            assert_eq!(
                reason(bad),
                "only ASCII lowercase letters, digits and `_` are allowed",
                "{bad:?}"
            );
        }
        assert_eq!(
            reason("1acme"),
            "a schema name must start with a letter or `_`"
        );
    }

    #[test]
    fn reserved_names() {
        assert_eq!(
            reason("pg_x"),
            "names starting with `pg_` are reserved by PostgreSQL"
        );
        for name in SYSTEM {
            assert!(SchemaName::new(name).is_err(), "{name}");
        }
        assert!(SchemaName::new("pgx").is_ok());
        let rules = SchemaRules::default().reserve("admin");
        assert!(matches!(
            rules.validate("admin"),
            Err(Error::InvalidSchemaName {
                reason: "this name is reserved",
                ..
            })
        ));
    }

    #[test]
    fn derivation() {
        let d = |s: &str| SchemaName::derive_from(s).unwrap().as_str().to_owned();
        assert_eq!(d("Demo1"), "demo1");
        assert_eq!(d("  Hotel Zürich "), "hotel_z_rich");
        assert_eq!(d("42 things"), "t_42_things");
        assert_eq!(d("pg_stuff"), "t_pg_stuff");
        assert_eq!(d("PUBLIC"), "t_public");
        assert_eq!(
            d("x'; DROP SCHEMA public; --"),
            "x___drop_schema_public____"
        );
        assert_eq!(d("日本"), "__");
        assert_eq!(d(&"é".repeat(100)).len(), 63);
        assert_eq!(d(&format!("9{}", "a".repeat(100))).len(), 63);
        assert!(SchemaName::derive_from("   ").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(SchemaName::new("acme").unwrap().quoted(), "\"acme\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}

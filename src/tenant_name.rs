//! Tenant names: what a valid one is, and the one rule that says when two are the same.
//!
//! Names are unique case-insensitively. PostgreSQL's `lower()` and Rust's
//! `str::to_lowercase` disagree on some letters (Greek final sigma: `ΟΔΟΣ` lowercases to
//! `οδοσ` in SQL and to `οδος` in Rust), so a uniqueness rule in SQL and a lookup key in
//! Rust would let two tenants collide in the cache. The crate therefore computes the key
//! once, here, stores it (`public.tenants.name_key`, unique), and every lookup (registry,
//! cache, resolver, `migrate --tenant`) compares keys made by this function.

use std::borrow::Cow;

use crate::error::{shorten, Error, Result};

/// Longest tenant name accepted.
pub const MAX_TENANT_NAME_LEN: usize = 255;

/// Checks a tenant name: trimmed, 1–255 bytes, no control characters, not `public`
/// (which always names the public scope). Returns the trimmed name.
pub fn validate_tenant_name(name: &str) -> Result<&str> {
    let trimmed = name.trim();
    let reason = if trimmed.is_empty() {
        Some("a tenant name cannot be empty")
    } else if trimmed.len() > MAX_TENANT_NAME_LEN {
        Some("a tenant name is at most 255 bytes")
    } else if trimmed.chars().any(char::is_control) {
        Some("a tenant name cannot contain control characters")
    } else if tenant_name_key(trimmed) == "public" {
        Some("`public` names the public schema and cannot be a tenant name")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidTenantName {
            name: shorten(name),
            reason,
        }),
        None => Ok(trimmed),
    }
}

/// The key two tenant names are compared by: the name trimmed, each character
/// lowercased on its own (no context rules such as final sigma), and the letters whose
/// Unicode simple case folding differs from their lowercase folded too (`ς` → `σ`,
/// `ſ` → `s`, `µ` → `μ`, the Greek symbol variants). Code points are otherwise compared
/// as they are: canonically equivalent spellings (precomposed `é` and `e` + U+0301)
/// are different names.
///
/// Borrowed when the name is already a key (the common case of a request naming its
/// tenant as registered), so a lookup allocates nothing.
///
/// ```
/// use diesel_tenancy::tenant_name_key;
///
/// assert_eq!(tenant_name_key(" Demo 1 "), "demo 1");
/// assert_eq!(tenant_name_key("ΟΔΟΣ"), tenant_name_key("οδος"));
/// assert_eq!(tenant_name_key("STRASSE"), "strasse");
/// ```
pub fn tenant_name_key(name: &str) -> Cow<'_, str> {
    let name = name.trim();
    if name
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        return Cow::Borrowed(name);
    }
    let mut key = String::with_capacity(name.len());
    for c in name.chars() {
        for lower in c.to_lowercase() {
            key.push(fold(lower));
        }
    }
    Cow::Owned(key)
}

/// The lowercase letters whose simple case folding is another letter.
fn fold(c: char) -> char {
    match c {
        'ς' => 'σ',
        'ſ' => 's',
        'µ' => 'μ',
        '\u{345}' | '\u{1fbe}' => 'ι',
        'ϐ' => 'β',
        'ϑ' => 'θ',
        'ϕ' => 'φ',
        'ϖ' => 'π',
        'ϰ' => 'κ',
        'ϱ' => 'ρ',
        'ϵ' => 'ε',
        'ẛ' => 'ṡ',
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        assert_eq!(validate_tenant_name("  Demo 1 ").unwrap(), "Demo 1");
        for bad in ["", "  ", "PUBLIC", "Public", "a\nb", "x\0"] {
            assert!(validate_tenant_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_tenant_name(&"é".repeat(128)).is_err());
        assert!(validate_tenant_name("Hôtel ✓").is_ok());
    }

    #[test]
    fn keys_are_trimmed_folded_and_borrowed_when_already_keys() {
        assert!(matches!(tenant_name_key("demo1"), Cow::Borrowed("demo1")));
        assert!(matches!(
            tenant_name_key(" demo1\t"),
            Cow::Borrowed("demo1")
        ));
        assert_eq!(tenant_name_key("Demo1"), "demo1");
        assert_eq!(tenant_name_key(" HÔTEL "), "hôtel");
        assert!(matches!(tenant_name_key("hôtel"), Cow::Owned(_)));
    }

    #[test]
    fn letters_rust_and_postgres_lowercase_differently_get_one_key() {
        // Rust lowercases a word-final Σ to ς, PostgreSQL to σ; both keys are σ.
        assert_eq!("ΟΔΟΣ".to_lowercase(), "οδος");
        for name in ["ΟΔΟΣ", "οδος", "οδοσ", "ΟΔΟΣ "] {
            assert_eq!(tenant_name_key(name), "οδοσ", "{name}");
        }
        assert_eq!(tenant_name_key("ſtate"), tenant_name_key("State"));
        assert_eq!(tenant_name_key("µ"), tenant_name_key("Μ"));
        // Keys are keys: folding a key again changes nothing.
        for name in ["ΟΔΟΣ", "Straße", "İstanbul", "ǅemo", "K", "Å"] {
            let key = tenant_name_key(name).into_owned();
            assert_eq!(tenant_name_key(&key), key, "{name}");
        }
    }
}

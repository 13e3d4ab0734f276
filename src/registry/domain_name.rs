//! [`DomainName`]: a normalized host name a tenant can be reached at.

use std::fmt;

use crate::error::{shorten, Error, Result};

/// A host name in canonical form: lowercase ASCII, no port, no trailing dot.
///
/// Labels are 1–63 bytes of letters, digits and `-` (not at either end); the whole
/// name is at most 253 bytes.
///
/// ```
/// use diesel_tenancy::DomainName;
///
/// assert_eq!(DomainName::new("Demo1.Example.COM.").unwrap().as_str(), "demo1.example.com");
/// assert_eq!(DomainName::from_host("demo1.localhost:8000").unwrap().as_str(), "demo1.localhost");
/// assert!(DomainName::new("bad_domain!").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

impl DomainName {
    /// Validates and normalizes a domain name (no port allowed).
    pub fn new(input: &str) -> Result<Self> {
        let lower = input.trim().to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        check(name).map_err(|reason| Error::InvalidDomain {
            domain: shorten(input),
            reason,
        })?;
        Ok(DomainName(name.to_owned()))
    }

    /// Normalizes the value of an HTTP `Host` header: strips the port, lowercases, and
    /// removes a trailing dot. Bracketed IPv6 literals are refused (they name no tenant).
    pub fn from_host(host: &str) -> Result<Self> {
        let trimmed = host.trim();
        let without_port = match trimmed.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => trimmed,
        };
        DomainName::new(without_port)
    }

    /// The normalized name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("a domain cannot be empty");
    }
    if name.len() > 253 {
        return Err("a domain is at most 253 bytes");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must be 1 to 63 bytes");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("only ASCII letters, digits, `-` and `.` are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with `-`");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(DomainName::new(" A.B ").unwrap().as_str(), "a.b");
        assert_eq!(DomainName::new("localhost").unwrap().as_str(), "localhost");
        assert_eq!(DomainName::from_host("A.b.:443").unwrap().as_str(), "a.b");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a_b.c",
            "a b",
            "é.com",
            "a.b:80",
            "[::1]:80",
            "x\0y",
            "' OR 1=1 --",
        ] {
            assert!(DomainName::new(bad).is_err(), "{bad:?}");
        }
        assert!(DomainName::new(&"a".repeat(64)).is_err());
        assert!(DomainName::new(&["a"; 128].join(".")).is_err());
        assert!(DomainName::from_host("[::1]:8000").is_err());
    }
}

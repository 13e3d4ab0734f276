//! The one host of a request: strict `Host` syntax, the target's authority, and the
//! forwarded host of a trusted proxy.
//!
//! Every way a request could name two hosts is refused rather than guessed at: a second
//! `Host` field line, a `Host` that is not a valid `uri-host [":" port]` (user info, a bad
//! port, stray characters), a trusted proxy's `Forwarded` and `X-Forwarded-Host` that
//! disagree. What is left has one reading:
//!
//! 1. the host a trusted proxy forwarded (`Forwarded: host=`, `X-Forwarded-Host`), when the
//!    peer is one of the configured proxies (ignored from anyone else);
//! 2. else the request target's authority (an absolute-form target, HTTP/2 `:authority`),
//!    which RFC 9112 §3.2.2 puts before the `Host` header;
//! 3. else the `Host` header.

use super::trusted_proxies::TrustedProxies;
use super::{Malformed, RequestParts};
use crate::registry::DomainName;

/// The host and port of a valid authority, host lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// The registered domain this host could be, if it is a domain name at all (an IP
    /// address or a name with other characters names no tenant).
    pub(crate) fn domain(&self) -> Option<DomainName> {
        if self.host.starts_with('[') {
            return None;
        }
        DomainName::new(&self.host).ok()
    }
}

/// The host the request is for, read once from all of its sources; `Ok(None)` when it
/// names none (no `Host`, an empty one).
pub(crate) fn request_host(
    request: &dyn RequestParts,
    proxies: &TrustedProxies,
) -> Result<Option<Authority>, Malformed> {
    let hosts = request.header_values("Host");
    if hosts.len() > 1 {
        return Err(malformed("Host", "sent more than once"));
    }
    let from_header = match hosts.first() {
        Some(raw) => parse_authority(raw).map_err(|why| malformed("Host", why))?,
        None => None,
    };
    if request.peer().is_some_and(|peer| proxies.trusts(peer)) {
        if let Some(forwarded) = forwarded_host(request)? {
            return Ok(Some(forwarded));
        }
    }
    if let Some(target) = request.authority() {
        let target = parse_authority(target.as_bytes())
            .map_err(|why| malformed("request target authority", why))?;
        if target.is_some() {
            return Ok(target);
        }
    }
    Ok(from_header)
}

fn malformed(what: &str, why: &str) -> Malformed {
    Malformed {
        detail: format!("malformed {what}: {why}"),
    }
}

/// What a trusted proxy says the host was: the last element of `Forwarded` (the one the
/// nearest proxy added) if it has `host=`, and the last item of `X-Forwarded-Host`; both
/// present and different is ambiguous.
fn forwarded_host(request: &dyn RequestParts) -> Result<Option<Authority>, Malformed> {
    let standard = match last_list_item(&request.header_values("Forwarded")) {
        Some(element) => match forwarded_param(&element, "host") {
            Some(host) => {
                parse_authority(host.as_bytes()).map_err(|why| malformed("Forwarded", why))?
            }
            None => None,
        },
        None => None,
    };
    let legacy = match last_list_item(&request.header_values("X-Forwarded-Host")) {
        Some(item) => {
            parse_authority(item.as_bytes()).map_err(|why| malformed("X-Forwarded-Host", why))?
        }
        None => None,
    };
    match (standard, legacy) {
        (Some(a), Some(b)) if a != b => Err(Malformed {
            detail: "malformed request: Forwarded and X-Forwarded-Host name different hosts".into(),
        }),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// The last non-empty item of a comma-separated list spread over field lines; values
/// that are not UTF-8 count as absent (Rocket drops them anyway).
fn last_list_item(lines: &[&[u8]]) -> Option<String> {
    lines
        .iter()
        .filter_map(|line| std::str::from_utf8(line).ok())
        .flat_map(split_list)
        .rfind(|item| !item.is_empty())
}

/// Splits a list field on commas outside quoted strings.
fn split_list(line: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in line.chars() {
        let current = items.last_mut();
        match (c, quoted, escaped) {
            (_, true, true) => escaped = false,
            ('\\', true, false) => escaped = true,
            ('"', _, false) => quoted = !quoted,
            (',', false, _) => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(current) = current {
            current.push(c);
        }
    }
    items.into_iter().map(|i| i.trim().to_owned()).collect()
}

/// The value of parameter `name` in one `Forwarded` element (`for=…;host=…`), unquoted.
fn forwarded_param(element: &str, name: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let value = value.trim();
        Some(
            match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
                None => value.to_owned(),
            },
        )
    })
}

/// Parses `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a reg-name, an IPv4
/// address or a bracketed IP literal, then an optional port of at most 65535. User info
/// and anything else are refused. An empty value names no host.
///
/// ```text
/// demo1.example.com:8000  -> demo1.example.com, 8000
/// demo1@demo2             -> error: user info
/// demo1:http              -> error: bad port
/// ```
pub(crate) fn parse_authority(raw: &[u8]) -> Result<Option<Authority>, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8")?;
    let text = text.trim_matches([' ', '\t']);
    if text.is_empty() {
        return Ok(None);
    }
    if text.contains('@') {
        return Err("contains user info (`@`)");
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or("an IP literal lacks its `]`")?;
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'))
        {
            return Err("not a valid IP literal");
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("junk after an IP literal")?),
        };
        (format!("[{}]", literal.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if host.is_empty() {
            return Err("no host before the port");
        }
        if !host.bytes().all(is_reg_name_byte) {
            return Err("not a valid host name");
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None | Some("") => None,
        Some(digits) if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(
            digits
                .parse::<u16>()
                .map_err(|_| "the port is above 65535")?,
        ),
        Some(_) => return Err("the port is not a number"),
    };
    Ok(Some(Authority { host, port }))
}

/// `unreserved / pct-encoded / sub-delims` (RFC 3986 reg-name).
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(host: &str, port: Option<u16>) -> Option<Authority> {
        Some(Authority {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn valid_authorities() {
        assert_eq!(
            parse_authority(b"Demo1.Example.com"),
            Ok(auth("demo1.example.com", None))
        );
        assert_eq!(
            parse_authority(b"demo1.localhost:8000"),
            Ok(auth("demo1.localhost", Some(8000)))
        );
        assert_eq!(
            parse_authority(b"demo1.localhost:"),
            Ok(auth("demo1.localhost", None))
        );
        assert_eq!(
            parse_authority(b"127.0.0.1:80"),
            Ok(auth("127.0.0.1", Some(80)))
        );
        assert_eq!(
            parse_authority(b"[::1]:8000"),
            Ok(auth("[::1]", Some(8000)))
        );
        assert_eq!(
            parse_authority(b"a_b.example"),
            Ok(auth("a_b.example", None))
        );
        assert_eq!(parse_authority(b""), Ok(None));
        assert_eq!(parse_authority(b"  "), Ok(None));
    }

    #[test]
    fn invalid_authorities() {
        for bad in [
            &b"demo1.localhost@demo2.localhost"[..],
            b"user:pw@demo2.localhost",
            b"demo1.localhost:http",
            b"demo1.localhost:65536",
            b"demo1.localhost:123456",
            b"demo1.localhost:80:80",
            b"demo1 demo2",
            b"demo1/x",
            b":80",
            b"[::1",
            b"[::1]x",
            b"[zz]",
            b"\xff",
            b"demo1\0",
        ] {
            assert!(
                parse_authority(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn domains_only_from_names() {
        assert_eq!(
            auth("demo1.example.com.", Some(1))
                .unwrap()
                .domain()
                .unwrap()
                .as_str(),
            "demo1.example.com"
        );
        assert!(auth("[::1]", None).unwrap().domain().is_none());
        assert!(auth("a_b.example", None).unwrap().domain().is_none());
    }

    #[test]
    fn forwarded_lists() {
        assert_eq!(
            split_list(r#"for=a;host="x,y", for=b"#),
            vec![r#"for=a;host="x,y""#, "for=b"]
        );
        assert_eq!(
            forwarded_param(r#"for=1.2.3.4;Host="demo1.localhost""#, "host").as_deref(),
            Some("demo1.localhost")
        );
        assert_eq!(forwarded_param("for=1.2.3.4", "host"), None);
        assert_eq!(last_list_item(&[b"a, b", b" c ,"]).as_deref(), Some("c"));
        assert_eq!(last_list_item(&[]), None);
    }
}

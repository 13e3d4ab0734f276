//! [`TrustedProxies`]: the peers whose forwarded host a request may be routed by.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Addresses (or CIDR ranges) of the proxies in front of the service whose
/// `Forwarded: host=` and `X-Forwarded-Host` are read. From any other peer those headers
/// are ignored. Empty by default: no forwarded host is read at all.
///
/// ```
/// use diesel_tenancy::resolve::TrustedProxies;
///
/// let proxies: TrustedProxies = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"].iter().map(|p| p.parse()).collect::<Result<_, _>>().unwrap();
/// assert!(proxies.trusts("10.1.2.3".parse().unwrap()));
/// assert!(proxies.trusts("::ffff:127.0.0.1".parse().unwrap()));
/// assert!(!proxies.trusts("192.0.2.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Range>);

/// One address range: `prefix` leading bits of `network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    /// No trusted proxy.
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// Whether `peer` is one of the trusted proxies (IPv4-mapped IPv6 peers compare as
    /// IPv4).
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|range| range.contains(peer))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Range {
    fn contains(&self, peer: IpAddr) -> bool {
        let (a, b, bits) = match (self.network, peer) {
            (IpAddr::V4(n), IpAddr::V4(p)) => {
                (u128::from(n.to_bits()), u128::from(p.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(p)) => (n.to_bits(), p.to_bits(), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (a >> shift) == (b >> shift)
    }
}

/// A trusted-proxy entry that is not an address or `address/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidProxy(pub String);

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not an IP address or CIDR range (e.g. `10.0.0.0/8`)",
            crate::error::shorten(&self.0)
        )
    }
}

impl std::error::Error for InvalidProxy {}

impl FromStr for TrustedProxies {
    type Err = InvalidProxy;

    /// One address or `address/prefix`.
    fn from_str(s: &str) -> Result<Self, InvalidProxy> {
        let bad = || InvalidProxy(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(TrustedProxies(vec![Range { network, prefix }]))
    }
}

impl FromIterator<TrustedProxies> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = TrustedProxies>>(iter: I) -> Self {
        TrustedProxies(iter.into_iter().flat_map(|p| p.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> TrustedProxies {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn ranges() {
        let p = parse(&["192.168.0.0/16", "::1", "0.0.0.0/0"]);
        assert!(p.trusts("8.8.8.8".parse().unwrap()));
        let p = parse(&["192.168.0.0/16", "::1"]);
        assert!(p.trusts("192.168.255.1".parse().unwrap()));
        assert!(!p.trusts("192.169.0.1".parse().unwrap()));
        assert!(p.trusts("::1".parse().unwrap()));
        assert!(!p.trusts("::2".parse().unwrap()));
        assert!(!TrustedProxies::none().trusts("127.0.0.1".parse().unwrap()));
        for bad in [
            "",
            "localhost",
            "1.2.3.4/",
            "1.2.3.4/x",
            "::/129",
            "1.2.3.4/8/8",
        ] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad}");
        }
    }
}

//! The proxies whose forwarded client certificates are believed: a list
//! of addresses and networks. A request from anywhere else that carries
//! `x-forwarded-client-cert` has forged it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Addresses and CIDR networks of trusted proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// The mask of a prefix length over `bits` bits.
fn mask(prefix: u32, bits: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        (u128::MAX << (bits - prefix)) & (u128::MAX >> (128 - bits))
    }
}

impl TrustedProxies {
    /// Reads addresses (`10.1.2.3`, `fd00::1`) and networks (`10.0.0.0/8`,
    /// `fd00::/8`). A network with bits set beyond its prefix is refused:
    /// `10.0.0.1/8` is more likely a typo than a wish to trust 16 million
    /// addresses.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut proxies = TrustedProxies::default();
        for entry in entries {
            let (addr, prefix) = match entry.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (entry.as_str(), None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("trusted proxy {entry:?}: not an IP address or CIDR"))?;
            let bits = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => bits,
                // Digits only: `u32::from_str` would also take "+8".
                Some(p) => Some(p)
                    .filter(|p| {
                        !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|p| p.parse::<u32>().ok())
                    .filter(|p| *p <= bits)
                    .ok_or_else(|| {
                        format!("trusted proxy {entry:?}: the prefix is not 0 to {bits}")
                    })?,
            };
            let m = mask(prefix, bits);
            let value = match addr {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            if value & !m != 0 {
                return Err(format!(
                    "trusted proxy {entry:?}: bits are set beyond the /{prefix} prefix"
                ));
            }
            match addr {
                IpAddr::V4(_) => proxies.v4.push((value as u32, m as u32)),
                IpAddr::V6(_) => proxies.v6.push((value, m)),
            }
        }
        Ok(proxies)
    }

    /// Whether `ip` is one of the proxies. An IPv4-mapped IPv6 address
    /// (`::ffff:10.1.2.3`, how a dual-stack socket reports IPv4 peers)
    /// counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.contains_v4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.contains_v4(v4),
                None => self.contains_v6(a),
            },
        }
    }

    fn contains_v4(&self, a: Ipv4Addr) -> bool {
        let a = u32::from(a);
        self.v4.iter().any(|(net, m)| a & m == *net)
    }

    fn contains_v6(&self, a: Ipv6Addr) -> bool {
        let a = u128::from(a);
        self.v6.iter().any(|(net, m)| a & m == *net)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str]) -> Result<TrustedProxies, String> {
        TrustedProxies::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_networks_match() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.7", "fd00::/8", "2001:db8::1"]).unwrap();
        assert!(p.contains(ip("10.200.3.4")));
        assert!(p.contains(ip("192.168.1.7")));
        assert!(!p.contains(ip("192.168.1.8")));
        assert!(!p.contains(ip("11.0.0.1")));
        assert!(p.contains(ip("fd12:3456::1")));
        assert!(p.contains(ip("2001:db8::1")));
        assert!(!p.contains(ip("2001:db8::2")));
        assert!(!p.contains(ip("fe80::1")));
        assert!(!p.is_empty());
    }

    #[test]
    fn ipv4_mapped_addresses_match_their_ipv4_network() {
        let p = proxies(&["10.0.0.0/8"]).unwrap();
        assert!(p.contains(ip("::ffff:10.1.2.3")));
        assert!(!p.contains(ip("::ffff:11.1.2.3")));
        // Not an IPv4-compatible (deprecated) or unrelated v6 address.
        assert!(!p.contains(ip("::10.1.2.3")));
    }

    #[test]
    fn whole_address_families_and_none() {
        let all4 = proxies(&["0.0.0.0/0"]).unwrap();
        assert!(all4.contains(ip("8.8.8.8")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let all6 = proxies(&["::/0"]).unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
        assert!(!all6.contains(ip("8.8.8.8")));
        let none = proxies(&[]).unwrap();
        assert!(none.is_empty());
        assert!(!none.contains(ip("127.0.0.1")));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0.1/8",
            "fd00::1/8",
            "10.0.0.0/ 8",
            " 10.0.0.1",
            "10.0.0.0/08x",
            "10.0.0.0/+8",
        ] {
            assert!(proxies(&[bad]).is_err(), "{bad:?}");
        }
    }
}

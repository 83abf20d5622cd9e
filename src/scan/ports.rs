//! The port syntax: `22,80,1000-2000`, `-` (all), `U:53,T:8000-8100`,
//! and service names (`http,ssh`); `--top-ports N` is [`super::ranking`]'s.
//!
//! A spec is a comma-separated list of items. An item is a port (`80`), a
//! range (`1000-2000`, `-1024` from 1, `60000-` to 65535, `-` for all), or a
//! service name from [`services`]. `T:` or `U:` in front of
//! an item makes it and the items after it TCP-only or UDP-only, until the
//! next prefix; items before any prefix apply to both. Port 0 is never
//! scanned, so ranges start at 1.
//!
//! ```
//! use socketeer::scan::ports::PortSpec;
//!
//! let spec: PortSpec = "ssh,8000-8002,U:53".parse().unwrap();
//! assert_eq!(spec.tcp.iter().collect::<Vec<_>>(), [22, 8000, 8001, 8002]);
//! assert_eq!(spec.udp.iter().collect::<Vec<_>>(), [53, 8000, 8001, 8002]);
//! ```

use std::fmt;
use std::str::FromStr;

use crate::net::Transport;
use crate::services;

/// A set of ports 1-65535, as a bitmap: membership, union and difference are
/// cheap, and iteration is in ascending order without duplicates.
#[derive(Clone, PartialEq, Eq)]
pub struct PortSet {
    bits: Box<[u64; 1024]>,
}

impl Default for PortSet {
    fn default() -> Self {
        PortSet { bits: Box::new([0; 1024]) }
    }
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortSet({} ports)", self.len())
    }
}

impl PortSet {
    /// Every port, 1 to 65535.
    pub fn all() -> PortSet {
        let mut set = PortSet::default();
        set.insert_range(1, u16::MAX);
        set
    }

    /// Adds `port`; port 0 is ignored.
    pub fn insert(&mut self, port: u16) {
        if port != 0 {
            self.bits[usize::from(port / 64)] |= 1 << (port % 64);
        }
    }

    /// Adds `first..=last`.
    pub fn insert_range(&mut self, first: u16, last: u16) {
        for port in first..=last {
            self.insert(port);
        }
    }

    /// True when `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.bits[usize::from(port / 64)] & (1 << (port % 64)) != 0
    }

    /// Adds every port of `other`.
    pub fn union_with(&mut self, other: &PortSet) {
        self.bits.iter_mut().zip(other.bits.iter()).for_each(|(a, b)| *a |= b);
    }

    /// Removes every port of `other`.
    pub fn subtract(&mut self, other: &PortSet) {
        self.bits.iter_mut().zip(other.bits.iter()).for_each(|(a, b)| *a &= !b);
    }

    /// How many ports the set holds.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True when the set holds no port.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// The ports in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (1..=u16::MAX).filter(|&p| self.contains(p))
    }
}

/// A parsed `-p` spec: the ports for each transport.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSpec {
    /// Ports to scan over TCP.
    pub tcp: PortSet,
    /// Ports to scan over UDP.
    pub udp: PortSet,
}

/// A port spec that could not be parsed; each variant names the bad token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortSpecError {
    /// An empty spec or an empty item (`22,,80`).
    #[error("empty port list item in '{spec}'; write e.g. 22,80,1000-2000")]
    Empty {
        /// The whole spec.
        spec: String,
    },
    /// A number that is not a port 1-65535.
    #[error("invalid port '{token}'; ports are 1 to 65535")]
    InvalidPort {
        /// The offending token.
        token: String,
    },
    /// A range whose start is above its end.
    #[error("invalid range '{token}'; the first port must not be above the last")]
    Backwards {
        /// The offending token.
        token: String,
    },
    /// A name not in the built-in service table.
    #[error("unknown service name '{token}'; use a port number")]
    UnknownService {
        /// The offending token.
        token: String,
    },
    /// A prefix other than `T:` and `U:`.
    #[error("unknown protocol prefix in '{token}'; use T: or U:")]
    UnknownPrefix {
        /// The offending token.
        token: String,
    },
}

/// Which transports an item applies to.
#[derive(Clone, Copy)]
enum Scope {
    Both,
    Only(Transport),
}

impl FromStr for PortSpec {
    type Err = PortSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parsed = PortSpec::default();
        let mut scope = Scope::Both;
        for raw in spec.split(',') {
            let mut item = raw.trim();
            if let Some((prefix, rest)) = item.split_once(':') {
                scope = match prefix {
                    "T" | "t" => Scope::Only(Transport::Tcp),
                    "U" | "u" => Scope::Only(Transport::Udp),
                    _ => return Err(PortSpecError::UnknownPrefix { token: item.to_owned() }),
                };
                item = rest.trim();
            }
            if item.is_empty() {
                return Err(PortSpecError::Empty { spec: spec.to_owned() });
            }
            parsed.add_item(item, scope)?;
        }
        Ok(parsed)
    }
}

impl PortSpec {
    /// Every port over both transports.
    pub fn all() -> PortSpec {
        PortSpec { tcp: PortSet::all(), udp: PortSet::all() }
    }

    /// The ports for `transport`.
    pub fn get(&self, transport: Transport) -> &PortSet {
        match transport {
            Transport::Tcp => &self.tcp,
            Transport::Udp => &self.udp,
        }
    }

    /// Removes the ports of `other` from each transport.
    pub fn exclude(&mut self, other: &PortSpec) {
        self.tcp.subtract(&other.tcp);
        self.udp.subtract(&other.udp);
    }

    fn add_item(&mut self, item: &str, scope: Scope) -> Result<(), PortSpecError> {
        let mut set = PortSet::default();
        if item.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            let (first, last) = parse_range(item)?;
            set.insert_range(first, last);
            self.add(&set, &set, scope);
            return Ok(());
        }
        let by_name = |table: &[(u16, &str)]| {
            let mut found = PortSet::default();
            table
                .iter()
                .filter(|(_, name)| name.eq_ignore_ascii_case(item))
                .for_each(|&(p, _)| found.insert(p));
            found
        };
        let (tcp, udp) = (by_name(services::TCP), by_name(services::UDP));
        let known = match scope {
            Scope::Both => !tcp.is_empty() || !udp.is_empty(),
            Scope::Only(Transport::Tcp) => !tcp.is_empty(),
            Scope::Only(Transport::Udp) => !udp.is_empty(),
        };
        if !known {
            return Err(PortSpecError::UnknownService { token: item.to_owned() });
        }
        self.add(&tcp, &udp, scope);
        Ok(())
    }

    fn add(&mut self, tcp: &PortSet, udp: &PortSet, scope: Scope) {
        if !matches!(scope, Scope::Only(Transport::Udp)) {
            self.tcp.union_with(tcp);
        }
        if !matches!(scope, Scope::Only(Transport::Tcp)) {
            self.udp.union_with(udp);
        }
    }
}

/// `N`, `N-M`, `-M`, `N-` or `-`.
fn parse_range(token: &str) -> Result<(u16, u16), PortSpecError> {
    let port = |s: &str, default: u16| -> Result<u16, PortSpecError> {
        if s.is_empty() {
            return Ok(default);
        }
        match s.parse::<u16>() {
            Ok(p) if p != 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
            _ => Err(PortSpecError::InvalidPort { token: token.to_owned() }),
        }
    };
    let (first, last) = match token.split_once('-') {
        Some((a, b)) => (port(a, 1)?, port(b, u16::MAX)?),
        None if token.is_empty() => return Err(PortSpecError::InvalidPort { token: token.to_owned() }),
        None => {
            let p = port(token, 0)?;
            (p, p)
        }
    };
    if first > last {
        return Err(PortSpecError::Backwards { token: token.to_owned() });
    }
    Ok((first, last))
}

/// The service name of `port` over `transport` from the built-in table.
pub fn service_name(port: u16, transport: Transport) -> Option<&'static str> {
    let table = match transport {
        Transport::Tcp => services::TCP,
        Transport::Udp => services::UDP,
    };
    table.iter().find(|&&(p, _)| p == port).map(|&(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(set: &PortSet) -> Vec<u16> {
        set.iter().collect()
    }

    fn spec(s: &str) -> Result<PortSpec, PortSpecError> {
        s.parse()
    }

    #[test]
    fn numbers_ranges_and_open_ended_ranges() {
        let s = spec("22,80,1000-1002").unwrap();
        assert_eq!(ports(&s.tcp), [22, 80, 1000, 1001, 1002]);
        assert_eq!(s.tcp, s.udp);
        assert_eq!(ports(&spec("-3").unwrap().tcp), [1, 2, 3]);
        assert_eq!(ports(&spec("65534-").unwrap().tcp), [65534, 65535]);
        assert_eq!(spec("-").unwrap().tcp.len(), 65535);
        assert_eq!(spec("1-65535").unwrap(), PortSpec::all());
        assert_eq!(ports(&spec(" 80 , 80,79").unwrap().tcp), [79, 80]);
    }

    #[test]
    fn prefixes_scope_the_items_after_them() {
        let s = spec("7,U:53,161,T:8000-8001,9").unwrap();
        assert_eq!(ports(&s.tcp), [7, 9, 8000, 8001]);
        assert_eq!(ports(&s.udp), [7, 53, 161]);
        let s = spec("u:53").unwrap();
        assert!(s.tcp.is_empty());
        assert_eq!(ports(&s.udp), [53]);
    }

    #[test]
    fn service_names_resolve_per_transport() {
        let s = spec("http,ssh").unwrap();
        assert_eq!(ports(&s.tcp), [22, 80]);
        assert!(s.udp.is_empty(), "neither is in the UDP table");
        let s = spec("domain,NTP").unwrap();
        assert_eq!(ports(&s.tcp), [53, 123]);
        assert_eq!(ports(&s.udp), [53, 123]);
        assert_eq!(spec("U:http"), Err(PortSpecError::UnknownService { token: "http".into() }));
        assert_eq!(service_name(22, Transport::Tcp), Some("ssh"));
        assert_eq!(service_name(53, Transport::Udp), Some("domain"));
        assert_eq!(service_name(1, Transport::Udp), None);
    }

    #[test]
    fn bad_tokens_are_named() {
        let bad = |s: &str| spec(s).unwrap_err().to_string();
        assert_eq!(bad("0"), "invalid port '0'; ports are 1 to 65535");
        assert_eq!(bad("65536"), "invalid port '65536'; ports are 1 to 65535");
        assert_eq!(bad("22,8o"), "invalid port '8o'; ports are 1 to 65535");
        assert_eq!(bad("1-2-3"), "invalid port '1-2-3'; ports are 1 to 65535");
        assert_eq!(bad("+5"), "unknown service name '+5'; use a port number");
        assert_eq!(bad("90-80"), "invalid range '90-80'; the first port must not be above the last");
        assert_eq!(bad("X:80"), "unknown protocol prefix in 'X:80'; use T: or U:");
        assert!(bad("22,,80").starts_with("empty port list item"));
        assert!(bad("").starts_with("empty port list item"));
        assert!(bad("T:").starts_with("empty port list item"));
        assert_eq!(bad("gopherish"), "unknown service name 'gopherish'; use a port number");
    }

    #[test]
    fn excludes_remove_ports() {
        let mut s = spec("1-10").unwrap();
        s.exclude(&spec("2-9,T:10").unwrap());
        assert_eq!(ports(&s.tcp), [1]);
        assert_eq!(ports(&s.udp), [1, 10]);
    }

    #[test]
    fn the_tables_have_each_port_once_with_a_name() {
        for table in [services::TCP, services::UDP] {
            let mut seen = PortSet::default();
            for &(port, name) in table {
                assert!(!seen.contains(port), "port {port} listed twice");
                assert!(port != 0 && !name.is_empty() && !name.contains(char::is_whitespace));
                seen.insert(port);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_errors_name_a_token(s in "[-0-9a-zA-Z:,]{0,24}") {
            if let Err(e) = spec(&s) {
                let shown = e.to_string();
                proptest::prop_assert!(shown.contains('\'') || shown.starts_with("empty"));
            }
        }

        #[test]
        fn every_range_holds_exactly_its_ports(a in 1u16.., b in 1u16..) {
            let (lo, hi) = (a.min(b), a.max(b));
            let set = spec(&format!("{lo}-{hi}")).unwrap().tcp;
            proptest::prop_assert_eq!(set.len(), usize::from(hi - lo) + 1);
            proptest::prop_assert!(set.contains(lo) && set.contains(hi));
            proptest::prop_assert!(!set.contains(lo - 1) && (hi == u16::MAX || !set.contains(hi + 1)));
        }
    }
}

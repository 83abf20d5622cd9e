//! What to scan: addresses, CIDR blocks, ranges and host names, with
//! excludes, expanded lazily (a `/8` is 16 million addresses and is never
//! held in memory).
//!
//! Forms of one target token:
//!
//! | form | example |
//! |---|---|
//! | IPv4 or IPv6 address | `127.0.0.1`, `::1`, `[::1]` |
//! | CIDR block | `127.0.0.0/30`, `fd00::/120` |
//! | range of whole addresses | `127.0.0.1-127.0.0.9`, `::1-::5` |
//! | range of the last IPv4 octet | `127.0.0.1-9` |
//! | IPv4 octet lists and ranges (each octet `N`, `N-M`, `*` or a comma list of those) | `127.0.0-1.1-3`, `10.0.0.2,8` |
//! | IPv6 address with a zone (interface name or index) | `fe80::1%eth0` |
//! | host name | `localhost` |
//!
//! Pure: host names are returned as names; resolving them is the driver's job.

mod octets;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

pub use octets::OctetSet;

/// One parsed target token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// Every address from `first` to `last`, both included, one family.
    Range {
        /// The first address.
        first: IpAddr,
        /// The last address, not below `first`.
        last: IpAddr,
    },
    /// IPv4 addresses whose octets are each in their set.
    Octets([OctetSet; 4]),
    /// One IPv6 address on the link of a zone (`fe80::1%eth0`): the zone is
    /// an interface name or index, looked up when the scan starts.
    Scoped {
        /// The address.
        ip: Ipv6Addr,
        /// The interface, as written.
        zone: String,
    },
    /// A host name, resolved when its turn comes.
    Name(String),
}

/// A target token that could not be parsed; each variant names the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetSpecError {
    /// The prefix length after `/` is not a number within the family's width.
    #[error("invalid CIDR block '{token}'; the prefix length must be 0-32 for IPv4 and 0-128 for IPv6")]
    InvalidPrefix {
        /// The offending token.
        token: String,
    },
    /// A range whose ends are not addresses of one family in order.
    #[error("invalid address range '{token}'; write e.g. 127.0.0.1-127.0.0.9 or 127.0.0.1-9")]
    InvalidRange {
        /// The offending token.
        token: String,
    },
    /// Neither an address form nor a plausible host name.
    #[error("invalid target '{token}'; expected an address, CIDR block, range or host name")]
    Invalid {
        /// The offending token.
        token: String,
    },
}

impl FromStr for TargetSpec {
    type Err = TargetSpecError;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        let invalid = || TargetSpecError::Invalid { token: token.to_owned() };
        let bare = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(token);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(TargetSpec::Range { first: ip, last: ip });
        }
        if let Some((addr, zone)) = bare.split_once('%') {
            return match addr.parse::<Ipv6Addr>() {
                Ok(ip) if is_zone(zone) => Ok(TargetSpec::Scoped { ip, zone: zone.to_owned() }),
                _ => Err(invalid()),
            };
        }
        if let Some((addr, prefix)) = token.split_once('/') {
            return parse_cidr(token, addr, prefix);
        }
        if token.contains(['-', '*', ',']) {
            match parse_range(token) {
                Ok(range) => return Ok(range),
                Err(e) if looks_like_addresses(token) => return Err(e),
                Err(_) => {}
            }
        }
        if is_host_name(token) { Ok(TargetSpec::Name(token.to_owned())) } else { Err(invalid()) }
    }
}

/// True for tokens that can only be meant as addresses: digits, dots,
/// dashes, commas and stars, or anything with a colon (IPv6).
fn looks_like_addresses(token: &str) -> bool {
    token.contains([':', ',']) || token.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '*'))
}

/// An interface name (up to 15 bytes, no spaces or slashes) or index.
fn is_zone(zone: &str) -> bool {
    (1..=15).contains(&zone.len()) && zone.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'%')
}

/// Letters, digits, `-`, `_` and dots, not starting with `-`, at most 253 long.
fn is_host_name(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 253
        && !token.starts_with(['-', '.'])
        && token.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && token.chars().any(|c| c.is_ascii_alphabetic())
}

fn parse_cidr(token: &str, addr: &str, prefix: &str) -> Result<TargetSpec, TargetSpecError> {
    let bad = || TargetSpecError::InvalidPrefix { token: token.to_owned() };
    let ip: IpAddr = addr.parse().map_err(|_| bad())?;
    let bits: u32 =
        if prefix.bytes().all(|b| b.is_ascii_digit()) { prefix.parse().map_err(|_| bad())? } else { 0xff };
    let (first, last) = match ip {
        IpAddr::V4(v4) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            let base = u32::from(v4) & mask;
            (IpAddr::V4(base.into()), IpAddr::V4((base | !mask).into()))
        }
        IpAddr::V6(v6) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            let base = u128::from(v6) & mask;
            (IpAddr::V6(base.into()), IpAddr::V6((base | !mask).into()))
        }
        _ => return Err(bad()),
    };
    Ok(TargetSpec::Range { first, last })
}

fn parse_range(token: &str) -> Result<TargetSpec, TargetSpecError> {
    let bad = || TargetSpecError::InvalidRange { token: token.to_owned() };
    if let Some((a, b)) = token.split_once('-') {
        match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            (Ok(first @ IpAddr::V4(_)), Ok(last @ IpAddr::V4(_)))
            | (Ok(first @ IpAddr::V6(_)), Ok(last @ IpAddr::V6(_))) => {
                return if first <= last { Ok(TargetSpec::Range { first, last }) } else { Err(bad()) };
            }
            (Ok(_), Ok(_)) => return Err(bad()),
            _ => {}
        }
    }
    // IPv4 octet lists: four dot-separated parts, each a comma list of N, N-M or *.
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 4 {
        return Err(bad());
    }
    let mut octets = [OctetSet::default(); 4];
    for (slot, part) in octets.iter_mut().zip(parts) {
        *slot = part.parse().map_err(|()| bad())?;
    }
    if let [Some(a), Some(b), Some(c), Some(d)] = octets.map(|set| set.only()) {
        let ip = IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        return Ok(TargetSpec::Range { first: ip, last: ip });
    }
    Ok(TargetSpec::Octets(octets))
}

impl TargetSpec {
    /// True when `ip` is one of this spec's addresses (names match nothing:
    /// resolve them first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (TargetSpec::Range { first: IpAddr::V4(a), last: IpAddr::V4(b) }, IpAddr::V4(ip)) => {
                (*a..=*b).contains(&ip)
            }
            (TargetSpec::Range { first: IpAddr::V6(a), last: IpAddr::V6(b) }, IpAddr::V6(ip)) => {
                (*a..=*b).contains(&ip)
            }
            (TargetSpec::Octets(sets), IpAddr::V4(ip)) => {
                sets.iter().zip(ip.octets()).all(|(set, o)| set.contains(o))
            }
            (TargetSpec::Scoped { ip: a, .. }, IpAddr::V6(ip)) => *a == ip,
            _ => false,
        }
    }

    /// How many hosts the spec names, saturating (a name counts as one).
    pub fn len(&self) -> u64 {
        match self {
            TargetSpec::Range { first: IpAddr::V4(a), last: IpAddr::V4(b) } => {
                u64::from(u32::from(*b) - u32::from(*a)) + 1
            }
            TargetSpec::Range { first: IpAddr::V6(a), last: IpAddr::V6(b) } => {
                u64::try_from(u128::from(*b) - u128::from(*a)).map_or(u64::MAX, |n| n.saturating_add(1))
            }
            TargetSpec::Range { .. } => 0,
            TargetSpec::Octets(sets) => sets.iter().map(OctetSet::len).product(),
            TargetSpec::Name(_) | TargetSpec::Scoped { .. } => 1,
        }
    }

    /// Never true: every spec names at least one host.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Range { first, last } if first == last => write!(f, "{first}"),
            TargetSpec::Range { first, last } => write!(f, "{first}-{last}"),
            TargetSpec::Octets(sets) => {
                let parts: Vec<String> = sets.iter().map(OctetSet::to_string).collect();
                f.write_str(&parts.join("."))
            }
            TargetSpec::Scoped { ip, zone } => write!(f, "{ip}%{zone}"),
            TargetSpec::Name(name) => f.write_str(name),
        }
    }
}

/// One host to scan, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// An address, ready to scan.
    Addr(IpAddr),
    /// A name still to resolve (and check against the excludes then).
    Name(String),
    /// An IPv6 address on the link of a zone, still to look up.
    Scoped {
        /// The address.
        ip: Ipv6Addr,
        /// The interface name or index.
        zone: String,
    },
}

/// The hosts of a list of specs, in order, without the excluded addresses;
/// expands one address at a time.
#[derive(Clone, Debug)]
pub struct Hosts<'a> {
    specs: std::slice::Iter<'a, TargetSpec>,
    exclude: &'a [TargetSpec],
    current: Option<Expansion>,
}

#[derive(Clone, Debug)]
enum Expansion {
    V4 { next: u32, last: u32 },
    V6 { next: u128, last: u128 },
    Octets { sets: [OctetSet; 4], next: [u8; 4] },
}

impl<'a> Hosts<'a> {
    /// The hosts of `specs`, skipping addresses that any of `exclude` contains.
    pub fn new(specs: &'a [TargetSpec], exclude: &'a [TargetSpec]) -> Self {
        Hosts { specs: specs.iter(), exclude, current: None }
    }

    /// True when an exclude covers `ip`.
    pub fn is_excluded(&self, ip: IpAddr) -> bool {
        self.exclude.iter().any(|e| e.contains(ip))
    }

    /// Moves the current expansion past `last` (an excluded block's end).
    fn skip_past(&mut self, last: IpAddr) {
        let done = match (&mut self.current, last) {
            (Some(Expansion::V4 { next, last: end }), IpAddr::V4(skip)) => {
                let skip = u32::from(skip);
                *next = skip.wrapping_add(1);
                skip >= *end
            }
            (Some(Expansion::V6 { next, last: end }), IpAddr::V6(skip)) => {
                let skip = u128::from(skip);
                *next = skip.wrapping_add(1);
                skip >= *end
            }
            _ => false,
        };
        if done {
            self.current = None;
        }
    }

    fn next_addr(&mut self) -> Option<IpAddr> {
        let (ip, last) = match self.current.as_mut()? {
            Expansion::V4 { next, last } => {
                let ip = IpAddr::V4(Ipv4Addr::from(*next));
                let done = *next == *last;
                *next = next.wrapping_add(1);
                (ip, done)
            }
            Expansion::V6 { next, last } => {
                let ip = IpAddr::V6(Ipv6Addr::from(*next));
                let done = *next == *last;
                *next = next.wrapping_add(1);
                (ip, done)
            }
            Expansion::Octets { sets, next } => {
                let now = *next;
                let after = step_octets(sets, now);
                *next = after.unwrap_or(now);
                (IpAddr::V4(Ipv4Addr::from(now)), after.is_none())
            }
        };
        if last {
            self.current = None;
        }
        Some(ip)
    }
}

/// The octets after `now` in odometer order, the last octet turning fastest.
fn step_octets(sets: &[OctetSet; 4], mut now: [u8; 4]) -> Option<[u8; 4]> {
    for i in (0..4).rev() {
        if let Some(value) = sets[i].next(Some(now[i])) {
            now[i] = value;
            return Some(now);
        }
        now[i] = sets[i].next(None)?;
    }
    None
}

impl Iterator for Hosts<'_> {
    type Item = Host;

    fn next(&mut self) -> Option<Host> {
        loop {
            while let Some(ip) = self.next_addr() {
                match self.exclude.iter().find(|e| e.contains(ip)) {
                    None => return Some(Host::Addr(ip)),
                    // Jump over the whole excluded block: excluding ::/64 from
                    // ::/48 must not walk 2^64 addresses.
                    Some(TargetSpec::Range { last, .. }) => self.skip_past(*last),
                    Some(_) => {}
                }
            }
            self.current = match self.specs.next()? {
                TargetSpec::Name(name) => return Some(Host::Name(name.clone())),
                TargetSpec::Scoped { ip, zone } => return Some(Host::Scoped { ip: *ip, zone: zone.clone() }),
                TargetSpec::Range { first: IpAddr::V4(a), last: IpAddr::V4(b) } => {
                    Some(Expansion::V4 { next: (*a).into(), last: (*b).into() })
                }
                TargetSpec::Range { first: IpAddr::V6(a), last: IpAddr::V6(b) } => {
                    Some(Expansion::V6 { next: (*a).into(), last: (*b).into() })
                }
                TargetSpec::Range { .. } => None,
                TargetSpec::Octets(sets) => {
                    // A parsed set is never empty.
                    let first = sets.map(|set| set.next(None).unwrap_or(0));
                    Some(Expansion::Octets { sets: *sets, next: first })
                }
            };
        }
    }
}

/// Parses whitespace-separated target tokens (as in an `-iL` file), skipping
/// `#` comments to the end of a line.
///
/// # Errors
/// The first token that does not parse.
pub fn parse_list(text: &str) -> Result<Vec<TargetSpec>, TargetSpecError> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(str::split_whitespace)
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<TargetSpec, TargetSpecError> {
        s.parse()
    }

    fn hosts(specs: &[&str], exclude: &[&str]) -> Vec<String> {
        let specs: Vec<TargetSpec> = specs.iter().map(|s| spec(s).unwrap()).collect();
        let exclude: Vec<TargetSpec> = exclude.iter().map(|s| spec(s).unwrap()).collect();
        Hosts::new(&specs, &exclude)
            .map(|h| match h {
                Host::Addr(ip) => ip.to_string(),
                Host::Name(n) => format!("name:{n}"),
                Host::Scoped { ip, zone } => format!("zone:{ip}%{zone}"),
            })
            .collect()
    }

    #[test]
    fn every_form_expands_in_order() {
        assert_eq!(hosts(&["127.0.0.1", "::1", "[::2]"], &[]), ["127.0.0.1", "::1", "::2"]);
        assert_eq!(hosts(&["127.0.0.4/30"], &[]), ["127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"]);
        assert_eq!(hosts(&["::ff/127"], &[]), ["::fe", "::ff"]);
        assert_eq!(
            hosts(&["127.0.0.254-127.0.1.1"], &[]),
            ["127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1"]
        );
        assert_eq!(hosts(&["127.0.0.1-3"], &[]), ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
        assert_eq!(hosts(&["::1-::3"], &[]), ["::1", "::2", "::3"]);
        assert_eq!(hosts(&["127.0.1-2.8-9"], &[]), ["127.0.1.8", "127.0.1.9", "127.0.2.8", "127.0.2.9"]);
        // nmap's octet lists (issue 19).
        assert_eq!(hosts(&["10.0.0.2,8"], &[]), ["10.0.0.2", "10.0.0.8"]);
        assert_eq!(
            hosts(&["10.0,2.0.1,5-6"], &[]),
            ["10.0.0.1", "10.0.0.5", "10.0.0.6", "10.2.0.1", "10.2.0.5", "10.2.0.6"]
        );
        assert_eq!(spec("10.0.0.2,2"), spec("10.0.0.2"));
        assert_eq!(hosts(&["fe80::1%eth0", "[fe80::2%3]"], &[]), ["zone:fe80::1%eth0", "zone:fe80::2%3"]);
        // Found by the fuzzer: octet ranges of one value each are one address.
        assert_eq!(spec("11.1-01.0-0.0-0"), spec("11.1.0.0"));
        assert_eq!(hosts(&["localhost", "my-host.example"], &[]), ["name:localhost", "name:my-host.example"]);
        assert_eq!(hosts(&["255.255.255.255/31"], &[]), ["255.255.255.254", "255.255.255.255"]);
    }

    #[test]
    fn excludes_drop_addresses_of_any_form() {
        let all = hosts(&["127.0.0.0/28"], &["127.0.0.0-3", "127.0.0.8/29", "127.0.0.5"]);
        assert_eq!(all, ["127.0.0.4", "127.0.0.6", "127.0.0.7"]);
        assert_eq!(hosts(&["127.0.0.1-3"], &["127.0.0.*"]), Vec::<String>::new());
    }

    #[test]
    fn excluding_a_huge_block_skips_it_at_once() {
        let specs = [spec("::/0").unwrap(), spec("127.0.0.1").unwrap()];
        let exclude = [spec("::/1").unwrap(), spec("8000::/1").unwrap()];
        let hosts: Vec<Host> = Hosts::new(&specs, &exclude).collect();
        assert_eq!(hosts, [Host::Addr("127.0.0.1".parse().unwrap())]);
        let specs = [spec("::/96").unwrap()];
        let exclude = [spec("::/97").unwrap()];
        assert_eq!(Hosts::new(&specs, &exclude).next(), Some(Host::Addr("::8000:0".parse().unwrap())));
    }

    #[test]
    fn sizes_and_display_round_trip() {
        assert_eq!(spec("10.0.0.0/8").unwrap().len(), 1 << 24);
        assert_eq!(spec("::/0").unwrap().len(), u64::MAX);
        assert_eq!(spec("1.2.3-4.*").unwrap().len(), 512);
        assert_eq!(spec("10.0.0.1,3-5,9").unwrap().len(), 5);
        for s in [
            "127.0.0.1",
            "127.0.0.0-127.0.0.255",
            "10.1-2.3.4-5",
            "10.0.0.2,8",
            "1.2.*.1,3-5",
            "fe80::1%eth0",
            "localhost",
            "::1",
        ] {
            let parsed = spec(s).unwrap();
            assert_eq!(spec(&parsed.to_string()).unwrap(), parsed, "{s}");
        }
    }

    #[test]
    fn bad_tokens_are_named() {
        let bad = |s: &str| spec(s).unwrap_err().to_string();
        assert!(bad("127.0.0.1/33").starts_with("invalid CIDR block '127.0.0.1/33'"));
        assert!(bad("::1/129").starts_with("invalid CIDR block '::1/129'"));
        assert!(bad("127.0.0.1/x").starts_with("invalid CIDR block"));
        assert!(bad("localhost/24").starts_with("invalid CIDR block 'localhost/24'"));
        assert!(bad("127.0.0.9-1").starts_with("invalid address range '127.0.0.9-1'"));
        assert!(bad("127.0.0.1-::1").starts_with("invalid address range"));
        assert!(bad("127.0.0.300-301").starts_with("invalid address range"));
        assert!(bad("1.2.3").starts_with("invalid target '1.2.3'"));
        assert!(bad("").starts_with("invalid target ''"));
        assert!(bad("bad host").starts_with("invalid target"));
        assert!(bad("-v").starts_with("invalid target '-v'"));
        assert!(bad("1.2.3.4.5").starts_with("invalid target"));
        assert!(bad("10.0.0.2,").starts_with("invalid address range '10.0.0.2,'"));
        assert!(bad("10.0.0.9-1,2").starts_with("invalid address range"));
        assert!(bad("127.0.0.1%eth0").starts_with("invalid target"));
        assert!(bad("fe80::1%").starts_with("invalid target"));
    }

    #[test]
    fn lists_skip_comments_and_blank_lines() {
        let list = parse_list("# fixture\n127.0.0.1 ::1\n\n  localhost # me\n").unwrap();
        assert_eq!(list.len(), 3);
        assert!(parse_list("127.0.0.1\n300.1.1.1/8").unwrap_err().to_string().contains("300.1.1.1/8"));
    }

    proptest::proptest! {
        #[test]
        fn whatever_parses_displays_and_parses_back(s in "[-0-9a-f.:/*,%\\[\\]]{0,40}") {
            if let Ok(parsed) = spec(&s) {
                proptest::prop_assert_eq!(spec(&parsed.to_string()), Ok(parsed));
            }
        }

        #[test]
        fn a_cidr_block_contains_exactly_its_addresses(ip: u32, bits in 16u32..=32, probe: u32) {
            let block = spec(&format!("{}/{bits}", Ipv4Addr::from(ip))).unwrap();
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            let inside = probe & mask == ip & mask;
            proptest::prop_assert_eq!(block.contains(IpAddr::V4(probe.into())), inside);
        }
    }
}

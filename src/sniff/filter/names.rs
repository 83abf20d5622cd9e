//! The names a filter may use instead of numbers: libpcap's constants
//! (`tcpflags`, `icmp-echo`, `\udp`...), host names and service names. The
//! last two come from the system through [`Names`], which the caller
//! provides: this module reads no file and asks no resolver.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::services;

/// Where a filter's host and service names are looked up.
pub trait Names {
    /// The addresses of a host name (none: unknown).
    fn host(&self, name: &str) -> Vec<IpAddr>;
    /// The ports a service name has, per transport.
    fn service(&self, name: &str) -> ServicePorts;
}

/// A service name's port for each transport that lists it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServicePorts {
    /// Its TCP port.
    pub tcp: Option<u16>,
    /// Its UDP port.
    pub udp: Option<u16>,
    /// Its SCTP port.
    pub sctp: Option<u16>,
}

/// No host names, and services from the crate's built-in table: what a
/// filter means where no system database is read.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltinNames;

impl Names for BuiltinNames {
    fn host(&self, _name: &str) -> Vec<IpAddr> {
        Vec::new()
    }

    fn service(&self, name: &str) -> ServicePorts {
        let find = |table: &[(u16, &str)]| {
            table.iter().find(|(_, service)| service.eq_ignore_ascii_case(name)).map(|&(port, _)| port)
        };
        ServicePorts { tcp: find(services::TCP), udp: find(services::UDP), sctp: None }
    }
}

/// A services database in the format of `/etc/services` (services(5)):
/// `name port/protocol [aliases...]`, `#` comments.
#[derive(Clone, Debug, Default)]
pub struct Services {
    by_name: HashMap<String, ServicePorts>,
}

impl Services {
    /// Reads the database's text; lines that do not parse are skipped, as
    /// the C library skips them.
    pub fn parse(text: &str) -> Self {
        let mut by_name: HashMap<String, ServicePorts> = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (words.next(), words.next()) else { continue };
            let Some((port, proto)) = port_proto.split_once('/') else { continue };
            let Ok(port) = port.parse::<u16>() else { continue };
            for alias in std::iter::once(name).chain(words) {
                let entry = by_name.entry(alias.to_ascii_lowercase()).or_default();
                // The first line for a name and protocol wins, as getservbyname's does.
                let slot = match proto {
                    "tcp" => &mut entry.tcp,
                    "udp" => &mut entry.udp,
                    "sctp" => &mut entry.sctp,
                    _ => continue,
                };
                slot.get_or_insert(port);
            }
        }
        Services { by_name }
    }

    /// A name's ports (none for an unknown name).
    pub fn lookup(&self, name: &str) -> ServicePorts {
        self.by_name.get(&name.to_ascii_lowercase()).copied().unwrap_or_default()
    }

    /// Whether the database names nothing (an empty or unreadable file).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// libpcap's named constants, usable wherever a number is.
pub(super) fn constant(word: &str) -> Option<u32> {
    const CONSTANTS: &[(&str, u32)] = &[
        ("icmptype", 0),
        ("icmpcode", 1),
        ("icmp-echoreply", 0),
        ("icmp-unreach", 3),
        ("icmp-sourcequench", 4),
        ("icmp-redirect", 5),
        ("icmp-echo", 8),
        ("icmp-routeradvert", 9),
        ("icmp-routersolicit", 10),
        ("icmp-timxceed", 11),
        ("icmp-paramprob", 12),
        ("icmp-tstamp", 13),
        ("icmp-tstampreply", 14),
        ("icmp-ireq", 15),
        ("icmp-ireqreply", 16),
        ("icmp-maskreq", 17),
        ("icmp-maskreply", 18),
        ("icmp6type", 0),
        ("icmp6code", 1),
        ("icmp6-destinationunreach", 1),
        ("icmp6-packettoobig", 2),
        ("icmp6-timeexceeded", 3),
        ("icmp6-parameterproblem", 4),
        ("icmp6-echo", 128),
        ("icmp6-echoreply", 129),
        ("icmp6-multicastlistenerquery", 130),
        ("icmp6-multicastlistenerreportv1", 131),
        ("icmp6-multicastlistenerdone", 132),
        ("icmp6-routersolicit", 133),
        ("icmp6-routeradvert", 134),
        ("icmp6-neighborsolicit", 135),
        ("icmp6-neighboradvert", 136),
        ("icmp6-redirect", 137),
        ("icmp6-routerrenum", 138),
        ("icmp6-nodeinformationquery", 139),
        ("icmp6-nodeinformationresponse", 140),
        ("icmp6-ineighbordiscoverysolicit", 141),
        ("icmp6-ineighbordiscoveryadvert", 142),
        ("icmp6-multicastlistenerreportv2", 143),
        ("icmp6-homeagentdiscoveryrequest", 144),
        ("icmp6-homeagentdiscoveryreply", 145),
        ("icmp6-mobileprefixsolicit", 146),
        ("icmp6-mobileprefixadvert", 147),
        ("icmp6-certpathsolicit", 148),
        ("icmp6-certpathadvert", 149),
        ("icmp6-multicastrouteradvert", 151),
        ("icmp6-multicastroutersolicit", 152),
        ("icmp6-multicastrouterterm", 153),
        ("tcpflags", 13),
        ("tcp-fin", 0x01),
        ("tcp-syn", 0x02),
        ("tcp-rst", 0x04),
        ("tcp-push", 0x08),
        ("tcp-ack", 0x10),
        ("tcp-urg", 0x20),
        ("tcp-ece", 0x40),
        ("tcp-cwr", 0x80),
    ];
    CONSTANTS.iter().find(|(name, _)| *name == word).map(|&(_, value)| value)
}

/// A number as libpcap writes them: decimal, `0x` hex, or `0` octal.
pub(super) fn number(word: &str) -> Option<u32> {
    if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    if word.len() > 1
        && let Some(octal) = word.strip_prefix('0')
    {
        return u32::from_str_radix(octal, 8).ok();
    }
    if word.bytes().all(|b| b.is_ascii_digit()) { word.parse().ok() } else { None }
}

/// IP protocol names (`ip proto \udp`), as /etc/protocols spells them.
pub(super) fn ip_protocol(name: &str) -> Option<u8> {
    const PROTOCOLS: &[(&str, u8)] = &[
        ("ip", 0),
        ("icmp", 1),
        ("igmp", 2),
        ("ggp", 3),
        ("ipencap", 4),
        ("st", 5),
        ("tcp", 6),
        ("egp", 8),
        ("igp", 9),
        ("pup", 12),
        ("udp", 17),
        ("hmp", 20),
        ("xns-idp", 22),
        ("rdp", 27),
        ("iso-tp4", 29),
        ("dccp", 33),
        ("xtp", 36),
        ("ddp", 37),
        ("idpr-cmtp", 38),
        ("ipv6", 41),
        ("ipv6-route", 43),
        ("ipv6-frag", 44),
        ("idrp", 45),
        ("rsvp", 46),
        ("gre", 47),
        ("esp", 50),
        ("ah", 51),
        ("skip", 57),
        ("ipv6-icmp", 58),
        ("icmp6", 58),
        ("ipv6-nonxt", 59),
        ("ipv6-opts", 60),
        ("rspf", 73),
        ("vmtp", 81),
        ("eigrp", 88),
        ("ospf", 89),
        ("ax.25", 93),
        ("ipip", 94),
        ("etherip", 97),
        ("encap", 98),
        ("pim", 103),
        ("ipcomp", 108),
        ("vrrp", 112),
        ("l2tp", 115),
        ("isis", 124),
        ("sctp", 132),
        ("fc", 133),
        ("mobility-header", 135),
        ("udplite", 136),
        ("mpls-in-ip", 137),
        ("manet", 138),
        ("hip", 139),
        ("shim6", 140),
        ("wesp", 141),
        ("rohc", 142),
        ("ethernet", 143),
    ];
    PROTOCOLS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, number)| number)
}

/// EtherType names (`ether proto \arp`) that need no 802.2 decoding.
pub(super) fn ether_protocol(name: &str) -> Option<u16> {
    const TYPES: &[(&str, u16)] = &[
        ("ip", 0x0800),
        ("ip6", 0x86dd),
        ("arp", 0x0806),
        ("rarp", 0x8035),
        ("decnet", 0x6003),
        ("lat", 0x6004),
        ("sca", 0x6007),
        ("moprc", 0x6002),
        ("mopdl", 0x6001),
    ];
    TYPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, number)| number)
}

/// A MAC address: `xx:xx:xx:xx:xx:xx` (or with `-` or `.`), `xxxx.xxxx.xxxx`,
/// or 12 hex digits.
pub(super) fn mac(text: &str) -> Option<[u8; 6]> {
    let hex =
        |part: &str| (!part.is_empty() && part.len() <= 2).then(|| u8::from_str_radix(part, 16).ok())?;
    let mut out = [0u8; 6];
    for separator in [':', '-', '.'] {
        let parts: Vec<&str> = text.split(separator).collect();
        if parts.len() == 6 {
            for (slot, part) in out.iter_mut().zip(&parts) {
                *slot = hex(part)?;
            }
            return Some(out);
        }
    }
    let digits: String = match text.split('.').collect::<Vec<_>>().as_slice() {
        [a, b, c] if [a, b, c].iter().all(|p| p.len() == 4) => format!("{a}{b}{c}"),
        [whole] if whole.len() == 12 => (*whole).to_owned(),
        _ => return None,
    };
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A dotted IPv4 address with 1 to 4 parts, as libpcap reads `host 10.1`
/// and `net 192.168`: the value, left-aligned, and how many bits were given.
pub(super) fn dotted_ipv4(text: &str) -> Option<(u32, u8)> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 || parts.len() < 2 {
        return None;
    }
    let mut value = 0u32;
    for part in &parts {
        let byte = number(part).filter(|&n| n <= 255)?;
        value = (value << 8) | byte;
    }
    let bits = 8 * parts.len() as u8;
    Some((value << (32 - u32::from(bits)), bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_keep_their_transports_and_aliases() {
        let db = Services::parse(
            "# comment\nhttp 80/tcp www # WorldWideWeb\ndomain 53/tcp\ndomain 53/udp\nsyslog 514/udp\nbad x/tcp\n",
        );
        assert_eq!(db.lookup("www"), ServicePorts { tcp: Some(80), udp: None, sctp: None });
        assert_eq!(db.lookup("HTTP").tcp, Some(80));
        assert_eq!(db.lookup("domain"), ServicePorts { tcp: Some(53), udp: Some(53), sctp: None });
        assert_eq!(db.lookup("syslog").udp, Some(514));
        assert_eq!(db.lookup("nope"), ServicePorts::default());
    }

    #[test]
    fn numbers_macs_and_short_addresses() {
        assert_eq!(number("010"), Some(8));
        assert_eq!(number("0x1fff"), Some(0x1fff));
        assert_eq!(number("0"), Some(0));
        assert_eq!(number("09"), None);
        assert_eq!(mac("2:0:0:0:0:1"), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(mac("0200.0000.00ff"), Some([2, 0, 0, 0, 0, 0xff]));
        assert_eq!(mac("02-00-00-00-00-0g"), None);
        assert_eq!(dotted_ipv4("10.1"), Some((0x0a01_0000, 16)));
        assert_eq!(dotted_ipv4("10"), None);
    }
}

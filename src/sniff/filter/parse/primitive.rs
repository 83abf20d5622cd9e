//! Primitives: the words that test one thing (`tcp`, `host 10.0.0.1`,
//! `port http`, `vlan 100`), with their qualifiers and values.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::names::{constant, ether_protocol, ip_protocol, mac, number};
use super::super::{Dir, Filter, Layer, Primitive};
use super::arith::load_layer;
use super::{FilterError, Parsed, Parser};

/// What a bare value repeats: `port 80 or 443`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Template {
    Host { family: Option<Layer>, dir: Dir },
    Net { family: Option<Layer>, dir: Dir },
    Port { proto: Option<Layer>, dir: Dir },
    PortRange { proto: Option<Layer>, dir: Dir },
    EtherHost { dir: Dir },
}

const PRIMITIVES: &str = "a primitive: ip, ip6, arp, rarp, tcp, udp, sctp, icmp, icmp6, igmp, host, net, \
                          port, portrange, src, dst, ether, proto, vlan, broadcast, multicast, less, greater, \
                          a comparison such as tcp[13] & 2 != 0, not or '('";

/// Words of the language; anything else after a primitive's qualifiers is a value.
const KEYWORDS: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "sctp",
    "icmp",
    "icmp6",
    "igmp",
    "ether",
    "link",
    "src",
    "dst",
    "host",
    "net",
    "mask",
    "port",
    "portrange",
    "proto",
    "vlan",
    "broadcast",
    "multicast",
    "less",
    "greater",
    "len",
    "length",
    "not",
    "and",
    "or",
];

/// pcap-filter(7) words that make no sense for Linux captures or that
/// socketeer does not implement; named in the error.
const UNSUPPORTED: &[&str] = &[
    "gateway",
    "protochain",
    "mpls",
    "pppoed",
    "pppoes",
    "geneve",
    "atalk",
    "aarp",
    "decnet",
    "iso",
    "stp",
    "ipx",
    "netbeui",
    "lat",
    "sca",
    "moprc",
    "mopdl",
    "llc",
    "wlan",
    "type",
    "subtype",
    "dir",
    "inbound",
    "outbound",
    "ifname",
    "on",
    "rnr",
    "rulenum",
    "reason",
    "rset",
    "ruleset",
    "srnr",
    "subrulenum",
    "action",
    "fddi",
    "tr",
    "ppp",
    "slip",
    "decnet",
    "iso",
    "esis",
    "isis",
    "clnp",
    "l1",
    "l2",
    "iih",
    "lsp",
    "snp",
    "csnp",
    "psnp",
    "vpi",
    "vci",
    "lane",
    "oamf4s",
    "oamf4e",
    "oamf4",
    "oam",
    "metac",
    "bcc",
    "sc",
    "ilmic",
    "metaconnect",
    "connectmsg",
    "ra",
    "ta",
    "addr1",
    "addr2",
    "addr3",
    "addr4",
    "radio",
    "hdpkt",
    "carp",
    "vrrp",
    "pim",
    "igrp",
    "ah",
    "esp",
];

impl Parser<'_, '_> {
    pub(super) fn primitive(&mut self) -> Result<Parsed, FilterError> {
        let Some(token) = self.peek() else { return Err(self.error(None, PRIMITIVES)) };
        let word = token.text.to_ascii_lowercase();
        let followed_by_operator = self.peek_at(1).is_some_and(|t| {
            matches!(t.text, "[" | "+" | "-" | "*" | "/" | "%" | "&" | "|" | "^" | "<<" | ">>")
                || matches!(t.text, ">" | "<" | ">=" | "<=" | "=" | "==" | "!=")
        });
        if let Some(template) = self.last
            && token.is_word()
            && !KEYWORDS.contains(&word.as_str())
            && constant(&word).is_none()
            && !followed_by_operator
        {
            return self.value(template);
        }
        if self.starts_arith() {
            let expr = self.arith()?;
            return self.compare(expr);
        }
        self.bump();
        let layer = load_layer(&word);
        let next_is = |p: &Self, words: &[&str]| p.peek_is(words);
        let is = |primitive| Ok(Parsed::Bool(Filter::Is(primitive)));
        match word.as_str() {
            "ip" | "ip6" | "arp" | "rarp" => {
                let family = layer;
                if next_is(self, &["src", "dst", "host", "net"]) {
                    let dir = self.dir();
                    self.qualified(dir, family)
                } else if next_is(self, &["proto"]) && matches!(family, Some(Layer::Ip | Layer::Ip6)) {
                    self.bump();
                    self.ip_proto(family)
                } else if next_is(self, &["multicast"]) && matches!(family, Some(Layer::Ip | Layer::Ip6)) {
                    self.bump();
                    is(Primitive::Multicast(family.unwrap_or(Layer::Ip)))
                } else if next_is(self, &["broadcast"]) && family == Some(Layer::Ip) {
                    self.bump();
                    is(Primitive::IpBroadcast)
                } else {
                    is(Primitive::Proto(family.unwrap_or(Layer::Ip)))
                }
            }
            "tcp" | "udp" | "sctp" => {
                if !next_is(self, &["src", "dst", "port", "portrange"]) {
                    return is(Primitive::Proto(layer.unwrap_or(Layer::Tcp)));
                }
                let dir = self.dir();
                let kind = self.bump();
                match kind.map(|t| t.text.to_ascii_lowercase()).as_deref() {
                    Some("port") => self.value(Template::Port { proto: layer, dir }),
                    Some("portrange") => self.value(Template::PortRange { proto: layer, dir }),
                    _ => Err(self.error(kind, &format!("'port' or 'portrange' after '{word}'"))),
                }
            }
            "icmp" | "icmp6" | "igmp" => is(Primitive::Proto(layer.unwrap_or(Layer::Icmp))),
            "ether" | "link" => self.ether(),
            "src" | "dst" | "host" | "net" | "port" | "portrange" => {
                self.next -= 1;
                let dir = self.dir();
                self.qualified(dir, None)
            }
            "proto" => self.ip_proto(None),
            "vlan" => self.vlan(),
            "broadcast" => is(Primitive::Broadcast),
            "multicast" => is(Primitive::Multicast(Layer::Link)),
            "less" | "greater" => {
                let value = self.bump();
                let n = value
                    .and_then(|t| number(&t.text.to_ascii_lowercase()))
                    .ok_or_else(|| self.error(value, &format!("a length in bytes after '{word}'")))?;
                is(if word == "less" { Primitive::Less(n) } else { Primitive::Greater(n) })
            }
            _ if UNSUPPORTED.contains(&word.as_str()) => Err(self.fail(
                Some(token),
                &format!("'{word}' is in pcap-filter(7) but not supported by socketeer (see sniff --help)"),
            )),
            _ => Err(self.error(Some(token), PRIMITIVES)),
        }
    }

    /// `src`, `dst`, `src or dst`, `src and dst`, or nothing (either).
    fn dir(&mut self) -> Dir {
        let first = self.peek().map(|t| t.text.to_ascii_lowercase());
        let (Some(first @ ("src" | "dst")), true) = (first.as_deref(), true) else { return Dir::Either };
        let other = if first == "src" { "dst" } else { "src" };
        let joined = self.peek_at(1).map(|t| t.text.to_ascii_lowercase());
        let combined = matches!(joined.as_deref(), Some("or" | "and"))
            && self.peek_at(2).is_some_and(|t| t.text.eq_ignore_ascii_case(other));
        if combined {
            self.next += 3;
            return if joined.as_deref() == Some("and") { Dir::Both } else { Dir::Either };
        }
        self.bump();
        if first == "src" { Dir::Src } else { Dir::Dst }
    }

    /// After a direction: `host`, `net`, `port`, `portrange`, or an address;
    /// after a `family` (`ip`, `ip6`, `arp`, `rarp`) only addresses.
    fn qualified(&mut self, dir: Dir, family: Option<Layer>) -> Result<Parsed, FilterError> {
        let next = self.peek().map(|t| t.text.to_ascii_lowercase());
        let template = match next.as_deref() {
            Some("host") => Template::Host { family, dir },
            Some("net") => Template::Net { family, dir },
            Some("port") if family.is_none() => Template::Port { proto: None, dir },
            Some("portrange") if family.is_none() => Template::PortRange { proto: None, dir },
            Some(word) if !KEYWORDS.contains(&word) && self.peek().is_some_and(|t| t.is_word()) => {
                return self.value(Template::Host { family, dir });
            }
            _ if family.is_some() => return Err(self.error(self.peek(), "'host', 'net' or an address")),
            _ => return Err(self.error(self.peek(), "'host', 'net', 'port', 'portrange' or an address")),
        };
        self.bump();
        self.value(template)
    }

    /// `ether [src|dst] host MAC`, `ether proto N`, `ether broadcast`, `ether multicast`.
    fn ether(&mut self) -> Result<Parsed, FilterError> {
        let is = |primitive| Ok(Parsed::Bool(Filter::Is(primitive)));
        if self.peek_is(&["src", "dst", "host"]) {
            let dir = self.dir();
            if self.peek_is(&["host"]) {
                self.bump();
            }
            return self.value(Template::EtherHost { dir });
        }
        let token = self.bump();
        match token.map(|t| t.text.to_ascii_lowercase()).as_deref() {
            Some("proto") => {
                let value = self.bump();
                let text = value.map_or("", |t| t.text);
                let name = text.trim_start_matches('\\');
                let number = number(&name.to_ascii_lowercase())
                    .and_then(|n| u16::try_from(n).ok())
                    .or_else(|| ether_protocol(name))
                    .ok_or_else(|| self.error(value, "an EtherType such as 0x0800 or \\arp"))?;
                // libpcap decodes 802.2 LLC for these; socketeer does not.
                if matches!(number, 0x06 | 0xe0 | 0xf0 | 0xfe | 0x809b | 0x80f3) {
                    return Err(
                        self.fail(value, "this protocol needs 802.2 LLC decoding, which socketeer lacks")
                    );
                }
                is(Primitive::EtherProto(number))
            }
            Some("broadcast") => is(Primitive::Broadcast),
            Some("multicast") => is(Primitive::Multicast(Layer::Link)),
            _ => {
                Err(self
                    .error(token, "'host', 'src', 'dst', 'proto', 'broadcast' or 'multicast' after 'ether'"))
            }
        }
    }

    /// The protocol after `proto`, `ip proto` or `ip6 proto`.
    fn ip_proto(&mut self, family: Option<Layer>) -> Result<Parsed, FilterError> {
        let value = self.bump();
        let text = value.map_or("", |t| t.text);
        let name = text.trim_start_matches('\\');
        let number = number(&name.to_ascii_lowercase())
            .and_then(|n| u8::try_from(n).ok())
            .or_else(|| ip_protocol(name))
            .ok_or_else(|| self.error(value, "a protocol number (0 to 255) or name such as \\udp"))?;
        Ok(Parsed::Bool(Filter::Is(Primitive::IpProto { family, number })))
    }

    fn vlan(&mut self) -> Result<Parsed, FilterError> {
        let id = match self.peek().and_then(|t| number(&t.text.to_ascii_lowercase())) {
            Some(id) if id > 4095 => {
                return Err(self.fail(self.peek(), &format!("VLAN id {id} is greater than the maximum 4095")));
            }
            Some(id) => {
                self.bump();
                Some(id as u16)
            }
            None => None,
        };
        Ok(Parsed::Bool(Filter::Is(Primitive::Vlan(id))))
    }

    /// The value a template wants, and the template kept for bare values after.
    fn value(&mut self, template: Template) -> Result<Parsed, FilterError> {
        let token = self.bump();
        let text = token.map_or("", |t| t.text);
        let primitives = match template {
            Template::Host { family, dir } => self
                .addresses(token, family, false)?
                .into_iter()
                .map(|(net, prefix)| Primitive::Net { family, dir, net, prefix })
                .collect(),
            Template::Net { family, dir } => self
                .addresses(token, family, true)?
                .into_iter()
                .map(|(net, prefix)| Primitive::Net { family, dir, net, prefix })
                .collect(),
            Template::Port { proto, dir } => {
                let (proto, port) = self.port(token, text, proto)?;
                vec![Primitive::Port { proto, dir, first: port, last: port }]
            }
            Template::PortRange { proto, dir } => {
                let (proto, first, last) = self.port_range(token, text, proto)?;
                vec![Primitive::Port { proto, dir, first, last }]
            }
            Template::EtherHost { dir } => {
                let mac = mac(text).ok_or_else(|| {
                    self.error(
                        token,
                        "an Ethernet address such as 02:00:00:00:00:01 (/etc/ethers is not read)",
                    )
                })?;
                vec![Primitive::EtherHost { dir, mac }]
            }
        };
        self.last = Some(template);
        let mut filters = primitives.into_iter().map(Filter::Is);
        let first = filters.next().ok_or_else(|| self.error(token, "an address"))?;
        Ok(Parsed::Bool(filters.fold(first, |all, one| Filter::Or(Box::new(all), Box::new(one)))))
    }
}

/// The network address of `addr` under a prefix of `bits`.
pub(super) fn masked(addr: IpAddr, bits: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            Ipv4Addr::from(u32::from(a) & u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0)).into()
        }
        IpAddr::V6(a) => {
            Ipv6Addr::from(u128::from(a) & u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0)).into()
        }
    }
}

/// A dotted quad mask's prefix length, when its bits are contiguous.
pub(super) fn mask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let prefix = bits.leading_ones();
    (bits.checked_shl(prefix).unwrap_or(0) == 0).then_some(prefix as u8)
}

/// Addresses of `family`: ARP and RARP carry IPv4 ones.
pub(super) fn fits(family: Option<Layer>, addr: IpAddr) -> bool {
    match family {
        Some(Layer::Ip6) => addr.is_ipv6(),
        Some(_) => addr.is_ipv4(),
        None => true,
    }
}

//! How a [`Summary`] reads: tcpdump's one-line layout, and the per-layer
//! header details of `-v`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    ArpOperation, EtherType, IpNumber, LaxNetSlice, LinkSlice, TcpOptionElement, TcpSlice, TransportSlice,
};

use super::{Mac, Proto, Summary, TcpFlags, slice};
use crate::sniff::LinkType;

impl fmt::Display for Summary {
    /// tcpdump's one-line layout, without the timestamp:
    /// `IP 127.0.0.1.45678 > 127.0.0.1.7007: Flags [S], seq 1, win 65495, length 0`
    /// (sequence numbers absolute, as `tcpdump -S` prints them).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = |ip: Option<IpAddr>, port: Option<u16>| match (ip, port) {
            (Some(ip), Some(port)) => format!("{ip}.{port}"),
            (Some(ip), None) => ip.to_string(),
            (None, _) => "?".to_owned(),
        };
        match self.proto {
            Proto::Ether => {
                if let (Some(src), Some(dst)) = (self.mac_src, self.mac_dst) {
                    write!(f, "{src} > {dst}, ")?;
                }
                match self.ether_type {
                    Some(t) => {
                        write!(f, "ethertype {} (0x{t:04x}), length {}", ether_name(t), self.payload_len)?
                    }
                    None => write!(f, "frame, length {}", self.payload_len)?,
                }
            }
            Proto::Arp => write_arp(f, self)?,
            _ => {
                let family = if matches!(self.src, Some(IpAddr::V6(_))) { "IP6" } else { "IP" };
                write!(
                    f,
                    "{family} {} > {}: ",
                    endpoint(self.src, self.sport),
                    endpoint(self.dst, self.dport)
                )?;
                write_transport(f, self)?;
            }
        }
        if let Some(problem) = &self.problem {
            write!(f, " [{problem}]")?;
        }
        Ok(())
    }
}

fn write_transport(f: &mut fmt::Formatter<'_>, s: &Summary) -> fmt::Result {
    let len = s.payload_len;
    match (s.proto, &s.tcp, &s.icmp) {
        (Proto::Tcp, Some(tcp), _) => {
            // As tcpdump -S: absolute numbers, and no `seq` on a pure ACK.
            write!(f, "Flags [{}]", tcp.flags)?;
            let sequenced = tcp.flags.0 & (TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST) != 0;
            if len > 0 || sequenced {
                write!(f, ", seq {}", tcp.seq)?;
            }
            if len > 0 {
                write!(f, ":{}", tcp.seq.wrapping_add(len as u32))?;
            }
            if tcp.flags.has(TcpFlags::ACK) {
                write!(f, ", ack {}", tcp.ack)?;
            }
            write!(f, ", win {}", tcp.win)?;
            if tcp.flags.has(TcpFlags::URG) {
                write!(f, ", urg {}", tcp.urg)?;
            }
            if let Some(options) = &s.tcp_options {
                write!(f, ", options [{options}]")?;
            }
            write!(f, ", length {len}")
        }
        (Proto::Udp, _, _) => match &s.dns {
            // tcpdump's DNS line: the message, then its length in parentheses
            // (not after a datagram too short to be one, or a message cut short).
            Some(dns) if s.payload_len < super::dns::HEADER_LEN || dns.ends_with(super::dns::CUT) => {
                f.write_str(dns)
            }
            Some(dns) => write!(f, "{dns} ({len})"),
            None => write!(f, "UDP, length {len}"),
        },
        (Proto::Icmp | Proto::Icmp6, _, Some(icmp)) => {
            let name = if s.proto == Proto::Icmp { "ICMP " } else { "ICMP6, " };
            write!(f, "{name}")?;
            super::icmp::write(f, icmp, s.proto == Proto::Icmp6)?;
            write!(f, ", length {len}")
        }
        _ => {
            let proto = s.ip_proto.map(IpNumber).and_then(IpNumber::keyword_str).unwrap_or("unknown");
            write!(f, "ip-proto-{} {proto}", s.ip_proto.unwrap_or(0))?;
            if s.fragment {
                write!(f, " (fragment)")?;
            }
            write!(f, ", length {len}")
        }
    }
}

fn write_arp(f: &mut fmt::Formatter<'_>, s: &Summary) -> fmt::Result {
    let ip = |a: Option<IpAddr>| a.map_or_else(|| "?".to_owned(), |a| a.to_string());
    let arp = s.arp.unwrap_or_default();
    match ArpOperation(arp.op) {
        ArpOperation::REQUEST => write!(f, "ARP, Request who-has {} tell {}", ip(s.dst), ip(s.src))?,
        ArpOperation::REPLY => {
            let mac = arp.sender_mac.map_or_else(|| "?".to_owned(), |m| m.to_string());
            write!(f, "ARP, Reply {} is-at {mac}", ip(s.src))?;
        }
        other => write!(f, "ARP, operation {}", other.0)?,
    }
    write!(f, ", length {}", s.payload_len)
}

fn ether_name(ether_type: u16) -> &'static str {
    match EtherType(ether_type) {
        EtherType::IPV4 => "IPv4",
        EtherType::IPV6 => "IPv6",
        EtherType::ARP => "ARP",
        EtherType::VLAN_TAGGED_FRAME => "802.1Q",
        EtherType::PROVIDER_BRIDGING => "802.1Q-QinQ",
        EtherType::VLAN_DOUBLE_TAGGED_FRAME => "802.1Q-9100",
        EtherType::WAKE_ON_LAN => "Wake-on-LAN",
        _ => match ether_type {
            0x88cc => "LLDP",
            0x888e => "EAPOL",
            0x8847 | 0x8848 => "MPLS",
            _ => "unknown",
        },
    }
}

impl Summary {
    /// The line tcpdump's `-q` prints: `tcp 6` for TCP, `UDP, length 29`
    /// for UDP whatever it carries, the rest as usual.
    pub fn quiet(&self) -> String {
        if self.dns.is_some() {
            let plain = Summary { dns: None, ..self.clone() };
            return plain.to_string();
        }
        match (self.proto, &self.problem) {
            (Proto::Tcp, None) => {
                let line = self.to_string();
                let head = line.split_once(": ").map_or(line.as_str(), |(head, _)| head);
                format!("{head}: tcp {}", self.payload_len)
            }
            _ => self.to_string(),
        }
    }
}

/// Where the network layer starts in a frame of `link` type (past any
/// 802.1Q tags): what tcpdump's `-X` dumps.
pub fn network_offset(link: LinkType, frame: &[u8]) -> usize {
    match link {
        LinkType::Ethernet => {
            let mut at = 14;
            while matches!(frame.get(at - 2..at), Some([0x81, 0x00] | [0x88, 0xa8] | [0x91, 0x00])) {
                at += 4;
            }
            at.min(frame.len())
        }
        LinkType::LinuxSll => 16.min(frame.len()),
        LinkType::LinuxSll2 => 20.min(frame.len()),
        LinkType::RawIp => 0,
        LinkType::Null => 4.min(frame.len()),
    }
}

/// tcpdump's `-e` prefix: `02:00:00:00:00:0a > 02:00:00:00:00:0b, ethertype
/// IPv4 (0x0800), length 74: ` (for cooked captures, the direction and the
/// source).
///
/// `quick` (tcpdump's `-q`): the EtherType by name alone after an Ethernet
/// header, and none after a cooked one.
pub fn link_header(link: LinkType, frame: &[u8], wire_len: u32, quick: bool) -> Option<String> {
    let ((packet, cooked), ether_type) = slice(link, frame).ok().zip(frame.get(12..14))?;
    let kind = |t: u16| match quick {
        false => format!("ethertype {} (0x{t:04x}), length {wire_len}: ", ether_name(t)),
        true => format!("{}, length {wire_len}: ", ether_name(t)),
    };
    // Each tag as tcpdump shows it: `vlan 100, p 0, ethertype IPv4 (0x0800), `
    // after an Ethernet header (`vlan 100, p 0, IPv4, ` with -q), without
    // the number after a cooked one (and without the type with -q).
    let tags = |ethernet: bool| {
        let mut words = String::new();
        for tag in vlan_tags(&packet) {
            let inner = tag.ether_type().0;
            let dei = if tag.drop_eligible_indicator() { ", DEI" } else { "" };
            let name = ether_name(inner);
            let kind = match (ethernet, quick) {
                (true, false) => format!("ethertype {name} (0x{inner:04x}), "),
                (true, true) => format!("{name}, "),
                (false, false) => format!("ethertype {name}, "),
                (false, true) => String::new(),
            };
            let (id, priority) = (tag.vlan_identifier().value(), tag.priority_code_point().value());
            words.push_str(&format!("vlan {id}, p {priority}{dei}, {kind}"));
        }
        words
    };
    if let Some(LinkSlice::Ethernet2(eth)) = &packet.link {
        let kind = kind(u16::from_be_bytes([ether_type[0], ether_type[1]]));
        return Some(format!("{} > {}, {kind}{}", Mac(eth.source()), Mac(eth.destination()), tags(true)));
    }
    // tcpdump shows a v1 header's direction here, a v2 header's interface
    // index (its name and direction start every line: [`origin`]), and the
    // address only when it is an Ethernet one.
    cooked.map(|c| {
        let address = if c.address.len() == 6 { format!("{} ", hex_colon(c.address)) } else { String::new() };
        let kind = if quick { String::new() } else { kind(c.protocol) };
        match c.ifindex {
            Some(ifindex) => format!("ifindex {ifindex} {address}{kind}{}", tags(false)),
            None => format!("{:>3} {address}{kind}{}", c.direction(), tags(false)),
        }
    })
}

/// What tcpdump prints without `-e` for the 802.1Q tags of a cooked frame
/// (an `-i any` capture's), before the line: `ethertype ARP, ` for each.
/// Empty for other frames, whose tags show only with `-e`.
pub fn cooked_tags(link: LinkType, frame: &[u8]) -> String {
    let Ok((packet, Some(_))) = slice(link, frame) else { return String::new() };
    vlan_tags(&packet).map(|tag| format!("ethertype {}, ", ether_name(tag.ether_type().0))).collect()
}

/// Where a frame of an `-i any` capture (Linux cooked v2) was seen: the
/// interface's index and which way the frame went. tcpdump starts each
/// such line with them, `lo    In  IP ...`, `-e` or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The interface's index on the capturing machine.
    pub ifindex: u32,
    /// `In`, `Out`, `B` (broadcast), `M` (multicast), `P` (to another host), or `?`.
    pub direction: &'static str,
}

/// The [`Origin`] of a Linux cooked v2 frame; `None` for other link types
/// and for a header cut short.
pub fn origin(link: LinkType, frame: &[u8]) -> Option<Origin> {
    if link != LinkType::LinuxSll2 {
        return None;
    }
    let cooked = super::cooked::parse(frame, 2).ok()?;
    Some(Origin { ifindex: cooked.ifindex?, direction: cooked.direction() })
}

/// Header details for `-v`, one line per layer, re-read from the frame.
pub fn details(link: LinkType, frame: &[u8]) -> Vec<String> {
    let Ok((packet, cooked)) = slice(link, frame) else { return Vec::new() };
    let mut lines = Vec::new();
    if let Some(LinkSlice::Ethernet2(eth)) = &packet.link {
        lines.push(format!(
            "ether {} > {}, type {} (0x{:04x})",
            Mac(eth.source()),
            Mac(eth.destination()),
            ether_name(eth.ether_type().0),
            eth.ether_type().0
        ));
    }
    for tag in vlan_tags(&packet) {
        lines.push(format!(
            "802.1Q vlan {}, priority {}{}, type {} (0x{:04x})",
            tag.vlan_identifier().value(),
            tag.priority_code_point().value(),
            if tag.drop_eligible_indicator() { ", drop eligible" } else { "" },
            ether_name(tag.ether_type().0),
            tag.ether_type().0
        ));
    }
    if let Some(cooked) = cooked {
        let ifindex = cooked.ifindex.map(|i| format!(", ifindex {i}")).unwrap_or_default();
        lines.push(format!(
            "cooked v{} {}, hardware type {}{ifindex}, from {}, type {} (0x{:04x})",
            cooked.version,
            cooked.direction(),
            cooked.hardware,
            hex_colon(cooked.address),
            ether_name(cooked.protocol),
            cooked.protocol
        ));
    }
    match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let mut flags = Vec::new();
            if h.dont_fragment() {
                flags.push("DF");
            }
            if h.more_fragments() {
                flags.push("MF");
            }
            lines.push(format!(
                "IPv4 tos 0x{:x}, ttl {}, id {}, offset {}, flags [{}], proto {} ({}), length {}, checksum 0x{:04x}",
                (h.dcp().value() << 2) | h.ecn().value(),
                h.ttl(),
                h.identification(),
                h.fragments_offset().value() * 8,
                flags.join(","),
                h.protocol().keyword_str().unwrap_or("unknown"),
                h.protocol().0,
                h.total_len(),
                h.header_checksum()
            ));
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            lines.push(format!(
                "IPv6 class 0x{:x}, flow 0x{:05x}, hlim {}, next-header {} ({}), payload length {}",
                h.traffic_class(),
                h.flow_label().value(),
                h.hop_limit(),
                h.next_header().keyword_str().unwrap_or("unknown"),
                h.next_header().0,
                h.payload_length()
            ));
        }
        Some(LaxNetSlice::Arp(arp)) => lines.push(format!(
            "ARP hardware {} ({} bytes), protocol 0x{:04x} ({} bytes), sender {} / {}, target {} / {}",
            arp.hw_addr_type().0,
            arp.hw_addr_size(),
            arp.proto_addr_type().0,
            arp.proto_addr_size(),
            hex_colon(arp.sender_hw_addr()),
            dotted(arp.sender_protocol_addr()),
            hex_colon(arp.target_hw_addr()),
            dotted(arp.target_protocol_addr())
        )),
        None => {}
    }
    match &packet.transport {
        Some(TransportSlice::Tcp(tcp)) => lines.push(tcp_details(tcp)),
        Some(TransportSlice::Udp(udp)) => {
            lines.push(format!("UDP length {}, checksum 0x{:04x}", udp.length(), udp.checksum()));
        }
        Some(TransportSlice::Icmpv4(icmp)) => {
            lines.push(format!(
                "ICMP type {}, code {}, checksum 0x{:04x}",
                icmp.type_u8(),
                icmp.code_u8(),
                icmp.checksum()
            ));
        }
        Some(TransportSlice::Icmpv6(icmp)) => {
            lines.push(format!(
                "ICMP6 type {}, code {}, checksum 0x{:04x}",
                icmp.type_u8(),
                icmp.code_u8(),
                icmp.checksum()
            ));
        }
        _ => {}
    }
    lines
}

/// A TCP header's options in tcpdump's words: `mss 65495`, `sackOK`,
/// `TS val 1 ecr 0`, `nop`, `wscale 7`.
pub(super) fn tcp_options(tcp: &TcpSlice<'_>) -> Vec<String> {
    tcp.options_iterator()
        .map(|option| match option {
            Ok(TcpOptionElement::Noop) => "nop".to_owned(),
            Ok(TcpOptionElement::MaximumSegmentSize(mss)) => format!("mss {mss}"),
            Ok(TcpOptionElement::WindowScale(shift)) => format!("wscale {shift}"),
            Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => "sackOK".to_owned(),
            Ok(TcpOptionElement::SelectiveAcknowledgement(first, rest)) => {
                let blocks: Vec<String> = std::iter::once(first)
                    .chain(rest.into_iter().flatten())
                    .map(|(a, b)| format!("{a}:{b}"))
                    .collect();
                format!("sack {}", blocks.join(" "))
            }
            Ok(TcpOptionElement::Timestamp(val, ecr)) => format!("TS val {val} ecr {ecr}"),
            Err(e) => format!("bad option ({e})"),
        })
        .collect()
}

fn tcp_details(tcp: &TcpSlice<'_>) -> String {
    let options = tcp_options(tcp);
    format!(
        "TCP header {} bytes, win {}, checksum 0x{:04x}, urg {}, options [{}]",
        usize::from(tcp.data_offset()) * 4,
        tcp.window_size(),
        tcp.checksum(),
        tcp.urgent_pointer(),
        options.join(",")
    )
}

fn hex_colon(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn dotted(bytes: &[u8]) -> String {
    match <[u8; 4]>::try_from(bytes) {
        Ok(v4) => Ipv4Addr::from(v4).to_string(),
        Err(_) => match <[u8; 16]>::try_from(bytes) {
            Ok(v6) => Ipv6Addr::from(v6).to_string(),
            Err(_) => hex_colon(bytes),
        },
    }
}

/// The frame's 802.1Q and 802.1ad tags, outermost first.
pub(super) fn vlan_tags<'a>(
    packet: &etherparse::LaxSlicedPacket<'a>,
) -> impl Iterator<Item = etherparse::SingleVlanSlice<'a>> {
    packet.link_exts.iter().filter_map(|ext| match ext {
        etherparse::LaxLinkExtSlice::Vlan(tag) => Some(tag.clone()),
        _ => None,
    })
}

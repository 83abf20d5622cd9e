//! Decoding captured frames into one-line summaries, with etherparse doing
//! the header parsing.
//!
//! [`decode`] never fails and never panics: a frame cut short by the snap
//! length, or one whose headers lie about their lengths, is decoded as far as
//! it goes and carries a [`Summary::problem`] saying where it stopped.

mod cooked;
mod dns;
mod icmp;
mod partial;
mod problem;
mod show;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use etherparse::err::packet::SliceError;
use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice};
use serde::Serialize;

pub use icmp::{Icmp, Quoted};
pub use show::{Origin, cooked_tags, details, link_header, network_offset, origin};

use super::LinkType;
use cooked::Cooked;
use problem::{describe, describe_len};

/// What a frame's outermost decoded protocol is, the word filters and
/// `--stats` use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// A link-layer frame whose payload was not decoded.
    #[default]
    Ether,
    /// ARP.
    Arp,
    /// IPv4 carrying a protocol not decoded here (or a later fragment).
    Ip,
    /// IPv6 carrying a protocol not decoded here (or a later fragment).
    Ip6,
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// UDP over IPv4 or IPv6.
    Udp,
    /// ICMP (over IPv4).
    Icmp,
    /// ICMPv6.
    Icmp6,
}

impl Proto {
    /// The lowercase name, as filters and `--stats` write it.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Ether => "ether",
            Proto::Arp => "arp",
            Proto::Ip => "ip",
            Proto::Ip6 => "ip6",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Icmp6 => "icmp6",
        }
    }
}

/// A MAC address, printed `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// TCP flag bits, printed the way tcpdump does (`S`, `S.`, `P.`, `F.`, `R`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;

    /// Whether every bit of `bits` is set.
    pub fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // In tcpdump's order (its print-tcp flag table), so `FP.` and `.U` read the same.
        const LETTERS: [(u8, char); 8] = [
            (TcpFlags::FIN, 'F'),
            (TcpFlags::SYN, 'S'),
            (TcpFlags::RST, 'R'),
            (TcpFlags::PSH, 'P'),
            (TcpFlags::ACK, '.'),
            (TcpFlags::URG, 'U'),
            (TcpFlags::ECE, 'E'),
            (TcpFlags::CWR, 'W'),
        ];
        for (bit, letter) in LETTERS {
            if self.has(bit) {
                write!(f, "{letter}")?;
            }
        }
        if self.0 == 0 {
            write!(f, "none")?;
        }
        Ok(())
    }
}

impl Serialize for TcpFlags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The TCP header fields a summary shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tcp {
    /// Flag bits.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with the ACK flag).
    pub ack: u32,
    /// Receive window, unscaled.
    pub win: u16,
    /// Urgent pointer (meaningful with the URG flag).
    pub urg: u16,
}

/// An ARP message over Ethernet and IPv4 (other kinds show only the operation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    /// The sender's hardware address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_mac: Option<Mac>,
    /// The target's hardware address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_mac: Option<Mac>,
}

/// One frame, decoded as far as it goes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// The outermost protocol decoded.
    pub proto: Proto,
    /// Ethernet source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_src: Option<Mac>,
    /// Ethernet destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_dst: Option<Mac>,
    /// The link layer's payload type (inside any 802.1Q tags).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ether_type: Option<u16>,
    /// The VLAN ids of the frame's 802.1Q (and 802.1ad) tags, outermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vlan: Vec<u16>,
    /// IP source (for ARP, the sender's protocol address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// IP destination (for ARP, the target's protocol address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    /// The IP header's protocol (next header for IPv6, after extensions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_proto: Option<u8>,
    /// Time to live or hop limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    /// Whether this is an IP fragment (its transport header may be elsewhere).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fragment: bool,
    /// Whether it is the first fragment of an IPv4 datagram, which holds the
    /// transport header.
    #[serde(skip)]
    pub first_fragment: bool,
    /// TCP or UDP source port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// TCP or UDP destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// TCP header fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Tcp>,
    /// TCP options as tcpdump lists them (`mss 65495,sackOK,TS val 1 ecr 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_options: Option<String>,
    /// A DNS message on one line, as tcpdump shows it (`4660+ A? example.com.`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    /// ICMP or ICMPv6 fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<Icmp>,
    /// ARP fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arp: Option<Arp>,
    /// Where the innermost decoded payload starts in the frame.
    #[serde(skip)]
    pub payload_offset: usize,
    /// Bytes of that payload the header announces (TCP and UDP data, the
    /// ICMP message, the IP payload, ...), captured or not.
    pub payload_len: usize,
    /// Why decoding stopped early: a truncated or malformed header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Summary {
    /// The payload bytes that were captured.
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let start = self.payload_offset.min(frame.len());
        let end = start.saturating_add(self.payload_len).min(frame.len());
        &frame[start..end]
    }
}

/// Decodes one frame of `link` type.
pub fn decode(link: LinkType, frame: &[u8]) -> Summary {
    let mut summary = Summary::default();
    let sliced = match slice(link, frame) {
        Ok(sliced) => sliced,
        Err(reason) => {
            summary.payload_len = frame.len();
            summary.problem = Some(reason);
            return summary;
        }
    };
    read_link(&mut summary, &sliced, frame);
    let packet = &sliced.0;
    read_net(&mut summary, packet, frame);
    if summary.problem.is_none() {
        read_transport(&mut summary, packet, frame);
    }
    if summary.problem.is_some() {
        // Already said more precisely than the slicer's error.
    } else if let Some((error, _layer)) = &packet.stop_err {
        summary.problem = Some(describe(error));
    } else if packet.ip_payload().is_some_and(|p| p.incomplete) && summary.problem.is_none() {
        summary.problem = Some("truncated: the IP payload was not captured whole".to_owned());
    }
    summary
}

/// A frame split into its headers as far as they go, with its cooked
/// header if it has one.
type Sliced<'a> = (LaxSlicedPacket<'a>, Option<Cooked<'a>>);

/// Splits a frame into its headers as far as they go.
fn slice(link: LinkType, frame: &[u8]) -> Result<Sliced<'_>, String> {
    let cooked = |version| {
        let cooked = cooked::parse(frame, version)?;
        if !cooked.is_ether_type() {
            return Err(format!(
                "Linux cooked capture of protocol 0x{:04x}, which is not an EtherType (hardware type {})",
                cooked.protocol, cooked.hardware
            ));
        }
        Ok((LaxSlicedPacket::from_ether_type(EtherType(cooked.protocol), cooked.payload), Some(cooked)))
    };
    match link {
        LinkType::Ethernet => {
            Ok((LaxSlicedPacket::from_ethernet(frame).map_err(|e| describe_len(&e))?, None))
        }
        LinkType::RawIp => {
            let packet = LaxSlicedPacket::from_ip(frame).map_err(|e| match e {
                etherparse::err::ip::LaxHeaderSliceError::Len(len) => describe(&SliceError::Len(len)),
                etherparse::err::ip::LaxHeaderSliceError::Content(bad) => describe(&SliceError::Ip(bad)),
            })?;
            Ok((packet, None))
        }
        LinkType::LinuxSll => cooked(1),
        LinkType::LinuxSll2 => cooked(2),
        LinkType::Null => {
            let Some((family, packet)) = frame.split_first_chunk::<4>() else {
                return Err(format!("truncated BSD loopback header: {} of 4 bytes", frame.len()));
            };
            // The capturing host's byte order, unknown here: a family is small.
            let family = match u32::from_le_bytes(*family) {
                small @ 0..=255 => small,
                _ => u32::from_be_bytes(*family),
            };
            let ether_type = match family {
                2 => EtherType::IPV4,
                24 | 28 | 30 => EtherType::IPV6,
                other => return Err(format!("BSD loopback frame of address family {other}, not IP")),
            };
            Ok((LaxSlicedPacket::from_ether_type(ether_type, packet), None))
        }
    }
}

fn read_link(summary: &mut Summary, (packet, cooked): &Sliced<'_>, frame: &[u8]) {
    if let Some(LinkSlice::Ethernet2(eth)) = &packet.link {
        summary.mac_src = Some(Mac(eth.source()));
        summary.mac_dst = Some(Mac(eth.destination()));
    }
    summary.ether_type = packet.ether_payload().map(|p| p.ether_type.0);
    summary.vlan = show::vlan_tags(packet).map(|tag| tag.vlan_identifier().value()).collect();
    if let Some(cooked) = cooked {
        summary.ether_type = Some(cooked.protocol);
        set_payload(summary, frame, cooked.payload);
    }
}

fn read_net(summary: &mut Summary, packet: &LaxSlicedPacket<'_>, frame: &[u8]) {
    match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let header = ip.header();
            summary.proto = Proto::Ip;
            summary.src = Some(IpAddr::V4(header.source_addr()));
            summary.dst = Some(IpAddr::V4(header.destination_addr()));
            summary.ttl = Some(header.ttl());
            summary.ip_proto = Some(ip.payload().ip_number.0);
            summary.fragment = ip.payload().fragmented;
            summary.first_fragment = summary.fragment && header.fragments_offset().value() == 0;
            set_payload(summary, frame, ip.payload().payload);
            let header_len = usize::from(header.ihl()) * 4;
            summary.payload_len = usize::from(header.total_len()).saturating_sub(header_len);
            if usize::from(header.total_len()) < header_len {
                // etherparse falls back on the frame's length; tcpdump (and
                // this decoder) trust nothing after such a header.
                summary.problem = Some(format!(
                    "malformed: IP bad-len {}, under its {header_len}-byte header",
                    header.total_len()
                ));
            }
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let header = ip.header();
            summary.proto = Proto::Ip6;
            summary.src = Some(IpAddr::V6(header.source_addr()));
            summary.dst = Some(IpAddr::V6(header.destination_addr()));
            summary.ttl = Some(header.hop_limit());
            summary.ip_proto = Some(ip.payload().ip_number.0);
            summary.fragment = ip.payload().fragmented;
            set_payload(summary, frame, ip.payload().payload);
            // The payload length counts extension headers; what follows them is shorter.
            let after_header = header.slice().as_ptr().addr() + header.slice().len();
            let extensions = ip.payload().payload.as_ptr().addr().saturating_sub(after_header);
            summary.payload_len = usize::from(header.payload_length()).saturating_sub(extensions);
        }
        Some(LaxNetSlice::Arp(arp)) => {
            summary.proto = Proto::Arp;
            let ipv4 = |bytes: &[u8]| <[u8; 4]>::try_from(bytes).ok().map(|a| IpAddr::V4(Ipv4Addr::from(a)));
            let mac = |bytes: &[u8]| <[u8; 6]>::try_from(bytes).ok().map(Mac);
            summary.src = ipv4(arp.sender_protocol_addr());
            summary.dst = ipv4(arp.target_protocol_addr());
            summary.arp = Some(Arp {
                op: arp.operation().0,
                sender_mac: mac(arp.sender_hw_addr()),
                target_mac: mac(arp.target_hw_addr()),
            });
            set_payload(summary, frame, arp.slice());
        }
        None => {
            if let Some(payload) = packet.ether_payload() {
                set_payload(summary, frame, payload.payload);
            }
        }
    }
}

fn read_transport(summary: &mut Summary, packet: &LaxSlicedPacket<'_>, frame: &[u8]) {
    match &packet.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            summary.proto = Proto::Tcp;
            summary.sport = Some(tcp.source_port());
            summary.dport = Some(tcp.destination_port());
            summary.tcp = Some(Tcp {
                flags: TcpFlags(tcp.header_slice().get(13).copied().unwrap_or(0)),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                win: tcp.window_size(),
                urg: tcp.urgent_pointer(),
            });
            let options = show::tcp_options(tcp);
            summary.tcp_options = (!options.is_empty()).then(|| options.join(","));
            let header = usize::from(tcp.data_offset()) * 4;
            let announced = summary.payload_len.saturating_sub(header);
            set_payload(summary, frame, tcp.payload());
            summary.payload_len = announced;
        }
        Some(TransportSlice::Udp(udp)) => {
            summary.proto = Proto::Udp;
            summary.sport = Some(udp.source_port());
            summary.dport = Some(udp.destination_port());
            set_payload(summary, frame, udp.payload());
            summary.payload_len = usize::from(udp.length()).saturating_sub(8);
            if [udp.source_port(), udp.destination_port()].iter().any(|p| dns::PORTS.contains(p)) {
                summary.dns = if summary.payload_len < dns::HEADER_LEN {
                    Some(dns::too_short(summary.payload_len))
                } else {
                    dns::line(udp.payload())
                };
            }
        }
        // The message's length is what the IP header announces, captured or not.
        Some(TransportSlice::Icmpv4(icmp)) => {
            summary.proto = Proto::Icmp;
            summary.icmp = Some(icmp::v4(icmp));
            let announced = summary.payload_len;
            set_payload(summary, frame, icmp.slice());
            summary.payload_len = announced;
        }
        Some(TransportSlice::Icmpv6(icmp)) => {
            summary.proto = Proto::Icmp6;
            summary.icmp = Some(icmp::v6(icmp));
            let announced = summary.payload_len;
            set_payload(summary, frame, icmp.slice());
            summary.payload_len = announced;
        }
        None => partial::read(summary, packet, frame),
        // IGMP and others stay at the IP layer.
        Some(_) => {}
    }
}

/// Records where `payload` (a subslice of `frame`) starts and how much of it
/// was captured; callers that know the announced length set it after.
pub(super) fn set_payload(summary: &mut Summary, frame: &[u8], payload: &[u8]) {
    summary.payload_offset = payload.as_ptr().addr().saturating_sub(frame.as_ptr().addr());
    summary.payload_len = payload.len();
}

#[cfg(test)]
mod tests;

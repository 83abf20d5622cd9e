//! ICMP and ICMPv6 messages: type, code, echo fields, and what an error
//! message quotes of the datagram that caused it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{IcmpEchoHeader, Icmpv4Slice, Icmpv4Type, Icmpv6Slice, Icmpv6Type, IpNumber};
use serde::Serialize;

/// An ICMP or ICMPv6 message's type, code and, for echoes, id and sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Icmp {
    /// Message type.
    #[serde(rename = "icmp_type")]
    pub kind: u8,
    /// Message code.
    pub code: u8,
    /// What the type means, in tcpdump's words.
    pub text: &'static str,
    /// Echo identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u16>,
    /// Echo sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u16>,
    /// For a destination unreachable message, the datagram it quotes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quoted: Option<Quoted>,
}

/// Where the datagram an ICMP error quotes was going.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Quoted {
    /// Its destination address.
    pub dst: IpAddr,
    /// Its IP protocol.
    pub ip_proto: u8,
    /// Its TCP or UDP destination port, when quoted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
}

impl Quoted {
    /// `udp port 9` (tcpdump's words), or `protocol 132`.
    fn transport(&self) -> String {
        match (IpNumber(self.ip_proto), self.dport) {
            (IpNumber::UDP, Some(port)) => format!("udp port {port}"),
            (IpNumber::TCP, Some(port)) => format!("tcp port {port}"),
            // The snap length cut the quote before the port.
            (IpNumber::UDP, None) => "udp port (not captured)".to_owned(),
            (IpNumber::TCP, None) => "tcp port (not captured)".to_owned(),
            _ => format!("protocol {}", self.ip_proto),
        }
    }
}

/// Reads an ICMP message.
pub(super) fn v4(icmp: &Icmpv4Slice<'_>) -> Icmp {
    let (text, echo) = match icmp.icmp_type() {
        Icmpv4Type::EchoRequest(echo) => ("echo request", Some(echo)),
        Icmpv4Type::EchoReply(echo) => ("echo reply", Some(echo)),
        Icmpv4Type::DestinationUnreachable(_) => ("destination unreachable", None),
        Icmpv4Type::Redirect(_) => ("redirect", None),
        Icmpv4Type::TimeExceeded(_) => ("time exceeded", None),
        Icmpv4Type::ParameterProblem(_) => ("parameter problem", None),
        Icmpv4Type::TimestampRequest(_) => ("time stamp request", None),
        Icmpv4Type::TimestampReply(_) => ("time stamp reply", None),
        Icmpv4Type::Unknown { .. } => ("type", None),
    };
    let quoted = matches!(icmp.icmp_type(), Icmpv4Type::DestinationUnreachable(_))
        .then(|| quoted_v4(icmp.payload()))
        .flatten();
    fields(icmp.type_u8(), icmp.code_u8(), text, echo, quoted)
}

/// Reads an ICMPv6 message.
pub(super) fn v6(icmp: &Icmpv6Slice<'_>) -> Icmp {
    let (text, echo) = match icmp.icmp_type() {
        Icmpv6Type::EchoRequest(echo) => ("echo request", Some(echo)),
        Icmpv6Type::EchoReply(echo) => ("echo reply", Some(echo)),
        Icmpv6Type::DestinationUnreachable(_) => ("destination unreachable", None),
        Icmpv6Type::PacketTooBig { .. } => ("packet too big", None),
        Icmpv6Type::TimeExceeded(_) => ("time exceeded", None),
        Icmpv6Type::ParameterProblem(_) => ("parameter problem", None),
        Icmpv6Type::RouterSolicitation => ("router solicitation", None),
        Icmpv6Type::RouterAdvertisement(_) => ("router advertisement", None),
        Icmpv6Type::NeighborSolicitation => ("neighbor solicitation", None),
        Icmpv6Type::NeighborAdvertisement(_) => ("neighbor advertisement", None),
        Icmpv6Type::Redirect => ("redirect", None),
        Icmpv6Type::Unknown { .. } => ("type", None),
    };
    let quoted = matches!(icmp.icmp_type(), Icmpv6Type::DestinationUnreachable(_))
        .then(|| quoted_v6(icmp.payload()))
        .flatten();
    fields(icmp.type_u8(), icmp.code_u8(), text, echo, quoted)
}

fn fields(
    kind: u8,
    code: u8,
    text: &'static str,
    echo: Option<IcmpEchoHeader>,
    quoted: Option<Quoted>,
) -> Icmp {
    Icmp { kind, code, text, id: echo.map(|e| e.id), seq: echo.map(|e| e.seq), quoted }
}

/// The quoted IPv4 header, and the port after it if quoted.
fn quoted_v4(payload: &[u8]) -> Option<Quoted> {
    let header = usize::from(payload.first()? & 0x0f) * 4;
    let dst: [u8; 4] = payload.get(16..20)?.try_into().ok()?;
    let ip_proto = *payload.get(9)?;
    let dport = payload.get(header + 2..header + 4).map(|p| u16::from_be_bytes([p[0], p[1]]));
    (header >= 20).then_some(Quoted { dst: IpAddr::V4(Ipv4Addr::from(dst)), ip_proto, dport })
}

/// The quoted IPv6 header (extension headers are not followed), and the
/// port after it if quoted.
fn quoted_v6(payload: &[u8]) -> Option<Quoted> {
    let dst: [u8; 16] = payload.get(24..40)?.try_into().ok()?;
    let ip_proto = *payload.get(6)?;
    let dport = payload.get(42..44).map(|p| u16::from_be_bytes([p[0], p[1]]));
    Some(Quoted { dst: IpAddr::V6(Ipv6Addr::from(dst)), ip_proto, dport })
}

/// tcpdump's words for an ICMP message, after `ICMP ` or `ICMP6, `.
pub(super) fn write(f: &mut fmt::Formatter<'_>, icmp: &Icmp, v6: bool) -> fmt::Result {
    match (v6, icmp.code, icmp.quoted) {
        (false, 0, Some(q)) => write!(f, "net {} unreachable", q.dst),
        (false, 1, Some(q)) => write!(f, "host {} unreachable", q.dst),
        (false, 2, Some(q)) => write!(f, "{} protocol {} unreachable", q.dst, q.ip_proto),
        (false, 3, Some(q)) => write!(f, "{} {} unreachable", q.dst, q.transport()),
        (true, 3, Some(q)) => write!(f, "{}, unreachable address {}", icmp.text, q.dst),
        (true, 4, Some(q)) => write!(f, "{}, unreachable port, {} {}", icmp.text, q.dst, q.transport()),
        _ => {
            write!(f, "{}", icmp.text)?;
            if icmp.text == "type" {
                write!(f, " {} code {}", icmp.kind, icmp.code)?;
            }
            if let (Some(id), Some(seq)) = (icmp.id, icmp.seq) {
                write!(f, ", id {id}, seq {seq}")?;
            }
            Ok(())
        }
    }
}

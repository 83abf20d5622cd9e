//! Filter expressions in tcpdump's syntax, for the common cases:
//!
//! ```text
//! tcp | udp | icmp | icmp6 | arp | ip | ip6
//! [src|dst|src or dst|src and dst] host ADDR | net ADDR/LEN | port N | portrange N-M
//! ip|ip6|arp [src|dst] host ADDR | net ADDR/LEN
//! tcp|udp [src|dst] port N        less N | greater N
//! not X | X and Y | X or Y | ( X )     (also ! && ||)
//! ```
//!
//! As in tcpdump, `and` and `or` have the same precedence and group from
//! the left; `not` binds tightest.
//!
//! A bare value repeats the qualifiers before it: `port 80 or 443`,
//! `host 127.0.0.1 or 127.0.0.2`. Port names come from the scanner's
//! service table (`port http`).
//!
//! [`Filter::matches`] decides on a decoded [`Summary`]; [`bpf`] compiles
//! the same expression to a classic BPF program that the kernel runs first.

pub mod bpf;
mod parse;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::decode::{Proto, Summary};

pub use parse::FilterError;

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
    /// It does not hold.
    Not(Box<Filter>),
    /// One test.
    Is(Primitive),
}

/// Which address or port of a packet a primitive looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The source.
    Src,
    /// The destination.
    Dst,
    /// Either (the default).
    Either,
    /// Both.
    Both,
}

/// A protocol a filter names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoName {
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
    /// `icmp`.
    Icmp,
    /// `icmp6`.
    Icmp6,
    /// `arp`.
    Arp,
    /// `ip`: any IPv4 packet.
    Ip,
    /// `ip6`: any IPv6 packet.
    Ip6,
}

/// One test of a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Primitive {
    /// The packet is of this protocol.
    Proto(ProtoName),
    /// An IP (or ARP) address equals `addr`.
    Host {
        /// Which address.
        dir: Dir,
        /// The address.
        addr: IpAddr,
    },
    /// An IP (or ARP) address is in `net/prefix`.
    Net {
        /// Which address.
        dir: Dir,
        /// The network address (host bits zero).
        net: IpAddr,
        /// The prefix length.
        prefix: u8,
    },
    /// A TCP or UDP port is in `first..=last`.
    Port {
        /// Which port.
        dir: Dir,
        /// Only TCP or only UDP; both when `None`.
        proto: Option<ProtoName>,
        /// The lowest port.
        first: u16,
        /// The highest port.
        last: u16,
    },
    /// The frame is at most this long on the wire.
    Less(u32),
    /// The frame is at least this long on the wire.
    Greater(u32),
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse::parse(text)
    }
}

impl Filter {
    /// Whether a frame `wire_len` bytes long, decoded as `packet`, passes.
    pub fn matches(&self, packet: &Summary, wire_len: u32) -> bool {
        match self {
            Filter::And(a, b) => a.matches(packet, wire_len) && b.matches(packet, wire_len),
            Filter::Or(a, b) => a.matches(packet, wire_len) || b.matches(packet, wire_len),
            Filter::Not(a) => !a.matches(packet, wire_len),
            Filter::Is(primitive) => primitive.matches(packet, wire_len),
        }
    }
}

impl Primitive {
    fn matches(&self, p: &Summary, wire_len: u32) -> bool {
        let is_ip = |v6: bool| p.proto != Proto::Arp && p.src.is_some_and(|a| a.is_ipv6() == v6);
        match *self {
            Primitive::Proto(name) => match name {
                ProtoName::Tcp => p.proto == Proto::Tcp,
                ProtoName::Udp => p.proto == Proto::Udp,
                ProtoName::Icmp => p.proto == Proto::Icmp,
                ProtoName::Icmp6 => p.proto == Proto::Icmp6,
                ProtoName::Arp => p.proto == Proto::Arp,
                ProtoName::Ip => is_ip(false),
                ProtoName::Ip6 => is_ip(true),
            },
            Primitive::Host { dir, addr } => dir.test(p.src, p.dst, |a| a == addr),
            Primitive::Net { dir, net, prefix } => dir.test(p.src, p.dst, |a| in_net(a, net, prefix)),
            Primitive::Port { dir, proto, first, last } => {
                let transport = match proto {
                    Some(ProtoName::Tcp) => p.proto == Proto::Tcp,
                    Some(ProtoName::Udp) => p.proto == Proto::Udp,
                    _ => matches!(p.proto, Proto::Tcp | Proto::Udp),
                };
                transport && dir.test(p.sport, p.dport, |port| (first..=last).contains(&port))
            }
            Primitive::Less(n) => wire_len <= n,
            Primitive::Greater(n) => wire_len >= n,
        }
    }
}

impl Dir {
    fn test<T: Copy>(self, src: Option<T>, dst: Option<T>, check: impl Fn(T) -> bool) -> bool {
        let (s, d) = (src.is_some_and(&check), dst.is_some_and(&check));
        match self {
            Dir::Src => s,
            Dir::Dst => d,
            Dir::Either => s || d,
            Dir::Both => s && d,
        }
    }
}

/// Whether `addr` is in `net/prefix` (never across address families).
pub fn in_net(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl fmt::Display for Filter {
    /// The canonical form, which parses back to the same filter. `and` and
    /// `or` group from the left, so a chain needs no parentheses; only an
    /// operand that is itself a join gets them on the right of a join or
    /// after `not`. The form nests no deeper than the text it came from, so
    /// it stays within the parser's nesting limit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// `filter`, in parentheses when it is a join.
        struct Operand<'a>(&'a Filter);
        impl fmt::Display for Operand<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    join @ (Filter::And(..) | Filter::Or(..)) => write!(f, "({join})"),
                    other => write!(f, "{other}"),
                }
            }
        }
        match self {
            Filter::And(a, b) => write!(f, "{a} and {}", Operand(b)),
            Filter::Or(a, b) => write!(f, "{a} or {}", Operand(b)),
            Filter::Not(a) => write!(f, "not {}", Operand(a)),
            Filter::Is(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for ProtoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtoName::Tcp => "tcp",
            ProtoName::Udp => "udp",
            ProtoName::Icmp => "icmp",
            ProtoName::Icmp6 => "icmp6",
            ProtoName::Arp => "arp",
            ProtoName::Ip => "ip",
            ProtoName::Ip6 => "ip6",
        })
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dir::Src => "src ",
            Dir::Dst => "dst ",
            Dir::Either => "",
            Dir::Both => "src and dst ",
        })
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Primitive::Proto(name) => write!(f, "{name}"),
            Primitive::Host { dir, addr } => write!(f, "{dir}host {addr}"),
            Primitive::Net { dir, net, prefix } => write!(f, "{dir}net {net}/{prefix}"),
            Primitive::Port { dir, proto, first, last } => {
                if let Some(proto) = proto {
                    write!(f, "{proto} ")?;
                }
                if first == last {
                    write!(f, "{dir}port {first}")
                } else {
                    write!(f, "{dir}portrange {first}-{last}")
                }
            }
            Primitive::Less(n) => write!(f, "less {n}"),
            Primitive::Greater(n) => write!(f, "greater {n}"),
        }
    }
}

#[cfg(test)]
mod tests;

//! Filter expressions in tcpdump's language, pcap-filter(7), with
//! libpcap's meaning: the parts that apply to Linux captures.
//!
//! ```text
//! ip | ip6 | arp | rarp | tcp | udp | sctp | icmp | icmp6 | igmp
//! [ip|ip6|arp|rarp] [src|dst|src or dst|src and dst] host ADDR|NAME | net ADDR[/LEN] | net ADDR mask MASK
//! [tcp|udp|sctp] [src|dst] port N|NAME | portrange N-M
//! ether [src|dst] host MAC | ether proto N|\NAME | [ip|ip6] proto N|\NAME
//! vlan [ID] | [ether] broadcast | [ether|ip|ip6] multicast | ip broadcast
//! less N | greater N | EXPR RELOP EXPR
//! not X | X and Y | X or Y | ( X )     (also ! && ||)
//! ```
//!
//! `EXPR` is arithmetic on 32-bit unsigned numbers (`+ - * / % & | ^ << >>`,
//! unary `-`), `len` (the frame's length on the wire) and byte loads,
//! `PROTO[INDEX]` or `PROTO[INDEX:SIZE]` with SIZE 1, 2 or 4, where PROTO is
//! `ether` (or `link`), `ip`, `ip6`, `arp`, `rarp`, `tcp`, `udp`, `sctp`,
//! `icmp`, `icmp6` or `igmp`; RELOP is one of `> < >= <= = == !=`. Numbers
//! are decimal, `0x` hex or `0` octal; `tcpflags`, `tcp-syn`, `icmptype`,
//! `icmp-echo`, `icmp6type`, `icmp6-echo`... name numbers, as in libpcap.
//!
//! As in libpcap, `and` and `or` have the same precedence and group from
//! the left; `not` binds tightest. A bare value repeats the qualifiers
//! before it: `port 80 or 443`, `host 127.0.0.1 or 127.0.0.2`. Host and
//! service names are looked up through [`Names`] when the filter is parsed
//! (`port http` is TCP's port 80 when the services database lists it for
//! TCP only, as libpcap reads it).
//!
//! What a filter means is its classic BPF program: [`compile()`] writes the
//! program libpcap would (not instruction for instruction, but frame for
//! frame), the kernel runs it on a live capture, and [`crate::bpf::run`]
//! runs the same program on each frame of a file. So `vlan` shifts the
//! offsets of whatever follows it, `tcp[...]` reads IPv4 headers only, and a
//! load past the captured bytes rejects the frame, exactly as in tcpdump.

pub mod compile;
mod display;
mod lex;
mod names;
mod parse;

use std::net::IpAddr;
use std::str::FromStr;

pub use compile::{CompileError, Program, compile};
pub use names::{BuiltinNames, Names, ServicePorts, Services};
pub use parse::{FilterError, MAX_NESTING, MAX_TERMS};

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
    /// A comparison of two arithmetic expressions.
    Compare(Relation),
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

/// A protocol word: what `tcp`, `ip6`, `ether`... name, as a primitive, a
/// qualifier or the base of a byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// `ether` (or `link`): the link-layer header.
    Link,
    /// `ip`: IPv4.
    Ip,
    /// `ip6`: IPv6.
    Ip6,
    /// `arp`.
    Arp,
    /// `rarp`.
    Rarp,
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
    /// `sctp`.
    Sctp,
    /// `icmp` (over IPv4).
    Icmp,
    /// `icmp6`.
    Icmp6,
    /// `igmp`.
    Igmp,
}

/// One test of a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Primitive {
    /// The packet is of this protocol (not [`Layer::Link`]).
    Proto(Layer),
    /// An address is in `net/prefix` (a host is a /32 or /128): the IPv4
    /// header's, or ARP's and RARP's, or the IPv6 header's.
    Net {
        /// Only this protocol's addresses (`ip`, `ip6`, `arp`, `rarp`); all
        /// that fit the address when `None`.
        family: Option<Layer>,
        /// Which address.
        dir: Dir,
        /// The network address (host bits zero).
        net: IpAddr,
        /// The prefix length.
        prefix: u8,
    },
    /// An Ethernet address equals `mac`.
    EtherHost {
        /// Which address.
        dir: Dir,
        /// The address.
        mac: [u8; 6],
    },
    /// A TCP, UDP or SCTP port is in `first..=last`.
    Port {
        /// Only this transport (`tcp`, `udp`, `sctp`); all three when `None`.
        proto: Option<Layer>,
        /// Which port.
        dir: Dir,
        /// The lowest port.
        first: u16,
        /// The highest port.
        last: u16,
    },
    /// The IP protocol (IPv6: next header, after a fragment header) is `number`.
    IpProto {
        /// `ip` or `ip6`; both when `None` (`proto N`).
        family: Option<Layer>,
        /// The protocol number.
        number: u8,
    },
    /// The link layer's type field (EtherType, or an 802.2 SAP up to 1500).
    EtherProto(u16),
    /// An 802.1Q or 802.1ad tag, with this VLAN id if given; what follows in
    /// the filter looks 4 bytes further into the frame.
    Vlan(Option<u16>),
    /// The Ethernet destination is ff:ff:ff:ff:ff:ff.
    Broadcast,
    /// The IPv4 destination is 0.0.0.0 or 255.255.255.255 (the netmask is
    /// not known, as in `tcpdump -r`).
    IpBroadcast,
    /// A multicast destination: Ethernet's group bit (`Link`), IPv4 from
    /// 224.0.0.0 (`Ip`), IPv6's ff00::/8 (`Ip6`).
    Multicast(Layer),
    /// The frame is at most this long on the wire.
    Less(u32),
    /// The frame is at least this long on the wire.
    Greater(u32),
}

/// `left op right`, unsigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// The left side.
    pub left: Expr,
    /// The comparison.
    pub op: RelOp,
    /// The right side.
    pub right: Expr,
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelOp {
    /// `>`.
    Gt,
    /// `<`.
    Lt,
    /// `>=`.
    Ge,
    /// `<=`.
    Le,
    /// `=` or `==`.
    Eq,
    /// `!=`.
    Ne,
}

/// An arithmetic expression on 32-bit unsigned numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A constant.
    Num(u32),
    /// The frame's length on the wire.
    Len,
    /// `layer[index:size]`: `size` bytes (1, 2 or 4), big-endian, `index`
    /// bytes into the header `layer` names.
    Load {
        /// Whose header.
        layer: Layer,
        /// Where in it.
        index: Box<Expr>,
        /// 1, 2 or 4 bytes.
        size: u8,
    },
    /// `left op right`.
    Binary(ArithOp, Box<Expr>, Box<Expr>),
    /// `-x`, modulo 2^32.
    Neg(Box<Expr>),
}

/// An arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/` (by zero: the frame is rejected).
    Div,
    /// `%`.
    Mod,
    /// `&`.
    And,
    /// `|`.
    Or,
    /// `^`.
    Xor,
    /// `<<`.
    Shl,
    /// `>>`.
    Shr,
}

impl FromStr for Filter {
    type Err = FilterError;

    /// Parses with the built-in service table and no host names; see
    /// [`Filter::parse`] to look names up.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse::parse(text, &BuiltinNames)
    }
}

impl Filter {
    /// Parses `text`, looking host and service names up through `names`.
    ///
    /// # Errors
    /// When the text is not a filter, or names what `names` does not know;
    /// the error names the offending word.
    pub fn parse(text: &str, names: &dyn Names) -> Result<Filter, FilterError> {
        parse::parse(text, names)
    }

    /// Whether any part of the filter is `vlan`: its meaning then depends
    /// on 802.1Q tags being in the frame's bytes.
    pub fn mentions_vlan(&self) -> bool {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => a.mentions_vlan() || b.mentions_vlan(),
            Filter::Not(a) => a.mentions_vlan(),
            Filter::Is(Primitive::Vlan(_)) => true,
            Filter::Is(_) | Filter::Compare(_) => false,
        }
    }
}

#[cfg(test)]
mod tests;

//! The canonical text of a filter: it parses back to the same filter.

use std::fmt;

use super::{ArithOp, Dir, Expr, Filter, Layer, Primitive, RelOp, Relation};

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
            Filter::Compare(r) => write!(f, "{r}"),
        }
    }
}

impl Layer {
    /// The word that names it.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Link => "ether",
            Layer::Ip => "ip",
            Layer::Ip6 => "ip6",
            Layer::Arp => "arp",
            Layer::Rarp => "rarp",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Sctp => "sctp",
            Layer::Icmp => "icmp",
            Layer::Icmp6 => "icmp6",
            Layer::Igmp => "igmp",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
        let family = |f: &mut fmt::Formatter<'_>, family: Option<Layer>| match family {
            Some(layer) => write!(f, "{layer} "),
            None => Ok(()),
        };
        match self {
            Primitive::Proto(layer) => write!(f, "{layer}"),
            Primitive::Net { family: which, dir, net, prefix } => {
                family(f, *which)?;
                let full = if net.is_ipv4() { 32 } else { 128 };
                if *prefix == full {
                    write!(f, "{dir}host {net}")
                } else {
                    write!(f, "{dir}net {net}/{prefix}")
                }
            }
            Primitive::EtherHost { dir, mac } => {
                let [a, b, c, d, e, g] = mac;
                write!(f, "ether {dir}host {a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
            }
            Primitive::Port { proto, dir, first, last } => {
                family(f, *proto)?;
                if first == last {
                    write!(f, "{dir}port {first}")
                } else {
                    write!(f, "{dir}portrange {first}-{last}")
                }
            }
            Primitive::IpProto { family: which, number } => {
                family(f, *which)?;
                write!(f, "proto {number}")
            }
            Primitive::EtherProto(number) => write!(f, "ether proto {number}"),
            Primitive::Vlan(None) => write!(f, "vlan"),
            Primitive::Vlan(Some(id)) => write!(f, "vlan {id}"),
            Primitive::Broadcast => write!(f, "ether broadcast"),
            Primitive::IpBroadcast => write!(f, "ip broadcast"),
            Primitive::Multicast(layer) => write!(f, "{layer} multicast"),
            Primitive::Less(n) => write!(f, "less {n}"),
            Primitive::Greater(n) => write!(f, "greater {n}"),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            RelOp::Gt => ">",
            RelOp::Lt => "<",
            RelOp::Ge => ">=",
            RelOp::Le => "<=",
            RelOp::Eq => "=",
            RelOp::Ne => "!=",
        };
        write!(f, "{} {op} {}", self.left, self.right)
    }
}

impl ArithOp {
    /// The operator's symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
            ArithOp::And => "&",
            ArithOp::Or => "|",
            ArithOp::Xor => "^",
            ArithOp::Shl => "<<",
            ArithOp::Shr => ">>",
        }
    }
}

impl fmt::Display for Expr {
    /// Operands that are themselves operations are parenthesized, so the
    /// text never depends on precedence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Operand<'a>(&'a Expr);
        impl fmt::Display for Operand<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    op @ (Expr::Binary(..) | Expr::Neg(_)) => write!(f, "({op})"),
                    other => write!(f, "{other}"),
                }
            }
        }
        match self {
            Expr::Num(n) => write!(f, "{n}"),
            Expr::Len => write!(f, "len"),
            Expr::Load { layer, index, size: 1 } => write!(f, "{layer}[{index}]"),
            Expr::Load { layer, index, size } => write!(f, "{layer}[{index}:{size}]"),
            Expr::Binary(op, a, b) => write!(f, "{} {} {}", Operand(a), op.symbol(), Operand(b)),
            // `--x` lexes as two minus signs: no parentheses needed, so a
            // long run of them does not nest.
            Expr::Neg(a) if matches!(**a, Expr::Neg(_)) => write!(f, "-{a}"),
            Expr::Neg(a) => write!(f, "-{}", Operand(a)),
        }
    }
}

impl Expr {
    /// How deep the parentheses and brackets of this expression's
    /// [`Display`](fmt::Display) nest: the parser must refuse what would
    /// print deeper than it accepts, or the text would not parse back.
    pub(super) fn display_depth(&self) -> usize {
        let operand =
            |e: &Expr| e.display_depth() + usize::from(matches!(e, Expr::Binary(..) | Expr::Neg(_)));
        match self {
            Expr::Num(_) | Expr::Len => 0,
            Expr::Load { index, .. } => 1 + index.display_depth(),
            Expr::Binary(_, a, b) => operand(a).max(operand(b)),
            Expr::Neg(a) if matches!(**a, Expr::Neg(_)) => a.display_depth(),
            Expr::Neg(a) => operand(a),
        }
    }
}

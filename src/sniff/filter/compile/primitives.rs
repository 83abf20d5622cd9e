//! Each primitive and expression as libpcap's `gencode.c` builds it: the
//! same loads at the same offsets, tested in the same order.

use std::net::IpAddr;

use super::graph::load_code;
use super::{Cmp, CompileError, Cond, LinkLabel, Load};
use crate::bpf::{Instruction, MEMWORDS, op};
use crate::sniff::LinkType;
use crate::sniff::filter::{ArithOp, Dir, Expr, Filter, Layer, Primitive, RelOp, Relation};

const IPV4: u32 = 0x0800;
const IPV6: u32 = 0x86dd;
const ARP: u32 = 0x0806;
const RARP: u32 = 0x8035;
const IPPROTO_FRAGMENT: u32 = 44;
/// Where Linux cooked v1 says "802.2 LLC follows" (LINUX_SLL_P_802_2).
const SLL_P_802_2: u32 = 4;

/// Builds [`Cond`]s for one link type, in the filter's order.
pub(super) struct Generator {
    link: LinkType,
    /// Bytes the `vlan`s so far moved the link type and payload by.
    shift: u32,
}

fn test(load: Load, cmp: Cmp, k: u32) -> Cond {
    Cond::Test { load, mask: None, cmp, k }
}

fn masked(load: Load, mask: u32, k: u32) -> Cond {
    Cond::Test { load, mask: (mask != u32::MAX).then_some(mask), cmp: Cmp::Eq, k: k & mask }
}

fn not(cond: Cond) -> Cond {
    Cond::Not(Box::new(cond))
}

/// `src` and `dst` tests joined as the direction says.
fn directed(dir: Dir, src: impl Fn() -> Cond, dst: impl Fn() -> Cond) -> Cond {
    match dir {
        Dir::Src => src(),
        Dir::Dst => dst(),
        Dir::Either => Cond::Or(vec![src(), dst()]),
        Dir::Both => Cond::And(vec![src(), dst()]),
    }
}

fn stmt(code: u16, k: u32) -> Instruction {
    Instruction::new(code, 0, 0, k)
}

/// An expression's code, leaving its value in A, and the tests that must
/// hold before it runs.
struct Value {
    guards: Vec<Cond>,
    stmts: Vec<Instruction>,
}

impl Generator {
    pub(super) fn new(link: LinkType) -> Self {
        Generator { link, shift: 0 }
    }

    pub(super) fn filter(&mut self, filter: &Filter) -> Result<Cond, CompileError> {
        Ok(match filter {
            Filter::And(a, b) => Cond::And(vec![self.filter(a)?, self.filter(b)?]),
            Filter::Or(a, b) => Cond::Or(vec![self.filter(a)?, self.filter(b)?]),
            Filter::Not(a) => not(self.filter(a)?),
            Filter::Is(primitive) => self.primitive(primitive)?,
            Filter::Compare(relation) => self.relation(relation)?,
        })
    }

    /// Where the link layer's payload (the IP header) starts.
    fn payload(&self) -> u32 {
        self.shift
            + match self.link {
                LinkType::Ethernet => 14,
                LinkType::LinuxSll => 16,
                LinkType::LinuxSll2 => 20,
                LinkType::RawIp => 0,
                LinkType::Null => 4,
            }
    }

    fn not_on(&self, what: &dyn std::fmt::Display, needs: &'static str) -> CompileError {
        CompileError::NotOnLink { what: what.to_string(), link: LinkLabel(self.link), needs }
    }

    /// The link layer says the payload is of type `ether_type`.
    fn link_type(&self, ether_type: u32) -> Cond {
        let both_orders = |values: &[u32]| {
            Cond::Or(
                values
                    .iter()
                    .flat_map(|&v| [v.swap_bytes(), v])
                    .map(|v| test(Load::Abs(4, 0), Cmp::Eq, v))
                    .collect(),
            )
        };
        match self.link {
            LinkType::Ethernet if ether_type <= 1500 => {
                // An 802.3 length, then an 802.2 DSAP.
                let at = 12 + self.shift;
                Cond::And(vec![
                    not(test(Load::Abs(2, at), Cmp::Gt, 1500)),
                    test(Load::Abs(1, at + 2), Cmp::Eq, ether_type),
                ])
            }
            LinkType::Ethernet => test(Load::Abs(2, 12 + self.shift), Cmp::Eq, ether_type),
            LinkType::LinuxSll if ether_type <= 1500 => Cond::And(vec![
                test(Load::Abs(2, 14), Cmp::Eq, SLL_P_802_2),
                test(Load::Abs(1, 16), Cmp::Eq, ether_type),
            ]),
            LinkType::LinuxSll => test(Load::Abs(2, 14), Cmp::Eq, ether_type),
            // The header's protocol field, or past a tag the one before the payload.
            LinkType::LinuxSll2 if self.shift == 0 => test(Load::Abs(2, 0), Cmp::Eq, ether_type),
            LinkType::LinuxSll2 => test(Load::Abs(2, self.payload() - 2), Cmp::Eq, ether_type),
            LinkType::RawIp => match ether_type {
                IPV4 => masked(Load::Abs(1, 0), 0xf0, 0x40),
                IPV6 => masked(Load::Abs(1, 0), 0xf0, 0x60),
                _ => Cond::Const(false),
            },
            // BSD loopback: an AF_ number in the capturing host's byte order.
            LinkType::Null => match ether_type {
                IPV4 => both_orders(&[2]),
                IPV6 => both_orders(&[30, 24, 28]),
                _ => Cond::Const(false),
            },
        }
    }

    fn ether_type_of(layer: Layer) -> u32 {
        match layer {
            Layer::Ip6 => IPV6,
            Layer::Arp => ARP,
            Layer::Rarp => RARP,
            _ => IPV4,
        }
    }

    /// libpcap's `gen_proto`: the IP protocol (or IPv6 next header, also
    /// behind one fragment header) is `number`.
    fn ip_proto(&self, number: u32, family: Option<Layer>) -> Cond {
        let l = self.payload();
        let v4 = || Cond::And(vec![self.link_type(IPV4), test(Load::Abs(1, l + 9), Cmp::Eq, number)]);
        let v6 = || {
            Cond::And(vec![
                self.link_type(IPV6),
                Cond::Or(vec![
                    test(Load::Abs(1, l + 6), Cmp::Eq, number),
                    Cond::And(vec![
                        test(Load::Abs(1, l + 6), Cmp::Eq, IPPROTO_FRAGMENT),
                        test(Load::Abs(1, l + 40), Cmp::Eq, number),
                    ]),
                ]),
            ])
        };
        match family {
            Some(Layer::Ip) => v4(),
            Some(Layer::Ip6) => v6(),
            _ => Cond::Or(vec![v4(), v6()]),
        }
    }

    /// The protocol words alone (`tcp`, `ip6`, `igmp`...).
    fn proto(&self, layer: Layer) -> Cond {
        match layer {
            Layer::Tcp => self.ip_proto(6, None),
            Layer::Udp => self.ip_proto(17, None),
            Layer::Sctp => self.ip_proto(132, None),
            Layer::Icmp => self.ip_proto(1, Some(Layer::Ip)),
            Layer::Igmp => self.ip_proto(2, Some(Layer::Ip)),
            Layer::Icmp6 => self.ip_proto(58, Some(Layer::Ip6)),
            Layer::Link => Cond::Const(true),
            Layer::Ip | Layer::Ip6 | Layer::Arp | Layer::Rarp => self.link_type(Self::ether_type_of(layer)),
        }
    }

    /// Not a fragment, or the first one: only then is a transport header there.
    fn first_fragment(&self) -> Cond {
        masked(Load::Abs(2, self.payload() + 6), 0x1fff, 0)
    }

    fn primitive(&mut self, primitive: &Primitive) -> Result<Cond, CompileError> {
        let l = self.payload();
        Ok(match *primitive {
            Primitive::Proto(layer) => self.proto(layer),
            Primitive::IpProto { family, number } => self.ip_proto(u32::from(number), family),
            Primitive::EtherProto(number) => self.link_type(u32::from(number)),
            Primitive::Net { family, dir, net, prefix } => self.net(family, dir, net, prefix),
            Primitive::Port { proto, dir, first, last } => self.ports(proto, dir, first, last),
            Primitive::Less(n) => not(test(Load::Len, Cmp::Gt, n)),
            Primitive::Greater(n) => test(Load::Len, Cmp::Ge, n),
            Primitive::Multicast(Layer::Ip) => {
                Cond::And(vec![self.link_type(IPV4), test(Load::Abs(1, l + 16), Cmp::Ge, 224)])
            }
            Primitive::Multicast(Layer::Ip6) => {
                Cond::And(vec![self.link_type(IPV6), test(Load::Abs(1, l + 24), Cmp::Eq, 255)])
            }
            Primitive::IpBroadcast => Cond::And(vec![
                self.link_type(IPV4),
                Cond::Or(vec![
                    test(Load::Abs(4, l + 16), Cmp::Eq, 0),
                    test(Load::Abs(4, l + 16), Cmp::Eq, u32::MAX),
                ]),
            ]),
            Primitive::EtherHost { .. } | Primitive::Broadcast | Primitive::Multicast(_)
                if self.link != LinkType::Ethernet =>
            {
                return Err(self.not_on(primitive, "Ethernet header"));
            }
            // Beyond libpcap, which refuses `vlan` on cooked captures: an
            // `-i any` capture here keeps the tags the kernel took out.
            Primitive::Vlan(_) if !matches!(self.link, LinkType::Ethernet | LinkType::LinuxSll2) => {
                return Err(self.not_on(primitive, "Ethernet or Linux cooked v2 header"));
            }
            Primitive::EtherHost { dir, mac } => directed(dir, || mac_at(6, mac), || mac_at(0, mac)),
            Primitive::Broadcast => mac_at(0, [0xff; 6]),
            Primitive::Multicast(_) => test(Load::Abs(1, 0), Cmp::Set, 1),
            Primitive::Vlan(id) => {
                let tagged =
                    Cond::Or(vec![self.link_type(0x8100), self.link_type(0x88a8), self.link_type(0x9100)]);
                let cond = match id {
                    Some(id) => Cond::And(vec![tagged, masked(Load::Abs(2, l), 0x0fff, u32::from(id))]),
                    None => tagged,
                };
                // What follows looks past the tag, as in libpcap.
                self.shift += 4;
                cond
            }
        })
    }

    /// libpcap's `gen_host`: IPv4 addresses in IP, ARP and RARP headers;
    /// IPv6 ones in IPv6 headers.
    fn net(&self, family: Option<Layer>, dir: Dir, net: IpAddr, prefix: u8) -> Cond {
        let l = self.payload();
        match net {
            IpAddr::V4(addr) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                let value = u32::from(addr);
                let hostop = |ether_type: u32, src: u32, dst: u32| {
                    let at = |offset: u32| {
                        Cond::And(vec![
                            self.link_type(ether_type),
                            masked(Load::Abs(4, l + offset), mask, value),
                        ])
                    };
                    directed(dir, || at(src), || at(dst))
                };
                let ip = || hostop(IPV4, 12, 16);
                let arp = || hostop(ARP, 14, 24);
                let rarp = || hostop(RARP, 14, 24);
                match family {
                    Some(Layer::Ip) => ip(),
                    Some(Layer::Arp) => arp(),
                    Some(Layer::Rarp) => rarp(),
                    _ => Cond::Or(vec![ip(), arp(), rarp()]),
                }
            }
            IpAddr::V6(addr) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                let value = u128::from(addr);
                let at = |offset: u32| {
                    let mut tests = vec![self.link_type(IPV6)];
                    for word in 0..4u32 {
                        let shift = 96 - 32 * word;
                        let (m, v) = ((mask >> shift) as u32, (value >> shift) as u32);
                        tests.push(masked(Load::Abs(4, l + offset + 4 * word), m, v));
                    }
                    Cond::And(tests)
                };
                directed(dir, || at(8), || at(24))
            }
        }
    }

    /// libpcap's `gen_port` and `gen_port6` (and their range forms): IPv6
    /// first, then IPv4; SCTP, TCP and UDP in that order when no transport
    /// is named; IPv4 only when not a later fragment.
    fn ports(&self, proto: Option<Layer>, dir: Dir, first: u16, last: u16) -> Cond {
        let l = self.payload();
        let transports: Vec<u32> = match proto {
            Some(Layer::Tcp) => vec![6],
            Some(Layer::Udp) => vec![17],
            Some(Layer::Sctp) => vec![132],
            _ => vec![132, 6, 17],
        };
        let range = |load: Load| {
            if first == last {
                test(load, Cmp::Eq, u32::from(first))
            } else {
                Cond::And(vec![
                    test(load, Cmp::Ge, u32::from(first)),
                    not(test(load, Cmp::Gt, u32::from(last))),
                ])
            }
        };
        let v6 = Cond::And(vec![
            self.link_type(IPV6),
            Cond::Or(
                transports
                    .iter()
                    .map(|&p| {
                        Cond::And(vec![
                            test(Load::Abs(1, l + 6), Cmp::Eq, p),
                            directed(dir, || range(Load::Abs(2, l + 40)), || range(Load::Abs(2, l + 42))),
                        ])
                    })
                    .collect(),
            ),
        ]);
        let after = |offset| Load::AfterIpv4 { size: 2, ip: l, offset };
        let v4 = Cond::And(vec![
            self.link_type(IPV4),
            Cond::Or(
                transports
                    .iter()
                    .map(|&p| {
                        Cond::And(vec![
                            test(Load::Abs(1, l + 9), Cmp::Eq, p),
                            self.first_fragment(),
                            directed(dir, || range(after(0)), || range(after(2))),
                        ])
                    })
                    .collect(),
            ),
        ]);
        Cond::Or(vec![v6, v4])
    }

    fn relation(&mut self, relation: &Relation) -> Result<Cond, CompileError> {
        if let (Some(a), Some(b)) = (constant(&relation.left), constant(&relation.right)) {
            let (cmp, reversed) = relop(relation.op);
            let holds = match cmp {
                Cmp::Eq => a == b,
                Cmp::Gt => a > b,
                Cmp::Ge | Cmp::Set => a >= b,
            };
            return Ok(Cond::Const(holds != reversed));
        }
        let too_many = || CompileError::TooManyRegisters { what: relation.to_string() };
        let left = self.expr(&relation.left, 0).ok_or_else(too_many)?;
        let right = self.expr(&relation.right, 1).ok_or_else(too_many)?;
        let mut stmts = left.stmts;
        stmts.push(stmt(op::ST, 0));
        stmts.extend(right.stmts);
        stmts.extend([stmt(op::TAX, 0), stmt(op::LD_MEM, 0)]);
        let (cmp, reversed) = relop(relation.op);
        let compute = Cond::Compute { stmts, cmp };
        let mut all = left.guards;
        all.extend(right.guards);
        all.push(if reversed { not(compute) } else { compute });
        Ok(Cond::And(all))
    }

    /// The code of `expr`, using scratch words from `depth` up; `None` past
    /// the 16 BPF has. As in libpcap, an operation keeps the guards of its
    /// left operand only (`len + tcp[0]` loads `tcp[0]` from any frame).
    fn expr(&mut self, expr: &Expr, depth: u32) -> Option<Value> {
        if depth >= MEMWORDS {
            return None;
        }
        Some(match expr {
            Expr::Num(n) => Value { guards: Vec::new(), stmts: vec![stmt(op::LD_IMM, *n)] },
            Expr::Len => Value { guards: Vec::new(), stmts: vec![stmt(op::LD_W_LEN, 0)] },
            Expr::Neg(a) => {
                let mut value = self.expr(a, depth)?;
                value.stmts.push(stmt(op::NEG, 0));
                value
            }
            Expr::Binary(operator, a, b) => {
                let mut value = self.expr(a, depth)?;
                let right = self.expr(b, depth + 1)?;
                value.stmts.push(stmt(op::ST, depth));
                value.stmts.extend(right.stmts);
                value.stmts.extend([stmt(op::TAX, 0), stmt(op::LD_MEM, depth), stmt(alu(*operator), 0)]);
                value
            }
            Expr::Load { layer, index, size } => {
                let index = self.expr(index, depth)?;
                self.load(*layer, index, *size, depth)
            }
        })
    }

    /// `layer[index:size]`, as libpcap's `gen_load`.
    fn load(&self, layer: Layer, index: Value, size: u8, depth: u32) -> Value {
        let l = self.payload();
        let Value { guards: index_guards, mut stmts } = index;
        let indexed = |k| stmt(load_code(size, true), k);
        let mut guards = Vec::new();
        match layer {
            Layer::Link => {
                stmts.extend([stmt(op::TAX, 0), indexed(0)]);
                guards = index_guards;
            }
            Layer::Ip | Layer::Ip6 | Layer::Arp | Layer::Rarp => {
                stmts.extend([stmt(op::TAX, 0), indexed(l)]);
                guards = index_guards;
                guards.push(self.proto(layer));
            }
            Layer::Icmp6 => {
                stmts.extend([stmt(op::TAX, 0), indexed(l + 40)]);
                guards = index_guards;
                guards.push(self.link_type(IPV6));
                guards.push(test(Load::Abs(1, l + 6), Cmp::Eq, 58));
            }
            Layer::Tcp | Layer::Udp | Layer::Sctp | Layer::Icmp | Layer::Igmp => {
                // The offset counts from the end of an IPv4 header (IPv6 is
                // not looked at: libpcap requires IPv4 here).
                stmts.extend([
                    stmt(op::ST, depth),
                    stmt(op::LDX_B_MSH, l),
                    stmt(op::LD_MEM, depth),
                    stmt(op::ADD_X, 0),
                    stmt(op::TAX, 0),
                    indexed(l),
                ]);
                guards.push(self.link_type(IPV4));
                guards.extend(index_guards);
                guards.push(self.proto(layer));
                guards.push(self.first_fragment());
            }
        }
        Value { guards, stmts }
    }
}

/// The six bytes of `mac` at `offset`, as libpcap compares them: the last
/// four as a word, then the first two.
fn mac_at(offset: u32, mac: [u8; 6]) -> Cond {
    let word = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
    let half = u32::from(u16::from_be_bytes([mac[0], mac[1]]));
    Cond::And(vec![test(Load::Abs(4, offset + 2), Cmp::Eq, word), test(Load::Abs(2, offset), Cmp::Eq, half)])
}

/// A comparison as a jump: which one, and whether its sense is reversed.
fn relop(op: RelOp) -> (Cmp, bool) {
    match op {
        RelOp::Gt => (Cmp::Gt, false),
        RelOp::Lt => (Cmp::Ge, true),
        RelOp::Ge => (Cmp::Ge, false),
        RelOp::Le => (Cmp::Gt, true),
        RelOp::Eq => (Cmp::Eq, false),
        RelOp::Ne => (Cmp::Eq, true),
    }
}

/// The value of an expression without loads, as the machine would compute
/// it; `None` when it loads or divides by zero.
fn constant(expr: &Expr) -> Option<u32> {
    Some(match expr {
        Expr::Num(n) => *n,
        Expr::Len | Expr::Load { .. } => return None,
        Expr::Neg(a) => constant(a)?.wrapping_neg(),
        Expr::Binary(op, a, b) => {
            let (a, b) = (constant(a)?, constant(b)?);
            match op {
                ArithOp::Add => a.wrapping_add(b),
                ArithOp::Sub => a.wrapping_sub(b),
                ArithOp::Mul => a.wrapping_mul(b),
                ArithOp::Div => a.checked_div(b)?,
                ArithOp::Mod => a.checked_rem(b)?,
                ArithOp::And => a & b,
                ArithOp::Or => a | b,
                ArithOp::Xor => a ^ b,
                ArithOp::Shl => a.checked_shl(b).unwrap_or(0),
                ArithOp::Shr => a.checked_shr(b).unwrap_or(0),
            }
        }
    })
}

fn alu(operator: ArithOp) -> u16 {
    match operator {
        ArithOp::Add => op::ADD_X,
        ArithOp::Sub => op::SUB_X,
        ArithOp::Mul => op::MUL_X,
        ArithOp::Div => op::DIV_X,
        ArithOp::Mod => op::MOD_X,
        ArithOp::And => op::AND_X,
        ArithOp::Or => op::OR_X,
        ArithOp::Xor => op::XOR_X,
        ArithOp::Shl => op::LSH_X,
        ArithOp::Shr => op::RSH_X,
    }
}

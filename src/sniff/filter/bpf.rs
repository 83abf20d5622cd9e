//! Compiling a [`Filter`] to classic BPF, so the kernel drops unwanted
//! frames before they are copied to us (what tcpdump does through libpcap).
//!
//! The kernel's program must keep every frame the exact filter
//! ([`Filter::matches`], run on each frame after) keeps; it may keep more.
//! Where a header cannot be found at a fixed offset (IPv6 extension headers,
//! ARP with unusual address sizes) a primitive is uncertain: it compiles to
//! "maybe" (true) where the program needs a superset, and to "surely not"
//! (false) under a `not`, where the superset of `not X` is the complement of
//! a subset of `X`. For every other well-formed frame the program and the
//! exact filter agree; the tests check that on an interpreter.
//!
//! Offsets are those of Ethernet frames; other link types are filtered in
//! userspace only.

use socket2::SockFilter;

use super::{Dir, Filter, Primitive, ProtoName};
use crate::bpf::op;
use crate::sniff::LinkType;
use std::net::IpAddr;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// The opcode.
    pub code: u16,
    /// Where a conditional jump goes when true, counted from the next instruction.
    pub jt: u8,
    /// Where it goes when false.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

impl Instruction {
    fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        Instruction { code, jt, jf, k }
    }
}

impl From<Instruction> for SockFilter {
    fn from(i: Instruction) -> Self {
        SockFilter::new(i.code, i.jt, i.jf, i.k)
    }
}

/// The longest program the kernel takes (BPF_MAXINSNS), less room for the
/// interface guard in front of it.
const MAX_INSNS: usize = 4096 - 16;

const ETHERTYPE: u32 = 12;
const IPV4: u32 = 0x0800;
const IPV6: u32 = 0x86dd;
const ARP: u32 = 0x0806;
/// IPv6 next-header values that are extension headers, not transports.
const IPV6_EXTENSIONS: [u32; 8] = [0, 43, 44, 50, 51, 60, 135, 139];

/// A value loaded into the accumulator.
#[derive(Clone, Copy, Debug)]
enum Load {
    /// A big-endian field at a fixed offset: the opcode picks its width.
    Abs(u16, u32),
    /// A 16-bit field at an offset past the IPv4 header (whose length varies).
    AfterIpv4(u32),
    /// The frame's length on the wire.
    Len,
}

/// One test: load, optionally mask, compare with `k`; it holds when the
/// comparison comes out as `want`.
#[derive(Clone, Copy, Debug)]
struct Check {
    load: Load,
    mask: Option<u32>,
    cmp: u16,
    k: u32,
    want: bool,
}

fn check(load: Load, cmp: u16, k: u32) -> Check {
    Check { load, mask: None, cmp, k, want: true }
}

fn is_ether(ether_type: u32) -> Check {
    check(Load::Abs(op::LD_H_ABS, ETHERTYPE), op::JEQ_K, ether_type)
}

/// A primitive as alternatives of conjunctions: `exact` ones decide,
/// `uncertain` ones name frames the program cannot judge.
#[derive(Default)]
struct Alternatives {
    exact: Vec<Vec<Check>>,
    uncertain: Vec<Vec<Check>>,
}

/// An IPv4 packet that is not a fragment: only those have transport headers
/// (the decoder does not reassemble).
fn ipv4_whole(proto: u32) -> Vec<Check> {
    vec![
        is_ether(IPV4),
        check(Load::Abs(op::LD_B_ABS, 23), op::JEQ_K, proto),
        Check { load: Load::Abs(op::LD_H_ABS, 20), mask: None, cmp: op::JSET_K, k: 0x3fff, want: false },
    ]
}

fn ipv6_next(proto: u32) -> Vec<Check> {
    vec![is_ether(IPV6), check(Load::Abs(op::LD_B_ABS, 20), op::JEQ_K, proto)]
}

/// IPv6 packets whose first next header is an extension header.
fn ipv6_with_extensions() -> Vec<Vec<Check>> {
    IPV6_EXTENSIONS.iter().map(|&next| ipv6_next(next)).collect()
}

fn transport(proto: u32) -> Alternatives {
    Alternatives { exact: vec![ipv4_whole(proto), ipv6_next(proto)], uncertain: ipv6_with_extensions() }
}

/// Checks that a 16-bit field is in `first..=last`.
fn in_range(load: Load, first: u16, last: u16) -> Vec<Check> {
    if first == last {
        return vec![check(load, op::JEQ_K, u32::from(first))];
    }
    vec![
        check(load, op::JGE_K, u32::from(first)),
        Check { load, mask: None, cmp: op::JGT_K, k: u32::from(last), want: false },
    ]
}

/// `base` extended by the checks for the fields `dir` names.
fn directed(base: &[Check], dir: Dir, src: &[Check], dst: &[Check]) -> Vec<Vec<Check>> {
    let with = |parts: &[&[Check]]| {
        let mut all = base.to_vec();
        parts.iter().for_each(|p| all.extend_from_slice(p));
        all
    };
    match dir {
        Dir::Src => vec![with(&[src])],
        Dir::Dst => vec![with(&[dst])],
        Dir::Either => vec![with(&[src]), with(&[dst])],
        Dir::Both => vec![with(&[src, dst])],
    }
}

/// Checks that the address at `offset` is in `net/prefix`, word by word.
fn address(offset: u32, net: IpAddr, prefix: u8) -> Vec<Check> {
    let bytes = match net {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut checks = Vec::new();
    for (i, word) in bytes.chunks(4).enumerate() {
        let bits = u32::from(prefix).saturating_sub(32 * i as u32).min(32);
        if bits == 0 {
            break;
        }
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        let value = u32::from_be_bytes([word[0], word[1], word[2], word[3]]) & mask;
        let load = Load::Abs(op::LD_W_ABS, offset + 4 * i as u32);
        checks.push(Check {
            load,
            mask: (mask != u32::MAX).then_some(mask),
            cmp: op::JEQ_K,
            k: value,
            want: true,
        });
    }
    checks
}

fn addresses(dir: Dir, net: IpAddr, prefix: u8) -> Alternatives {
    match net {
        IpAddr::V4(_) => {
            let arp_ipv4 = [is_ether(ARP), check(Load::Abs(op::LD_H_ABS, 18), op::JEQ_K, 0x0604)];
            let mut exact =
                directed(&[is_ether(IPV4)], dir, &address(26, net, prefix), &address(30, net, prefix));
            exact.extend(directed(&arp_ipv4, dir, &address(28, net, prefix), &address(38, net, prefix)));
            let other_arp = vec![
                is_ether(ARP),
                Check { want: false, ..check(Load::Abs(op::LD_H_ABS, 18), op::JEQ_K, 0x0604) },
            ];
            Alternatives { exact, uncertain: vec![other_arp] }
        }
        IpAddr::V6(_) => Alternatives {
            exact: directed(&[is_ether(IPV6)], dir, &address(22, net, prefix), &address(38, net, prefix)),
            uncertain: Vec::new(),
        },
    }
}

fn ports(dir: Dir, proto: Option<ProtoName>, first: u16, last: u16) -> Alternatives {
    let mut alternatives = Alternatives::default();
    for (name, number) in [(ProtoName::Tcp, 6), (ProtoName::Udp, 17)] {
        if proto.is_some_and(|p| p != name) {
            continue;
        }
        let (v4_src, v4_dst) =
            (in_range(Load::AfterIpv4(14), first, last), in_range(Load::AfterIpv4(16), first, last));
        alternatives.exact.extend(directed(&ipv4_whole(number), dir, &v4_src, &v4_dst));
        let (v6_src, v6_dst) = (
            in_range(Load::Abs(op::LD_H_ABS, 54), first, last),
            in_range(Load::Abs(op::LD_H_ABS, 56), first, last),
        );
        alternatives.exact.extend(directed(&ipv6_next(number), dir, &v6_src, &v6_dst));
    }
    alternatives.uncertain = ipv6_with_extensions();
    alternatives
}

fn alternatives(primitive: &Primitive) -> Alternatives {
    let exact = |exact| Alternatives { exact, uncertain: Vec::new() };
    match *primitive {
        Primitive::Proto(ProtoName::Tcp) => transport(6),
        Primitive::Proto(ProtoName::Udp) => transport(17),
        Primitive::Proto(ProtoName::Icmp) => exact(vec![ipv4_whole(1)]),
        Primitive::Proto(ProtoName::Icmp6) => transport(58),
        Primitive::Proto(ProtoName::Arp) => exact(vec![vec![is_ether(ARP)]]),
        Primitive::Proto(ProtoName::Ip) => exact(vec![vec![is_ether(IPV4)]]),
        Primitive::Proto(ProtoName::Ip6) => exact(vec![vec![is_ether(IPV6)]]),
        Primitive::Host { dir, addr } => addresses(dir, addr, if addr.is_ipv4() { 32 } else { 128 }),
        Primitive::Net { dir, net, prefix } => addresses(dir, net, prefix),
        Primitive::Port { dir, proto, first, last } => ports(dir, proto, first, last),
        Primitive::Less(n) => exact(vec![vec![Check { want: false, ..check(Load::Len, op::JGT_K, n) }]]),
        Primitive::Greater(n) => exact(vec![vec![check(Load::Len, op::JGE_K, n)]]),
    }
}

type Label = usize;

/// Instructions with symbolic jump targets; `Place` marks where a label is.
enum Insn {
    Stmt(u16, u32),
    Jump { code: u16, k: u32, jt: Option<Label>, jf: Option<Label> },
    Ja(Label),
    Place(Label),
}

#[derive(Default)]
struct Assembler {
    code: Vec<Insn>,
    labels: usize,
}

impl Assembler {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }

    /// Code that jumps to `yes` when `filter` holds and to `no` when not;
    /// `superset` says which way uncertain primitives lean.
    fn filter(&mut self, filter: &Filter, superset: bool, yes: Label, no: Label) {
        match filter {
            Filter::And(a, b) => {
                let middle = self.label();
                self.filter(a, superset, middle, no);
                self.code.push(Insn::Place(middle));
                self.filter(b, superset, yes, no);
            }
            Filter::Or(a, b) => {
                let middle = self.label();
                self.filter(a, superset, yes, middle);
                self.code.push(Insn::Place(middle));
                self.filter(b, superset, yes, no);
            }
            Filter::Not(a) => self.filter(a, !superset, no, yes),
            Filter::Is(primitive) => {
                let Alternatives { mut exact, uncertain } = alternatives(primitive);
                if superset {
                    exact.extend(uncertain);
                }
                self.any(&exact, yes, no);
            }
        }
    }

    /// Tries each conjunction in turn: the first that holds jumps to `yes`.
    /// Conditional jumps stay inside this primitive's code (their offsets
    /// have 8 bits); the far jumps to `yes` and `no` are 32-bit `ja`s.
    fn any(&mut self, alternatives: &[Vec<Check>], yes: Label, no: Label) {
        for checks in alternatives {
            let next = self.label();
            for check in checks {
                match check.load {
                    Load::Abs(code, offset) => self.code.push(Insn::Stmt(code, offset)),
                    Load::AfterIpv4(offset) => {
                        self.code.push(Insn::Stmt(op::LDX_B_MSH, 14));
                        self.code.push(Insn::Stmt(op::LD_H_IND, offset));
                    }
                    Load::Len => self.code.push(Insn::Stmt(op::LD_W_LEN, 0)),
                }
                if let Some(mask) = check.mask {
                    self.code.push(Insn::Stmt(op::AND_K, mask));
                }
                let (jt, jf) = if check.want { (None, Some(next)) } else { (Some(next), None) };
                self.code.push(Insn::Jump { code: check.cmp, k: check.k, jt, jf });
            }
            self.code.push(Insn::Ja(yes));
            self.code.push(Insn::Place(next));
        }
        self.code.push(Insn::Ja(no));
    }

    /// Resolves labels to offsets; `None` when a conditional jump is longer
    /// than its 8 bits allow or the program is too long.
    fn assemble(self) -> Option<Vec<Instruction>> {
        let mut at = vec![0usize; self.labels];
        let mut position = 0;
        for insn in &self.code {
            match insn {
                Insn::Place(label) => at[*label] = position,
                _ => position += 1,
            }
        }
        if position > MAX_INSNS {
            return None;
        }
        let mut program = Vec::with_capacity(position);
        let mut here = 0usize;
        let offset = |target: Option<Label>, here: usize| -> Option<u8> {
            target.map_or(Some(0), |label| u8::try_from(at[label] - here - 1).ok())
        };
        for insn in &self.code {
            match *insn {
                Insn::Place(_) => continue,
                Insn::Stmt(code, k) => program.push(Instruction::new(code, 0, 0, k)),
                Insn::Jump { code, k, jt, jf } => {
                    program.push(Instruction::new(code, offset(jt, here)?, offset(jf, here)?, k));
                }
                Insn::Ja(label) => {
                    program.push(Instruction::new(op::JA, 0, 0, (at[label] - here - 1) as u32))
                }
            }
            here += 1;
        }
        Some(program)
    }
}

/// A program accepting `snaplen` bytes of every frame `filter` matches (and
/// perhaps a few more, see the module doc); `None` when the link type is
/// not Ethernet or the program would not fit the kernel's limits.
pub fn compile(filter: &Filter, link: LinkType, snaplen: u32) -> Option<Vec<Instruction>> {
    if link != LinkType::Ethernet {
        return None;
    }
    let mut assembler = Assembler::default();
    let (accept, reject) = (assembler.label(), assembler.label());
    assembler.filter(filter, true, accept, reject);
    assembler.code.push(Insn::Place(accept));
    assembler.code.push(Insn::Stmt(op::RET_K, snaplen));
    assembler.code.push(Insn::Place(reject));
    assembler.code.push(Insn::Stmt(op::RET_K, 0));
    assembler.assemble()
}

/// Whether a program may have judged this Ethernet frame wrongly (it falls
/// in an uncertain case): only such frames need [`Filter::matches`] after
/// the kernel's program; for every other well-formed frame the two agree.
pub fn uncertain(frame: &[u8]) -> bool {
    let field = |at: usize| frame.get(at..at + 2).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])));
    match field(ETHERTYPE as usize) {
        Some(IPV6) => frame.get(20).is_some_and(|&next| IPV6_EXTENSIONS.contains(&u32::from(next))),
        Some(ARP) => field(18) != Some(0x0604),
        _ => false,
    }
}

#[cfg(test)]
mod tests;

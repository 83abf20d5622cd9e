//! Classic BPF (linux/filter.h): the small programs the kernel runs on every
//! packet a socket receives, to keep or drop it. The scanner attaches fixed
//! ones to its raw sockets and `sniff` compiles its filters to them; both
//! take the opcodes from here. [`run`] is the same machine in userspace, as
//! libpcap's `bpf_filter` is: `sniff -r` runs a filter's program on each
//! frame of a file exactly as the kernel would have run it live.

/// The opcodes this crate uses, each the OR of its class, size and mode bits.
pub mod op {
    /// A = u32 at k (BPF_LD | BPF_W | BPF_ABS).
    pub const LD_W_ABS: u16 = 0x20;
    /// A = u16 at k (BPF_LD | BPF_H | BPF_ABS).
    pub const LD_H_ABS: u16 = 0x28;
    /// A = u8 at k (BPF_LD | BPF_B | BPF_ABS).
    pub const LD_B_ABS: u16 = 0x30;
    /// A = u32 at X + k (BPF_LD | BPF_W | BPF_IND).
    pub const LD_W_IND: u16 = 0x40;
    /// A = u16 at X + k (BPF_LD | BPF_H | BPF_IND).
    pub const LD_H_IND: u16 = 0x48;
    /// A = u8 at X + k (BPF_LD | BPF_B | BPF_IND).
    pub const LD_B_IND: u16 = 0x50;
    /// A = the packet's length (BPF_LD | BPF_W | BPF_LEN).
    pub const LD_W_LEN: u16 = 0x80;
    /// A = k (BPF_LD | BPF_IMM).
    pub const LD_IMM: u16 = 0x00;
    /// A = M\[k\] (BPF_LD | BPF_MEM).
    pub const LD_MEM: u16 = 0x60;
    /// X = k (BPF_LDX | BPF_IMM).
    pub const LDX_IMM: u16 = 0x01;
    /// X = M\[k\] (BPF_LDX | BPF_MEM).
    pub const LDX_MEM: u16 = 0x61;
    /// X = 4 * (u8 at k & 0xf): an IPv4 header's length.
    pub const LDX_B_MSH: u16 = 0x01 | 0x10 | 0xa0;
    /// M\[k\] = A.
    pub const ST: u16 = 0x02;
    /// A = A + X (and the other ALU operations with X, below).
    pub const ADD_X: u16 = 0x04 | 0x08;
    /// A = A - X.
    pub const SUB_X: u16 = 0x04 | 0x08 | 0x10;
    /// A = A * X.
    pub const MUL_X: u16 = 0x04 | 0x08 | 0x20;
    /// A = A / X (a division by zero ends the program: drop).
    pub const DIV_X: u16 = 0x04 | 0x08 | 0x30;
    /// A = A | X.
    pub const OR_X: u16 = 0x04 | 0x08 | 0x40;
    /// A = A & X.
    pub const AND_X: u16 = 0x04 | 0x08 | 0x50;
    /// A = A << X.
    pub const LSH_X: u16 = 0x04 | 0x08 | 0x60;
    /// A = A >> X.
    pub const RSH_X: u16 = 0x04 | 0x08 | 0x70;
    /// A = -A.
    pub const NEG: u16 = 0x04 | 0x80;
    /// A = A % X.
    pub const MOD_X: u16 = 0x04 | 0x08 | 0x90;
    /// A = A ^ X.
    pub const XOR_X: u16 = 0x04 | 0x08 | 0xa0;
    /// A &= k.
    pub const AND_K: u16 = 0x04 | 0x50;
    /// X = A.
    pub const TAX: u16 = 0x07;
    /// Jump by k.
    pub const JA: u16 = 0x05;
    /// Jump jt if A == k, else jf.
    pub const JEQ_K: u16 = 0x05 | 0x10;
    /// Jump jt if A > k, else jf.
    pub const JGT_K: u16 = 0x05 | 0x20;
    /// Jump jt if A >= k, else jf.
    pub const JGE_K: u16 = 0x05 | 0x30;
    /// Jump jt if A & k != 0, else jf.
    pub const JSET_K: u16 = 0x05 | 0x40;
    /// Jump jt if A == X, else jf.
    pub const JEQ_X: u16 = 0x05 | 0x10 | 0x08;
    /// Jump jt if A > X, else jf.
    pub const JGT_X: u16 = 0x05 | 0x20 | 0x08;
    /// Jump jt if A >= X, else jf.
    pub const JGE_X: u16 = 0x05 | 0x30 | 0x08;
    /// Accept k bytes of the packet (0: drop it).
    pub const RET_K: u16 = 0x06;
    /// Where the kernel's ancillary loads start (SKF_AD_OFF, -0x1000).
    pub const AD_OFF: u32 = 0xffff_f000;
    /// Ancillary load: the packet type (PACKET_HOST, PACKET_OUTGOING, ...).
    pub const AD_PKTTYPE: u32 = AD_OFF + 4;
    /// Ancillary load: the interface index.
    pub const AD_IFINDEX: u32 = AD_OFF + 8;
    /// Ancillary load: 1 when the NIC took the frame's 802.1Q tag off (it is
    /// then in the socket's metadata, not in the bytes the program sees).
    pub const AD_VLAN_TAG_PRESENT: u32 = AD_OFF + 48;
}

/// The scratch memory words a program may use (BPF_MEMWORDS).
pub const MEMWORDS: u32 = 16;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// An instruction from its four fields.
    pub fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        Instruction { code, jt, jf, k }
    }
}

/// A program as `tcpdump -d` lists it: `(003) jeq #0x800 jt 4 jf 10`.
pub fn disassemble(program: &[Instruction]) -> Vec<String> {
    program
        .iter()
        .enumerate()
        .map(|(n, i)| {
            let (jt, jf) = (n + 1 + usize::from(i.jt), n + 1 + usize::from(i.jf));
            let size = |code: u16| match code & 0x18 {
                0x10 => "b",
                0x08 => "h",
                _ => "",
            };
            let text = match i.code {
                op::LD_W_ABS | op::LD_H_ABS | op::LD_B_ABS => format!("ld{}      [{}]", size(i.code), i.k),
                op::LD_W_IND | op::LD_H_IND | op::LD_B_IND => {
                    format!("ld{}      [x + {}]", size(i.code), i.k)
                }
                op::LD_W_LEN => "ld       #pktlen".to_owned(),
                op::LD_IMM => format!("ld       #{:#x}", i.k),
                op::LD_MEM => format!("ld       M[{}]", i.k),
                op::LDX_IMM => format!("ldx      #{:#x}", i.k),
                op::LDX_MEM => format!("ldx      M[{}]", i.k),
                op::LDX_B_MSH => format!("ldxb     4*([{}]&0xf)", i.k),
                op::ST => format!("st       M[{}]", i.k),
                op::AND_K => format!("and      #{:#x}", i.k),
                op::TAX => "tax".to_owned(),
                op::NEG => "neg".to_owned(),
                op::JA => format!("ja       {}", n + 1 + i.k as usize),
                op::JEQ_K | op::JGT_K | op::JGE_K | op::JSET_K => {
                    let name = ["jeq", "jgt", "jge", "jset"][usize::from((i.code >> 4) & 0x7) - 1];
                    format!("{name:<8} {:<17}jt {jt}\tjf {jf}", format!("#{:#x}", i.k))
                }
                op::JEQ_X | op::JGT_X | op::JGE_X => {
                    let name = ["jeq", "jgt", "jge"][usize::from((i.code >> 4) & 0x7) - 1];
                    format!("{name:<8} {:<17}jt {jt}\tjf {jf}", "x")
                }
                op::RET_K => format!("ret      #{}", i.k),
                code if code & 0x07 == 0x04 => {
                    let names = ["add", "sub", "mul", "div", "or", "and", "lsh", "rsh", "neg", "mod", "xor"];
                    let name = names.get(usize::from(code >> 4)).copied().unwrap_or("alu");
                    format!("{name:<8} x")
                }
                code => format!("unknown  {code:#x} {}", i.k),
            };
            format!("({n:03}) {text}")
        })
        .collect()
}

/// Runs `program` on `packet` (the captured bytes) of a frame `wire_len`
/// bytes long on the wire, and returns what it returned: how many bytes to
/// keep, 0 to drop. As in the kernel and libpcap, a load past the captured
/// bytes, a division by zero, a jump out of the program or an unknown opcode
/// ends it with 0; a program cannot loop, every jump goes forward.
pub fn run(program: &[Instruction], packet: &[u8], wire_len: u32) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut memory = [0u32; MEMWORDS as usize];
    let load = |at: u32, width: usize| -> Option<u32> {
        let at = usize::try_from(at).ok()?;
        let bytes = packet.get(at..at.checked_add(width)?)?;
        Some(bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
    };
    let mut pc = 0usize;
    while let Some(&i) = program.get(pc) {
        pc += 1;
        let jump = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
        let slot = (i.k < MEMWORDS).then_some(i.k as usize);
        let loaded = match i.code {
            op::LD_W_ABS => load(i.k, 4),
            op::LD_H_ABS => load(i.k, 2),
            op::LD_B_ABS => load(i.k, 1),
            op::LD_W_IND => load(x.wrapping_add(i.k), 4),
            op::LD_H_IND => load(x.wrapping_add(i.k), 2),
            op::LD_B_IND => load(x.wrapping_add(i.k), 1),
            _ => None,
        };
        if let Some(value) = loaded {
            a = value;
            continue;
        }
        match i.code {
            op::LD_W_ABS | op::LD_H_ABS | op::LD_B_ABS | op::LD_W_IND | op::LD_H_IND | op::LD_B_IND => {
                return 0;
            }
            op::LD_W_LEN => a = wire_len,
            op::LD_IMM => a = i.k,
            op::LDX_IMM => x = i.k,
            op::LD_MEM | op::LDX_MEM | op::ST => {
                let Some(slot) = slot else { return 0 };
                match i.code {
                    op::LD_MEM => a = memory[slot],
                    op::LDX_MEM => x = memory[slot],
                    _ => memory[slot] = a,
                }
            }
            op::LDX_B_MSH => match load(i.k, 1) {
                Some(v) => x = 4 * (v & 0xf),
                None => return 0,
            },
            op::ADD_X => a = a.wrapping_add(x),
            op::SUB_X => a = a.wrapping_sub(x),
            op::MUL_X => a = a.wrapping_mul(x),
            op::DIV_X | op::MOD_X => {
                if x == 0 {
                    return 0;
                }
                a = if i.code == op::DIV_X { a / x } else { a % x };
            }
            op::OR_X => a |= x,
            op::AND_X => a &= x,
            op::XOR_X => a ^= x,
            // Shifts of 32 or more give 0 here (C leaves them undefined).
            op::LSH_X => a = a.checked_shl(x).unwrap_or(0),
            op::RSH_X => a = a.checked_shr(x).unwrap_or(0),
            op::NEG => a = a.wrapping_neg(),
            op::AND_K => a &= i.k,
            op::TAX => x = a,
            op::JA => pc = pc.saturating_add(i.k as usize),
            op::JEQ_K => pc += jump(a == i.k),
            op::JGT_K => pc += jump(a > i.k),
            op::JGE_K => pc += jump(a >= i.k),
            op::JSET_K => pc += jump(a & i.k != 0),
            op::JEQ_X => pc += jump(a == x),
            op::JGT_X => pc += jump(a > x),
            op::JGE_X => pc += jump(a >= x),
            op::RET_K => return i.k,
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(code: u16, jt: u8, jf: u8, k: u32) -> Instruction {
        Instruction::new(code, jt, jf, k)
    }

    #[test]
    fn loads_compare_and_stop_past_the_end() {
        // ldh [12]; jeq #0x800 jt 0 jf 1; ret #100; ret #0
        let program = [
            i(op::LD_H_ABS, 0, 0, 12),
            i(op::JEQ_K, 0, 1, 0x800),
            i(op::RET_K, 0, 0, 100),
            i(op::RET_K, 0, 0, 0),
        ];
        let mut frame = [0u8; 14];
        frame[12] = 8;
        assert_eq!(run(&program, &frame, 60), 100);
        frame[12] = 0x86;
        assert_eq!(run(&program, &frame, 60), 0);
        assert_eq!(run(&program, &frame[..13], 60), 0, "a load past the end drops");
    }

    #[test]
    fn arithmetic_scratch_memory_and_division_by_zero() {
        // M[0] = len; A = 7; X = M[0]; A = A % X ... then A / 0 drops.
        let program = [
            i(op::LD_W_LEN, 0, 0, 0),
            i(op::ST, 0, 0, 0),
            i(op::LD_IMM, 0, 0, 7),
            i(op::LDX_MEM, 0, 0, 0),
            i(op::MOD_X, 0, 0, 0),
            i(op::JEQ_K, 0, 1, 3),
            i(op::RET_K, 0, 0, 1),
            i(op::LDX_IMM, 0, 0, 0),
            i(op::DIV_X, 0, 0, 0),
            i(op::RET_K, 0, 0, 2),
        ];
        assert_eq!(run(&program, &[], 4), 1, "7 % 4 == 3");
        assert_eq!(run(&program, &[], 5), 0, "7 % 5 != 3, then 2 / 0 drops");
        assert_eq!(run(&[i(op::JA, 0, 0, 5)], &[], 0), 0, "a jump out of the program drops");
        assert_eq!(run(&[i(op::ST, 0, 0, 16)], &[], 0), 0, "no 17th memory word");
    }
}

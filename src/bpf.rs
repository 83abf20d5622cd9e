//! Classic BPF (linux/filter.h): the opcodes of the small programs the
//! kernel runs on every packet a socket receives, to keep or drop it. The
//! scanner attaches fixed ones to its raw sockets and `sniff` compiles its
//! filters to them; both take the opcodes from here.

/// The opcodes this crate uses, each the OR of its class, size and mode bits.
pub mod op {
    /// A = u32 at k (BPF_LD | BPF_W | BPF_ABS).
    pub const LD_W_ABS: u16 = 0x20;
    /// A = u16 at k (BPF_LD | BPF_H | BPF_ABS).
    pub const LD_H_ABS: u16 = 0x28;
    /// A = u8 at k (BPF_LD | BPF_B | BPF_ABS).
    pub const LD_B_ABS: u16 = 0x30;
    /// A = u16 at X + k (BPF_LD | BPF_H | BPF_IND).
    pub const LD_H_IND: u16 = 0x48;
    /// A = the packet's length (BPF_LD | BPF_W | BPF_LEN).
    pub const LD_W_LEN: u16 = 0x80;
    /// X = 4 * (u8 at k & 0xf): an IPv4 header's length.
    pub const LDX_B_MSH: u16 = 0x01 | 0x10 | 0xa0;
    /// A &= k.
    pub const AND_K: u16 = 0x04 | 0x50;
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
    /// Accept k bytes of the packet (0: drop it).
    pub const RET_K: u16 = 0x06;
    /// Where the kernel's ancillary loads start (SKF_AD_OFF, -0x1000).
    pub const AD_OFF: u32 = 0xffff_f000;
    /// Ancillary load: the packet type (PACKET_HOST, PACKET_OUTGOING, ...).
    pub const AD_PKTTYPE: u32 = AD_OFF + 4;
    /// Ancillary load: the interface index.
    pub const AD_IFINDEX: u32 = AD_OFF + 8;
}

//! Compiling a [`Filter`] to classic BPF, frame for frame what libpcap
//! compiles (its `gencode.c`, without the optimizer): the same header
//! offsets per link type, the same checks in the same order, so the same
//! frames pass, a load past the captured bytes rejects the same frames, and
//! `vlan` shifts what follows it by 4 bytes as it does there.
//!
//! The program is what a filter means: the kernel runs it on a live
//! capture and [`crate::bpf::run`] runs it on frames read from a file.
//! Primitives are first built as a tree of tests (`Cond`) in the order
//! of the text (which is what makes `vlan`'s shift come out right), then as
//! a graph of blocks that libpcap's jump threading prunes and its pull-ups
//! reorder (tests of one load in a chain of `or`s or `and`s move together)
//! (which decides which loads run, and so which short frames a load
//! rejects), then laid out; jumps too long for a conditional's 8-bit
//! offsets go through `ja`s.

mod graph;
mod primitives;

use std::fmt;

use super::Filter;
use crate::bpf::{self, Instruction};
use crate::sniff::LinkType;
use graph::Graph;
use primitives::Generator;

/// The longest program the kernel takes (BPF_MAXINSNS), less room for the
/// interface guard a capture puts in front of it.
pub const MAX_INSNS: usize = 4096 - 16;

/// Why a filter has no program for a link type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// The filter tests a header this link type does not have (`ether host`
    /// on a Linux cooked capture, `vlan` on raw IP).
    #[error("'{what}' cannot apply to {link} frames, which have no {needs}")]
    NotOnLink {
        /// The primitive, as written canonically.
        what: String,
        /// The link type.
        link: LinkLabel,
        /// What it lacks.
        needs: &'static str,
    },
    /// An expression needs more than the 16 scratch words BPF has.
    #[error("the expression '{what}' is too deeply nested for BPF's 16 scratch registers")]
    TooManyRegisters {
        /// The expression.
        what: String,
    },
    /// No frame can pass (`ip and ip6`); tcpdump refuses such filters too.
    #[error("the filter rejects every frame")]
    RejectsAll,
    /// The program would be longer than the kernel takes.
    #[error("the filter compiles to {len} BPF instructions, more than the {MAX_INSNS} the kernel takes")]
    TooLong {
        /// Its length.
        len: usize,
    },
}

/// A link type, named for errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkLabel(pub LinkType);

impl fmt::Display for LinkLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            LinkType::Ethernet => "Ethernet",
            LinkType::RawIp => "raw IP",
            LinkType::LinuxSll => "Linux cooked (v1)",
            LinkType::LinuxSll2 => "Linux cooked (v2)",
            LinkType::Null => "BSD loopback",
        })
    }
}

/// A compiled filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    instructions: Vec<Instruction>,
}

impl Program {
    /// Its instructions, ready for the kernel.
    pub fn instructions(&self) -> &[Instruction] {
        &self.instructions
    }

    /// A program written by hand (for `-d` of no filter: accept all).
    pub fn from_instructions(instructions: Vec<Instruction>) -> Self {
        Program { instructions }
    }

    /// Whether a frame passes: `data` the captured bytes, `wire_len` its
    /// length on the wire.
    pub fn matches(&self, data: &[u8], wire_len: u32) -> bool {
        bpf::run(&self.instructions, data, wire_len) != 0
    }
}

/// The program for `filter` on frames of `link` type; a frame it accepts
/// is kept whole up to `snaplen` bytes.
///
/// # Errors
/// When the filter tests what the link type lacks, or does not fit BPF.
pub fn compile(filter: &Filter, link: LinkType, snaplen: u32) -> Result<Program, CompileError> {
    let cond = Generator::new(link).filter(filter)?;
    let mut graph = Graph::build(&cond);
    graph.optimize();
    if graph.rejects_all() {
        return Err(CompileError::RejectsAll);
    }
    let instructions = graph.assemble(snaplen);
    if instructions.len() > MAX_INSNS {
        return Err(CompileError::TooLong { len: instructions.len() });
    }
    Ok(Program { instructions })
}

/// How a test loads its value into A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Load {
    /// `size` bytes (1, 2 or 4) at a fixed offset.
    Abs(u8, u32),
    /// `size` bytes at an offset past the IPv4 header that starts at `ip`:
    /// X is loaded with that header's length first.
    AfterIpv4 {
        /// 1, 2 or 4 bytes.
        size: u8,
        /// Where the IPv4 header starts.
        ip: u32,
        /// The offset from there, plus the header's length.
        offset: u32,
    },
    /// The frame's length on the wire.
    Len,
}

/// A conditional jump's comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq,
    Gt,
    Ge,
    /// Any bit of k set.
    Set,
}

/// A tree of tests, evaluated left to right with short circuits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Cond {
    /// All hold (an empty list holds).
    And(Vec<Cond>),
    /// One holds (an empty list does not).
    Or(Vec<Cond>),
    /// It does not hold.
    Not(Box<Cond>),
    /// Always or never.
    Const(bool),
    /// Load, mask, compare with `k`.
    Test { load: Load, mask: Option<u32>, cmp: Cmp, k: u32 },
    /// Run `stmts` (leaving the operands in A and X), then compare A with X.
    Compute { stmts: Vec<Instruction>, cmp: Cmp },
}

#[cfg(test)]
mod tests;

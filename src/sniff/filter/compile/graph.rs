//! The program as a graph of blocks (a computation, then a conditional
//! jump to two targets), the part of libpcap's optimizer that decides
//! which loads a program runs, and the layout into instructions.
//!
//! Why an optimizer: a load past the captured bytes rejects the frame, so
//! which loads run is part of what a filter means. libpcap threads jumps
//! (a test whose outcome an earlier test on every path to it already
//! decided is skipped) and drops tests whose two branches meet; tcpdump
//! users get that meaning (`not (igmp and icmp)` keeps a 10-byte frame),
//! and so do we: the same two rules, with libpcap's own implications
//! between tests (`fold_edge` in its optimize.c), and its pull-ups
//! (`or_pullup`, `and_pullup`), which move tests of one load together in
//! a chain and so also decide which loads run first.

mod optimize;

use super::{Cmp, Cond, Load};
use crate::bpf::{Instruction, op};

/// Where a jump goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Target {
    Node(usize),
    Accept,
    Reject,
}

/// A computation into A (and X), then a jump on it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    /// Loads (and masks or arithmetic) leaving the value tested in A.
    stmts: Vec<Instruction>,
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
}

pub(super) struct Graph {
    nodes: Vec<Node>,
    root: Target,
}

fn stmt(code: u16, k: u32) -> Instruction {
    Instruction::new(code, 0, 0, k)
}

/// The opcode of a load `size` bytes wide, absolute or indexed.
pub(super) fn load_code(size: u8, indexed: bool) -> u16 {
    match (size, indexed) {
        (1, false) => op::LD_B_ABS,
        (2, false) => op::LD_H_ABS,
        (_, false) => op::LD_W_ABS,
        (1, true) => op::LD_B_IND,
        (2, true) => op::LD_H_IND,
        (_, true) => op::LD_W_IND,
    }
}

fn load_stmts(load: Load) -> Vec<Instruction> {
    match load {
        Load::Abs(size, offset) => vec![stmt(load_code(size, false), offset)],
        Load::AfterIpv4 { size, ip, offset } => {
            vec![stmt(op::LDX_B_MSH, ip), stmt(load_code(size, true), ip + offset)]
        }
        Load::Len => vec![stmt(op::LD_W_LEN, 0)],
    }
}

impl Graph {
    /// The graph of `cond`: accept when it holds.
    pub(super) fn build(cond: &Cond) -> Graph {
        let mut graph = Graph { nodes: Vec::new(), root: Target::Reject };
        graph.root = graph.add(cond, Target::Accept, Target::Reject);
        graph
    }

    /// Adds the blocks of `cond` going to `yes` or `no`; returns its entry.
    fn add(&mut self, cond: &Cond, yes: Target, no: Target) -> Target {
        match cond {
            Cond::And(parts) => parts.iter().rev().fold(yes, |next, part| self.add(part, next, no)),
            Cond::Or(parts) => parts.iter().rev().fold(no, |next, part| self.add(part, yes, next)),
            Cond::Not(inner) => self.add(inner, no, yes),
            Cond::Const(holds) => {
                if *holds {
                    yes
                } else {
                    no
                }
            }
            Cond::Test { load, mask, cmp, k } => {
                let mut stmts = load_stmts(*load);
                // libpcap's peephole: `and #m; jeq #0` is `jset #m`, inverted.
                if let (Some(mask), Cmp::Eq, 0) = (mask, cmp, k) {
                    return self.node(stmts, op::JSET_K, *mask, no, yes);
                }
                if let Some(mask) = mask {
                    stmts.push(stmt(op::AND_K, *mask));
                }
                let code = match cmp {
                    Cmp::Eq => op::JEQ_K,
                    Cmp::Gt => op::JGT_K,
                    Cmp::Ge => op::JGE_K,
                    Cmp::Set => op::JSET_K,
                };
                self.node(stmts, code, *k, yes, no)
            }
            Cond::Compute { stmts, cmp } => {
                let code = match cmp {
                    Cmp::Eq => op::JEQ_X,
                    Cmp::Gt => op::JGT_X,
                    Cmp::Ge | Cmp::Set => op::JGE_X,
                };
                self.node(stmts.clone(), code, 0, yes, no)
            }
        }
    }

    fn node(&mut self, stmts: Vec<Instruction>, code: u16, k: u32, jt: Target, jf: Target) -> Target {
        self.nodes.push(Node { stmts, code, k, jt, jf });
        Target::Node(self.nodes.len() - 1)
    }

    /// Whether no frame can pass.
    pub(super) fn rejects_all(&self) -> bool {
        self.root == Target::Reject
    }

    /// The reachable nodes, each before every node it jumps to.
    fn order(&self) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut post = Vec::new();
        // Iterative depth-first search (programs can be thousands of blocks).
        let mut stack: Vec<(usize, bool)> = Vec::new();
        if let Target::Node(root) = self.root {
            stack.push((root, false));
        }
        while let Some((n, expanded)) = stack.pop() {
            if expanded {
                post.push(n);
                continue;
            }
            if seen[n] {
                continue;
            }
            seen[n] = true;
            stack.push((n, true));
            for target in [self.nodes[n].jf, self.nodes[n].jt] {
                if let Target::Node(child) = target
                    && !seen[child]
                {
                    stack.push((child, false));
                }
            }
        }
        post.reverse();
        post
    }

    /// Each node's statements, less what its predecessors already left in
    /// the registers: the whole computation when every one of them computed
    /// the same (jumps change no register), or a leading `ldxb` they all
    /// ran last for X.
    fn needed_stmts(&self, order: &[usize]) -> Vec<Vec<Instruction>> {
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for &n in order {
            for target in [self.nodes[n].jt, self.nodes[n].jf] {
                if let Target::Node(child) = target
                    && !preds[child].contains(&n)
                {
                    preds[child].push(n);
                }
            }
        }
        let root = match self.root {
            Target::Node(root) => Some(root),
            _ => None,
        };
        let last_x = |stmts: &[Instruction]| {
            stmts
                .iter()
                .rev()
                .find(|i| matches!(i.code, op::LDX_B_MSH | op::LDX_IMM | op::LDX_MEM | op::TAX))
                .copied()
        };
        self.nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let from = &preds[n];
                if Some(n) == root || from.is_empty() {
                    return node.stmts.clone();
                }
                if from.iter().all(|&p| self.nodes[p].stmts == node.stmts) {
                    return Vec::new();
                }
                match node.stmts.first() {
                    Some(first)
                        if first.code == op::LDX_B_MSH
                            && from.iter().all(|&p| last_x(&self.nodes[p].stmts) == Some(*first)) =>
                    {
                        node.stmts[1..].to_vec()
                    }
                    _ => node.stmts.clone(),
                }
            })
            .collect()
    }

    /// The instructions: nodes in an order where every jump goes forward,
    /// with `ret #snaplen; ret #0` after the last node and, in a long
    /// program, every [`ISLAND_EVERY`] instructions, so that a jump to a
    /// verdict is always short; a conditional jump further than its 8 bits
    /// reach goes through `ja`s.
    pub(super) fn assemble(&self, snaplen: u32) -> Vec<Instruction> {
        let order = self.order();
        // What `optimize` left each node to execute.
        let stmts: Vec<&[Instruction]> = self.nodes.iter().map(|node| node.stmts.as_slice()).collect();
        let mut slot = vec![0usize; self.nodes.len()];
        for (i, &n) in order.iter().enumerate() {
            slot[n] = i;
        }
        let mut far = vec![false; order.len()];
        loop {
            let layout = Layout::new(&order, &stmts, &far, self.root);
            let mut changed = false;
            for (i, &n) in order.iter().enumerate() {
                let at = layout.start[i] + stmts[n].len();
                let node = &self.nodes[n];
                if !far[i]
                    && (layout.reach(node.jt, at, &slot) > 255 || layout.reach(node.jf, at, &slot) > 255)
                {
                    far[i] = true;
                    changed = true;
                }
            }
            if changed {
                continue;
            }
            let mut program = Vec::new();
            let island = |program: &mut Vec<Instruction>| {
                program.push(stmt(op::RET_K, snaplen));
                program.push(stmt(op::RET_K, 0));
            };
            if let Target::Accept | Target::Reject = self.root {
                program.push(Instruction::new(op::JA, 0, 0, layout.reach(self.root, 0, &slot) as u32));
            }
            for (i, &n) in order.iter().enumerate() {
                let node = &self.nodes[n];
                program.extend_from_slice(stmts[n]);
                let at = program.len();
                let reach = |t: Target, from: usize| layout.reach(t, from, &slot);
                if far[i] {
                    program.push(Instruction::new(node.code, 0, 1, node.k));
                    program.push(Instruction::new(op::JA, 0, 0, reach(node.jt, at + 1) as u32));
                    program.push(Instruction::new(op::JA, 0, 0, reach(node.jf, at + 2) as u32));
                } else {
                    let (jt, jf) = (reach(node.jt, at) as u8, reach(node.jf, at) as u8);
                    program.push(Instruction::new(node.code, jt, jf, node.k));
                }
                if layout.island_after[i] {
                    island(&mut program);
                }
            }
            island(&mut program);
            return program;
        }
    }
}

/// How often a long program repeats its two `ret`s.
const ISLAND_EVERY: usize = 200;

/// Where each node and each pair of `ret`s starts, for one choice of
/// which jumps need `ja`s.
struct Layout {
    start: Vec<usize>,
    island_after: Vec<bool>,
    /// Where each `ret #snaplen; ret #0` pair starts, in order.
    islands: Vec<usize>,
}

impl Layout {
    fn new(order: &[usize], stmts: &[&[Instruction]], far: &[bool], root: Target) -> Layout {
        let mut position = usize::from(!matches!(root, Target::Node(_)));
        let mut layout = Layout { start: Vec::new(), island_after: Vec::new(), islands: Vec::new() };
        let mut since_island = 0;
        for (i, &n) in order.iter().enumerate() {
            layout.start.push(position);
            let size = stmts[n].len() + if far[i] { 3 } else { 1 };
            position += size;
            since_island += size;
            let island = since_island >= ISLAND_EVERY && i + 1 < order.len();
            layout.island_after.push(island);
            if island {
                layout.islands.push(position);
                position += 2;
                since_island = 0;
            }
        }
        layout.islands.push(position);
        layout
    }

    /// How far a jump from the instruction at `from` goes to reach `target`.
    fn reach(&self, target: Target, from: usize, slot: &[usize]) -> usize {
        let to = match target {
            Target::Node(n) => self.start[slot[n]],
            verdict => {
                let island = self.islands.iter().copied().find(|&at| at > from).unwrap_or(from + 1);
                island + usize::from(verdict == Target::Reject)
            }
        };
        to - from - 1
    }
}

//! libpcap's jump threading and block merging on the [`Graph`].
//!
//! What an edge says is a fact: "this value (the node's statements and
//! jump opcode), compared with k, came out true (or false)". Facts and
//! values are numbered once per [`Graph::optimize`], so that the facts
//! known on entry to each node are a bit set (intersected where paths
//! meet), and finding what decides a node's test looks only at the facts
//! about that node's value: a filter of a hundred `port` terms has
//! thousands of nodes and facts, and sets of cloned statements hashed
//! again at every node made its compilation quadratic in allocations.

use std::collections::HashMap;

use super::{Graph, Node, Target};
use crate::bpf::op;

/// A set of fact numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Facts(Vec<u64>);

impl Facts {
    fn with_capacity(facts: usize) -> Facts {
        Facts(vec![0; facts.div_ceil(64)])
    }

    fn insert(&mut self, fact: usize) {
        self.0[fact / 64] |= 1 << (fact % 64);
    }

    fn contains(&self, fact: usize) -> bool {
        self.0.get(fact / 64).is_some_and(|word| word & (1 << (fact % 64)) != 0)
    }

    /// The smallest fact number in `range` that is in the set.
    fn first_in(&self, range: std::ops::Range<usize>) -> Option<usize> {
        let mut at = range.start;
        while at < range.end {
            let (word, bit) = (at / 64, at % 64);
            let bits = (range.end - at).min(64 - bit);
            let mask = if bits == 64 { u64::MAX } else { ((1u64 << bits) - 1) << bit };
            let found = self.0.get(word).map_or(0, |w| w & mask);
            if found != 0 {
                return Some(word * 64 + found.trailing_zeros() as usize);
            }
            at += bits;
        }
        None
    }

    fn intersect(&mut self, other: &Facts) {
        for (word, theirs) in self.0.iter_mut().zip(&other.0) {
            *word &= theirs;
        }
    }
}

/// The numbering of one graph's values and facts. The facts about one
/// value with one outcome have consecutive numbers, in the order of their
/// constants: the fact with a given constant is found by a binary search,
/// and whether any is known by a look at a few words of a set.
struct Numbering {
    /// Each node's value.
    value_of: Vec<usize>,
    /// Each node's facts: its test false, then true.
    fact_of: Vec<[usize; 2]>,
    /// For each value, where its facts start: false ones, true ones, end.
    starts: Vec<[usize; 3]>,
    /// Each fact's constant.
    k: Vec<u32>,
}

impl Numbering {
    fn new(nodes: &[Node]) -> Numbering {
        let mut values = HashMap::new();
        let value_of: Vec<usize> = nodes
            .iter()
            .map(|node| {
                let next = values.len();
                *values.entry((&node.stmts, node.code)).or_insert(next)
            })
            .collect();
        let mut constants: Vec<Vec<u32>> = vec![Vec::new(); values.len()];
        for (node, &value) in nodes.iter().zip(&value_of) {
            constants[value].push(node.k);
        }
        let (mut starts, mut k) = (Vec::new(), Vec::new());
        for mut ks in constants {
            ks.sort_unstable();
            ks.dedup();
            let start = k.len();
            // Each constant twice: the test false, then the test true.
            k.extend_from_slice(&ks);
            k.extend_from_slice(&ks);
            starts.push([start, start + ks.len(), start + 2 * ks.len()]);
        }
        let mut numbering = Numbering { value_of, fact_of: Vec::new(), starts, k };
        numbering.fact_of = nodes
            .iter()
            .zip(&numbering.value_of)
            .map(|(node, &value)| {
                [false, true].map(|sense| numbering.find(value, sense, node.k).unwrap_or_default())
            })
            .collect();
        numbering
    }

    /// How many facts there are.
    fn len(&self) -> usize {
        self.k.len()
    }

    /// The numbers of the facts about `value` with outcome `sense`.
    fn range(&self, value: usize, sense: bool) -> std::ops::Range<usize> {
        let [false_from, true_from, end] = self.starts[value];
        if sense { true_from..end } else { false_from..true_from }
    }

    /// The number of the fact "`value` compared with `k` came out `sense`".
    fn find(&self, value: usize, sense: bool, k: u32) -> Option<usize> {
        let range = self.range(value, sense);
        let at = self.k[range.clone()].binary_search(&k).ok()?;
        Some(range.start + at)
    }
}

impl Graph {
    /// Jump threading and branch merging, until nothing changes.
    pub(in crate::sniff::filter::compile) fn optimize(&mut self) {
        let numbering = Numbering::new(&self.nodes);
        loop {
            let order = self.order();
            let facts = self.facts(&order, &numbering);
            let mut changed = false;
            for &n in &order {
                for sense in [true, false] {
                    let Some(folded) = self.fold(n, sense, &facts[n], &numbering) else { continue };
                    let node = &mut self.nodes[n];
                    if sense {
                        node.jt = folded
                    } else {
                        node.jf = folded
                    }
                    changed = true;
                }
            }
            changed |= self.pull_up(&order, true) | self.pull_up(&order, false);
            // A test whose branches meet decides nothing: go straight on.
            let skip = |nodes: &[Node], mut target: Target| {
                while let Target::Node(n) = target {
                    if nodes[n].jt != nodes[n].jf {
                        break;
                    }
                    target = nodes[n].jt;
                }
                target
            };
            for n in 0..self.nodes.len() {
                let (jt, jf) = (skip(&self.nodes, self.nodes[n].jt), skip(&self.nodes, self.nodes[n].jf));
                let node = &mut self.nodes[n];
                changed |= (jt, jf) != (node.jt, node.jf);
                (node.jt, node.jf) = (jt, jf);
            }
            let root = skip(&self.nodes, self.root);
            changed |= root != self.root;
            self.root = root;
            if !changed {
                break;
            }
        }
        // Merging last, as libpcap does: merged nodes know only what all
        // their paths know, which would stop the threading above.
        while self.intern(&numbering) {}
        // Then, as libpcap compares blocks by what they still execute, each
        // node keeps only the statements its predecessors did not already
        // run, and nodes that now execute the same and go to the same
        // places merge too: the IPv4 and IPv6 tails of a list of ports test
        // a port loaded before them against the same numbers.
        let order = self.order();
        let needed = self.needed_stmts(&order);
        for (node, stmts) in self.nodes.iter_mut().zip(needed) {
            node.stmts = stmts;
        }
        let executed = Numbering::new(&self.nodes);
        while self.intern(&executed) {}
    }

    /// libpcap's `or_pullup` (`and_pullup` when `or` is false): in a chain
    /// of tests that all go to the same place when true (false), each test
    /// of a load is pulled up to right after the last test of the same
    /// load above it, so `port 1 or port 2` tests the source port against
    /// 1 and 2 before it loads the destination port (which then needs one
    /// load, too). Only nodes with one way in move or are passed over, so
    /// no other path sees the chain change. Returns whether any moved.
    fn pull_up(&mut self, order: &[usize], or: bool) -> bool {
        let mut ways_in = vec![0usize; self.nodes.len()];
        for &n in order {
            for target in [self.nodes[n].jt, self.nodes[n].jf] {
                if let Target::Node(c) = target {
                    ways_in[c] += 1;
                }
            }
        }
        if let Target::Node(root) = self.root {
            ways_in[root] += 1;
        }
        // The chain goes on along `next`; its shared exit is `exit`.
        let next = |node: &Node| if or { node.jf } else { node.jt };
        let exit = |node: &Node| if or { node.jt } else { node.jf };
        let mut changed = false;
        for &top in order {
            let Target::Node(differs) = next(&self.nodes[top]) else { continue };
            let (load, shared) = (&self.nodes[top].stmts, exit(&self.nodes[top]));
            let passable = |n: usize| ways_in[n] == 1 && exit(&self.nodes[n]) == shared;
            if self.nodes[differs].stmts == *load || !passable(differs) {
                continue;
            }
            let (mut before, mut at) = (differs, next(&self.nodes[differs]));
            let same = loop {
                let Target::Node(n) = at else { break None };
                if !passable(n) {
                    break None;
                }
                if self.nodes[n].stmts == *load {
                    break Some(n);
                }
                (before, at) = (n, next(&self.nodes[n]));
            };
            let Some(same) = same else { continue };
            let after = next(&self.nodes[same]);
            let link = |node: &mut Node, to: Target| {
                if or { node.jf = to } else { node.jt = to }
            };
            link(&mut self.nodes[before], after);
            link(&mut self.nodes[same], Target::Node(differs));
            link(&mut self.nodes[top], Target::Node(same));
            changed = true;
        }
        changed
    }

    /// Merges nodes that compute and test the same and go to the same
    /// places (libpcap's `intern_blocks`); returns whether any jump moved.
    fn intern(&mut self, numbering: &Numbering) -> bool {
        let order = self.order();
        let mut canonical: HashMap<(usize, u32, Target, Target), usize> = HashMap::new();
        let mut replace: Vec<Option<usize>> = vec![None; self.nodes.len()];
        let mut changed = false;
        // Children first, so that merging them lets their parents merge.
        for &n in order.iter().rev() {
            let map = |t: Target, replace: &[Option<usize>]| match t {
                Target::Node(c) => Target::Node(replace[c].unwrap_or(c)),
                other => other,
            };
            let (jt, jf) = (map(self.nodes[n].jt, &replace), map(self.nodes[n].jf, &replace));
            if (jt, jf) != (self.nodes[n].jt, self.nodes[n].jf) {
                (self.nodes[n].jt, self.nodes[n].jf) = (jt, jf);
                changed = true;
            }
            let key = (numbering.value_of[n], self.nodes[n].k, jt, jf);
            match canonical.get(&key) {
                Some(&same) => replace[n] = Some(same),
                None => {
                    canonical.insert(key, n);
                }
            }
        }
        if let Target::Node(root) = self.root
            && let Some(same) = replace[root]
        {
            self.root = Target::Node(same);
            changed = true;
        }
        changed
    }

    /// libpcap's `fold_edge`: where node `n`'s jump on `sense` may go
    /// instead, given what is known on entry to it (`known`) and its own
    /// outcome; only the same test on the same value, or an equality known
    /// true against another constant, decides.
    fn fold(&self, n: usize, sense: bool, known: &Facts, numbering: &Numbering) -> Option<Target> {
        let target = if sense { self.nodes[n].jt } else { self.nodes[n].jf };
        let Target::Node(c) = target else { return None };
        let child = &self.nodes[c];
        let value = numbering.value_of[c];
        let own = (numbering.value_of[n] == value).then(|| numbering.fact_of[n][usize::from(sense)]);
        let is_known = |id: usize| own == Some(id) || known.contains(id);
        if numbering.find(value, false, child.k).is_some_and(is_known) {
            return Some(child.jf);
        }
        if child.code != op::JEQ_K {
            return numbering.find(value, true, child.k).is_some_and(is_known).then_some(child.jt);
        }
        // The known equality with the smallest constant decides: this one
        // (true), or another (so not this one). Two would mean a path no
        // frame takes, where either answer is right; taking the first, in
        // the constants' order, keeps the choice the same from run to run.
        let range = numbering.range(value, true);
        let first = known.first_in(range.clone());
        let first = match own.filter(|id| range.contains(id)) {
            Some(own) => Some(first.map_or(own, |other| other.min(own))),
            None => first,
        }?;
        Some(if numbering.k[first] == child.k { child.jt } else { child.jf })
    }

    /// The facts that hold on entry to each node: those of every path to it.
    fn facts(&self, order: &[usize], numbering: &Numbering) -> Vec<Facts> {
        let none = Facts::with_capacity(numbering.len());
        let mut facts: Vec<Option<Facts>> = vec![None; self.nodes.len()];
        if let Target::Node(root) = self.root {
            facts[root] = Some(none.clone());
        }
        for &n in order {
            let here = facts[n].clone().unwrap_or_else(|| none.clone());
            let node = &self.nodes[n];
            for (target, sense) in [(node.jt, true), (node.jf, false)] {
                let Target::Node(child) = target else { continue };
                let mut along = here.clone();
                along.insert(numbering.fact_of[n][usize::from(sense)]);
                match &mut facts[child] {
                    Some(before) => before.intersect(&along),
                    slot @ None => *slot = Some(along),
                }
            }
        }
        facts.into_iter().map(|f| f.unwrap_or_else(|| none.clone())).collect()
    }
}

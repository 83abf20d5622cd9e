//! One direction of an impaired link: the sans-IO engine that turns the
//! model's [`Decision`]s into release times.
//!
//! Stages, in the order a real path applies them: loss, corruption, the
//! bottleneck (serialisation at the link rate behind a bounded queue), then
//! propagation delay with jitter, duplication and reordering.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::model::{Decision, Impairment, ImpairmentConfig};

/// The longest a held-back datagram waits for later ones to overtake it;
/// after that it goes anyway, so the last datagrams of a flow are never stuck.
pub const HOLD_LIMIT: Duration = Duration::from_millis(100);

/// The most bytes a link keeps waiting (delayed or held) before it drops
/// new datagrams: a bound on memory whatever the delay and input rate.
pub const MAX_WAITING_BYTES: usize = 64 << 20;

/// What a link did, datagram by datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkCounters {
    /// Datagrams that arrived.
    pub received: u64,
    /// Datagrams delivered (duplicates included).
    pub forwarded: u64,
    /// Bytes delivered.
    pub forwarded_bytes: u64,
    /// Dropped by the loss model.
    pub dropped_loss: u64,
    /// Dropped at the tail of the bottleneck queue.
    pub dropped_queue: u64,
    /// Dropped because too many bytes were already waiting.
    pub dropped_overflow: u64,
    /// Released, but the system refused to send them: too big for the
    /// path (IPv6 over loopback takes at most 65,488 bytes), say.
    pub dropped_unsendable: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Held back so that later datagrams overtake them.
    pub reordered: u64,
    /// Delivered with a flipped bit.
    pub corrupted: u64,
    /// Had to wait behind the bottleneck.
    pub queued: u64,
}

impl std::fmt::Display for LinkCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} received, {} forwarded; dropped {} by loss, {} by a full queue, {} by overflow, \
             {} unsendable (refused by the system); {} duplicated, {} reordered, {} corrupted, {} queued",
            self.received,
            self.forwarded,
            self.dropped_loss,
            self.dropped_queue,
            self.dropped_overflow,
            self.dropped_unsendable,
            self.duplicated,
            self.reordered,
            self.corrupted,
            self.queued
        )
    }
}

struct Waiting<M> {
    at: Instant,
    seq: u64,
    meta: M,
    datagram: Vec<u8>,
}

impl<M> PartialEq for Waiting<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<M> Eq for Waiting<M> {}
impl<M> PartialOrd for Waiting<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Waiting<M> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Held<M> {
    /// Later datagrams still to overtake it.
    remaining: u32,
    /// When it goes even if they have not.
    deadline: Instant,
    meta: M,
    datagram: Vec<u8>,
}

/// One direction of an impaired link, carrying datagrams tagged with `M`
/// (the proxy tags them with their client).
///
/// Call order: [`Link::send`] for each datagram as it arrives; then
/// [`Link::poll_transmit`] until it returns `None` to take everything due;
/// then sleep until [`Link::poll_timeout`] or the next arrival, and repeat.
/// Time is passed in; the link never reads the clock.
pub struct Link<M> {
    model: Impairment,
    waiting: BinaryHeap<Reverse<Waiting<M>>>,
    held: VecDeque<Held<M>>,
    waiting_bytes: usize,
    next_seq: u64,
    /// When the bottleneck finishes sending what it has queued.
    link_free_at: Option<Instant>,
    /// The latest release time so far: without reordering jitter, no datagram
    /// is released before it.
    last_release: Option<Instant>,
    counters: LinkCounters,
}

impl<M> Link<M> {
    /// A link impaired by `config`, its random decisions seeded with `seed`.
    pub fn new(config: ImpairmentConfig, seed: u64) -> Self {
        Link {
            model: Impairment::new(config, seed),
            waiting: BinaryHeap::new(),
            held: VecDeque::new(),
            waiting_bytes: 0,
            next_seq: 0,
            link_free_at: None,
            last_release: None,
            counters: LinkCounters::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ImpairmentConfig {
        self.model.config()
    }

    /// Changes the configuration from now on; datagrams already waiting keep
    /// their release times.
    pub fn set_config(&mut self, config: ImpairmentConfig) {
        self.model.set_config(config);
    }

    /// What it has done so far.
    pub fn counters(&self) -> LinkCounters {
        self.counters
    }

    /// Datagrams waiting to be released.
    pub fn waiting(&self) -> usize {
        self.waiting.len() + self.held.len()
    }

    /// Takes in a datagram that arrived at `now`.
    pub fn send(&mut self, now: Instant, meta: M, mut datagram: Vec<u8>)
    where
        M: Clone,
    {
        self.counters.received += 1;
        let decision = self.model.decide(datagram.len());
        if decision.lost {
            self.counters.dropped_loss += 1;
            return;
        }
        let copies = if decision.duplicate { 2 } else { 1 };
        if self.waiting_bytes + copies * datagram.len() > MAX_WAITING_BYTES {
            self.counters.dropped_overflow += 1;
            return;
        }
        if let Some(bit) = decision.corrupt_bit {
            datagram[bit / 8] ^= 1 << (bit % 8);
            self.counters.corrupted += 1;
        }
        let Some(sent) = self.through_bottleneck(now, datagram.len()) else {
            self.counters.dropped_queue += 1;
            return;
        };
        let Some(at) = self.release_time(sent, &decision) else {
            // Later than any clock can say: only a caller's absurd delay gets here.
            self.counters.dropped_overflow += 1;
            return;
        };
        if decision.duplicate {
            self.counters.duplicated += 1;
        }
        let distance = self.config().reorder_distance;
        if decision.hold_back && distance > 0 {
            self.counters.reordered += 1;
            self.waiting_bytes += copies * datagram.len();
            if decision.duplicate {
                self.hold(at, distance, meta.clone(), datagram.clone());
            }
            self.hold(at, distance, meta, datagram);
            return;
        }
        if decision.duplicate {
            self.schedule(at, meta.clone(), datagram.clone());
        }
        self.schedule(at, meta, datagram);
        self.overtake_held(at);
    }

    /// When the bottleneck has finished sending a datagram of `len` bytes that
    /// arrived at `now`, or `None` when its queue is full.
    fn through_bottleneck(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let Some(limit) = self.config().rate_limit else {
            return Some(now);
        };
        let rate = limit.rate.bytes_per_sec();
        let start = self.link_free_at.map_or(now, |free| free.max(now));
        let backlog = (start - now).as_secs_f64() * rate;
        if backlog + len as f64 > limit.queue as f64 {
            return None;
        }
        if start > now {
            self.counters.queued += 1;
        }
        // A rate is at least a bit per second (crate::units::Rate), so this
        // fits; checked all the same, as every deadline the link computes.
        let done = start.checked_add(Duration::try_from_secs_f64(len as f64 / rate).ok()?)?;
        self.link_free_at = Some(done);
        Some(done)
    }

    fn release_time(&mut self, sent: Instant, decision: &Decision) -> Option<Instant> {
        let mut at = sent.checked_add(decision.delay)?;
        if !self.config().jitter_reorders {
            at = self.last_release.map_or(at, |last| last.max(at));
        }
        self.last_release = Some(self.last_release.map_or(at, |last| last.max(at)));
        // A held datagram's deadline must fit too.
        at.checked_add(HOLD_LIMIT).map(|_| at)
    }

    fn hold(&mut self, at: Instant, distance: u32, meta: M, datagram: Vec<u8>) {
        self.held.push_back(Held { remaining: distance, deadline: at + HOLD_LIMIT, meta, datagram });
    }

    fn schedule(&mut self, at: Instant, meta: M, datagram: Vec<u8>) {
        self.waiting_bytes += datagram.len();
        self.schedule_counted(at, meta, datagram);
    }

    /// Schedules a datagram whose bytes are already counted as waiting.
    fn schedule_counted(&mut self, at: Instant, meta: M, datagram: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiting.push(Reverse(Waiting { at, seq, meta, datagram }));
    }

    /// A datagram released at `at` overtook every held one; those it was the
    /// last to overtake go right after it.
    fn overtake_held(&mut self, at: Instant) {
        for held in &mut self.held {
            held.remaining = held.remaining.saturating_sub(1);
        }
        while let Some(pos) = self.held.iter().position(|h| h.remaining == 0) {
            if let Some(h) = self.held.remove(pos) {
                self.schedule_counted(at.max(h.deadline - HOLD_LIMIT), h.meta, h.datagram);
            }
        }
    }

    /// When the next datagram is due, if any is waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next_release = self.waiting.peek().map(|Reverse(w)| w.at);
        let next_deadline = self.held.iter().map(|h| h.deadline).min();
        match (next_release, next_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A datagram [`Link::poll_transmit`] released of `len` bytes could not
    /// be sent: it counts as dropped, not forwarded.
    pub fn unsent(&mut self, len: usize) {
        self.counters.forwarded = self.counters.forwarded.saturating_sub(1);
        self.counters.forwarded_bytes = self.counters.forwarded_bytes.saturating_sub(len as u64);
        self.counters.dropped_unsendable += 1;
    }

    /// The next datagram due at `now`, with its tag.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(M, Vec<u8>)> {
        while let Some(pos) = self.held.iter().position(|h| h.deadline <= now) {
            if let Some(h) = self.held.remove(pos) {
                self.schedule_counted(h.deadline, h.meta, h.datagram);
            }
        }
        if self.waiting.peek().is_none_or(|Reverse(w)| w.at > now) {
            return None;
        }
        let Reverse(w) = self.waiting.pop()?;
        self.waiting_bytes -= w.datagram.len();
        self.counters.forwarded += 1;
        self.counters.forwarded_bytes += w.datagram.len() as u64;
        Some((w.meta, w.datagram))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::model::{LossModel, Probability, RateLimit};

    fn p(s: &str) -> Probability {
        s.parse().unwrap()
    }

    /// Sends `count` datagrams (tagged with their index), one every `gap`,
    /// and drains the link; returns (index, arrival, release, bytes) per delivery.
    fn run(
        config: ImpairmentConfig,
        count: usize,
        gap: Duration,
        len: usize,
    ) -> Vec<(usize, Instant, Instant, Vec<u8>)> {
        let start = Instant::now();
        let mut link = Link::new(config, 1);
        let mut out = Vec::new();
        let mut drain = |link: &mut Link<(usize, Instant)>, now: Instant| {
            while let Some(((i, arrived), d)) = link.poll_transmit(now) {
                out.push((i, arrived, now, d));
            }
        };
        for i in 0..count {
            let now = start + gap * i as u32;
            // Release everything due before this arrival, at its due time.
            while let Some(t) = link.poll_timeout().filter(|&t| t <= now) {
                drain(&mut link, t);
            }
            link.send(now, (i, now), vec![i as u8; len]);
            drain(&mut link, now);
        }
        while let Some(t) = link.poll_timeout() {
            drain(&mut link, t);
        }
        assert_eq!(link.waiting(), 0);
        out
    }

    #[test]
    fn a_transparent_link_delivers_at_once_in_order() {
        let out = run(ImpairmentConfig::default(), 100, Duration::from_millis(1), 10);
        assert_eq!(out.len(), 100);
        assert!(out.iter().enumerate().all(|(i, (j, arrived, released, _))| i == *j && arrived == released));
    }

    #[test]
    fn jitter_keeps_order_unless_asked_and_stays_in_bounds() {
        let (delay, jitter) = (Duration::from_millis(20), Duration::from_millis(10));
        let config = ImpairmentConfig { delay, jitter, ..Default::default() };
        let out = run(config, 10_000, Duration::from_micros(200), 10);
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "jitter reordered datagrams");
        for (_, arrived, released, _) in &out {
            let took = *released - *arrived;
            assert!(took >= delay - jitter && took <= delay + jitter, "{took:?}");
        }
        let reordering = ImpairmentConfig { jitter_reorders: true, ..config };
        let out = run(reordering, 10_000, Duration::from_micros(200), 10);
        assert!(out.windows(2).any(|w| w[0].0 > w[1].0), "asked for reordering jitter, got none");
    }

    #[test]
    fn held_datagrams_are_overtaken_by_the_given_distance() {
        let config = ImpairmentConfig { reorder: p("10%"), reorder_distance: 3, ..Default::default() };
        let out = run(config, 1000, Duration::from_millis(1), 10);
        assert_eq!(out.len(), 1000, "reordering loses nothing");
        let order: Vec<usize> = out.iter().map(|o| o.0).collect();
        let displaced = order.iter().enumerate().filter(|(pos, i)| pos != *i).count();
        assert!(displaced > 0);
        // A held datagram comes after the 3 that overtook it, never later
        // (at these rates at most a few are held at once).
        for (pos, &i) in order.iter().enumerate() {
            assert!(pos <= i + 3 * 4, "datagram {i} delivered at position {pos}");
        }
        let swaps = ImpairmentConfig { reorder: p("20%"), reorder_distance: 1, ..Default::default() };
        let order: Vec<usize> = run(swaps, 1000, Duration::from_millis(1), 1).iter().map(|o| o.0).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "every datagram exactly once");
        assert!(order.windows(2).any(|w| w[0] == w[1] + 1), "no neighbours swapped");
    }

    #[test]
    fn a_held_datagram_at_the_end_of_a_flow_still_goes_within_the_hold_limit() {
        let config =
            ImpairmentConfig { reorder: Probability::ONE, reorder_distance: 5, ..Default::default() };
        let out = run(config, 2, Duration::from_millis(1), 10);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|(_, arrived, released, _)| *released - *arrived == HOLD_LIMIT));
    }

    #[test]
    fn duplicates_and_corruption_are_counted_and_visible() {
        let config =
            ImpairmentConfig { duplicate: Probability::ONE, corrupt: Probability::ONE, ..Default::default() };
        let out = run(config, 50, Duration::from_millis(1), 8);
        assert_eq!(out.len(), 100);
        for pair in out.chunks(2) {
            assert_eq!(pair[0].0, pair[1].0);
            assert_eq!(pair[0].3, pair[1].3, "both copies carry the same corruption");
            let flipped: u32 = pair[0].3.iter().map(|&b| (b ^ pair[0].0 as u8).count_ones()).sum();
            assert_eq!(flipped, 1, "exactly one bit flipped");
        }
    }

    #[test]
    fn the_bottleneck_paces_and_tail_drops() {
        // 1 MB/s, 10 kB queue, 1000-byte datagrams offered at 2 MB/s for 1 s.
        let limit = RateLimit { rate: "1MB/s".parse().unwrap(), queue: 10_000 };
        let config = ImpairmentConfig { rate_limit: Some(limit), ..Default::default() };
        let mut link = Link::new(config, 1);
        let start = Instant::now();
        let mut released = Vec::new();
        for i in 0..2000u32 {
            let now = start + Duration::from_micros(500) * i;
            link.send(now, (), vec![0; 1000]);
            while let Some(t) = link.poll_timeout().filter(|&t| t <= now) {
                released.extend(link.poll_transmit(t).map(|_| t));
            }
        }
        while let Some(t) = link.poll_timeout() {
            released.extend(link.poll_transmit(t).map(|_| t));
        }
        let c = link.counters();
        assert_eq!(c.received, 2000);
        assert!(c.dropped_queue > 900 && c.dropped_queue < 1100, "{c:?}");
        assert_eq!(c.forwarded + c.dropped_queue, 2000);
        // Back to back at exactly the link rate: 1000 bytes per millisecond.
        let steady: Vec<_> = released.windows(2).skip(20).map(|w| w[1] - w[0]).collect();
        assert!(steady.iter().all(|gap| gap.abs_diff(Duration::from_millis(1)) < Duration::from_micros(1)));
        let span = (*released.last().unwrap() - released[0]).as_secs_f64();
        let rate = (c.forwarded_bytes - 1000) as f64 / span;
        assert!((rate / 1e6 - 1.0).abs() < 0.001, "rate {rate}");
    }

    #[test]
    fn loss_drops_before_anything_else() {
        let config = ImpairmentConfig {
            loss: LossModel::Independent { rate: Probability::ONE },
            duplicate: Probability::ONE,
            ..Default::default()
        };
        let out = run(config, 10, Duration::from_millis(1), 4);
        assert!(out.is_empty());
    }

    #[test]
    fn new_settings_apply_to_later_datagrams() {
        let mut link = Link::new(ImpairmentConfig::loss(Probability::ONE), 1);
        let now = Instant::now();
        link.send(now, (), vec![1]);
        link.set_config(ImpairmentConfig::default());
        link.send(now, (), vec![2]);
        assert_eq!(link.poll_transmit(now).map(|(_, d)| d), Some(vec![2]));
        assert_eq!(link.counters().dropped_loss, 1);
    }

    /// Issue 14: a tiny rate made `Duration::from_secs_f64` panic, and a
    /// huge delay overflowed an `Instant`. Whatever a caller passes, the
    /// link decides without panicking.
    #[test]
    fn extreme_settings_never_panic() {
        let slowest = RateLimit { rate: crate::units::Rate::MIN, queue: crate::units::MAX_SIZE };
        let extremes = [
            ImpairmentConfig { delay: Duration::MAX, jitter: Duration::MAX, ..Default::default() },
            ImpairmentConfig { rate_limit: Some(slowest), ..Default::default() },
            ImpairmentConfig {
                delay: Duration::MAX,
                reorder: Probability::ONE,
                reorder_distance: u32::MAX,
                rate_limit: Some(slowest),
                ..Default::default()
            },
        ];
        for config in extremes {
            let now = Instant::now();
            let mut link = Link::new(config, 3);
            for i in 0..100u32 {
                link.send(now + Duration::from_millis(i.into()), (), vec![0; 65_507]);
                while link.poll_transmit(now).is_some() {}
            }
            assert!(link.poll_timeout().is_some());
            assert_eq!(link.counters().received, 100);
        }
    }
}

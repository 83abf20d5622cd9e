//! The probe scheduler: a sans-IO engine that decides which probe to send
//! next, keeps the in-flight window, times probes out from the moment they
//! were sent, retries them, paces them to a rate, and backs off when the
//! operating system runs out of sockets.
//!
//! Timeouts adapt to the round trips measured on answered probes (RFC 6298's
//! smoothed RTT plus four deviations, Karn's rule: retries give no sample),
//! between [`MIN_TIMEOUT`] and the configured timeout, which is also where
//! they start; so a scan of a near host does not wait a full second on each
//! silent port, and a far one still gets the time it needs.
//!
//! It never touches a socket or the clock: every call takes `now`. One
//! reactor drives one scheduler; the slot ids it hands out index the
//! driver's own per-probe state (a socket, for a connect scan), so nothing is
//! allocated per probe.
//!
//! # Call order
//! 1. [`poll_send`](Scheduler::poll_send) until it returns `None`; for each
//!    probe, send it and call [`sent`](Scheduler::sent) (it is now in flight),
//!    [`settle`](Scheduler::settle) (the answer came back at once), or
//!    [`defer`](Scheduler::defer) (out of file descriptors or ports: the probe
//!    waits, unsent and uncounted, and the window shrinks).
//! 2. Wait for answers until [`poll_timeout`](Scheduler::poll_timeout); call
//!    [`settle`](Scheduler::settle) for each answer.
//! 3. Call [`handle_timeout`](Scheduler::handle_timeout) until it returns
//!    `None`: each [`Expired`] probe's slot is free again, and it is either
//!    queued for another attempt or final.
//! 4. Repeat until [`is_done`](Scheduler::is_done).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One probe: a host (an index the driver maps to an address) and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The host's index in the driver's host table.
    pub host: u32,
    /// The port probed.
    pub port: u16,
    /// 0 for the first send, 1 for the first retry, ...
    pub attempt: u8,
}

/// The slot of an in-flight probe; valid until the probe settles or expires.
pub type SlotId = u32;

/// How a scheduler paces and retries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// The longest a probe may go unanswered, counted from its send (the
    /// adaptive timeout starts here and never exceeds it).
    pub timeout: Duration,
    /// How many times an unanswered probe is sent again.
    pub retries: u8,
    /// The most probes in flight at once (at least 1).
    pub window: usize,
    /// Probes per second, when capped.
    pub rate: Option<f64>,
}

/// A probe whose time ran out; its slot is free again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The slot it held (drop the driver's state for it).
    pub slot: SlotId,
    /// The probe.
    pub probe: Probe,
    /// True when it is queued to be sent again; false when it was the last attempt.
    pub retried: bool,
}

/// The shortest adaptive timeout: room for a busy host's scheduling delays.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// After running out of sockets with nothing in flight, wait this long.
const EMPTY_BACKOFF: Duration = Duration::from_millis(10);

/// How far the pacer may fall behind and then catch up in a burst.
const PACE_SLACK: Duration = Duration::from_millis(5);

#[derive(Clone, Copy, Debug)]
struct Slot {
    probe: Probe,
    generation: u32,
    busy: bool,
    sent_at: Option<Instant>,
}

/// RFC 6298's round-trip estimator.
#[derive(Clone, Copy, Debug, Default)]
struct RttEstimator {
    smoothed: Option<(Duration, Duration)>,
}

impl RttEstimator {
    fn sample(&mut self, rtt: Duration) {
        self.smoothed = Some(match self.smoothed {
            None => (rtt, rtt / 2),
            Some((srtt, rttvar)) => {
                let deviation = srtt.abs_diff(rtt);
                (srtt * 7 / 8 + rtt / 8, rttvar * 3 / 4 + deviation / 4)
            }
        });
    }

    fn timeout(&self, ceiling: Duration) -> Duration {
        match self.smoothed {
            None => ceiling,
            Some((srtt, rttvar)) => (srtt + rttvar * 4).clamp(MIN_TIMEOUT.min(ceiling), ceiling),
        }
    }
}

/// The scheduler of one reactor; see the module docs for the call order.
#[derive(Debug)]
pub struct Scheduler<W> {
    config: ScheduleConfig,
    work: W,
    retry: VecDeque<Probe>,
    slots: Vec<Slot>,
    free: Vec<SlotId>,
    deadlines: BinaryHeap<Reverse<(Instant, SlotId, u32)>>,
    rtt: RttEstimator,
    in_flight: usize,
    window: usize,
    paused_until: Option<Instant>,
    next_send: Option<Instant>,
    interval: Option<Duration>,
    index: Option<HashMap<(u32, u16), SlotId>>,
    exhausted: bool,
}

impl<W: Iterator<Item = (u32, u16)>> Scheduler<W> {
    /// A scheduler for the `(host, port)` pairs of `work`. With `indexed`,
    /// [`find`](Self::find) looks up in-flight probes by host and port (for
    /// scans whose answers arrive on a shared socket).
    pub fn new(config: ScheduleConfig, work: W, indexed: bool) -> Self {
        let window = config.window.max(1);
        let empty =
            Slot { probe: Probe { host: 0, port: 0, attempt: 0 }, generation: 0, busy: false, sent_at: None };
        let interval = config.rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r));
        Scheduler {
            config: ScheduleConfig { window, ..config },
            work,
            retry: VecDeque::new(),
            slots: vec![empty; window],
            free: (0..window as SlotId).rev().collect(),
            deadlines: BinaryHeap::with_capacity(window),
            rtt: RttEstimator::default(),
            in_flight: 0,
            window,
            paused_until: None,
            next_send: None,
            interval,
            index: indexed.then(|| HashMap::with_capacity(window)),
            exhausted: false,
        }
    }

    /// The next probe to send now, in a slot of its own; `None` when the
    /// window is full, the pacer or a back-off says wait, or no work is left.
    pub fn poll_send(&mut self, now: Instant) -> Option<(SlotId, Probe)> {
        if self.in_flight >= self.window || self.paused_until.is_some_and(|t| now < t) {
            return None;
        }
        if self.next_send.is_some_and(|t| now < t) || self.free.is_empty() {
            return None;
        }
        let probe = match self.retry.pop_front() {
            Some(probe) => probe,
            None => {
                let Some((host, port)) = self.work.next() else {
                    self.exhausted = true;
                    return None;
                };
                Probe { host, port, attempt: 0 }
            }
        };
        if let Some(interval) = self.interval {
            let base = self.next_send.map_or(now, |t| t.max(now.checked_sub(PACE_SLACK).unwrap_or(now)));
            self.next_send = Some(base + interval);
        }
        self.paused_until = None;
        let slot = self.free.pop()?; // Not empty: checked above.
        let entry = &mut self.slots[slot as usize];
        entry.probe = probe;
        entry.busy = true;
        entry.generation = entry.generation.wrapping_add(1);
        self.in_flight += 1;
        if let Some(index) = &mut self.index {
            index.insert((probe.host, probe.port), slot);
        }
        Some((slot, probe))
    }

    /// The probe in `slot` has been sent: its timeout starts now.
    pub fn sent(&mut self, slot: SlotId, now: Instant) {
        let entry = &mut self.slots[slot as usize];
        entry.sent_at = Some(now);
        let deadline = now + self.rtt.timeout(self.config.timeout);
        self.deadlines.push(Reverse((deadline, slot, entry.generation)));
    }

    /// The timeout a probe sent now gets.
    pub fn current_timeout(&self) -> Duration {
        self.rtt.timeout(self.config.timeout)
    }

    /// The probe in `slot` has its answer at `now`; frees the slot and
    /// returns the probe. A first attempt's round trip feeds the timeout.
    pub fn settle(&mut self, slot: SlotId, now: Instant) -> Probe {
        let entry = self.slots[slot as usize];
        if let (Some(sent), 0) = (entry.sent_at, entry.probe.attempt) {
            self.rtt.sample(now.saturating_duration_since(sent));
        }
        let probe = self.release(slot);
        if self.window < self.config.window {
            self.window += 1;
        }
        self.drop_stale_deadlines();
        probe
    }

    /// The probe in `slot` could not be sent for lack of resources (no file
    /// descriptor, no local port): it goes back to the front of the queue,
    /// unsent, and the window shrinks to what is in flight, growing back by
    /// one with each answer.
    pub fn defer(&mut self, slot: SlotId, now: Instant) {
        let probe = self.release(slot);
        self.retry.push_front(probe);
        self.window = self.in_flight.max(1);
        if self.in_flight == 0 {
            self.paused_until = Some(now + EMPTY_BACKOFF);
        }
        // The pacer's slot was not used.
        self.next_send = None;
    }

    /// The in-flight probe to `host` and `port`, if the scheduler is indexed.
    pub fn find(&self, host: u32, port: u16) -> Option<(SlotId, Probe)> {
        let slot = *self.index.as_ref()?.get(&(host, port))?;
        Some((slot, self.slots[slot as usize].probe))
    }

    /// When the driver must wake up next, if nothing arrives before: the
    /// earliest probe deadline, back-off end or paced send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.deadlines.peek().map(|&Reverse((t, _, _))| t);
        let can_send = self.in_flight < self.window && (!self.retry.is_empty() || !self.exhausted);
        let send_at = if can_send { self.paused_until.max(self.next_send) } else { None };
        match (deadline, send_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next probe whose deadline has passed at `now`, if any.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Expired> {
        self.drop_stale_deadlines();
        let &Reverse((deadline, slot, _)) = self.deadlines.peek()?;
        if deadline > now {
            return None;
        }
        self.deadlines.pop();
        let probe = self.release(slot);
        let retried = probe.attempt < self.config.retries;
        if retried {
            self.retry.push_back(Probe { attempt: probe.attempt + 1, ..probe });
        }
        Some(Expired { slot, probe, retried })
    }

    /// True when every probe has been sent and answered or expired for good.
    pub fn is_done(&mut self) -> bool {
        if self.in_flight > 0 || !self.retry.is_empty() {
            return false;
        }
        match self.work.next() {
            None => {
                self.exhausted = true;
                true
            }
            Some((host, port)) => {
                self.retry.push_back(Probe { host, port, attempt: 0 });
                false
            }
        }
    }

    /// Probes in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn release(&mut self, slot: SlotId) -> Probe {
        let entry = &mut self.slots[slot as usize];
        debug_assert!(entry.busy, "slot {slot} released twice");
        entry.busy = false;
        entry.sent_at = None;
        entry.generation = entry.generation.wrapping_add(1);
        self.in_flight -= 1;
        self.free.push(slot);
        if let Some(index) = &mut self.index {
            index.remove(&(entry.probe.host, entry.probe.port));
        }
        entry.probe
    }

    /// Deadlines of probes that already settled stay queued until they reach
    /// the top; drop them there.
    fn drop_stale_deadlines(&mut self) {
        while let Some(&Reverse((_, slot, generation))) = self.deadlines.peek() {
            if self.slots[slot as usize].generation == generation {
                break;
            }
            self.deadlines.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(window: usize) -> ScheduleConfig {
        ScheduleConfig { timeout: Duration::from_secs(1), retries: 1, window, rate: None }
    }

    fn ports(n: u16) -> impl Iterator<Item = (u32, u16)> {
        (1..=n).map(|p| (0, p))
    }

    #[test]
    fn the_window_caps_probes_in_flight() {
        let now = Instant::now();
        let mut s = Scheduler::new(config(2), ports(5), false);
        let (a, _) = s.poll_send(now).unwrap();
        s.sent(a, now);
        let (b, _) = s.poll_send(now).unwrap();
        s.sent(b, now);
        assert_eq!(s.poll_send(now), None, "window of 2 is full");
        assert_eq!(s.settle(a, now).port, 1);
        assert_eq!(s.poll_send(now).map(|(_, p)| p.port), Some(3));
    }

    #[test]
    fn timeouts_count_from_the_send_not_from_the_queue() {
        let start = Instant::now();
        let mut s = Scheduler::new(config(1), ports(2), false);
        let (a, _) = s.poll_send(start).unwrap();
        s.sent(a, start);
        // Port 2 waits in the queue for 900 ms, then is sent.
        let later = start + Duration::from_millis(900);
        s.settle(a, later);
        let (b, probe) = s.poll_send(later).unwrap();
        assert_eq!(probe.port, 2);
        s.sent(b, later);
        assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(1)));
        assert_eq!(s.handle_timeout(start + Duration::from_millis(1500)), None);
        let expired = s.handle_timeout(later + Duration::from_secs(1)).unwrap();
        assert_eq!((expired.probe.port, expired.retried), (2, true));
    }

    #[test]
    fn unanswered_probes_are_retried_then_given_up() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(4), ports(1), false);
        let (slot, _) = s.poll_send(t0).unwrap();
        s.sent(slot, t0);
        let t1 = t0 + Duration::from_secs(1);
        let first = s.handle_timeout(t1).unwrap();
        assert!(first.retried);
        let (slot, again) = s.poll_send(t1).unwrap();
        assert_eq!((again.port, again.attempt), (1, 1));
        s.sent(slot, t1);
        assert!(!s.is_done());
        let last = s.handle_timeout(t1 + Duration::from_secs(1)).unwrap();
        assert!(!last.retried);
        assert!(s.is_done());
    }

    #[test]
    fn settled_probes_leave_no_deadline_behind() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(8), ports(3), false);
        for _ in 0..3 {
            let (slot, _) = s.poll_send(t0).unwrap();
            s.sent(slot, t0);
            s.settle(slot, t0);
        }
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.handle_timeout(t0 + Duration::from_secs(5)), None);
        assert!(s.is_done());
    }

    #[test]
    fn running_out_of_sockets_shrinks_the_window_and_loses_nothing() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(8), ports(4), false);
        let (a, _) = s.poll_send(t0).unwrap();
        s.sent(a, t0);
        let (b, pb) = s.poll_send(t0).unwrap();
        s.defer(b, t0);
        assert_eq!(s.poll_send(t0), None, "window shrank to the one in flight");
        s.settle(a, t0);
        let (_, retry) = s.poll_send(t0).unwrap();
        assert_eq!(retry, pb, "the deferred probe goes first, attempt not counted");
    }

    #[test]
    fn with_nothing_in_flight_a_shortage_waits_a_moment() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(8), ports(1), false);
        let (a, _) = s.poll_send(t0).unwrap();
        s.defer(a, t0);
        assert_eq!(s.poll_send(t0), None);
        assert_eq!(s.poll_timeout(), Some(t0 + EMPTY_BACKOFF));
        assert!(s.poll_send(t0 + EMPTY_BACKOFF).is_some());
    }

    #[test]
    fn the_rate_paces_sends() {
        let t0 = Instant::now();
        let cfg = ScheduleConfig { rate: Some(100.0), ..config(100) };
        let mut s = Scheduler::new(cfg, ports(10), false);
        assert!(s.poll_send(t0).is_some());
        assert_eq!(s.poll_send(t0), None);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(10)));
        let sent = (1..=100).filter(|ms| s.poll_send(t0 + Duration::from_millis(*ms)).is_some()).count();
        assert_eq!(sent, 9, "one per 10 ms");
    }

    #[test]
    fn timeouts_adapt_to_measured_round_trips_within_bounds() {
        let t0 = Instant::now();
        let cfg = ScheduleConfig { timeout: Duration::from_secs(2), ..config(8) };
        let mut s = Scheduler::new(cfg, ports(40), false);
        assert_eq!(s.current_timeout(), Duration::from_secs(2), "no sample yet: the configured timeout");
        for ms in [20u64, 20, 20, 20, 20, 20, 20, 20, 20, 20] {
            let (slot, _) = s.poll_send(t0).unwrap();
            s.sent(slot, t0);
            s.settle(slot, t0 + Duration::from_millis(ms));
        }
        let adapted = s.current_timeout();
        assert!(adapted >= MIN_TIMEOUT && adapted < Duration::from_millis(200), "{adapted:?}");
        for _ in 0..20 {
            let (slot, _) = s.poll_send(t0).unwrap();
            s.sent(slot, t0);
            s.settle(slot, t0 + Duration::from_secs(5));
        }
        assert_eq!(s.current_timeout(), Duration::from_secs(2), "capped at the configured timeout");
    }

    #[test]
    fn retries_give_no_round_trip_sample() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(8), ports(1), false);
        let (slot, _) = s.poll_send(t0).unwrap();
        s.sent(slot, t0);
        let t1 = t0 + Duration::from_secs(1);
        s.handle_timeout(t1).unwrap();
        let (slot, probe) = s.poll_send(t1).unwrap();
        assert_eq!(probe.attempt, 1);
        s.sent(slot, t1);
        s.settle(slot, t1 + Duration::from_millis(1));
        assert_eq!(s.current_timeout(), Duration::from_secs(1), "Karn: an answer to a retry is ambiguous");
    }

    #[test]
    fn an_indexed_scheduler_finds_probes_by_host_and_port() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(8), [(3, 53), (4, 53)].into_iter(), true);
        let (a, _) = s.poll_send(t0).unwrap();
        let (b, _) = s.poll_send(t0).unwrap();
        assert_eq!(s.find(4, 53).map(|(slot, _)| slot), Some(b));
        s.settle(b, t0);
        assert_eq!(s.find(4, 53), None);
        assert_eq!(s.find(3, 53).map(|(slot, p)| (slot, p.host)), Some((a, 3)));
    }
}

//! The probe scheduler: a sans-IO engine that decides which probe to send
//! next, keeps the in-flight window, times probes out from the moment they
//! were sent, retries them, paces them, and records what every port got.
//!
//! Hosts take turns: each has its own queue, its own round-trip
//! estimate and its own pace, so a host that limits its answers
//! ([`throttle`]) or cannot be reached is slowed down or given up alone,
//! and never holds the others back.
//!
//! Two timeouts, with two jobs. A probe is *retried* when it has gone
//! unanswered for the host's adaptive timeout (RFC 6298's smoothed RTT plus
//! four deviations, Karn's rule, between [`MIN_TIMEOUT`] and the configured
//! timeout); its answer is *accepted* for the whole configured timeout,
//! counted from its send: a host whose ports are all settled lingers for
//! late answers to its silent ports. So a near host does not wait a full
//! second on each silent port, and a slow service still gets the time the
//! user gave it.
//!
//! It never touches a socket or the clock: every call takes `now`. One
//! reactor drives one scheduler; the slot ids it hands out index the
//! driver's own per-probe state (a socket, for a connect scan), so nothing is
//! allocated per probe.
//!
//! # Call order
//! 1. [`poll_send`](Scheduler::poll_send) until it returns `None`; for each
//!    probe, send it and call [`sent`](Scheduler::sent) (it is now in
//!    flight), [`settle_at_once`](Scheduler::settle_at_once) (the answer
//!    came back within the send), [`defer`](Scheduler::defer) (this machine
//!    is out of file descriptors or ports: the probe waits, unsent and
//!    uncounted, and the window shrinks) or [`defer_host`](Scheduler::defer_host)
//!    (sending to this host failed: only the host waits).
//! 2. Wait for answers until [`poll_timeout`](Scheduler::poll_timeout); call
//!    [`settle`](Scheduler::settle) (by slot) or [`answer`](Scheduler::answer)
//!    (by host and port) for each.
//! 3. Call [`handle_timeout`](Scheduler::handle_timeout) until it returns
//!    `None`: each [`Expired`] probe's slot is free again.
//! 4. Repeat until [`is_done`](Scheduler::is_done); then
//!    [`hosts`](Scheduler::hosts) has every port's [`Mark`].

mod host;
pub mod throttle;
mod types;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use host::{HostNotes, Mark, Throttled};
use host::{HostQueue, Pending, Stage};
use throttle::SharedThrottle;
pub use types::{Expired, MAX_PASSES, MIN_TIMEOUT, Probe, ScheduleConfig, Settled, SlotId};

use super::report::{PortState, Reason};
use crate::rtt::RttEstimator;

/// After running out of sockets with nothing in flight, wait this long.
const EMPTY_BACKOFF: Duration = Duration::from_millis(10);

/// How far the pacer may fall behind and then catch up in a burst.
const PACE_SLACK: Duration = Duration::from_millis(5);

/// A host whose sends fail waits this long, doubling per failure up to
/// [`HOST_BACKOFF_MAX`].
const HOST_BACKOFF: Duration = Duration::from_millis(10);
const HOST_BACKOFF_MAX: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug)]
struct Slot {
    host: u32,
    pending: Pending,
    generation: u32,
    busy: bool,
    sent_at: Option<Instant>,
}

/// The scheduler of one reactor; see the module docs for the call order.
#[derive(Debug)]
pub struct Scheduler {
    config: ScheduleConfig,
    ports: Arc<[u16]>,
    hosts: Vec<HostQueue>,
    ready: VecDeque<u32>,
    paused: BinaryHeap<Reverse<(Instant, u32)>>,
    lingering: BinaryHeap<Reverse<(Instant, u32)>>,
    slots: Vec<Slot>,
    free: Vec<SlotId>,
    deadlines: BinaryHeap<Reverse<(Instant, SlotId, u32)>>,
    in_flight: usize,
    window: usize,
    paused_until: Option<Instant>,
    next_send: Option<Instant>,
    interval: Option<Duration>,
    index: Option<HashMap<(u32, u16), SlotId>>,
    scanning: usize,
}

impl Scheduler {
    /// A scheduler for `ports` (ascending) of each of `hosts` hosts. With
    /// `indexed`, answers can be matched by host and port
    /// ([`answer`](Self::answer), for scans whose answers arrive on a shared
    /// socket).
    pub fn new(config: ScheduleConfig, hosts: usize, ports: Arc<[u16]>, indexed: bool, now: Instant) -> Self {
        let throttles = (0..hosts).map(|_| Arc::new(SharedThrottle::new(now, config.min_rate))).collect();
        Self::sharing(config, throttles, ports, indexed, now)
    }

    /// Like [`new`](Self::new), for hosts whose throttles other schedulers
    /// share (one per host, in host order).
    pub fn sharing(
        config: ScheduleConfig,
        throttles: Vec<Arc<SharedThrottle>>,
        ports: Arc<[u16]>,
        indexed: bool,
        now: Instant,
    ) -> Self {
        let window = config.window.max(1);
        let empty = Slot {
            host: 0,
            pending: Pending { index: 0, port: 0, attempt: 0, control: false, first_sent: None },
            generation: 0,
            busy: false,
            sent_at: None,
        };
        let rtt = RttEstimator::new(config.timeout, MIN_TIMEOUT.min(config.timeout), config.timeout);
        let hosts: Vec<HostQueue> = throttles
            .into_iter()
            .map(|throttle| HostQueue::new(ports.len(), rtt.clone(), throttle, now))
            .collect();
        let scanning = hosts.iter().filter(|h| h.stage == Stage::Scanning).count();
        let mut scheduler = Scheduler {
            config: ScheduleConfig { window, ..config },
            ports,
            hosts,
            ready: VecDeque::new(),
            paused: BinaryHeap::new(),
            lingering: BinaryHeap::new(),
            slots: vec![empty; window],
            free: (0..window as SlotId).rev().collect(),
            deadlines: BinaryHeap::with_capacity(window),
            in_flight: 0,
            window,
            paused_until: None,
            next_send: None,
            interval: config.rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r)),
            index: indexed.then(|| HashMap::with_capacity(window)),
            scanning,
        };
        for host in 0..scheduler.hosts.len() as u32 {
            scheduler.enqueue(host, now);
        }
        scheduler
    }

    /// The next probe to send now, in a slot of its own; `None` when the
    /// window is full, a pacer or a back-off says wait, or no host has a
    /// probe to send.
    pub fn poll_send(&mut self, now: Instant) -> Option<(SlotId, Probe)> {
        if self.in_flight >= self.window || self.free.is_empty() {
            return None;
        }
        if self.paused_until.is_some_and(|t| now < t) || self.next_send.is_some_and(|t| now < t) {
            return None;
        }
        self.wake_paused(now);
        while let Some(host) = self.ready.pop_front() {
            let h = &mut self.hosts[host as usize];
            if let Some(until) = h.paused_until.filter(|t| *t > now) {
                // Paced or backing off since it was queued: its turn comes later.
                self.paused.push(Reverse((until, host)));
                continue;
            }
            h.queued = false;
            let Some(mut pending) = h.next(&self.ports) else { continue };
            pending.first_sent.get_or_insert(now);
            if let Some(limit) = self.config.host_timeout
                && now.saturating_duration_since(h.started) >= limit
            {
                h.give_up_timed_out();
                self.after_pass(host, now);
                continue;
            }
            if !pending.control {
                h.marks[pending.index as usize] = Mark::InFlight;
            }
            h.in_flight += 1;
            h.throttle.sent(now);
            let sharers = self.config.sharers.max(1) as f64;
            h.paused_until = h.throttle.rate().map(|rate| now + Duration::from_secs_f64(sharers / rate));
            self.enqueue(host, now);
            if let Some(interval) = self.interval {
                let base = self.next_send.map_or(now, |t| t.max(now.checked_sub(PACE_SLACK).unwrap_or(now)));
                self.next_send = Some(base + interval);
            }
            self.paused_until = None;
            let slot = self.free.pop()?; // Not empty: checked above.
            let entry = &mut self.slots[slot as usize];
            (entry.host, entry.pending, entry.busy) = (host, pending, true);
            entry.generation = entry.generation.wrapping_add(1);
            self.in_flight += 1;
            let probe = Probe { host, port: pending.port, attempt: pending.attempt };
            if let Some(index) = &mut self.index {
                index.insert((host, probe.port), slot);
            }
            return Some((slot, probe));
        }
        None
    }

    /// The probe in `slot` has been sent: its timeout starts now.
    pub fn sent(&mut self, slot: SlotId, now: Instant) {
        let entry = &mut self.slots[slot as usize];
        entry.sent_at = Some(now);
        let deadline = now + self.hosts[entry.host as usize].rtt.rto();
        self.deadlines.push(Reverse((deadline, slot, entry.generation)));
    }

    /// The timeout a probe to `host` sent now gets.
    pub fn current_timeout(&self, host: u32) -> Duration {
        self.hosts[host as usize].rtt.rto()
    }

    /// The probe in `slot`, sent at `sent_at`, was answered within its own
    /// send (a connect() that the kernel completed or refused at once): its
    /// round trip still counts.
    pub fn settle_at_once(
        &mut self,
        slot: SlotId,
        sent_at: Instant,
        now: Instant,
        state: PortState,
        reason: Reason,
    ) -> Settled {
        self.slots[slot as usize].sent_at = Some(sent_at);
        self.settle(slot, now, state, reason)
    }

    /// The probe in `slot` has its answer at `now`; frees the slot. A first
    /// attempt's round trip feeds the host's timeout.
    pub fn settle(&mut self, slot: SlotId, now: Instant, state: PortState, reason: Reason) -> Settled {
        let entry = self.slots[slot as usize];
        let h = &mut self.hosts[entry.host as usize];
        if let (Some(sent), 0) = (entry.sent_at, entry.pending.attempt) {
            h.rtt.on_sample(now.saturating_duration_since(sent));
        }
        let probe = self.release(slot);
        let sent = entry.sent_at.unwrap_or(now);
        let recorded = self.hosts[entry.host as usize].answered(entry.pending, (state, reason), sent, now);
        if self.window < self.config.window {
            self.window += 1;
        }
        self.after_pass(entry.host, now);
        self.drop_stale_deadlines();
        Settled { probe, recorded }
    }

    /// An answer from `host` about `port`: settles the probe in flight, or
    /// is taken late for a port left silent. `None` when no probe of this
    /// scheduler is waiting for it (indexed schedulers only).
    pub fn answer(
        &mut self,
        host: u32,
        port: u16,
        now: Instant,
        state: PortState,
        reason: Reason,
    ) -> Option<Settled> {
        if let Some(&slot) = self.index.as_ref()?.get(&(host, port)) {
            return Some(self.settle(slot, now, state, reason));
        }
        let index = self.ports.binary_search(&port).ok()? as u32;
        let h = self.hosts.get_mut(host as usize)?;
        if h.marks[index as usize] != Mark::Silent {
            return None;
        }
        // Late: the round trip is unknown, and so is which attempt it answers
        // (a slow answer is no sign of a dropped one).
        let pending = Pending { index, port, attempt: 0, control: false, first_sent: None };
        let recorded = h.answered(pending, (state, reason), now, now);
        Some(Settled { probe: Probe { host, port, attempt: self.config.retries }, recorded })
    }

    /// The probe in `slot` could not be sent for lack of resources on this
    /// machine (no file descriptor, no local port): it goes back to the front
    /// of its host's queue, unsent, and the window shrinks to what is in
    /// flight, growing back by one with each answer.
    pub fn defer(&mut self, slot: SlotId, now: Instant) {
        let host = self.unsend(slot);
        self.window = self.in_flight.max(1);
        if self.in_flight == 0 {
            self.paused_until = Some(now + EMPTY_BACKOFF);
        }
        self.enqueue(host, now);
    }

    /// Sending the probe in `slot` failed for reasons of its host (no
    /// neighbour entry yet, say): it waits, unsent, and only its host backs
    /// off; every other host goes on.
    pub fn defer_host(&mut self, slot: SlotId, now: Instant) {
        let host = self.unsend(slot);
        let h = &mut self.hosts[host as usize];
        h.send_failures = h.send_failures.saturating_add(1);
        let backoff = HOST_BACKOFF.saturating_mul(1 << h.send_failures.min(8)).min(HOST_BACKOFF_MAX);
        h.paused_until = Some(now + backoff);
        self.enqueue(host, now);
    }

    /// How many sends to `host` failed since the scan began.
    pub fn send_failures(&self, host: u32) -> u32 {
        self.hosts[host as usize].send_failures
    }

    /// `host` cannot be reached at all (it did not answer ARP or NDP): its
    /// unanswered ports are filtered, and nothing more is sent to it.
    pub fn host_unreachable(&mut self, host: u32, now: Instant) {
        self.hosts[host as usize].give_up_unreachable();
        self.after_pass(host, now);
    }

    /// Takes the probe in `slot` back to the front of its host's queue, its
    /// mark still in flight: it is sent again before anything else.
    fn unsend(&mut self, slot: SlotId) -> u32 {
        let entry = self.slots[slot as usize];
        self.release(slot);
        let h = &mut self.hosts[entry.host as usize];
        h.retry.push_front(entry.pending);
        // Neither the host's pace nor the global one was used.
        h.paused_until = None;
        self.next_send = None;
        entry.host
    }

    /// When the driver must wake up next, if nothing arrives before: the
    /// earliest probe deadline, back-off or pace end, or lingering host.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.deadlines.peek().map(|&Reverse((t, _, _))| t);
        let linger = self.lingering.peek().map(|&Reverse((t, _))| t);
        // A send waits for the global pause and pacer; a host paused on its
        // own also for its turn. (With a host ready and neither global wait,
        // poll_send would have sent.)
        let global = self.paused_until.max(self.next_send);
        let send_at = if self.in_flight >= self.window {
            None
        } else if !self.ready.is_empty() {
            global
        } else {
            self.paused.peek().map(|&Reverse((t, _))| global.map_or(t, |g| g.max(t)))
        };
        [deadline, send_at, linger].into_iter().flatten().min()
    }

    /// The next probe whose deadline has passed at `now`, if any. Hosts
    /// whose lingering has ended at `now` are done too.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Expired> {
        while let Some(&Reverse((until, host))) = self.lingering.peek() {
            if until > now {
                break;
            }
            self.lingering.pop();
            self.finish(host);
        }
        self.drop_stale_deadlines();
        let &Reverse((deadline, slot, _)) = self.deadlines.peek()?;
        if deadline > now {
            return None;
        }
        self.deadlines.pop();
        let entry = self.slots[slot as usize];
        let probe = self.release(slot);
        let h = &mut self.hosts[entry.host as usize];
        if entry.pending.attempt < self.config.retries && !h.unreachable && !h.timed_out {
            h.retry.push_back(Pending { attempt: entry.pending.attempt + 1, ..entry.pending });
            self.enqueue(entry.host, now);
        } else {
            h.silent(entry.pending, entry.sent_at.unwrap_or(now), now, self.config.timeout);
            self.after_pass(entry.host, now);
        }
        Some(Expired { slot, probe })
    }

    /// True when every host is done: every probe answered or expired, every
    /// pass over, every lingering host's time up.
    pub fn is_done(&self) -> bool {
        self.scanning == 0
    }

    /// True when `host` is done (all its ports settled, its lingering over).
    pub fn host_done(&self, host: u32) -> bool {
        self.hosts[host as usize].stage == Stage::Done
    }

    /// Probes in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Ports that have a verdict so far (answered, or silent after their
    /// first pass).
    pub fn concluded(&self) -> u64 {
        self.hosts.iter().map(|h| h.concluded).sum()
    }

    /// Each host's marks, one per port of this scheduler, and its notes.
    pub fn hosts(&self, now: Instant) -> impl Iterator<Item = (&[Mark], HostNotes)> + '_ {
        self.hosts.iter().map(move |h| (&h.marks[..], h.notes(now)))
    }

    /// The ports, in the order of each host's marks.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Puts `host` where its next send will be found: the ready queue, or
    /// the paused heap until its pace or back-off allows.
    fn enqueue(&mut self, host: u32, now: Instant) {
        let h = &mut self.hosts[host as usize];
        if h.queued || !h.has_work() {
            return;
        }
        h.queued = true;
        match h.paused_until.filter(|t| *t > now) {
            Some(until) => self.paused.push(Reverse((until, host))),
            None => self.ready.push_back(host),
        }
    }

    fn wake_paused(&mut self, now: Instant) {
        while let Some(&Reverse((until, host))) = self.paused.peek() {
            if until > now {
                break;
            }
            self.paused.pop();
            let h = &mut self.hosts[host as usize];
            h.queued = false;
            h.paused_until = None;
            self.enqueue(host, now);
        }
    }

    /// Moves `host` on when its pass is over: a new pass or a control probe
    /// (queued), or the end (lingering for late answers first).
    fn after_pass(&mut self, host: u32, now: Instant) {
        let h = &mut self.hosts[host as usize];
        if h.stage != Stage::Scanning {
            return;
        }
        if h.after_pass(now, self.config.max_passes) {
            self.enqueue(host, now);
            return;
        }
        match h.stage {
            Stage::Lingering(until) => self.lingering.push(Reverse((until, host))),
            Stage::Done => self.scanning -= 1,
            Stage::Scanning => {}
        }
    }

    /// A lingering host's time is up.
    fn finish(&mut self, host: u32) {
        let h = &mut self.hosts[host as usize];
        if matches!(h.stage, Stage::Lingering(_)) {
            h.stage = Stage::Done;
            self.scanning -= 1;
        }
    }

    fn release(&mut self, slot: SlotId) -> Probe {
        let entry = &mut self.slots[slot as usize];
        debug_assert!(entry.busy, "slot {slot} released twice");
        entry.busy = false;
        entry.sent_at = None;
        entry.generation = entry.generation.wrapping_add(1);
        self.in_flight -= 1;
        self.free.push(slot);
        let (host, pending) = (entry.host, entry.pending);
        let probe = Probe { host, port: pending.port, attempt: pending.attempt };
        self.hosts[host as usize].in_flight -= 1;
        if let Some(index) = &mut self.index {
            index.remove(&(host, probe.port));
        }
        probe
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

//! One host's part of a reactor's work: its ports and what each got, the
//! retries waiting, its own round-trip estimate and pace, and the passes
//! over ports left silent while the host was dropping answers.
//!
//! A pass sends every port of it once (and its retries). When a pass is
//! over, the host is *done* unless it showed a loss ([`super::throttle`]):
//! then the ports still silent get another pass, at the slower pace. A pass
//! with no loss seen ends the host; so does a pass after which no silent
//! port answered (nothing suggests the rest ever will), or the last pass
//! allowed. Before it ends a pass that saw no loss, the host is sent a
//! burst of *control* probes, back to back, to ports that answered
//! negatively before: a limit the pass kept running dry has no room for
//! them all, and the one left unanswered is the loss the retries could not
//! show (a limit that refills slower than the retries come). A host with
//! room for the whole burst was not being overrun.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use std::sync::Arc;

use super::throttle::SharedThrottle;
use crate::rtt::RttEstimator;
use crate::scan::report::{PortState, Reason};

/// What one port got so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Not probed yet.
    Unsent,
    /// A probe is out.
    InFlight,
    /// Every attempt went unanswered (a later pass or a late answer may
    /// still change that).
    Silent,
    /// The host answered.
    Answered(PortState, Reason),
}

/// A later pass shorter than this says nothing by getting no answers: a
/// limit at the slowest pace ([`super::throttle::MIN_RATE`]) refills in two
/// seconds.
const JUDGED_PASS: Duration = Duration::from_secs(2);

/// Control probes in a burst, at most.
const CONTROLS: usize = 3;

/// A probe waiting to be sent: a port (by index) and its attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pending {
    /// The port's place among the scheduler's ports (not used by control probes).
    pub index: u32,
    pub port: u16,
    pub attempt: u8,
    pub control: bool,
    /// When its first attempt went out (its answer is taken until that plus the timeout).
    pub first_sent: Option<Instant>,
}

/// Where a host is in its scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    Scanning,
    /// Every probe is settled; answers to silent ports are still taken until then.
    Lingering(Instant),
    Done,
}

/// How a host's scan went, beyond its ports' marks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostNotes {
    /// The host dropped answers and was paced: how.
    pub throttled: Option<Throttled>,
    /// Sends to the host failed for good (no ARP/NDP answer, no route).
    pub unreachable: bool,
    /// The host's scan was cut short (`--host-timeout`, or the scan stopped).
    pub incomplete: bool,
    /// The smoothed round trip to the host, once measured.
    pub srtt: Option<Duration>,
}

/// A host that limited its answers, and what that cost.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Throttled {
    /// The pace the host was given at the end, probes per second.
    pub rate: f64,
    /// Its answer rate as measured while paced, if it was measured.
    pub answer_rate: Option<f64>,
    /// Ports probed again in later passes.
    pub reprobed: u64,
    /// From the first loss to the end of the host's scan.
    #[serde(rename = "waited_ms", serialize_with = "crate::stats::as_millis")]
    pub waited: Duration,
}

/// One host's state in a scheduler.
#[derive(Debug)]
pub(super) struct HostQueue {
    pub marks: Vec<Mark>,
    cursor: usize,
    /// The ports of the current pass after the first (indices).
    again: Vec<u32>,
    pub retry: VecDeque<Pending>,
    pub in_flight: u32,
    pass: u8,
    pass_lost: bool,
    pass_answers: u32,
    pass_started: Instant,
    /// The host's count of losses when the pass began.
    pass_losses: u64,
    /// Ports offered to the host's shared list of control ports.
    offered: usize,
    /// Control probes of the burst still to send (ports).
    controls_due: Vec<u16>,
    control_sent: bool,
    pub rtt: RttEstimator,
    pub throttle: Arc<SharedThrottle>,
    /// No sends before this (pace or back-off).
    pub paused_until: Option<Instant>,
    pub send_failures: u32,
    pub stage: Stage,
    /// In the ready queue or the paused heap already.
    pub queued: bool,
    pub unreachable: bool,
    reprobed: u64,
    pub started: Instant,
    pub timed_out: bool,
    finished_at: Option<Instant>,
    /// Ports with a verdict from the first pass (for progress).
    pub concluded: u64,
    linger_until: Option<Instant>,
}

impl HostQueue {
    pub fn new(ports: usize, rtt: RttEstimator, throttle: Arc<SharedThrottle>, now: Instant) -> Self {
        HostQueue {
            marks: vec![Mark::Unsent; ports],
            cursor: 0,
            again: Vec::new(),
            retry: VecDeque::new(),
            in_flight: 0,
            pass: 0,
            pass_lost: false,
            pass_answers: 0,
            pass_started: now,
            pass_losses: 0,
            offered: 0,
            controls_due: Vec::new(),
            control_sent: false,
            rtt,
            throttle,
            paused_until: None,
            send_failures: 0,
            stage: if ports == 0 { Stage::Done } else { Stage::Scanning },
            queued: false,
            unreachable: false,
            reprobed: 0,
            started: now,
            timed_out: false,
            finished_at: None,
            concluded: 0,
            linger_until: None,
        }
    }

    /// The next probe of this host (whose ports are `ports`), if it has one to send now.
    pub fn next(&mut self, ports: &[u16]) -> Option<Pending> {
        if self.stage != Stage::Scanning {
            return None;
        }
        if let Some(pending) = self.retry.pop_front() {
            return Some(pending);
        }
        while self.pass == 0 && self.cursor < self.marks.len() {
            let index = self.cursor;
            self.cursor += 1;
            if self.marks[index] == Mark::Unsent {
                let (index, port) = (index as u32, ports[index]);
                return Some(Pending { index, port, attempt: 0, control: false, first_sent: None });
            }
        }
        while self.pass > 0 && self.cursor < self.again.len() {
            let index = self.again[self.cursor];
            self.cursor += 1;
            if self.marks[index as usize] == Mark::Silent {
                self.reprobed += 1;
                let port = ports[index as usize];
                return Some(Pending { index, port, attempt: 0, control: false, first_sent: None });
            }
        }
        if let Some(port) = self.controls_due.pop() {
            self.control_sent = true;
            return Some(Pending { index: u32::MAX, port, attempt: 0, control: true, first_sent: None });
        }
        None
    }

    /// True when the host has a probe to send (now or once its pause ends).
    pub fn has_work(&self) -> bool {
        self.stage == Stage::Scanning
            && (!self.retry.is_empty()
                || !self.controls_due.is_empty()
                || if self.pass == 0 {
                    self.cursor < self.marks.len()
                } else {
                    self.cursor < self.again.len()
                })
    }

    /// Records an answer to an in-flight probe sent at `sent`, or a late one
    /// to a silent port. Returns false when the answer changes nothing (a
    /// port already answered, or a host already done).
    pub fn answered(
        &mut self,
        pending: Pending,
        (state, reason): (PortState, Reason),
        sent: Instant,
        now: Instant,
    ) -> bool {
        if self.stage == Stage::Done {
            return false;
        }
        self.throttle.answered(now);
        // Only a port's own refusal (a reset, an ICMP port unreachable, a
        // firewall's prohibited) is evidence: it is the answer a limit drops,
        // and silence would give another verdict (a UDP port rejected as
        // prohibited is filtered, a silent one open|filtered). An unreachable
        // (an address that fails ARP makes this machine report one, seconds
        // late) is not.
        let refusal = reason.is_refusal();
        // A refusal to a retry: the first attempt's answer was dropped, at
        // the pace of the first attempt's time.
        if refusal && pending.attempt > 0 {
            self.loss(now, pending.first_sent.unwrap_or(sent));
        }
        if pending.control {
            return true;
        }
        let mark = &mut self.marks[pending.index as usize];
        match (*mark, self.pass) {
            (Mark::Answered(..), _) => return false,
            (Mark::InFlight, 0) => self.concluded += 1,
            // A port left silent answers this pass (or late): silence was not the truth.
            (Mark::InFlight | Mark::Silent, 1..) => self.pass_answers += 1,
            _ => {}
        }
        *mark = Mark::Answered(state, reason);
        if refusal && self.offered < CONTROLS {
            self.offered += 1;
            self.throttle.offer_control(pending.port, CONTROLS);
        }
        true
    }

    /// A probe's last attempt, sent at `sent`, went unanswered.
    pub fn silent(&mut self, pending: Pending, sent: Instant, now: Instant, timeout: Duration) {
        if pending.control {
            self.loss(now, sent);
            return;
        }
        let mark = &mut self.marks[pending.index as usize];
        if *mark != Mark::InFlight {
            return;
        }
        self.concluded += u64::from(self.pass == 0);
        if let Some(first) = pending.first_sent {
            self.linger_until = self.linger_until.max(Some(first + timeout));
        }
        *mark = if self.unreachable {
            Mark::Answered(PortState::Filtered, Reason::HostUnreachable)
        } else {
            Mark::Silent
        };
    }

    fn loss(&mut self, now: Instant, sent: Instant) {
        self.pass_lost = true;
        self.throttle.lost(now, sent);
    }

    /// Sends to the host fail for good: every port not answered yet is
    /// filtered, and nothing more is sent.
    pub fn give_up_unreachable(&mut self) {
        self.unreachable = true;
        self.retry.clear();
        self.controls_due.clear();
        for mark in &mut self.marks {
            if matches!(mark, Mark::Unsent | Mark::Silent) {
                self.concluded += u64::from(*mark == Mark::Unsent);
                *mark = Mark::Answered(PortState::Filtered, Reason::HostUnreachable);
            }
        }
        self.cursor = self.marks.len().max(self.again.len());
    }

    /// `--host-timeout` ran out: nothing more is sent; ports not probed stay unreported.
    pub fn give_up_timed_out(&mut self) {
        self.timed_out = true;
        self.retry.clear();
        self.controls_due.clear();
        self.cursor = self.marks.len().max(self.again.len());
    }

    /// When nothing of the current pass is left to send or wait for, starts
    /// the next pass, the control probe, or ends the host (lingering for
    /// late answers until its silent ports' first attempts have had the
    /// whole timeout). Returns true when the host has more to send.
    pub fn after_pass(&mut self, now: Instant, max_passes: u8) -> bool {
        if self.stage != Stage::Scanning || self.in_flight > 0 || self.has_work() {
            return false;
        }
        let silent = self.marks.iter().filter(|m| **m == Mark::Silent).count();
        let stopped = self.timed_out || self.unreachable;
        // Another scheduler probing this host may have seen the loss.
        self.pass_lost |= self.throttle.losses() > self.pass_losses;
        if silent > 0 && !stopped && !self.pass_lost && !self.control_sent {
            self.controls_due = self.throttle.controls();
            if !self.controls_due.is_empty() {
                return true;
            }
        }
        self.throttle.pass_over(now, self.pass_started, self.pass_lost);
        // A pass long enough for any limit above the floor to let answers
        // through, that got none: the silent ports stay silent.
        let judged = now.saturating_duration_since(self.pass_started) >= JUDGED_PASS;
        let progress = self.pass == 0 || self.pass_answers > 0 || !judged;
        if silent > 0 && !stopped && self.pass_lost && progress && self.pass + 1 < max_passes {
            self.pass += 1;
            tracing::debug!(
                "pass {} over {silent} silent ports at {:?} probes/s",
                self.pass + 1,
                self.throttle.rate()
            );
            self.again =
                (0..self.marks.len() as u32).filter(|&i| self.marks[i as usize] == Mark::Silent).collect();
            self.cursor = 0;
            (self.pass_lost, self.pass_answers, self.control_sent) = (false, 0, false);
            (self.pass_started, self.pass_losses) = (now, self.throttle.losses());
            return true;
        }
        self.finished_at = Some(now);
        self.stage = match self.linger_until.filter(|t| silent > 0 && *t > now) {
            Some(until) => Stage::Lingering(until),
            None => Stage::Done,
        };
        false
    }

    /// What the scan learnt about the host besides its ports.
    pub fn notes(&self, now: Instant) -> HostNotes {
        let end = self.finished_at.unwrap_or(now);
        let throttle = self.throttle.snapshot();
        let throttled = match (throttle.since(), throttle.rate()) {
            (Some(since), Some(rate)) => Some(Throttled {
                rate,
                answer_rate: throttle.measured(),
                reprobed: self.reprobed,
                waited: end.saturating_duration_since(since),
            }),
            _ => None,
        };
        HostNotes {
            throttled,
            unreachable: self.unreachable,
            incomplete: self.timed_out
                || self.marks.iter().any(|m| matches!(m, Mark::Unsent | Mark::InFlight)),
            srtt: self.rtt.srtt(),
        }
    }
}

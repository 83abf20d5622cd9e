//! A target's answer rate limit, found out and kept under.
//!
//! Hosts limit the answers they send: Linux sends at most one ICMP
//! destination-unreachable a second to each peer after a burst of six
//! (`net.ipv4.icmp_ratelimit`), firewalls cap RSTs and ICMP errors
//! (`nft ... limit rate`). A probe whose answer was dropped by such a limit
//! looks exactly like a probe to a filtered port: silence. So silence only
//! means "filtered" once the scan has seen that the host is not dropping
//! answers.
//!
//! The evidence that it is: a *negative* answer (a reset, an ICMP error) to
//! a retry, which the first attempt did not get; or a *control* probe to a
//! port that answered before, which now goes unanswered. Either is a loss.
//!
//! The first loss paces the host at [`INITIAL_RATE`] (nmap starts its scan
//! delay at the same 5 ms); the scan cannot measure the limit before, since
//! it had been waiting out timeouts, not sending. Once paced, the answers
//! that come back are the measure: a loss after the pace has run a while
//! sets it to 80% of the answer rate seen meanwhile (never faster than 80%
//! of the pace itself); a pass over the host's silent ports that lost
//! answers without such a change halves the pace, or takes 80% of the
//! pass's answer rate if that is slower. Open ports' answers count too: a
//! host that answers is answering. Until a loss has been measured that way,
//! a pace that runs [`GROW_EPOCH`] with answers and no loss grows by half:
//! the first pace is a guess, and a limit may be far above it. A loss of a
//! probe sent before the current pace began says nothing about it. The
//! pace never goes below a floor.

use std::time::{Duration, Instant};

/// The pace a host gets when it first drops answers, probes per second.
pub const INITIAL_RATE: f64 = 200.0;

/// The slowest pace a host is ever given: one probe every two seconds.
pub const MIN_RATE: f64 = 0.5;

/// How long a pace must run before its answers say anything new: a loss
/// right after a change is a probe sent before it.
const MIN_EPOCH: Duration = Duration::from_secs(1);

/// Measured rates are trusted up to this share: a limit is never hit exactly.
const MARGIN: f64 = 0.8;

/// A pace that ran this long with answers and without a loss grows by [`GROWTH`].
const GROW_EPOCH: Duration = Duration::from_secs(2);
const GROWTH: f64 = 1.5;

/// One host's pace and the measurements behind it.
#[derive(Clone, Debug)]
pub struct Throttle {
    /// Probes per second for this host, once it has shown a limit.
    rate: Option<f64>,
    /// The floor from `--min-rate`.
    floor: f64,
    /// Since when the answers are counted for the current pace.
    epoch: Instant,
    answers: u32,
    lost_in_epoch: bool,
    /// The current pass: when it began, its answers, whether the pace changed in it.
    pass_start: Instant,
    pass_answers: u32,
    changed_in_pass: bool,
    /// When the first loss was seen.
    since: Option<Instant>,
    /// The highest answer rate measured while paced (the host's limit, as
    /// far as the scan could tell).
    measured: Option<f64>,
}

impl Throttle {
    /// An unpaced host; `floor` is the slowest pace it may be given.
    pub fn new(now: Instant, floor: Option<f64>) -> Self {
        Throttle {
            rate: None,
            floor: floor.unwrap_or(MIN_RATE).max(f64::MIN_POSITIVE),
            epoch: now,
            answers: 0,
            lost_in_epoch: false,
            pass_start: now,
            pass_answers: 0,
            changed_in_pass: false,
            since: None,
            measured: None,
        }
    }

    /// An answer (any kind) came back at `now`.
    pub fn answered(&mut self, now: Instant) {
        self.answers = self.answers.saturating_add(1);
        self.pass_answers = self.pass_answers.saturating_add(1);
        if let Some(rate) = self.rate
            && self.measured.is_none()
            && !self.lost_in_epoch
            && now.saturating_duration_since(self.epoch) >= GROW_EPOCH.max(Duration::from_secs_f64(10.0 / rate))
        {
            self.rate = Some(rate * GROWTH);
            (self.epoch, self.answers) = (now, 0);
        }
    }

    /// The answer to a probe sent at `sent` was lost, as seen at `now`:
    /// paces the host, or slows it down when the current pace has run long
    /// enough to be judged. Returns true when the pace changed.
    pub fn lost(&mut self, now: Instant, sent: Instant) -> bool {
        self.since.get_or_insert(now);
        let Some(rate) = self.rate else {
            self.set(INITIAL_RATE, now);
            return true;
        };
        if sent < self.epoch {
            return false;
        }
        self.lost_in_epoch = true;
        let elapsed = now.saturating_duration_since(self.epoch);
        if elapsed < MIN_EPOCH.max(Duration::from_secs_f64(3.0 / rate)) {
            return false;
        }
        let measured = self.measure(self.answers, elapsed);
        self.set((measured * MARGIN).min(rate * MARGIN), now);
        true
    }

    /// A new pass over the host's ports begins.
    pub fn start_pass(&mut self, now: Instant) {
        (self.pass_start, self.pass_answers, self.changed_in_pass) = (now, 0, false);
    }

    /// The pass is over; it `lost` answers. A paced host whose pace did not
    /// change during the pass is slowed down now.
    pub fn end_pass(&mut self, now: Instant, lost: bool) {
        let Some(rate) = self.rate.filter(|_| lost && !self.changed_in_pass) else { return };
        let elapsed = now.saturating_duration_since(self.pass_start);
        let measured = self.measure(self.pass_answers, elapsed);
        self.set((measured * MARGIN).min(rate / 2.0), now);
    }

    fn measure(&mut self, answers: u32, elapsed: Duration) -> f64 {
        // A burst in the first instant would look endless: count at least a millisecond.
        let measured = f64::from(answers) / elapsed.as_secs_f64().max(1e-3);
        self.measured = Some(self.measured.map_or(measured, |m| m.max(measured)));
        measured
    }

    fn set(&mut self, rate: f64, now: Instant) {
        self.rate = Some(rate.max(self.floor));
        (self.epoch, self.answers, self.lost_in_epoch, self.changed_in_pass) = (now, 0, false, true);
    }

    /// The gap between two probes to this host, when it is paced.
    pub fn interval(&self) -> Option<Duration> {
        self.rate.map(|r| Duration::from_secs_f64(1.0 / r))
    }

    /// The pace in probes per second, when the host is paced.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// When the host first lost answers.
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// The host's answer rate as measured while paced, if it was (and it
    /// answered at all).
    pub fn measured(&self) -> Option<f64> {
        self.measured.filter(|m| *m > 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unthrottled_host_is_not_paced() {
        let t = Throttle::new(Instant::now(), None);
        assert_eq!((t.interval(), t.since()), (None, None));
    }

    #[test]
    fn the_first_loss_paces_at_the_initial_rate() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, None);
        (0..10).for_each(|_| t.answered(t0));
        assert!(t.lost(t0 + Duration::from_millis(100), t0 + Duration::from_millis(100)));
        assert_eq!(t.rate(), Some(INITIAL_RATE));
        assert_eq!(t.since(), Some(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn a_paced_host_slows_to_its_measured_answer_rate_once_the_pace_has_run() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, None);
        t.lost(t0, t0);
        // Too soon: probes sent before the pace are still being answered.
        assert!(!t.lost(t0 + Duration::from_millis(500), t0 + Duration::from_millis(500)));
        // A second later, with 50 answers: 50/s measured.
        (0..50).for_each(|_| t.answered(t0));
        assert!(t.lost(t0 + Duration::from_secs(1), t0 + Duration::from_secs(1)));
        assert_eq!(t.rate(), Some(40.0));
        assert_eq!(t.measured(), Some(50.0));
        // Even when the host now answers faster, a loss never speeds up.
        (0..400).for_each(|_| t.answered(t0));
        assert!(t.lost(t0 + Duration::from_secs(2), t0 + Duration::from_secs(2)));
        assert_eq!(t.rate(), Some(32.0));
    }

    #[test]
    fn a_lossy_pass_without_a_change_halves_the_pace() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, None);
        t.lost(t0, t0);
        t.start_pass(t0);
        (0..100).for_each(|_| t.answered(t0));
        t.lost(t0 + Duration::from_millis(200), t0 + Duration::from_millis(200));
        t.end_pass(t0 + Duration::from_millis(300), true);
        assert_eq!(t.rate(), Some(INITIAL_RATE / 2.0), "333 answers/s measured: halving is slower");
        t.start_pass(t0 + Duration::from_secs(1));
        (0..2).for_each(|_| t.answered(t0));
        t.end_pass(t0 + Duration::from_secs(3), true);
        assert_eq!(t.rate(), Some(0.8), "1 answer/s measured over the pass");
        t.start_pass(t0 + Duration::from_secs(3));
        t.end_pass(t0 + Duration::from_secs(4), false);
        assert_eq!(t.rate(), Some(0.8), "a clean pass changes nothing");
    }

    #[test]
    fn a_pace_without_loss_grows() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, None);
        t.lost(t0, t0);
        t.answered(t0 + Duration::from_secs(1));
        assert_eq!(t.rate(), Some(INITIAL_RATE), "too soon");
        t.answered(t0 + GROW_EPOCH);
        assert_eq!(t.rate(), Some(INITIAL_RATE * GROWTH));
        t.lost(t0 + GROW_EPOCH + Duration::from_secs(1), t0 + GROW_EPOCH + Duration::from_secs(1));
        t.answered(t0 + GROW_EPOCH * 2);
        assert!(t.rate().unwrap() < INITIAL_RATE * GROWTH, "a loss in the epoch: no growth");
    }

    #[test]
    fn the_pace_never_drops_below_the_floor() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, None);
        t.lost(t0, t0);
        t.lost(t0 + Duration::from_secs(1), t0 + Duration::from_secs(1));
        assert_eq!(t.rate(), Some(MIN_RATE), "no answers at all");
        let mut floored = Throttle::new(t0, Some(50.0));
        floored.lost(t0, t0);
        floored.lost(t0 + Duration::from_secs(1), t0 + Duration::from_secs(1));
        assert_eq!(floored.rate(), Some(50.0), "--min-rate wins");
    }
}

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
//! The evidence that it is: a *negative* answer (a reset, an ICMP port
//! unreachable or prohibited: [`crate::scan::Reason::is_refusal`]) to
//! a retry, which the first attempt did not get; or a *control* probe to a
//! port that answered before, which now goes unanswered. Either is a loss.
//!
//! The first loss paces the host at [`INITIAL_RATE`] (nmap starts its scan
//! delay at the same 5 ms); the scan cannot measure the limit before, since
//! it had been waiting out timeouts, not sending. Once paced, the answers
//! that come back are the measure: a loss after the pace has run a while
//! sets it to 80% of the answer rate seen meanwhile (never faster than 80%
//! of the pace itself), counted over the time the host was being sent to,
//! not the wait for its last answers. A pass over the host's silent ports
//! that lost answers without a change during it is judged the same way at
//! its end, however short it was. A pace that runs two seconds with
//! answers and no loss grows by half (the first pace is a guess, a measure
//! from few answers is rough, and a limit may be far above either), but
//! never past 80% of the slowest pace that lost answers. A loss of a probe
//! sent before the current pace began says nothing about it. The pace never
//! goes below a floor.
//!
//! Several reactors probe the same host (each a share of its ports), and
//! the host's limit counts all their probes, so they share one
//! [`SharedThrottle`] per host: its pace is the host's, split between them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

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
    /// Since when the answers are counted for the current pace (its last change).
    epoch: Instant,
    answers: u32,
    /// The last loss of a probe sent at the current pace.
    last_loss: Option<Instant>,
    /// When the first loss was seen.
    since: Option<Instant>,
    /// The answer rate behind the last slow-down (the host's limit, as far
    /// as the scan could tell).
    measured: Option<f64>,
    /// The slowest pace that lost answers: growth stays under it.
    lossy_pace: Option<f64>,
    /// The last probe sent to the host.
    last_sent: Option<Instant>,
    /// Losses seen, by every scheduler probing the host.
    losses: u64,
    /// Ports that answered negatively: targets for control probes.
    controls: Vec<u16>,
}

impl Throttle {
    /// An unpaced host; `floor` is the slowest pace it may be given.
    pub fn new(now: Instant, floor: Option<f64>) -> Self {
        Throttle {
            rate: None,
            floor: floor.unwrap_or(MIN_RATE).max(f64::MIN_POSITIVE),
            epoch: now,
            answers: 0,
            last_loss: None,
            since: None,
            measured: None,
            lossy_pace: None,
            last_sent: None,
            losses: 0,
            controls: Vec::new(),
        }
    }

    /// An answer (any kind) came back at `now`.
    pub fn answered(&mut self, now: Instant) {
        self.answers = self.answers.saturating_add(1);
        let quiet_since = self.last_loss.map_or(self.epoch, |l| l.max(self.epoch));
        if let Some(rate) = self.rate
            && now.saturating_duration_since(quiet_since)
                >= GROW_EPOCH.max(Duration::from_secs_f64(10.0 / rate))
        {
            let ceiling = self.lossy_pace.map_or(f64::INFINITY, |lossy| lossy * MARGIN);
            self.rate = Some((rate * GROWTH).min(ceiling).max(rate));
            (self.epoch, self.answers) = (now, 0);
        }
    }

    /// A probe went to the host at `now`.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
    }

    /// The answer to a probe sent at `sent` was lost, as seen at `now`:
    /// paces the host, or slows it down when the current pace has run long
    /// enough to be judged. Returns true when the pace changed.
    pub fn lost(&mut self, now: Instant, sent: Instant) -> bool {
        self.since.get_or_insert(now);
        self.losses += 1;
        let Some(rate) = self.rate else {
            self.set(INITIAL_RATE, now);
            return true;
        };
        if sent < self.epoch {
            return false;
        }
        self.last_loss = Some(now);
        if now.saturating_duration_since(self.epoch) < MIN_EPOCH.max(Duration::from_secs_f64(3.0 / rate)) {
            return false;
        }
        self.slow_down(rate, now);
        true
    }

    /// A pass over the host's ports that began at `pass_start` is over, and
    /// it `lost` answers: unless the pace changed during it, the host is
    /// slowed down now.
    pub fn pass_over(&mut self, now: Instant, pass_start: Instant, lost: bool) {
        if let Some(rate) = self.rate.filter(|_| lost && self.epoch <= pass_start) {
            self.slow_down(rate, now);
        }
    }

    /// Down to 80% of the answer rate since the last change, over the time
    /// the host was sent to, and of the pace itself.
    fn slow_down(&mut self, rate: f64, now: Instant) {
        let sending_until =
            self.last_sent.map_or(now, |sent| now.min(sent + Duration::from_secs_f64(1.0 / rate)));
        // A burst in the first instant would look endless: count at least a millisecond.
        let elapsed = sending_until.saturating_duration_since(self.epoch).as_secs_f64().max(1e-3);
        // No answer at all says only that the limit is under one answer in
        // that time, not that it is nothing: count one. (Counting none put the
        // kernel's 1/s limit, measured right after its burst was spent, at
        // the 0.5/s floor, and the scan took half as long again.)
        let measured = f64::from(self.answers.max(1)) / elapsed;
        self.measured = Some(measured);
        self.lossy_pace = Some(self.lossy_pace.map_or(rate, |r| r.min(rate)));
        self.set((measured * MARGIN).min(rate * MARGIN), now);
    }

    fn set(&mut self, rate: f64, now: Instant) {
        tracing::debug!(
            "a host limits its answers: {:.2} probes/s, was {:?} ({} answers in {:?})",
            rate.max(self.floor),
            self.rate,
            self.answers,
            now.saturating_duration_since(self.epoch)
        );
        self.rate = Some(rate.max(self.floor));
        (self.epoch, self.answers) = (now, 0);
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

/// A host's [`Throttle`], shared by the reactors that probe it. Hosts that
/// keep every answer, nearly all of them, cost an atomic load per probe.
#[derive(Debug)]
pub struct SharedThrottle {
    /// The pace's bits, 0 while unpaced: read without the lock.
    rate: AtomicU64,
    inner: Mutex<Throttle>,
}

impl SharedThrottle {
    /// An unpaced host's; `floor` is the slowest pace it may be given.
    pub fn new(now: Instant, floor: Option<f64>) -> Self {
        SharedThrottle { rate: AtomicU64::new(0), inner: Mutex::new(Throttle::new(now, floor)) }
    }

    /// The host's pace, when it has one.
    pub fn rate(&self) -> Option<f64> {
        Some(f64::from_bits(self.rate.load(Ordering::Relaxed))).filter(|r| *r > 0.0)
    }

    /// A probe went to the host.
    pub fn sent(&self, now: Instant) {
        if self.rate().is_some() {
            self.inner.lock().sent(now);
        }
    }

    /// An answer came back from the host.
    pub fn answered(&self, now: Instant) {
        if self.rate().is_some() {
            self.with(|t| t.answered(now));
        }
    }

    /// See [`Throttle::lost`].
    pub fn lost(&self, now: Instant, sent: Instant) -> bool {
        self.with(|t| t.lost(now, sent))
    }

    /// See [`Throttle::pass_over`].
    pub fn pass_over(&self, now: Instant, pass_start: Instant, lost: bool) {
        self.with(|t| t.pass_over(now, pass_start, lost));
    }

    /// How many losses the host's schedulers have seen so far.
    pub fn losses(&self) -> u64 {
        self.inner.lock().losses
    }

    /// `port` answered negatively: a control probe target, if fewer than `most` are known.
    pub fn offer_control(&self, port: u16, most: usize) {
        let mut throttle = self.inner.lock();
        if throttle.controls.len() < most && !throttle.controls.contains(&port) {
            throttle.controls.push(port);
        }
    }

    /// The known control probe targets.
    pub fn controls(&self) -> Vec<u16> {
        self.inner.lock().controls.clone()
    }

    /// The throttle as it stands.
    pub fn snapshot(&self) -> Throttle {
        self.inner.lock().clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Throttle) -> T) -> T {
        let mut throttle = self.inner.lock();
        let result = f(&mut throttle);
        self.rate.store(throttle.rate().unwrap_or(0.0).to_bits(), Ordering::Relaxed);
        result
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
    fn a_lossy_pass_without_a_change_slows_to_the_answer_rate_while_sending() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, None);
        t.lost(t0, t0);
        (0..4).for_each(|_| t.answered(t0));
        t.sent(t0 + Duration::from_millis(500));
        t.lost(t0 + Duration::from_millis(600), t0 + Duration::from_millis(500));
        assert_eq!(t.rate(), Some(INITIAL_RATE), "too soon to judge mid-pass");
        // Four answers over half a second of sending (and one gap): about
        // 8/s measured, 6.3/s paced; the wait until 2 s does not count.
        t.pass_over(t0 + Duration::from_secs(2), t0, true);
        assert!(t.rate().is_some_and(|r| (r - 6.3).abs() < 0.1), "{:?}", t.rate());
        t.pass_over(t0 + Duration::from_secs(3), t0 + Duration::from_millis(100), true);
        assert!(t.rate().is_some_and(|r| (r - 6.3).abs() < 0.1), "changed during this pass already");
        t.pass_over(t0 + Duration::from_secs(4), t0 + Duration::from_secs(3), false);
        assert!(t.rate().is_some_and(|r| (r - 6.3).abs() < 0.1), "a clean pass changes nothing");
    }

    #[test]
    fn reactors_sharing_a_host_share_its_pace() {
        let t0 = Instant::now();
        let shared = SharedThrottle::new(t0, None);
        assert_eq!(shared.rate(), None);
        shared.answered(t0);
        assert!(shared.lost(t0, t0));
        assert_eq!(shared.rate(), Some(INITIAL_RATE));
        assert_eq!(shared.snapshot().since(), Some(t0));
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
    fn growth_stays_under_the_slowest_pace_that_lost_answers() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, None);
        t.lost(t0, t0);
        t.answered(t0);
        t.sent(t0 + Duration::from_millis(500));
        t.pass_over(t0 + Duration::from_secs(2), t0, true);
        let mut now = t0 + Duration::from_secs(2);
        for _ in 0..30 {
            now += Duration::from_secs(10);
            t.answered(now);
        }
        assert_eq!(t.rate(), Some(INITIAL_RATE * MARGIN), "grew back, up to 80% of the 200/s that lost");
    }

    #[test]
    fn the_pace_never_drops_below_the_floor() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, None);
        t.lost(t0, t0);
        t.lost(t0 + Duration::from_secs(4), t0 + Duration::from_secs(4));
        assert_eq!(t.rate(), Some(MIN_RATE), "no answer in 4 s: under one in 4 s, paced at the floor");
        let mut floored = Throttle::new(t0, Some(50.0));
        floored.lost(t0, t0);
        floored.lost(t0 + Duration::from_secs(1), t0 + Duration::from_secs(1));
        assert_eq!(floored.rate(), Some(50.0), "--min-rate wins");
    }

    /// The kernel's ICMP limit, its burst spent before the first loss: no
    /// answer in the first second of the pace says "under one a second",
    /// not "none" (which put the pace at the floor, 0.5/s, and made a scan
    /// under the 1/s limit take half as long again).
    #[test]
    fn a_pace_without_answers_is_bounded_by_one_answer() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0, None);
        t.lost(t0, t0);
        t.lost(t0 + Duration::from_secs(1), t0 + Duration::from_secs(1));
        let rate = t.rate().unwrap();
        assert!((rate - MARGIN).abs() < 1e-9, "80% of one answer a second: {rate}");
    }
}

//! The retransmission timeout of RFC 6298: a smoothed round trip (SRTT), its
//! variation (RTTVAR), RTO = SRTT + max(G, 4 RTTVAR) within a floor and a
//! ceiling, and exponential backoff after a timeout. The caller applies
//! Karn's rule: round trips of retransmitted blocks are never sampled, since
//! nobody knows which transmission an acknowledgement answers.
//!
//! Shared by the transfer sender and the scanner's probe scheduler.

use std::time::Duration;

/// The clock granularity G: our clocks count nanoseconds, so one microsecond
/// is a generous bound.
const GRANULARITY: Duration = Duration::from_micros(1);

/// The most doublings of the timeout in a row.
const MAX_BACKOFF: u32 = 16;

/// Round-trip estimates and the timeout derived from them.
#[derive(Clone, Debug, PartialEq)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    base_rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    /// The most a backoff may stretch the timeout to (never below the
    /// measured timeout itself).
    backoff_cap: Duration,
    backoff: u32,
    min_rtt: Option<Duration>,
    samples: u64,
}

impl RttEstimator {
    /// Before any sample the timeout is `initial`; it never goes below
    /// `min_rto` nor above `max_rto` (a ceiling below the floor is raised
    /// to it).
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        let max_rto = max_rto.max(min_rto);
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            base_rto: initial.clamp(min_rto, max_rto),
            min_rto,
            max_rto,
            backoff_cap: max_rto,
            backoff: 0,
            min_rtt: None,
            samples: 0,
        }
    }

    /// Takes in one round trip (rules 2.2 and 2.3), and ends any backoff.
    pub fn on_sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                self.rttvar = (self.rttvar * 3 + srtt.abs_diff(rtt)) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.base_rto = (srtt + GRANULARITY.max(self.rttvar * 4)).clamp(self.min_rto, self.max_rto);
        self.backoff = 0;
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        self.samples += 1;
    }

    /// A retransmission timer expired: double the timeout (rule 5.5).
    pub fn on_timeout(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
    }

    /// New data was acknowledged: the path works again, so the backoff ends
    /// even without a round trip to sample (Karn's rule forbids sampling
    /// resent blocks, and after a loss those are all a window acknowledges;
    /// without this the timeout would stay doubled until a whole window of
    /// fresh blocks got through, which under heavy loss takes minutes).
    pub fn on_progress(&mut self) {
        self.backoff = 0;
    }

    /// Stops backoff at `cap` (or at the measured timeout, if that is
    /// longer): a peer that gives up after some silence must hear a try
    /// well within it, and a burst of losses is crossed by tries, not by
    /// waiting longer between them.
    pub fn set_backoff_cap(&mut self, cap: Duration) {
        self.backoff_cap = cap.min(self.max_rto);
    }

    /// The timeout to arm now.
    pub fn rto(&self) -> Duration {
        let cap = self.backoff_cap.max(self.base_rto);
        self.base_rto.saturating_mul(1 << self.backoff).min(cap).min(self.max_rto)
    }

    /// The smoothed round trip, once sampled.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The fastest round trip seen.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// How many round trips were sampled.
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn estimator() -> RttEstimator {
        RttEstimator::new(ms(1000), ms(1), ms(60_000))
    }

    #[test]
    fn the_first_sample_sets_srtt_and_half_of_it_as_variation() {
        let mut e = estimator();
        assert_eq!(e.rto(), ms(1000), "rule 2.1: before any sample");
        e.on_sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rto(), ms(100) + ms(50) * 4, "rule 2.2: SRTT + 4 * R/2");
    }

    #[test]
    fn later_samples_follow_the_rfc_weights() {
        let mut e = estimator();
        e.on_sample(ms(100));
        e.on_sample(ms(200));
        // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 4 * 62_500));
        assert_eq!((e.min_rtt(), e.samples()), (Some(ms(100)), 2));
    }

    #[test]
    fn timeouts_back_off_until_a_sample_arrives() {
        let mut e = estimator();
        e.on_sample(ms(10));
        let base = e.rto();
        e.on_timeout();
        e.on_timeout();
        assert_eq!(e.rto(), base * 4);
        for _ in 0..40 {
            e.on_timeout();
        }
        assert_eq!(e.rto(), ms(60_000), "capped at the ceiling");
        e.on_sample(ms(10));
        assert!(e.rto() < base * 2, "a sample ends the backoff");
    }

    #[test]
    fn progress_ends_the_backoff_but_keeps_the_estimate() {
        let mut e = estimator();
        e.on_sample(ms(10));
        let base = e.rto();
        e.on_timeout();
        e.on_progress();
        assert_eq!((e.rto(), e.samples()), (base, 1));
    }

    #[test]
    fn backoff_stops_at_its_cap_but_never_cuts_the_measured_timeout() {
        let mut e = estimator();
        e.on_sample(ms(10));
        let base = e.rto();
        e.set_backoff_cap(ms(100));
        for _ in 0..10 {
            e.on_timeout();
        }
        assert_eq!(e.rto(), ms(100));
        e.set_backoff_cap(ms(1));
        assert_eq!(e.rto(), base, "a cap below the measured timeout would resend every block early");
    }

    #[test]
    fn a_ceiling_below_the_floor_is_raised_to_it() {
        // Found by the transfer_engines fuzz target: clamp panicked.
        let mut e = RttEstimator::new(ms(25), ms(10), ms(1));
        assert_eq!(e.rto(), ms(25).clamp(ms(10), ms(10)));
        e.on_sample(ms(3));
        assert_eq!(e.rto(), ms(10));
    }

    #[test]
    fn the_floor_and_ceiling_hold() {
        let mut e = RttEstimator::new(ms(1000), ms(5), ms(2000));
        e.on_sample(Duration::from_micros(20));
        assert_eq!(e.rto(), ms(5));
        e.on_sample(ms(10_000));
        assert_eq!(e.rto(), ms(2000));
    }
}

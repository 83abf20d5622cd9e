//! Flood control (pure): a token bucket per client. Time is passed in.

use std::time::{Duration, Instant};

/// The longest [`TokenBucket::wait`]: a rate read from a peer can be absurdly low.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// How many lines a client may send: `per_sec` on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Lines per second, sustained; above zero.
    pub per_sec: f64,
    /// Lines that may come at once after a quiet spell; at least one.
    pub burst: u32,
}

/// How a [`RateLimit::refusal`] starts.
const SLOW_DOWN: &str = "slow down: at most ";

/// A rate that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a rate of lines; write e.g. 10/s, 300/min or off")]
pub struct RateError(String);

impl RateLimit {
    /// `chat serve`'s default: 10 lines a second, bursts of 20 (and what
    /// `chat join` paces itself to until a server says otherwise).
    pub const DEFAULT: RateLimit = RateLimit { per_sec: 10.0, burst: 20 };

    /// What a client over the limit is told (as an error line); the client
    /// reads the limit back with [`RateLimit::from_refusal`].
    pub fn refusal(&self) -> String {
        format!(
            "{SLOW_DOWN}{} lines/s (bursts of {}); lines are dropped until you do",
            self.per_sec, self.burst
        )
    }

    /// The limit a [`RateLimit::refusal`] names; `None` for any other text.
    pub fn from_refusal(text: &str) -> Option<RateLimit> {
        let rest = text.strip_prefix(SLOW_DOWN)?;
        let (per_sec, rest) = rest.split_once(" lines/s (bursts of ")?;
        let (burst, _) = rest.split_once(')')?;
        let per_sec: f64 = per_sec.parse().ok()?;
        let burst: u32 = burst.parse().ok()?;
        (per_sec.is_finite() && per_sec > 0.0 && burst > 0).then_some(RateLimit { per_sec, burst })
    }

    /// Parses `10/s`, `300/min`, `5` (per second) or `off` (no limit: `None`),
    /// with a burst of `burst` lines.
    ///
    /// # Errors
    /// When the text is none of those, or the rate is not above zero.
    pub fn parse(text: &str, burst: u32) -> Result<Option<RateLimit>, RateError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let error = || RateError(text.to_owned());
        let (count, unit) = text.split_once('/').unwrap_or((text, "s"));
        let seconds = match unit.trim() {
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(error()),
        };
        let count: f64 = count.trim().parse().map_err(|_| error())?;
        if !(count.is_finite() && count > 0.0) {
            return Err(error());
        }
        Ok(Some(RateLimit { per_sec: count / seconds, burst: burst.max(1) }))
    }
}

/// A token bucket: full at first, one token per line, refilled at the
/// limit's rate up to its burst.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        TokenBucket { limit, tokens: f64::from(limit.burst), last: now }
    }

    /// Whether the bucket would be full at `now`: nothing taken from it
    /// matters any more.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.limit.per_sec >= f64::from(self.limit.burst)
    }

    /// An empty bucket at `now`: for a sender told it went over the limit.
    pub fn empty(limit: RateLimit, now: Instant) -> TokenBucket {
        TokenBucket { limit, tokens: 0.0, last: now }
    }

    /// How long after `now` the bucket has a token again (zero when it has one).
    pub fn wait(&self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let missing = 1.0 - (self.tokens + elapsed * self.limit.per_sec);
        match missing > 0.0 {
            true => Duration::from_secs_f64(missing / self.limit.per_sec).min(MAX_WAIT),
            false => Duration::ZERO,
        }
    }

    /// Takes a token for one line at `now`; false when the bucket is empty
    /// (the line is over the limit). `now` must not go backwards.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.limit.per_sec).min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(RateLimit::parse("10/s", 20), Ok(Some(RateLimit { per_sec: 10.0, burst: 20 })));
        assert_eq!(RateLimit::parse("120/min", 3), Ok(Some(RateLimit { per_sec: 2.0, burst: 3 })));
        assert_eq!(RateLimit::parse("5", 0), Ok(Some(RateLimit { per_sec: 5.0, burst: 1 })));
        assert_eq!(RateLimit::parse("OFF", 5), Ok(None));
        for bad in ["0/s", "-1/s", "ten/s", "10/fortnight", "NaN"] {
            assert!(RateLimit::parse(bad, 5).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit { per_sec: 10.0, burst: 3 }, start);
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start), "the burst is spent");
        assert!(!bucket.take(start + Duration::from_millis(50)), "half a token");
        assert!(bucket.take(start + Duration::from_millis(100)));
        assert!(!bucket.take(start + Duration::from_millis(100)));
        // A long pause refills to the burst, not beyond.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take(later)).count(), 3);
    }

    #[test]
    fn a_flood_gets_the_rate_and_no_more() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit { per_sec: 100.0, burst: 10 }, start);
        // 10,000 lines over one second, evenly spread.
        let accepted = (0..10_000).filter(|i| bucket.take(start + Duration::from_micros(i * 100))).count();
        assert!((100..=111).contains(&accepted), "{accepted}");
    }

    #[test]
    fn a_refusal_names_the_limit_the_client_reads_back() {
        for limit in [RateLimit::DEFAULT, RateLimit { per_sec: 0.5, burst: 1 }] {
            assert_eq!(RateLimit::from_refusal(&limit.refusal()), Some(limit));
        }
        for other in ["slow down", "slow down: at most 0 lines/s (bursts of 3)", "nickname bob is taken"] {
            assert_eq!(RateLimit::from_refusal(other), None, "{other}");
        }
    }

    #[test]
    fn a_bucket_says_how_long_until_its_next_token() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit { per_sec: 4.0, burst: 1 }, start);
        assert_eq!(bucket.wait(start), Duration::ZERO);
        assert!(bucket.take(start));
        assert_eq!(bucket.wait(start), Duration::from_millis(250));
        assert_eq!(bucket.wait(start + Duration::from_millis(100)), Duration::from_millis(150));
        let empty = TokenBucket::empty(RateLimit { per_sec: 1e-9, burst: 1 }, start);
        assert_eq!(empty.wait(start), MAX_WAIT, "a rate read from a peer cannot make a wait overflow");
    }
}

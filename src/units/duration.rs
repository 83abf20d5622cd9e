//! Durations: `250ms`, `1m 30s`, `2h`, or a bare number of seconds (`1.5`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::UnitError;

/// A length of time someone gave us, at most [`TimeSpan::MAX`]: a deadline
/// of now plus any `TimeSpan` fits an `Instant`, a `SystemTime` and tokio's
/// timer, so code that adds one needs no overflow check of its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "f64")]
pub struct TimeSpan(Duration);

impl TimeSpan {
    /// No time at all.
    pub const ZERO: TimeSpan = TimeSpan(Duration::ZERO);
    /// The longest span, 365 days: longer than any timeout, delay or run
    /// anyone means, and far inside every clock's range.
    pub const MAX: TimeSpan = TimeSpan(Duration::from_secs(365 * 24 * 3600));

    /// `duration` as a span; `None` when it is longer than [`TimeSpan::MAX`].
    pub const fn new(duration: Duration) -> Option<TimeSpan> {
        if duration.as_secs() > TimeSpan::MAX.0.as_secs()
            || (duration.as_secs() == TimeSpan::MAX.0.as_secs() && duration.subsec_nanos() > 0)
        {
            None
        } else {
            Some(TimeSpan(duration))
        }
    }

    /// `duration`, or [`TimeSpan::MAX`] when it is longer.
    pub fn saturating(duration: Duration) -> TimeSpan {
        TimeSpan(duration.min(TimeSpan::MAX.0))
    }

    /// The span as a `Duration`.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// True for a span of no time.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<TimeSpan> for Duration {
    fn from(span: TimeSpan) -> Duration {
        span.0
    }
}

/// Seconds, as JSON carries them.
impl From<TimeSpan> for f64 {
    fn from(span: TimeSpan) -> f64 {
        span.0.as_secs_f64()
    }
}

impl FromStr for TimeSpan {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let syntax =
            || UnitError::Syntax { input: s.to_owned(), what: "duration", example: "500ms, 2s or 1m" };
        let too_large = || UnitError::TooLarge { input: s.to_owned(), what: "duration", max: "365d" };
        let duration = match text.parse::<f64>() {
            // A bare number is seconds; "inf" and "NaN" parse as f64 but are not durations.
            Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                Duration::try_from_secs_f64(seconds).map_err(|_| too_large())?
            }
            Ok(_) => return Err(syntax()),
            Err(_) => humantime::parse_duration(text).map_err(|e| match e {
                humantime::DurationError::NumberOverflow => too_large(),
                _ => syntax(),
            })?,
        };
        TimeSpan::new(duration).ok_or_else(too_large)
    }
}

impl fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

/// Parses a duration the way every flag and setting does: see [`TimeSpan`].
///
/// # Errors
/// When the text is not a duration or is longer than [`TimeSpan::MAX`].
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    s.parse::<TimeSpan>().map(TimeSpan::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> f64 {
        parse_duration(s).unwrap().as_secs_f64()
    }

    #[test]
    fn durations_take_units_or_bare_seconds() {
        assert_eq!(secs("250ms"), 0.25);
        assert_eq!(secs("1m 30s"), 90.0);
        assert_eq!(secs("1.5"), 1.5);
        assert_eq!(secs("5"), 5.0);
        assert_eq!(secs(" 2h "), 7200.0);
        assert_eq!(secs("0"), 0.0);
        assert_eq!(secs("365d"), 365.0 * 86400.0);
    }

    #[test]
    fn nonsense_is_a_syntax_error() {
        for bad in ["", "soon", "-1", "-1s", "inf", "NaN", "5 parsecs"] {
            assert!(matches!(parse_duration(bad), Err(UnitError::Syntax { .. })), "{bad}");
        }
    }

    #[test]
    fn durations_that_would_overflow_a_clock_are_refused() {
        for huge in ["300000000000y", "500000000000years", "366d", "1e30", "99999999999999999999999s"] {
            let error = parse_duration(huge).unwrap_err();
            assert_eq!(error.to_string(), format!("'{huge}' is too large; the largest duration is 365d"));
        }
    }

    #[test]
    fn a_span_is_bounded_by_construction() {
        assert_eq!(TimeSpan::new(Duration::from_secs(1)), Some(TimeSpan(Duration::from_secs(1))));
        assert_eq!(TimeSpan::new(TimeSpan::MAX.get() + Duration::from_nanos(1)), None);
        assert_eq!(TimeSpan::saturating(Duration::MAX), TimeSpan::MAX);
        assert_eq!("90s".parse::<TimeSpan>().unwrap().to_string(), "1m 30s");
    }
}

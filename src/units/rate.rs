//! Rates: `10MB/s`, `80Mbit/s`, `1000` (bytes per second).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::{UnitError, scaled};

/// Units a rate may be written in, and how many bytes per second each is.
const RATE_UNITS: &[(&str, f64)] = &[
    ("B/s", 1.0),
    ("kB/s", 1e3),
    ("KB/s", 1e3),
    ("KiB/s", 1024.0),
    ("MB/s", 1e6),
    ("MiB/s", 1_048_576.0),
    ("GB/s", 1e9),
    ("GiB/s", 1_073_741_824.0),
    ("bit/s", 0.125),
    ("bps", 0.125),
    ("kbit/s", 125.0),
    ("kbps", 125.0),
    ("Mbit/s", 125e3),
    ("Mbps", 125e3),
    ("Gbit/s", 125e6),
    ("Gbps", 125e6),
];

/// A data rate in bytes per second, from [`Rate::MIN`] to [`Rate::MAX`]:
/// the time to send the largest datagram at any rate is a few days at most,
/// so it always fits a `Duration` and an `Instant` deadline.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
pub struct Rate {
    bytes_per_sec: f64,
}

impl Rate {
    /// The slowest rate, one bit per second.
    pub const MIN: Rate = Rate { bytes_per_sec: 0.125 };
    /// The fastest rate, a terabyte per second.
    pub const MAX: Rate = Rate { bytes_per_sec: 1e12 };

    /// A rate of `bytes_per_sec` bytes per second; `None` unless within
    /// [`Rate::MIN`]..=[`Rate::MAX`].
    pub fn from_bytes_per_sec(bytes_per_sec: f64) -> Option<Rate> {
        (Rate::MIN.bytes_per_sec..=Rate::MAX.bytes_per_sec)
            .contains(&bytes_per_sec)
            .then_some(Rate { bytes_per_sec })
    }

    /// Bytes per second.
    pub fn bytes_per_sec(self) -> f64 {
        self.bytes_per_sec
    }
}

impl FromStr for Rate {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes_per_sec = scaled(s, RATE_UNITS, 1.0).ok_or_else(|| UnitError::Syntax {
            input: s.to_owned(),
            what: "rate",
            example: "10MB/s or 80Mbit/s",
        })?;
        match bytes_per_sec {
            0.0 => Err(UnitError::NotPositive(s.to_owned())),
            r if r < Rate::MIN.bytes_per_sec => {
                Err(UnitError::TooSmall { input: s.to_owned(), what: "rate", min: "1bit/s" })
            }
            r => Rate::from_bytes_per_sec(r).ok_or_else(|| UnitError::TooLarge {
                input: s.to_owned(),
                what: "rate",
                max: "1TB/s",
            }),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (value, unit) = match self.bytes_per_sec {
            r if r >= 1e9 => (r / 1e9, "GB/s"),
            r if r >= 1e6 => (r / 1e6, "MB/s"),
            r if r >= 1e3 => (r / 1e3, "kB/s"),
            r => (r, "B/s"),
        };
        let text = format!("{value:.3}");
        write!(f, "{}{unit}", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> f64 {
        s.parse::<Rate>().unwrap().bytes_per_sec()
    }

    #[test]
    fn rates_parse_in_bytes_and_bits() {
        assert_eq!(rate("10MB/s"), 10e6);
        assert_eq!(rate("10 MB/s"), 10e6);
        assert_eq!(rate("80Mbit/s"), 10e6);
        assert_eq!(rate("80Mbps"), 10e6);
        assert_eq!(rate("1.5KiB/s"), 1536.0);
        assert_eq!(rate("1000"), 1000.0);
        assert!(matches!("10 parsecs".parse::<Rate>(), Err(UnitError::Syntax { .. })));
        assert!(matches!("0MB/s".parse::<Rate>(), Err(UnitError::NotPositive(_))));
        assert!(matches!("-5MB/s".parse::<Rate>(), Err(UnitError::Syntax { .. })));
    }

    #[test]
    fn rates_display_in_decimal_bytes() {
        assert_eq!("80Mbit/s".parse::<Rate>().unwrap().to_string(), "10MB/s");
        assert_eq!("1500".parse::<Rate>().unwrap().to_string(), "1.5kB/s");
        assert_eq!("2.5GB/s".parse::<Rate>().unwrap().to_string(), "2.5GB/s");
    }

    #[test]
    fn rates_outside_the_bounds_are_refused() {
        let tiny = "0.00000000000000000001".parse::<Rate>().unwrap_err();
        assert_eq!(tiny.to_string(), "'0.00000000000000000001' is too small; the smallest rate is 1bit/s");
        assert!(matches!("2000GB/s".parse::<Rate>(), Err(UnitError::TooLarge { .. })));
        assert_eq!(rate("1bit/s"), 0.125);
        assert_eq!(rate("1000GB/s"), 1e12);
    }
}

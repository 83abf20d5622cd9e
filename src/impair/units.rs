//! Rates and sizes as people write them: `10MB/s`, `80Mbit/s`, `64KiB`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

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

/// Units a size may be written in, and how many bytes each is.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("kB", 1000),
    ("KB", 1000),
    ("KiB", 1024),
    ("MB", 1_000_000),
    ("MiB", 1 << 20),
    ("GB", 1_000_000_000),
    ("GiB", 1 << 30),
];

/// A data rate in bytes per second, above zero.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
pub struct Rate {
    bytes_per_sec: f64,
}

/// A rate or size that could not be parsed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a number followed by a known unit.
    #[error("'{input}' is not a {what}; write e.g. {example}")]
    Syntax {
        /// The text as given.
        input: String,
        /// "rate" or "size".
        what: &'static str,
        /// A correct example.
        example: &'static str,
    },
    /// Zero or below (a rate) or negative (a size).
    #[error("'{0}' must be more than zero")]
    NotPositive(String),
}

impl Rate {
    /// A rate of `bytes_per_sec` bytes per second; `None` unless above zero and finite.
    pub fn from_bytes_per_sec(bytes_per_sec: f64) -> Option<Rate> {
        (bytes_per_sec.is_finite() && bytes_per_sec > 0.0).then_some(Rate { bytes_per_sec })
    }

    /// Bytes per second.
    pub fn bytes_per_sec(self) -> f64 {
        self.bytes_per_sec
    }
}

/// Splits `12.5MB/s` into the number and the unit (trimmed).
fn split_number(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    (s[..end].trim(), s[end..].trim())
}

impl FromStr for Rate {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax =
            || UnitError::Syntax { input: s.to_owned(), what: "rate", example: "10MB/s or 80Mbit/s" };
        let (number, unit) = split_number(s.trim());
        let value: f64 = number.parse().map_err(|_| syntax())?;
        let scale = if unit.is_empty() {
            1.0
        } else {
            RATE_UNITS.iter().find(|(name, _)| *name == unit).ok_or_else(syntax)?.1
        };
        Rate::from_bytes_per_sec(value * scale).ok_or_else(|| UnitError::NotPositive(s.to_owned()))
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

/// Parses a size such as `64KiB`, `1.5MB` or `1500` (bytes).
///
/// # Errors
/// When the text is not a number with a known unit.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let syntax = || UnitError::Syntax { input: s.to_owned(), what: "size", example: "64KiB or 1500" };
    let (number, unit) = split_number(s.trim());
    let value: f64 = number.parse().map_err(|_| syntax())?;
    let scale = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS.iter().find(|(name, _)| *name == unit).ok_or_else(syntax)?.1
    };
    Ok((value * scale as f64).round() as u64)
}

/// A size in the largest binary unit that keeps it readable: `128KiB`, `1500B`.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0B".to_owned(),
        b if b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
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
    fn sizes_parse_and_display() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert!(parse_size("lots").is_err());
        assert_eq!(format_size(65536), "64KiB");
        assert_eq!(format_size(1500), "1500B");
        assert_eq!(format_size(3 << 20), "3MiB");
        assert_eq!(format_size(0), "0B");
    }
}

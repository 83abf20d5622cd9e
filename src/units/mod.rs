//! Quantities as people write them, parsed once into values that cannot be
//! out of range: durations (`250ms`, `1m 30s`, `1.5`), sizes (`64KiB`,
//! `1.5MB`, `1400`) and rates (`10MB/s`, `80Mbit/s`).
//!
//! Every command-line flag and the impairment proxy's control socket take
//! their quantities through these parsers, so both accept the same words. One
//! rule for bare numbers: seconds for durations, bytes for sizes, bytes per
//! second for rates. Each type has a ceiling chosen so that the arithmetic the
//! engines do with it (`Instant + duration`, `bytes / rate` as a duration)
//! cannot overflow; a value above it is refused with the ceiling named, never
//! clipped in silence.

mod duration;
mod rate;
mod size;

pub use duration::{TimeSpan, parse_duration};
pub use rate::Rate;
pub use size::{MAX_SIZE, format_size, parse_size};

/// A quantity that could not be parsed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a number followed by a known unit.
    #[error("'{input}' is not a {what}; write e.g. {example}")]
    Syntax {
        /// The text as given.
        input: String,
        /// "rate", "size" or "duration".
        what: &'static str,
        /// A correct example.
        example: &'static str,
    },
    /// Zero or below where only more than zero makes sense.
    #[error("'{0}' must be more than zero")]
    NotPositive(String),
    /// Below the smallest value of its kind.
    #[error("'{input}' is too small; the smallest {what} is {min}")]
    TooSmall {
        /// The text as given.
        input: String,
        /// "rate", "size" or "duration".
        what: &'static str,
        /// The smallest accepted value, as it would be written.
        min: &'static str,
    },
    /// Above the largest value of its kind.
    #[error("'{input}' is too large; the largest {what} is {max}")]
    TooLarge {
        /// The text as given.
        input: String,
        /// "rate", "size" or "duration".
        what: &'static str,
        /// The largest accepted value, as it would be written.
        max: &'static str,
    },
}

/// Splits `12.5MB/s` into the number and the unit (trimmed).
fn split_number(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    (s[..end].trim(), s[end..].trim())
}

/// The number in `text` times the scale of its unit from `units` (`bare`
/// when it has none); `None` when either is not understood.
fn scaled(text: &str, units: &[(&str, f64)], bare: f64) -> Option<f64> {
    let (number, unit) = split_number(text.trim());
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "" => bare,
        unit => units.iter().find(|(name, _)| *name == unit)?.1,
    };
    Some(value * scale).filter(|v| v.is_finite())
}

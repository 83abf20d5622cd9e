//! Sizes: `64KiB`, `1.5MB`, `1400` (bytes).

use super::{UnitError, scaled};

/// Units a size may be written in, and how many bytes each is.
const SIZE_UNITS: &[(&str, f64)] = &[
    ("B", 1.0),
    ("kB", 1e3),
    ("KB", 1e3),
    ("KiB", 1024.0),
    ("MB", 1e6),
    ("MiB", 1_048_576.0),
    ("GB", 1e9),
    ("GiB", 1_073_741_824.0),
    ("TB", 1e12),
    ("TiB", 1_099_511_627_776.0),
];

/// The largest size anything here takes, 1 PiB: far above any buffer, file
/// or queue a command deals with, and small enough that a size times a
/// count of thousands still fits a `u64` and a size is exact as an `f64`.
pub const MAX_SIZE: u64 = 1 << 50;

/// Parses a size such as `64KiB`, `1.5MB` or `1500` (bytes), rounded to
/// whole bytes.
///
/// # Errors
/// When the text is not a number with a known unit, or is above [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let bytes = scaled(s, SIZE_UNITS, 1.0).ok_or_else(|| UnitError::Syntax {
        input: s.to_owned(),
        what: "size",
        example: "64KiB or 1500",
    })?;
    if bytes.round() > MAX_SIZE as f64 {
        return Err(UnitError::TooLarge { input: s.to_owned(), what: "size", max: "1PiB" });
    }
    // Within 0..=MAX_SIZE, so the conversion is exact.
    Ok(bytes.round() as u64)
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

    #[test]
    fn sizes_parse_and_display() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert!(matches!(parse_size("lots"), Err(UnitError::Syntax { .. })));
        assert!(matches!(parse_size("-5"), Err(UnitError::Syntax { .. })));
        assert_eq!(format_size(65536), "64KiB");
        assert_eq!(format_size(1500), "1500B");
        assert_eq!(format_size(3 << 20), "3MiB");
        assert_eq!(format_size(0), "0B");
    }

    #[test]
    fn sizes_above_the_ceiling_are_refused_not_saturated() {
        assert_eq!(parse_size("1024TiB"), Ok(MAX_SIZE));
        let huge = parse_size("99999999999999999999GB").unwrap_err();
        assert_eq!(huge.to_string(), "'99999999999999999999GB' is too large; the largest size is 1PiB");
        assert!(matches!(parse_size("1e400"), Err(UnitError::Syntax { .. })));
    }
}

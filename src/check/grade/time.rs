//! Judging what daytime (RFC 867) and time (RFC 868) servers answer.

use crate::daytime::EPOCH_OFFSET;

/// How a daytime answer ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `\r\n`, as RFC 867's examples (and every Internet text protocol) do.
    CrLf,
    /// A bare `\n`.
    Lf,
    /// No line ending at all.
    Missing,
}

/// How `answer` ends.
pub fn ending(answer: &[u8]) -> Ending {
    if answer.ends_with(b"\r\n") {
        Ending::CrLf
    } else if answer.ends_with(b"\n") {
        Ending::Lf
    } else {
        Ending::Missing
    }
}

/// How many lines `answer` holds (a last line without an ending counts).
pub fn line_count(answer: &[u8]) -> usize {
    let body = answer.strip_suffix(b"\n").unwrap_or(answer);
    if body.is_empty() { 0 } else { body.split(|&b| b == b'\n').count() }
}

/// Whether `text` says the time `now_unix` (seconds since 1970, UTC): a
/// clock time (H:MM) within two minutes of now in some time zone (every
/// zone is a whole number of quarter hours from UTC, and a 12-hour clock is
/// half a day off), and the year; or the Unix time itself as a number.
pub fn says_the_time(text: &str, now_unix: i64, year: i32) -> bool {
    if numbers(text).any(|n| (n - now_unix).abs() <= 120) {
        return true;
    }
    let has_year = numbers(text).any(|n| n == i64::from(year));
    let minute_of_day = now_unix.rem_euclid(86_400) / 60;
    let clock_matches = clock_times(text).any(|minutes| {
        let off = (minutes - minute_of_day).rem_euclid(15);
        off <= 2 || off >= 13
    });
    has_year && clock_matches
}

/// The runs of digits in `text`, as numbers.
fn numbers(text: &str) -> impl Iterator<Item = i64> + '_ {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty() && s.len() <= 12)
        .filter_map(|s| s.parse().ok())
}

/// Every `H:MM` or `HH:MM` in `text`, as minutes since midnight.
fn clock_times(text: &str) -> impl Iterator<Item = i64> + '_ {
    let bytes = text.as_bytes();
    (0..bytes.len()).filter_map(move |i| {
        if bytes[i] != b':' || i == 0 {
            return None;
        }
        let digits = |s: &[u8]| -> Option<i64> { std::str::from_utf8(s).ok()?.parse().ok() };
        let start = if i >= 2 && bytes[i - 2].is_ascii_digit() { i - 2 } else { i - 1 };
        let hours = digits(&bytes[start..i])?;
        let minutes = digits(bytes.get(i + 1..i + 3)?)?;
        (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
    })
}

/// How four bytes were meant, judged by which reading is closest to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeReading {
    /// Whether the bytes were big-endian (network byte order), as RFC 868 asks.
    pub big_endian: bool,
    /// Whether the count starts in 1900, as RFC 868 asks (else 1970, Unix's epoch).
    pub from_1900: bool,
    /// How far that reading is from now, in seconds (positive: ahead).
    pub off_by: i64,
}

/// The most plausible reading of an RFC 868 answer at `now_unix`, or
/// `None` when no reading comes within a day of now.
pub fn read_time(answer: [u8; 4], now_unix: i64) -> Option<TimeReading> {
    let now_1900 = (now_unix + EPOCH_OFFSET).rem_euclid(1 << 32);
    let readings = [
        (true, true, u32::from_be_bytes(answer)),
        (false, true, u32::from_le_bytes(answer)),
        (true, false, u32::from_be_bytes(answer)),
        (false, false, u32::from_le_bytes(answer)),
    ];
    readings
        .into_iter()
        .map(|(big_endian, from_1900, value)| {
            let now = if from_1900 { now_1900 } else { now_unix.rem_euclid(1 << 32) };
            // The difference modulo 2^32, taken to the nearest: the count wraps in 2036.
            let off_by = (i64::from(value) - now + (1 << 31)).rem_euclid(1 << 32) - (1 << 31);
            TimeReading { big_endian, from_1900, off_by }
        })
        .filter(|r| r.off_by.abs() <= 86_400)
        .min_by_key(|r| r.off_by.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000; // 2026-11-30 00:53:20 UTC

    #[test]
    fn endings_and_lines() {
        assert_eq!(ending(b"x\r\n"), Ending::CrLf);
        assert_eq!(ending(b"x\n"), Ending::Lf);
        assert_eq!(ending(b"x"), Ending::Missing);
        assert_eq!(line_count(b"Sunday\r\n"), 1);
        assert_eq!(line_count(b"2026-11-29 01:33:20"), 1);
        assert_eq!(line_count(b"Date:\nSunday\n"), 2);
        assert_eq!(line_count(b""), 0);
    }

    #[test]
    fn the_time_in_any_zone_and_format_is_recognised() {
        assert!(says_the_time("2026-11-30 00:53:20", NOW, 2026));
        assert!(says_the_time("Monday, November 30, 2026 01:54:00 +01:00", NOW, 2026));
        assert!(says_the_time("Mon Nov 30 06:23:20 2026", NOW, 2026), "India is 5:30 ahead");
        assert!(says_the_time("12:53 PM, 30/11/2026", NOW, 2026), "a 12-hour clock");
        assert!(says_the_time("1796000005.123", NOW, 2026), "the Unix time itself");
        assert!(!says_the_time("2026-11-30 01:05:20", NOW, 2026), "12 minutes off");
        assert!(!says_the_time("hello", NOW, 2026));
        assert!(!says_the_time("00:53:20", NOW, 2026), "no date");
    }

    #[test]
    fn rfc_868_readings() {
        let right = ((NOW + EPOCH_OFFSET) as u32).to_be_bytes();
        assert_eq!(read_time(right, NOW), Some(TimeReading { big_endian: true, from_1900: true, off_by: 0 }));
        let unix = (NOW as u32 + 3).to_be_bytes();
        assert_eq!(read_time(unix, NOW), Some(TimeReading { big_endian: true, from_1900: false, off_by: 3 }));
        let little = ((NOW + EPOCH_OFFSET) as u32).to_le_bytes();
        assert_eq!(
            read_time(little, NOW),
            Some(TimeReading { big_endian: false, from_1900: true, off_by: 0 })
        );
        let slow = ((NOW + EPOCH_OFFSET - 600) as u32).to_be_bytes();
        assert_eq!(read_time(slow, NOW).map(|r| r.off_by), Some(-600));
        assert_eq!(read_time(*b"1234", NOW), None);
    }
}

//! Showing what a student's program sent: it may hold anything (NUL, escape
//! sequences, invalid UTF-8), and a report must neither obey it nor drown
//! in it. Bytes are shown the way Python writes a bytes literal
//! (`b'hi\r\n'`), the notation a student sees when they print what their
//! own program received, so the two can be compared; in that notation every
//! byte outside printable ASCII is `\xNN`, so nothing reaches a terminal as
//! a control. Text is shown through the crate's one sanitizer,
//! [`crate::text`].

use std::fmt::Write;

/// How many bytes of a message a report shows before cutting it.
pub const SHOWN: usize = 80;

/// `raw` the way Python writes a bytes literal, so a student recognises it:
/// `b'hello\r\n'`, `b'\x00\xff'`; cut after `limit` bytes with the count of
/// what was left out.
///
/// ```
/// use socketeer::check::show;
/// assert_eq!(show::bytes(b"hi\r\n", 80), r"b'hi\r\n'");
/// assert_eq!(show::bytes(&[0, 0xff, b'\''], 80), r"b'\x00\xff\''");
/// assert_eq!(show::bytes(b"abcdef", 3), "b'abc'... (3 more bytes)");
/// ```
pub fn bytes(raw: &[u8], limit: usize) -> String {
    let shown = &raw[..raw.len().min(limit)];
    let mut out = String::with_capacity(shown.len() + 8);
    out.push_str("b'");
    for &b in shown {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            0x20..=0x7e => out.push(char::from(b)),
            // Cannot fail: writing to a String.
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('\'');
    if raw.len() > shown.len() {
        let _ = write!(out, "... ({} more bytes)", raw.len() - shown.len());
    }
    out
}

/// `text` quoted and made safe to show (through [`crate::text::sanitize`],
/// the crate's one policy for peer text), cut after `limit` characters: for
/// text that is already a `String` (a line a chat server relayed, a
/// scanner's output).
pub fn text(text: &str, limit: usize) -> String {
    let total = text.chars().count();
    let cut: String = text.chars().take(limit).collect();
    let shown = format!("\"{}\"", crate::text::sanitize(&cut));
    match total.checked_sub(limit) {
        Some(more @ 1..) => format!("{shown}... ({more} more characters)"),
        _ => shown,
    }
}

/// A byte count in words, its digits grouped: `1 byte`, `1,048,576 bytes`.
pub fn count(n: usize) -> String {
    format!("{} {}", grouped(n), if n == 1 { "byte" } else { "bytes" })
}

/// `n` with its digits in groups of three: `65,507`.
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_cannot_reach_the_terminal() {
        let shown = bytes(b"\x1b[2Jgone\x07", 80);
        assert_eq!(shown, r"b'\x1b[2Jgone\x07'");
        assert!(!shown.contains('\x1b'));
        assert_eq!(text("a\u{1b}[31mred\u{9b}", 80), "\"a^[[31mred<U+009B>\"");
    }

    #[test]
    fn text_keeps_printable_unicode_and_cuts() {
        assert_eq!(text("héllo ✓", 80), "\"héllo ✓\"");
        assert_eq!(text("abcdef", 2), "\"ab\"... (4 more characters)");
    }

    #[test]
    fn empty_is_shown_as_empty() {
        assert_eq!(bytes(b"", 80), "b''");
        assert_eq!(count(1), "1 byte");
        assert_eq!(count(1_048_576), "1,048,576 bytes");
        assert_eq!(grouped(999), "999");
    }
}

//! Text for people: what the other side of a socket sent, made safe to
//! show, and counts in words.
//!
//! Bytes a peer sent are data, never instructions to a terminal: an ESC or
//! a C1 control starts a sequence that can retitle the window, move the
//! cursor or rewrite what is on screen, BEL beeps, and a bidirectional
//! override makes text read differently from how it is stored. Every path
//! where peer bytes reach a person goes through this module (chat lines,
//! daytime and echo replies, errors a remote side reports, banners,
//! payloads). One policy, shown rather than dropped, so a person can see
//! that something odd was sent:
//!
//! - C0 controls in caret notation (`ESC` is `^[`, BEL `^G`), DEL as `^?`,
//! - C1 controls and bidirectional overrides as `<U+009B>`, `<U+202E>`,
//! - a tab as a space, and bytes that are not UTF-8 as `\xFF`.
//!
//! Commands that pass bytes through on purpose (`echo send --raw`, pcap
//! files) do not come here: they are for pipes, not terminals.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is shown in another form: see the module doc.
fn needs_showing(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The fast test: whether any byte of `text` may start a character that
/// [`needs_showing`]. C0 and DEL are single bytes; C1 controls start with
/// 0xC2 and the bidirectional controls with 0xE2; a false alarm only costs
/// the slow path.
fn may_need_showing(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2 || b == 0xe2)
}

/// Appends `c` in its visible form.
fn show(c: char, out: &mut String) {
    match c {
        '\t' => out.push(' '),
        '\0'..='\x1f' => {
            out.push('^');
            out.push(char::from(c as u8 + b'@'));
        }
        '\x7f' => out.push_str("^?"),
        // Cannot fail: writing to a String.
        c => drop(write!(out, "<U+{:04X}>", u32::from(c))),
    }
}

/// `text` with every control character, escape sequence and bidirectional
/// override made visible (see the module doc), as one line: a newline is
/// shown as `^J`. Text without any (nearly all of it) is returned as it is.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    sanitize_keeping(text, None)
}

/// Like [`sanitize`], but newlines stay newlines: for text of several lines,
/// such as an error message a remote side sent.
pub fn sanitize_lines(text: &str) -> Cow<'_, str> {
    sanitize_keeping(text, Some('\n'))
}

fn sanitize_keeping(text: &str, keep: Option<char>) -> Cow<'_, str> {
    if !may_need_showing(text) || !text.chars().any(|c| needs_showing(c) && Some(c) != keep) {
        return Cow::Borrowed(text);
    }
    let mut clean = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_showing(c) && Some(c) != keep {
            show(c, &mut clean);
        } else {
            clean.push(c);
        }
    }
    Cow::Owned(clean)
}

/// Bytes as one [`sanitize`]d line: UTF-8 where they are UTF-8, each other
/// byte as `\xNN`, so a binary reply (the time service's four bytes, say)
/// shows what it is instead of replacement characters.
pub fn sanitize_bytes(bytes: &[u8]) -> Cow<'_, str> {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        if chunk.invalid().is_empty() && out.is_empty() && chunk.valid().len() == bytes.len() {
            return sanitize(chunk.valid());
        }
        out.push_str(&sanitize(chunk.valid()));
        for b in chunk.invalid() {
            // Cannot fail: writing to a String.
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// Bytes the way tcpdump's `-A` and the right column of `-X` show them:
/// printable ASCII as it is, every other byte as `.`; newlines kept when
/// `keep_newlines` (the `-A` form).
pub fn dotted(bytes: &[u8], keep_newlines: bool) -> String {
    let printable = |b: u8| (0x20..0x7f).contains(&b) || (keep_newlines && (b == b'\n' || b == b'\t'));
    bytes.iter().map(|&b| if printable(b) { char::from(b) } else { '.' }).collect()
}

/// Text made safe to put in HTML or SVG, as an element's text or a quoted
/// attribute: markup characters escaped, control characters dropped.
pub fn markup(text: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'') || (c.is_control() && c != '\n');
    if !text.chars().any(special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push('\n'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A count and its noun: `1 sender`, `2 senders`.
pub fn plural(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_controls_are_shown_not_obeyed() {
        assert!(matches!(sanitize("plain text, ünïcödé, 😀 £ — ok"), Cow::Borrowed(_)));
        assert_eq!(sanitize("\x1b[2J\x1b]0;pwned\x07"), "^[[2J^[]0;pwned^G");
        assert_eq!(sanitize("a\rb\x08c\x7f"), "a^Mb^Hc^?");
        assert_eq!(sanitize("tab\there"), "tab here");
        assert_eq!(sanitize("c1 \u{9b}31m csi"), "c1 <U+009B>31m csi");
        assert_eq!(sanitize("\0"), "^@");
        assert_eq!(sanitize("two\nlines"), "two^Jlines");
        for dirty in ["\x1b[31mred", "\u{9b}2J", "bell\x07", "\x1b]2;title\x1b\\", "\u{85}next"] {
            let clean = sanitize(dirty);
            assert!(!clean.chars().any(char::is_control), "{dirty:?} -> {clean:?}");
        }
    }

    #[test]
    fn bidirectional_overrides_are_shown() {
        assert_eq!(sanitize("abc\u{202e}fed"), "abc<U+202E>fed");
        assert_eq!(sanitize("\u{2066}x\u{2069}"), "<U+2066>x<U+2069>");
        // Other characters that start with the same bytes are left alone.
        assert!(matches!(sanitize("“quoted” … €"), Cow::Borrowed(_)));
    }

    #[test]
    fn lines_keep_their_newlines_only() {
        assert_eq!(sanitize_lines("one\ntwo\x1b[K\n"), "one\ntwo^[[K\n");
        assert!(matches!(sanitize_lines("one\ntwo\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        assert_eq!(sanitize_bytes(b"\xec\x9f\x11\x02"), "\\xEC\\x9F^Q^B");
        assert_eq!(sanitize_bytes("héllo\x1b".as_bytes()), "héllo^[");
        assert!(matches!(sanitize_bytes(b"fine"), Cow::Borrowed(_)));
        assert_eq!(sanitize_bytes(b""), "");
    }

    #[test]
    fn dotted_is_printable_ascii_or_a_dot() {
        assert_eq!(dotted(b"GET /\r\nHost\x00\xff", true), "GET /.\nHost..");
        assert_eq!(dotted(b"a\nb", false), "a.b");
    }

    #[test]
    fn markup_escapes_and_drops_controls() {
        assert_eq!(markup("a < b & \"c\" >\u{7}'"), "a &lt; b &amp; &quot;c&quot; &gt;&#39;");
        assert!(matches!(markup("fine"), Cow::Borrowed(_)));
    }
}

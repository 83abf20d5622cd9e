//! Splitting a filter into words and operators, as libpcap's scanner does
//! for the cases that matter: a word runs over letters, digits and `. _ - \ :`
//! (so `icmp-echo`, `8000-8100`, `fe80::1` and `02:00:00:00:00:01` are one
//! word each, and `len-1` is one word too, as in tcpdump), `/` stands alone
//! (`10.0.0.0/8` is three tokens), and inside brackets `:` separates
//! (`ip[6:2]`).

/// One word or operator and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Token<'a> {
    /// Its text.
    pub text: &'a str,
    /// Its byte offset in the filter.
    pub position: usize,
}

impl Token<'_> {
    /// Whether this is a word (not an operator or a parenthesis).
    pub fn is_word(&self) -> bool {
        self.text.bytes().next().is_some_and(is_word_start)
    }
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'\\' | b':')
}

fn is_word_byte(b: u8, in_brackets: bool) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'\\' | b'-') || (b == b':' && !in_brackets)
}

/// The filter's tokens; bytes that fit nothing (`@`, `$`, non-ASCII)
/// become one-byte tokens, which the parser then refuses by name.
pub(super) fn tokenize(text: &str) -> Vec<Token<'_>> {
    const PAIRS: [&str; 8] = ["&&", "||", "<<", ">>", "<=", ">=", "==", "!="];
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut brackets = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if is_word_start(b) && !(b == b':' && brackets > 0) {
            while i < bytes.len() && is_word_byte(bytes[i], brackets > 0) {
                i += 1;
            }
        } else if PAIRS.iter().any(|pair| text[i..].starts_with(pair)) {
            i += 2;
        } else {
            // One byte, or one whole character when it is not ASCII.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            match b {
                b'[' => brackets += 1,
                b']' => brackets = brackets.saturating_sub(1),
                _ => {}
            }
        }
        tokens.push(Token { text: &text[start..i], position: start });
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<&str> {
        tokenize(text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn words_operators_and_brackets() {
        assert_eq!(texts("tcp[13] & 2 != 0"), ["tcp", "[", "13", "]", "&", "2", "!=", "0"]);
        assert_eq!(texts("ip[6:2]&0x1fff=0"), ["ip", "[", "6", ":", "2", "]", "&", "0x1fff", "=", "0"]);
        assert_eq!(texts("net 10.0.0.0/8"), ["net", "10.0.0.0", "/", "8"]);
        assert_eq!(
            texts("host fe80::1 or !(port 8000-8100)"),
            ["host", "fe80::1", "or", "!", "(", "port", "8000-8100", ")"]
        );
        assert_eq!(texts("ip proto \\udp&&len-1"), ["ip", "proto", "\\udp", "&&", "len-1"]);
        assert_eq!(texts("-len<<2"), ["-", "len", "<<", "2"]);
        assert_eq!(texts("tcp@é"), ["tcp", "@", "é"]);
    }
}

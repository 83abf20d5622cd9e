//! The line editor behind `chat join`'s terminal, without the terminal: keys
//! (bytes, escape sequences included) go in, the line, its cursor and the
//! lines entered come out, so every key is tested without a tty.
//!
//! Keys, as in readline's defaults: printable text; Left/Right, Ctrl-B/Ctrl-F
//! (a character as the user sees it: a grapheme cluster, so an emoji with its
//! modifiers, a flag or a letter with its accents moves and deletes as one),
//! Home/End, Ctrl-A/Ctrl-E; Backspace, Delete, Ctrl-D (the character under
//! the cursor, or leave on an empty line); Ctrl-U/Ctrl-K (to
//! the start/end), Ctrl-W (the word before the cursor); Up/Down, Ctrl-P/Ctrl-N
//! (history of entered lines); Enter (send); Ctrl-C (leave).

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthChar;

/// Lines kept for Up/Down.
const HISTORY: usize = 100;

/// What a key did beyond editing the line.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The user entered this line.
    Entered(String),
    /// The user asked to leave.
    Leave,
}

/// Where an escape sequence is, while one is being read.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// After `ESC [` or `ESC O`: parameter bytes so far, until a final byte.
    Sequence(Vec<u8>),
}

/// The line being typed, with its cursor and history.
#[derive(Debug)]
pub struct Editor {
    /// The line, as characters: the cursor moves by characters.
    line: Vec<char>,
    /// Characters before the cursor.
    cursor: usize,
    /// Entered lines, oldest first.
    history: Vec<String>,
    /// Which history line is shown (`history.len()` for the line being typed).
    shown: usize,
    /// The line being typed, kept while the user browses the history.
    draft: Vec<char>,
    /// The bytes of a character not yet complete.
    partial: Vec<u8>,
    escape: Escape,
}

impl Default for Editor {
    fn default() -> Self {
        Editor {
            line: Vec::new(),
            cursor: 0,
            history: Vec::new(),
            shown: 0,
            draft: Vec::new(),
            partial: Vec::new(),
            escape: Escape::None,
        }
    }
}

impl Editor {
    /// The line as typed.
    #[cfg(test)]
    fn line(&self) -> String {
        self.line.iter().collect()
    }

    /// Terminal columns from the cursor to the end of the line: how far
    /// to move back after drawing the whole line.
    #[cfg(test)]
    fn columns_after_cursor(&self) -> usize {
        self.view(usize::MAX).1
    }

    /// What to draw in `columns` columns: the part of the line around the
    /// cursor that fits (the whole line when it does, so a long line scrolls
    /// sideways instead of wrapping), and how many columns to move back
    /// after drawing it to put the cursor in place.
    pub fn view(&self, columns: usize) -> (String, usize) {
        // Control characters never get into the line, so none is without a width.
        let width = |c: &char| c.width().unwrap_or(0);
        // From the cursor back, as much as fits with room for the cursor itself.
        let mut start = self.cursor;
        let mut used = 0;
        while start > 0 && used + width(&self.line[start - 1]) < columns {
            start -= 1;
            used += width(&self.line[start]);
        }
        let mut end = self.cursor;
        while end < self.line.len() && used + width(&self.line[end]) <= columns {
            used += width(&self.line[end]);
            end += 1;
        }
        let after = self.line[self.cursor..end].iter().map(width).sum();
        (self.line[start..end].iter().collect(), after)
    }

    /// Takes one byte of input.
    pub fn key(&mut self, byte: u8) -> Option<Outcome> {
        match std::mem::replace(&mut self.escape, Escape::None) {
            Escape::Start if matches!(byte, b'[' | b'O') => self.escape = Escape::Sequence(Vec::new()),
            Escape::Start => {}
            Escape::Sequence(mut params) => {
                if (0x40..=0x7e).contains(&byte) {
                    self.sequence(&params, byte);
                } else {
                    // A sequence too long to be a key is still skipped to its end.
                    if params.len() < 16 {
                        params.push(byte);
                    }
                    self.escape = Escape::Sequence(params);
                }
            }
            Escape::None => return self.plain(byte),
        }
        None
    }

    fn plain(&mut self, byte: u8) -> Option<Outcome> {
        match byte {
            0x1b => self.escape = Escape::Start,
            b'\r' | b'\n' => return Some(Outcome::Entered(self.enter())),
            0x03 => return Some(Outcome::Leave),
            0x04 if self.line.is_empty() => return Some(Outcome::Leave),
            0x04 => self.delete_forward(),
            0x7f | 0x08 => self.delete_back(),
            0x01 => self.cursor = 0,
            0x05 => self.cursor = self.line.len(),
            0x02 => self.cursor = self.previous_boundary(),
            0x06 => self.cursor = self.next_boundary(),
            0x15 => {
                self.line.drain(..self.cursor);
                self.cursor = 0;
            }
            0x0b => self.line.truncate(self.cursor),
            0x17 => self.delete_word(),
            0x10 => self.browse(-1),
            0x0e => self.browse(1),
            0x00..=0x1f => {}
            _ => self.text(byte),
        }
        None
    }

    /// A complete `ESC [ params final` (or `ESC O final`) sequence.
    fn sequence(&mut self, params: &[u8], last: u8) {
        match (params, last) {
            (_, b'D') => self.cursor = self.previous_boundary(),
            (_, b'C') => self.cursor = self.next_boundary(),
            (_, b'A') => self.browse(-1),
            (_, b'B') => self.browse(1),
            (_, b'H') | (b"1" | b"7", b'~') => self.cursor = 0,
            (_, b'F') | (b"4" | b"8", b'~') => self.cursor = self.line.len(),
            (b"3", b'~') => self.delete_forward(),
            _ => {}
        }
    }

    fn text(&mut self, byte: u8) {
        self.partial.push(byte);
        match std::str::from_utf8(&self.partial) {
            Ok(text) => {
                for c in text.chars() {
                    self.line.insert(self.cursor, c);
                    self.cursor += 1;
                }
                self.partial.clear();
            }
            Err(e) if e.error_len().is_some() => self.partial.clear(),
            Err(_) => {}
        }
    }

    /// Where each grapheme cluster of the line starts, in characters, and
    /// the line's end.
    fn boundaries(&self) -> Vec<usize> {
        let line: String = self.line.iter().collect();
        let mut chars = 0;
        let mut at = vec![0];
        for grapheme in line.graphemes(true) {
            chars += grapheme.chars().count();
            at.push(chars);
        }
        at
    }

    /// The start of the grapheme cluster before the cursor.
    fn previous_boundary(&self) -> usize {
        self.boundaries().into_iter().rev().find(|&at| at < self.cursor).unwrap_or(0)
    }

    /// The end of the grapheme cluster after the cursor.
    fn next_boundary(&self) -> usize {
        self.boundaries().into_iter().find(|&at| at > self.cursor).unwrap_or(self.line.len())
    }

    fn delete_back(&mut self) {
        let start = self.previous_boundary();
        self.line.drain(start..self.cursor);
        self.cursor = start;
    }

    fn delete_forward(&mut self) {
        let end = self.next_boundary();
        self.line.drain(self.cursor..end);
    }

    /// Ctrl-W: the spaces before the cursor, then the word before them.
    fn delete_word(&mut self) {
        let mut start = self.cursor;
        while start > 0 && self.line[start - 1].is_whitespace() {
            start -= 1;
        }
        while start > 0 && !self.line[start - 1].is_whitespace() {
            start -= 1;
        }
        self.line.drain(start..self.cursor);
        self.cursor = start;
    }

    /// Up (`-1`) or Down (`1`) through the history; below the newest line is
    /// the draft the user was typing.
    fn browse(&mut self, step: isize) {
        let Some(next) = self.shown.checked_add_signed(step).filter(|&n| n <= self.history.len()) else {
            return;
        };
        if self.shown == self.history.len() {
            self.draft = std::mem::take(&mut self.line);
        }
        self.shown = next;
        self.line = match self.history.get(next) {
            Some(old) => old.chars().collect(),
            None => std::mem::take(&mut self.draft),
        };
        self.cursor = self.line.len();
    }

    fn enter(&mut self) -> String {
        let entered: String = std::mem::take(&mut self.line).into_iter().collect();
        self.cursor = 0;
        self.draft.clear();
        if !entered.trim().is_empty() && self.history.last() != Some(&entered) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(entered.clone());
        }
        self.shown = self.history.len();
        entered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `keys` and returns what they produced.
    fn type_keys(editor: &mut Editor, keys: &[u8]) -> Vec<Outcome> {
        keys.iter().filter_map(|&k| editor.key(k)).collect()
    }

    fn entered(line: &str) -> Outcome {
        Outcome::Entered(line.to_owned())
    }

    const LEFT: &[u8] = b"\x1b[D";
    const RIGHT: &[u8] = b"\x1b[C";
    const UP: &[u8] = b"\x1b[A";
    const DOWN: &[u8] = b"\x1b[B";

    #[test]
    fn inserts_where_the_cursor_is() {
        let mut e = Editor::default();
        type_keys(&mut e, b"helo");
        type_keys(&mut e, LEFT);
        type_keys(&mut e, b"l");
        assert_eq!((e.line(), e.columns_after_cursor()), ("hello".to_owned(), 1));
        type_keys(
            &mut e,
            &[LEFT, LEFT, LEFT, LEFT, LEFT, LEFT, b"[", RIGHT, RIGHT, RIGHT, RIGHT, RIGHT, RIGHT, b"]"]
                .concat(),
        );
        assert_eq!(type_keys(&mut e, b"\r"), vec![entered("[hello]")]);
        assert_eq!(e.line(), "");
    }

    #[test]
    fn home_end_and_their_control_keys() {
        let mut e = Editor::default();
        for (home, end) in [
            (&b"\x1b[H"[..], &b"\x1b[F"[..]),
            (b"\x1bOH", b"\x1bOF"),
            (b"\x1b[1~", b"\x1b[4~"),
            (b"\x01", b"\x05"),
        ] {
            type_keys(&mut e, b"b");
            type_keys(&mut e, home);
            type_keys(&mut e, b"a");
            type_keys(&mut e, end);
            type_keys(&mut e, b"c");
            assert_eq!(type_keys(&mut e, b"\n"), vec![entered("abc")], "{home:?} {end:?}");
        }
    }

    #[test]
    fn deletes_back_forward_to_either_end_and_words() {
        let mut e = Editor::default();
        type_keys(&mut e, b"abcd");
        type_keys(&mut e, &[LEFT, LEFT, b"\x7f"].concat());
        assert_eq!(e.line(), "acd");
        type_keys(&mut e, b"\x1b[3~");
        assert_eq!(e.line(), "ad");
        type_keys(&mut e, b"\x04");
        assert_eq!(e.line(), "a", "Ctrl-D deletes under the cursor on a non-empty line");
        type_keys(&mut e, b"\x0b\x05 one two  ");
        type_keys(&mut e, b"\x17");
        assert_eq!(e.line(), "a one ");
        type_keys(&mut e, &[LEFT, LEFT, b"\x15"].concat());
        assert_eq!((e.line(), e.columns_after_cursor()), ("e ".to_owned(), 2));
        type_keys(&mut e, b"\x0b");
        assert_eq!(e.line(), "");
        assert_eq!(type_keys(&mut e, b"\x7f\x1b[3~\x17"), vec![], "nothing to delete is not an error");
    }

    #[test]
    fn history_goes_back_and_returns_to_the_draft() {
        let mut e = Editor::default();
        type_keys(&mut e, b"first\rsecond\rsecond\r\r   \rdraft");
        type_keys(&mut e, UP);
        assert_eq!(e.line(), "second", "repeats and blank lines are not kept");
        type_keys(&mut e, &[UP, UP, UP].concat());
        assert_eq!(e.line(), "first");
        type_keys(&mut e, b"\x0e");
        assert_eq!(e.line(), "second");
        type_keys(&mut e, &[DOWN, DOWN].concat());
        assert_eq!((e.line(), e.columns_after_cursor()), ("draft".to_owned(), 0));
        type_keys(&mut e, b"\x10!");
        assert_eq!(type_keys(&mut e, b"\r"), vec![entered("second!")]);
    }

    #[test]
    fn history_is_bounded() {
        let mut e = Editor::default();
        for i in 0..HISTORY + 10 {
            type_keys(&mut e, format!("line {i}\r").as_bytes());
        }
        type_keys(&mut e, &UP.repeat(HISTORY + 10));
        assert_eq!(e.line(), "line 10");
    }

    #[test]
    fn characters_are_whole_and_wide_ones_count_twice() {
        let mut e = Editor::default();
        let text = "añ日本";
        // One byte at a time, as a slow terminal might deliver them.
        type_keys(&mut e, text.as_bytes());
        type_keys(&mut e, &[LEFT, LEFT].concat());
        assert_eq!((e.line(), e.columns_after_cursor()), (text.to_owned(), 4));
        type_keys(&mut e, b"\x7f");
        assert_eq!(e.line(), "a日本");
        type_keys(&mut e, &[0xff, b'x']);
        assert_eq!(e.line(), "ax日本", "an invalid byte is dropped, not inserted");
    }

    #[test]
    fn a_line_wider_than_the_terminal_scrolls_to_keep_the_cursor_in_view() {
        let mut e = Editor::default();
        type_keys(&mut e, b"0123456789");
        assert_eq!(e.view(20), ("0123456789".to_owned(), 0));
        assert_eq!(e.view(5), ("6789".to_owned(), 0), "room is kept for the cursor after the text");
        type_keys(&mut e, b"\x01");
        assert_eq!(e.view(5), ("01234".to_owned(), 5));
        type_keys(&mut e, &RIGHT.repeat(7));
        assert_eq!(e.view(5), ("34567".to_owned(), 1));
        let mut wide = Editor::default();
        type_keys(&mut wide, "日本語".as_bytes());
        assert_eq!(wide.view(5), ("本語".to_owned(), 0), "a wide character is never cut in half");
    }

    #[test]
    fn leaves_on_ctrl_c_or_ctrl_d_on_an_empty_line() {
        assert_eq!(type_keys(&mut Editor::default(), b"typed\x03"), vec![Outcome::Leave]);
        assert_eq!(type_keys(&mut Editor::default(), b"\x04"), vec![Outcome::Leave]);
    }

    #[test]
    fn unknown_sequences_and_control_keys_change_nothing() {
        let mut e = Editor::default();
        type_keys(&mut e, b"ok\x1b[15~\x1b[1;5C\x1bx\x07\x1b[");
        type_keys(&mut e, &[b'9'; 40]);
        type_keys(&mut e, b"~!");
        assert_eq!(e.line(), "ok!");
    }

    #[test]
    fn the_cursor_moves_and_deletes_by_what_the_user_sees_as_one_character() {
        let mut e = Editor::default();
        // A family emoji (joined by ZWJs), a flag (two regional indicators), an e with a
        // combining acute accent, then x.
        let text = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}\u{1f1eb}\u{1f1f7}e\u{301}x";
        type_keys(&mut e, text.as_bytes());
        type_keys(&mut e, &[LEFT, LEFT].concat());
        type_keys(&mut e, b"|");
        assert_eq!(e.line(), "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}\u{1f1eb}\u{1f1f7}|e\u{301}x");
        type_keys(&mut e, b"\x7f\x7f");
        assert_eq!(e.line(), "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}e\u{301}x", "the flag goes whole");
        type_keys(&mut e, b"\x1b[3~");
        assert_eq!(e.line(), "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}x", "so does the accented e");
        type_keys(&mut e, &[LEFT, b"<"].concat());
        assert_eq!(e.line(), "<\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}x");
    }
}

//! `chat join` at a terminal: a small line editor in raw mode, so that lines
//! from the server can be printed while the user types, above the line being
//! edited, without cutting into it.
//!
//! Keys: printable text, Backspace, Ctrl-U (clear the line), Enter (send),
//! Ctrl-D on an empty line or Ctrl-C (leave). Escape sequences (arrows and
//! the like) are ignored. The terminal's mode is restored on drop, however
//! the session ends.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::mpsc;
use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

const PROMPT: &str = "> ";
/// Clears the terminal's current row and goes to its start.
const CLEAR_ROW: &str = "\r\x1b[K";

/// The terminal while `chat join` runs: raw input, the line being typed.
pub struct Terminal {
    line: Arc<Mutex<String>>,
    saved: Termios,
}

impl Terminal {
    /// Puts the terminal in raw mode and starts reading keys on a thread.
    /// Returns the terminal and the lines the user enters; they end when
    /// the user leaves.
    ///
    /// # Errors
    /// When stdin is not a terminal whose mode can be changed.
    pub fn start() -> io::Result<(Terminal, mpsc::UnboundedReceiver<io::Result<String>>)> {
        let saved = termios::tcgetattr(io::stdin())?;
        let mut raw = saved.clone();
        // No line buffering, echo or signals from keys: every key comes to us, and we draw.
        raw.local_flags.remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG | LocalFlags::IEXTEN);
        raw.input_flags.remove(InputFlags::ICRNL | InputFlags::IXON);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &raw)?;
        let terminal = Terminal { line: Arc::new(Mutex::new(String::new())), saved };
        let (typed, lines) = mpsc::unbounded();
        let line = terminal.line.clone();
        std::thread::spawn(move || read_keys(&line, &typed));
        redraw("", "")?;
        Ok((terminal, lines))
    }

    /// Prints `text` as a line above the one being typed.
    ///
    /// # Errors
    /// When the terminal cannot be written.
    pub fn print(&self, text: &str) -> io::Result<()> {
        // Holding the line keeps the key reader from drawing meanwhile.
        let line = self.line.lock().unwrap_or_else(PoisonError::into_inner);
        redraw(&line, &format!("{text}\r\n"))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = io::stdout().lock().write_all(CLEAR_ROW.as_bytes()).and_then(|()| io::stdout().flush());
        // Nothing more to do if it fails: the process is about to exit.
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Rewrites the current row: `above` (whole lines), then the prompt and `line`.
fn redraw(line: &str, above: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    write!(out, "{CLEAR_ROW}{above}{PROMPT}{line}")?;
    out.flush()
}

/// Where an escape sequence is, while one is being skipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// After `ESC [` or `ESC O`: parameters until a final byte.
    Sequence,
}

/// Reads keys until the user leaves or stdin ends, editing `line` and
/// sending each entered line to `typed`.
fn read_keys(line: &Mutex<String>, typed: &mpsc::UnboundedSender<io::Result<String>>) {
    let mut stdin = io::stdin().lock();
    let mut keys = [0u8; 256];
    // The bytes of a character not yet complete.
    let mut partial = Vec::new();
    let mut escape = Escape::None;
    loop {
        let n = match stdin.read(&mut keys) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = typed.unbounded_send(Err(e));
                return;
            }
        };
        let mut line = line.lock().unwrap_or_else(PoisonError::into_inner);
        let mut above = String::new();
        for &key in &keys[..n] {
            match (escape, key) {
                (Escape::Start, b'[' | b'O') => escape = Escape::Sequence,
                (Escape::Start, _) => escape = Escape::None,
                (Escape::Sequence, 0x40..=0x7e) => escape = Escape::None,
                (Escape::Sequence, _) => {}
                (Escape::None, 0x1b) => escape = Escape::Start,
                (Escape::None, b'\r' | b'\n') => {
                    let entered = std::mem::take(&mut *line);
                    above.push_str(&format!("{PROMPT}{entered}\r\n"));
                    if typed.unbounded_send(Ok(entered)).is_err() {
                        return;
                    }
                }
                // Ctrl-C, or Ctrl-D on an empty line: leave.
                (Escape::None, 0x03) => return,
                (Escape::None, 0x04) if line.is_empty() => return,
                (Escape::None, 0x7f | 0x08) => {
                    line.pop();
                }
                (Escape::None, 0x15) => line.clear(),
                (Escape::None, 0x00..=0x1f) => {}
                (Escape::None, _) => {
                    partial.push(key);
                    match std::str::from_utf8(&partial) {
                        Ok(text) => {
                            line.push_str(text);
                            partial.clear();
                        }
                        Err(e) if e.error_len().is_some() => partial.clear(),
                        Err(_) => {}
                    }
                }
            }
        }
        if redraw(&line, &above).is_err() {
            return;
        }
    }
}

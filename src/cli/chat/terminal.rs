//! `chat join` at a terminal: raw mode and drawing for the [`Editor`], so
//! that lines from the server can be printed while the user types, above the
//! line being edited, without cutting into it. The terminal's mode is
//! restored on drop, however the session ends.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::mpsc;
use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

use super::editor::{Editor, Outcome};

const PROMPT: &str = "> ";
/// Clears the terminal's current row and goes to its start.
const CLEAR_ROW: &str = "\r\x1b[K";

/// The line being typed, and where it was last drawn.
#[derive(Default)]
struct Screen {
    editor: Editor,
    /// The terminal's width when the line was last drawn.
    columns: usize,
    /// The cursor's column then.
    cursor: usize,
}

/// The terminal while `chat join` runs: raw input, the line being typed.
pub struct Terminal {
    screen: Arc<Mutex<Screen>>,
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
        let terminal = Terminal { screen: Arc::new(Mutex::new(Screen::default())), saved };
        let (typed, lines) = mpsc::unbounded();
        let screen = terminal.screen.clone();
        std::thread::spawn(move || read_keys(&screen, &typed));
        terminal.print_raw("")?;
        Ok((terminal, lines))
    }

    /// Prints `text` as a line above the one being typed.
    ///
    /// # Errors
    /// When the terminal cannot be written.
    pub fn print(&self, text: &str) -> io::Result<()> {
        self.print_raw(&format!("{text}\r\n"))
    }

    /// Draws the line again (after the window changed size).
    ///
    /// # Errors
    /// When the terminal cannot be written.
    pub fn redraw(&self) -> io::Result<()> {
        self.print_raw("")
    }

    fn print_raw(&self, above: &str) -> io::Result<()> {
        // Holding the screen keeps the key reader from drawing meanwhile.
        let mut screen = self.screen.lock().unwrap_or_else(PoisonError::into_inner);
        redraw(&mut screen, above)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = io::stdout().lock().write_all(CLEAR_ROW.as_bytes()).and_then(|()| io::stdout().flush());
        // Nothing more to do if it fails: the process is about to exit.
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Rewrites the current row: `above` (whole lines), then the prompt and the
/// line, with the cursor where the editor has it.
fn redraw(screen: &mut Screen, above: &str) -> io::Result<()> {
    // Asked each time, so a resized window is drawn right at the next key.
    let columns = usize::from(console::Term::stdout().size().1).max(PROMPT.len() + 2);
    let (visible, back) = screen.editor.view(columns - PROMPT.len());
    let mut out = io::stdout().lock();
    // A window narrower than the line last drawn has wrapped it: the rows above the
    // cursor hold pieces of it, which are cleared too (to the end of the screen).
    let rows_up = match screen.columns > columns {
        true => screen.cursor / columns,
        false => 0,
    };
    if rows_up > 0 {
        write!(out, "\x1b[{rows_up}A")?;
    }
    write!(out, "\r\x1b[J{above}{PROMPT}{visible}")?;
    if back > 0 {
        write!(out, "\x1b[{back}D")?;
    }
    let width: usize = unicode_width::UnicodeWidthStr::width(visible.as_str());
    screen.columns = columns;
    screen.cursor = PROMPT.len() + width - back;
    out.flush()
}

/// Reads keys until the user leaves or stdin ends, editing the line and
/// sending each entered line to `typed`.
fn read_keys(screen: &Mutex<Screen>, typed: &mpsc::UnboundedSender<io::Result<String>>) {
    let mut stdin = io::stdin().lock();
    let mut keys = [0u8; 256];
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
        let mut screen = screen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut above = String::new();
        for &key in &keys[..n] {
            match screen.editor.key(key) {
                None => {}
                Some(Outcome::Leave) => return,
                Some(Outcome::Entered(line)) => {
                    above.push_str(&format!("{PROMPT}{line}\r\n"));
                    if typed.unbounded_send(Ok(line)).is_err() {
                        return;
                    }
                }
            }
        }
        if redraw(&mut screen, &above).is_err() {
            return;
        }
    }
}

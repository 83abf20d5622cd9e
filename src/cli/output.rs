//! Writing results: human-readable lines, or JSON Lines with `--json`.
//!
//! Every record goes through [`Output::emit`], so a command's human and JSON
//! output always carry the same facts. In JSON mode each line is one object
//! whose `type` field says what it is (`listening`, `reply`, `probe`,
//! `summary`, ...).

use std::fmt::Display;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use socketeer::stats::Tagged;

use super::args::UsageError;

/// Where results go: stdout, as text or as JSON Lines.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    json: bool,
}

impl Output {
    /// JSON Lines when `json`, else text.
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// Whether records are written as JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Writes one record: its `Display` form, or a JSON object with `"type": kind`.
    ///
    /// # Errors
    /// When stdout cannot be written (a closed pipe among them).
    pub fn emit<T: Serialize + Display>(&self, kind: &'static str, value: &T) -> io::Result<()> {
        if self.json {
            let line = serde_json::to_string(&Tagged { kind, value }).map_err(io::Error::other)?;
            self.line(line)
        } else {
            self.line(value)
        }
    }

    /// Writes a line meant for people only; JSON mode leaves it out.
    ///
    /// # Errors
    /// When stdout cannot be written.
    pub fn note(&self, text: impl Display) -> io::Result<()> {
        if self.json { Ok(()) } else { self.line(text) }
    }

    fn line(&self, text: impl Display) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{text}")?;
        out.flush()
    }
}

/// Fails early, before minutes of work, when `path` cannot be written.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(UsageError(format!("cannot write {}: {} is not a directory", path.display(), dir.display()))
            .into())
    }
}

/// Writes `contents` to a temporary file beside `path`, then renames it into
/// place: readers never see half a file.
pub fn write_replacing(path: &Path, contents: &str) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = std::fs::write(&temporary, contents).and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// `text` with line breaks between words so that no line is wider than
/// `width` (unless one word is).
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut line = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line > 0 && line + 1 + len > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_between_words() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc");
        assert_eq!(wrap("  one   two ", 100), "one two");
        assert_eq!(wrap("longerthanwidth x", 4), "longerthanwidth\nx");
    }
}

//! Writing results: human-readable lines, or JSON Lines with `--json`.
//!
//! Every record goes through [`Output::emit`], so a command's human and JSON
//! output always carry the same facts. In JSON mode each line is one object
//! whose `type` field says what it is (`listening`, `reply`, `probe`,
//! `summary`, ...).

use std::fmt::Display;
use std::io::{self, Write};

use serde::Serialize;

/// Where results go: stdout, as text or as JSON Lines.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    json: bool,
}

#[derive(Serialize)]
struct Tagged<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    value: &'a T,
}

impl Output {
    /// JSON Lines when `json`, else text.
    pub fn new(json: bool) -> Self {
        Output { json }
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

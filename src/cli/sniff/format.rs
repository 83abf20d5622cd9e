//! How `sniff` shows a packet: tcpdump's line, `-v` details, `-x` hex, `-A` text.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Local, Utc};
use serde::Serialize;
use socketeer::sniff::decode::{self, Summary};
use socketeer::sniff::{Frame, LinkType};
use socketeer::text::dotted;

/// What to show besides the summary line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras {
    /// Header details (`-v`).
    pub details: bool,
    /// A hex dump of the frame (`-x`).
    pub hex: bool,
    /// The payload as text (`-A`).
    pub ascii: bool,
}

/// One packet as printed or as JSON.
#[derive(Serialize)]
pub struct PacketLine<'a> {
    /// Capture time, RFC 3339 in UTC; `None` (JSON null) when no calendar
    /// date can hold it (a damaged or crafted file).
    time: Option<DateTime<Utc>>,
    /// Length on the wire.
    len: u32,
    /// Bytes captured.
    caplen: usize,
    #[serde(flatten)]
    summary: &'a Summary,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip)]
    dump: Option<String>,
}

impl<'a> PacketLine<'a> {
    pub fn new(link: LinkType, frame: Frame<'_>, summary: &'a Summary, extras: Extras) -> Self {
        let time = chrono::TimeDelta::from_std(frame.time)
            .ok()
            .and_then(|since| DateTime::<Utc>::UNIX_EPOCH.checked_add_signed(since));
        PacketLine {
            time,
            len: frame.len,
            caplen: frame.data.len(),
            summary,
            details: if extras.details { decode::details(link, frame.data) } else { Vec::new() },
            hex: extras.hex.then(|| frame.data.iter().map(|b| format!("{b:02x}")).collect()),
            text: extras.ascii.then(|| dotted(summary.payload(frame.data), true)).filter(|t| !t.is_empty()),
            dump: extras.hex.then(|| hex_dump(frame.data)),
        }
    }
}

impl fmt::Display for PacketLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.time {
            Some(time) => write!(f, "{} ", time.with_timezone(&Local).format("%H:%M:%S%.6f"))?,
            // tcpdump's words for the same case.
            None => f.write_str("[Error converting time] ")?,
        }
        write!(f, "{}", self.summary)?;
        for line in &self.details {
            write!(f, "\n    {line}")?;
        }
        if let Some(dump) = &self.dump {
            write!(f, "\n{dump}")?;
        }
        if let Some(text) = &self.text {
            write!(f, "\n{}", text.strip_suffix('\n').unwrap_or(text))?;
        }
        Ok(())
    }
}

/// `xxd`-style lines: offset, 16 bytes in pairs, then the printable ones.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (row, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "\t0x{:04x}:  ", row * 16);
        for (i, b) in chunk.iter().enumerate() {
            let _ = write!(out, "{b:02x}{}", if i % 2 == 1 { " " } else { "" });
        }
        let width = 16 * 2 + 8;
        let used = chunk.len() * 2 + chunk.len() / 2;
        out.push_str(&" ".repeat(width - used + 1));
        out.push_str(&dotted(chunk, false));
        if (row + 1) * 16 < bytes.len() {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_dump_lines_up() {
        let dump = hex_dump(b"GET / HTTP/1.1\r\nHost: x\r\n");
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines[0], "\t0x0000:  4745 5420 2f20 4854 5450 2f31 2e31 0d0a  GET / HTTP/1.1..");
        assert_eq!(lines[1], "\t0x0010:  486f 7374 3a20 780d 0a                   Host: x..");
        assert_eq!(lines[0].find("GET"), lines[1].find("Host"), "columns line up");
    }

    #[test]
    fn text_keeps_lines_and_hides_control_bytes() {
        assert_eq!(dotted(b"hi\r\n\x1b[31mred", true), "hi.\n.[31mred");
    }
}

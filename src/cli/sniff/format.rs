//! How `sniff` shows a packet: tcpdump's line, `-v` details, `-x` hex, `-A` text.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};
use serde::Serialize;
use socketeer::sniff::decode::{self, Summary};
use socketeer::sniff::{Frame, LinkType};
use socketeer::text::dotted;

/// What to show besides the summary line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras {
    /// Header details (`-v`).
    pub details: bool,
    /// A hex dump of the frame (`-x`, `-XX`).
    pub hex: bool,
    /// A hex dump from the network layer on (`-X`).
    pub hex_from_network: bool,
    /// The payload as text (`-A`).
    pub ascii: bool,
    /// The link-level header before the line (`-e`).
    pub link_header: bool,
    /// Less per protocol (`-q`).
    pub quiet: bool,
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
    /// The interface an `-i any` frame was seen on, and its direction (`In`, `Out`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'static str>,
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
    /// The line's timestamp as `-t`... asked; none with `-t`.
    #[serde(skip)]
    stamp: Option<String>,
    #[serde(skip)]
    link_header: Option<String>,
    #[serde(skip)]
    quiet: bool,
    /// A cooked frame's tags, as tcpdump prints them without `-e`.
    #[serde(skip)]
    cooked_tags: String,
}

impl<'a> PacketLine<'a> {
    pub fn new(
        link: LinkType,
        frame: Frame<'_>,
        summary: &'a Summary,
        extras: Extras,
        stamp: Option<String>,
    ) -> Self {
        let from_network = &frame.data[decode::network_offset(link, frame.data)..];
        let time = chrono::TimeDelta::from_std(frame.time)
            .ok()
            .and_then(|since| DateTime::<Utc>::UNIX_EPOCH.checked_add_signed(since));
        PacketLine {
            time,
            len: frame.len,
            caplen: frame.data.len(),
            interface: None,
            direction: None,
            summary,
            details: if extras.details { decode::details(link, frame.data) } else { Vec::new() },
            hex: extras.hex.then(|| frame.data.iter().map(|b| format!("{b:02x}")).collect()),
            text: extras.ascii.then(|| dotted(summary.payload(frame.data), true)).filter(|t| !t.is_empty()),
            dump: if extras.hex {
                Some(hex_dump(frame.data))
            } else {
                extras.hex_from_network.then(|| hex_dump(from_network))
            },
            stamp,
            link_header: extras
                .link_header
                .then(|| decode::link_header(link, frame.data, frame.len, extras.quiet))
                .flatten(),
            quiet: extras.quiet,
            cooked_tags: if extras.link_header || extras.quiet {
                String::new()
            } else {
                decode::cooked_tags(link, frame.data)
            },
        }
    }

    /// The interface (by name) and direction of an `-i any` frame.
    pub fn with_origin(mut self, origin: Option<(String, &'static str)>) -> Self {
        (self.interface, self.direction) = origin.unzip();
        self
    }
}

impl fmt::Display for PacketLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(stamp) = &self.stamp {
            write!(f, "{stamp} ")?;
        }
        if let (Some(interface), Some(direction)) = (&self.interface, self.direction) {
            // tcpdump's columns: `lo    In  IP ...`, `eth0  Out IP ...`.
            write!(f, "{interface:<5} {direction:<3} ")?;
        }
        let line = if self.quiet { self.summary.quiet() } else { self.summary.to_string() };
        match &self.link_header {
            // The EtherType said it already: tcpdump -e drops `IP `, `IP6 `, `ARP, `.
            Some(header) => {
                let rest =
                    ["IP ", "IP6 ", "ARP, "].iter().find_map(|p| line.strip_prefix(p)).unwrap_or(&line);
                write!(f, "{header}{rest}")?;
            }
            None => write!(f, "{}{line}", self.cooked_tags)?,
        }
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

//! What happens to an open TCP port before it is reported: a second
//! connection confirms it when the address is this machine's own, and with
//! `--banner` the service's first words are read.

use std::net::TcpStream;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::report::{PortReport, PortState, Reason};
use crate::net::Transport;
use crate::text::{sanitize, sanitize_bytes};

/// How long the confirming connection may take.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(1);

/// The most bytes read for a banner.
const BANNER_BYTES: usize = 512;

/// The longest banner reported, in characters.
const BANNER_CHARS: usize = 160;

/// Sent to a service that stays silent: the smallest request a web server answers.
const HTTP_PROBE: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

/// True when an open port needs a follow-up before it is reported.
pub(super) fn needed(report: &PortReport, stream: Option<&TcpStream>, banner: Option<Duration>) -> bool {
    report.state == PortState::Open
        && report.transport == Transport::Tcp
        && (banner.is_some() || stream.is_some_and(connects_to_itself))
}

/// True when the connection runs between two addresses of this machine, where
/// two of the scanner's own probes can open each other.
fn connects_to_itself(stream: &TcpStream) -> bool {
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) => local.ip() == peer.ip() || peer.ip().is_loopback(),
        _ => false,
    }
}

/// Confirms `report` when needed and reads the banner when asked; returns the final verdict.
pub(super) async fn run(
    mut report: PortReport,
    stream: Option<TcpStream>,
    banner: Option<Duration>,
) -> PortReport {
    let addr = std::net::SocketAddr::new(report.ip, report.port);
    if stream.as_ref().is_some_and(connects_to_itself) {
        match tokio::time::timeout(CONFIRM_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(again)) if again.local_addr().ok() == again.peer_addr().ok() => {
                (report.state, report.reason) = (PortState::Closed, Reason::SelfConnect);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                (report.state, report.reason) = (PortState::Closed, Reason::Reset);
            }
            // Connected, or a listener too busy to answer: the first verdict stands.
            _ => {}
        }
    }
    let Some(wait) = banner.filter(|_| report.state == PortState::Open) else { return report };
    let stream = match stream
        .map(|s| s.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(s)))
    {
        Some(Ok(stream)) => Some(stream),
        _ => tokio::time::timeout(wait, tokio::net::TcpStream::connect(addr)).await.ok().and_then(Result::ok),
    };
    if let Some(stream) = stream {
        report.banner = read_banner(stream, wait).await;
    }
    report
}

/// The service's greeting, or its answer to [`HTTP_PROBE`] when it says
/// nothing in the first half of `wait`.
async fn read_banner(mut stream: tokio::net::TcpStream, wait: Duration) -> Option<String> {
    let mut buf = [0u8; BANNER_BYTES];
    let first = wait / 2;
    let n = match tokio::time::timeout(first, stream.read(&mut buf)).await {
        Ok(Ok(n)) => n,
        Ok(Err(_)) => 0,
        Err(_) => {
            stream.write_all(HTTP_PROBE).await.ok()?;
            let n = tokio::time::timeout(wait - first, stream.read(&mut buf)).await.ok()?.unwrap_or(0);
            // Our own request back is no banner, but it does say what the service is.
            if n > 0 && HTTP_PROBE.starts_with(&buf[..n]) {
                return Some(ECHOED.to_owned());
            }
            n
        }
    };
    printable(&buf[..n])
}

/// The banner of a service that answered the probe with the probe itself.
const ECHOED: &str = "(echoes what it is sent)";

/// One line fit to print, under the crate's one policy for peer bytes
/// ([`crate::text`]). Text (UTF-8 without control characters other than line
/// breaks and tabs) gives its first line, plus the `Server:` header of an
/// HTTP answer. Anything else is binary (the time service's four bytes, say)
/// and is shown whole, every byte accounted for, instead of being cut at a
/// line feed that happens to be among them, bytes above ASCII as `\xNN`.
/// Binary bytes can happen to be UTF-8: the time service's 0xEE 0xBF 0x84
/// is U+EFC4 for hours at a time, and from 2027 its 0xEF 0xBF ... is a
/// character of the Arabic presentation forms. So a reply of a few bytes
/// that are not all ASCII (no greeting is one character long), or one with a
/// character of the private use areas, which no service greets with, is
/// binary too. The length is capped.
pub(super) fn printable(bytes: &[u8]) -> Option<String> {
    let tiny_and_not_ascii = bytes.len() < TEXT_AT_LEAST && !bytes.is_ascii();
    let banner = match std::str::from_utf8(bytes) {
        Ok(text)
            if !tiny_and_not_ascii
                && !text
                    .chars()
                    .any(|c| (c.is_control() && !matches!(c, '\r' | '\n' | '\t')) || private(c)) =>
        {
            sanitize(&first_line(text)?).into_owned()
        }
        _ => bytes.utf8_chunks().fold(String::new(), |mut shown, chunk| {
            for c in chunk.valid().chars() {
                if c.is_ascii() {
                    shown.push_str(&sanitize_bytes(&[c as u8]));
                } else {
                    let mut utf8 = [0u8; 4];
                    c.encode_utf8(&mut utf8).bytes().for_each(|b| push_hex(&mut shown, b));
                }
            }
            chunk.invalid().iter().for_each(|&b| push_hex(&mut shown, b));
            shown
        }),
    };
    (!banner.is_empty()).then(|| banner.chars().take(BANNER_CHARS).collect())
}

/// Replies shorter than this that are not ASCII are taken for binary: the
/// time service's four bytes, whatever the date makes of them.
const TEXT_AT_LEAST: usize = 8;

/// Whether `c` is in a private use area (no standard meaning: in a reply,
/// more likely binary bytes that happen to be UTF-8).
fn private(c: char) -> bool {
    matches!(c, '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..='\u{10ffff}')
}

/// Appends `byte` as `\xNN`.
fn push_hex(shown: &mut String, byte: u8) {
    shown.push_str(&format!("\\x{byte:02X}"));
}

fn first_line(text: &str) -> Option<String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut banner = lines.next()?.to_owned();
    if banner.starts_with("HTTP/")
        && let Some(server) = lines.find(|l| l.to_ascii_lowercase().starts_with("server:"))
    {
        banner = format!("{banner} ({server})");
    }
    Some(banner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_are_one_clean_line() {
        assert_eq!(printable(b"SSH-2.0-OpenSSH_9.2\r\n").as_deref(), Some("SSH-2.0-OpenSSH_9.2"));
        assert_eq!(printable(b"\r\n220 mail ESMTP\r\n250 more").as_deref(), Some("220 mail ESMTP"));
        let http = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nServer: demo/1.2\r\n\r\n<html>";
        assert_eq!(printable(http).as_deref(), Some("HTTP/1.0 200 OK (Server: demo/1.2)"));
        assert_eq!(printable(&[b'x'; 400]).map(|b| b.len()), Some(BANNER_CHARS));
        assert_eq!(printable("caf\u{e9} ol\u{e9}\r\n".as_bytes()).as_deref(), Some("caf\u{e9} ol\u{e9}"));
    }

    #[test]
    fn binary_replies_are_escaped_whole() {
        // The time service's answer: four bytes, one of them a line feed.
        assert_eq!(printable(&[0xe9, 0x0a, 0x3c, 0x11]).as_deref(), Some("\\xE9^J<^Q"));
        // Binary bytes that happen to form a UTF-8 character are still bytes,
        // today's time (a private-use character) and 2027's (U+FFC4, not one).
        assert_eq!(printable(&[0xee, 0xbf, 0x84, 0x7e]).as_deref(), Some("\\xEE\\xBF\\x84~"));
        assert_eq!(printable(&[0xef, 0xbf, 0x84, 0x41]).as_deref(), Some("\\xEF\\xBF\\x84A"));
        assert_eq!(printable(&[0xf0, 0x9f, 0x98, 0x80]).as_deref(), Some("\\xF0\\x9F\\x98\\x80"));
        // Terminal controls in otherwise plain text are shown, not obeyed.
        assert_eq!(printable(b"a\x1b[31mred\x07").as_deref(), Some("a^[[31mred^G"));
        assert_eq!(printable(&[0u8; 400]).map(|b| b.chars().count()), Some(BANNER_CHARS));
        assert_eq!(printable(b"\r\n\r\n"), None);
        assert_eq!(printable(b""), None);
    }
}

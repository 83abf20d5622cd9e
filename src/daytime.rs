//! RFC 867 daytime and RFC 868 time, over TCP and UDP.
//!
//! Daytime answers with one human-readable line of local time ending in CRLF;
//! time answers with four bytes, the seconds since 1900-01-01 00:00 UTC as a
//! big-endian 32-bit number. Over TCP the server writes its answer as soon as
//! a client connects and closes; over UDP it answers any datagram.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use chrono::{DateTime, Local, TimeZone, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::client::{self, ClientError, Timeouts};
use crate::net::{self, Bound, Endpoint, Target, Transport};
use crate::server::{Service, ServiceError, TcpLimits, UdpAction, accept_loop, udp_loop};
use crate::shutdown::Shutdown;

/// Seconds from 1900-01-01 (RFC 868's epoch) to 1970-01-01 (Unix's).
pub const EPOCH_OFFSET: i64 = 2_208_988_800;

/// The longest daytime line a client accepts.
const MAX_DAYTIME_REPLY: usize = 512;

/// Which of the two protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// RFC 867: a line of text.
    Daytime,
    /// RFC 868: 32-bit seconds since 1900.
    Time,
}

impl Protocol {
    /// The service's name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Daytime => "daytime",
            Protocol::Time => "time",
        }
    }

    /// The default port (RFC 867's 13 and RFC 868's 37 need root).
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Daytime => 1313,
            Protocol::Time => 3737,
        }
    }

    /// The answer at `now`.
    pub fn answer(self, now: DateTime<Utc>) -> Vec<u8> {
        match self {
            Protocol::Daytime => daytime_line(&now.with_timezone(&Local)).into_bytes(),
            Protocol::Time => time_bytes(now).to_vec(),
        }
    }
}

/// The RFC 867 line for `now`, such as `Sunday, November 22, 2026 18:46:00 +01:00`
/// followed by CRLF.
pub fn daytime_line<Tz: TimeZone>(now: &DateTime<Tz>) -> String
where
    Tz::Offset: fmt::Display,
{
    format!("{}\r\n", now.format("%A, %B %-d, %Y %H:%M:%S %:z"))
}

/// The RFC 868 answer for `now`: seconds since 1900, modulo 2^32, big-endian.
pub fn time_bytes(now: DateTime<Utc>) -> [u8; 4] {
    // The 32-bit count wraps in 2036; the wrapped value is what RFC 868 sends.
    let since_1900 = now.timestamp() + EPOCH_OFFSET;
    (since_1900.rem_euclid(1 << 32) as u32).to_be_bytes()
}

/// The time an RFC 868 answer stands for. Answers below 2^31 are taken to be
/// after the 2036 wrap (as RFC 4330 does for NTP), so the decoder is right
/// from 1968 to 2104.
pub fn decode_time(answer: [u8; 4]) -> DateTime<Utc> {
    let raw = i64::from(u32::from_be_bytes(answer));
    let since_1900 = if raw < 1 << 31 { raw + (1 << 32) } else { raw };
    DateTime::from_timestamp(since_1900 - EPOCH_OFFSET, 0).unwrap_or_default()
}

/// A daytime or time server on bound sockets.
#[derive(Debug)]
pub struct DaytimeServer {
    protocol: Protocol,
    bound: Bound,
    limits: TcpLimits,
}

impl DaytimeServer {
    /// A `protocol` server on `bound`'s sockets.
    pub fn new(protocol: Protocol, bound: Bound, limits: TcpLimits) -> Self {
        DaytimeServer { protocol, bound, limits }
    }
}

impl Service for DaytimeServer {
    fn name(&self) -> &'static str {
        self.protocol.name()
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.bound.endpoints(self.name())
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, Result<(), ServiceError>> {
        let DaytimeServer { protocol, bound, limits } = *self;
        let name = protocol.name();
        let udp = bound.udp.into_iter().map(|socket| {
            udp_loop(name, socket, shutdown.clone(), move |_, _, reply| {
                reply.extend_from_slice(&protocol.answer(Utc::now()));
                UdpAction::Reply
            })
        });
        let udp = futures::future::join_all(udp);
        let tcp = accept_loop(name, bound.tcp, limits, shutdown, move |stream, _, _| {
            answer_tcp(stream, protocol, limits)
        });
        async move {
            futures::join!(tcp, udp);
            Ok(())
        }
        .boxed()
    }
}

async fn answer_tcp(mut stream: TcpStream, protocol: Protocol, limits: TcpLimits) -> io::Result<()> {
    let answer = protocol.answer(Utc::now());
    tokio::time::timeout(limits.idle_timeout, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client did not take the answer"))?
}

/// What a daytime or time server said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum Answer {
    /// A daytime line, without its line ending.
    Daytime {
        /// The server that answered.
        server: SocketAddr,
        /// The line as sent; shown through [`crate::text::sanitize`], so a
        /// hostile server's escape sequences are seen, not obeyed.
        text: String,
    },
    /// An RFC 868 time.
    Time {
        /// The server that answered.
        server: SocketAddr,
        /// The 32-bit count as sent.
        seconds_since_1900: u32,
        /// The time it stands for.
        utc: DateTime<Utc>,
    },
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Daytime { text, .. } => f.write_str(&crate::text::sanitize(text)),
            Answer::Time { utc, .. } => {
                write!(
                    f,
                    "{} ({})",
                    utc.format("%Y-%m-%d %H:%M:%S UTC"),
                    utc.with_timezone(&Local).format("%c %:z")
                )
            }
        }
    }
}

/// Asks the `protocol` server at `target` (its default port when the target
/// names none) for the time.
///
/// # Errors
/// Connection errors, [`ClientError::Timeout`], and
/// [`ClientError::Unexpected`] for an answer the protocol does not allow.
pub async fn get(
    target: &Target,
    protocol: Protocol,
    transport: Transport,
    timeouts: Timeouts,
) -> Result<Answer, ClientError> {
    let addrs = target.resolve(protocol.default_port()).await?;
    let limit = match protocol {
        Protocol::Daytime => MAX_DAYTIME_REPLY,
        Protocol::Time => 4,
    };
    let (server, raw) = match transport {
        Transport::Tcp => {
            let mut stream = net::connect_tcp(&addrs, timeouts.connect).await?;
            let server = stream.peer_addr().map_err(|e| ClientError::io(addrs[0], e))?;
            (server, client::read_to_end(&mut stream, limit, server, timeouts.reply).await?)
        }
        Transport::Udp => {
            let socket = net::connect_udp(&addrs).await?;
            let server = addrs[0];
            socket.send(b"").await.map_err(|e| ClientError::io(server, e))?;
            let mut buf = vec![0; net::UDP_RECV_BUFFER];
            let len = client::recv(&socket, &mut buf, server, timeouts.reply).await?;
            buf.truncate(len);
            (server, buf)
        }
    };
    parse_answer(protocol, server, &raw)
}

fn parse_answer(protocol: Protocol, server: SocketAddr, raw: &[u8]) -> Result<Answer, ClientError> {
    let unexpected = |detail: String| ClientError::Unexpected { addr: server, detail };
    match protocol {
        Protocol::Daytime => {
            let text = std::str::from_utf8(raw)
                .map_err(|_| unexpected("the daytime line is not text".to_owned()))?;
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() || text.contains(['\r', '\n']) {
                return Err(unexpected("a daytime answer is one line of text".to_owned()));
            }
            Ok(Answer::Daytime { server, text: text.to_owned() })
        }
        Protocol::Time => {
            let bytes: [u8; 4] = raw
                .try_into()
                .map_err(|_| unexpected(format!("an RFC 868 answer is 4 bytes, got {}", raw.len())))?;
            Ok(Answer::Time {
                server,
                seconds_since_1900: u32::from_be_bytes(bytes),
                utc: decode_time(bytes),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn daytime_is_one_readable_line_ending_in_crlf() {
        let at = FixedOffset::east_opt(3600).unwrap().with_ymd_and_hms(2026, 11, 22, 18, 46, 5).unwrap();
        assert_eq!(daytime_line(&at), "Sunday, November 22, 2026 18:46:05 +01:00\r\n");
    }

    #[test]
    fn time_counts_seconds_since_1900() {
        let unix_epoch = Utc.timestamp_opt(0, 0).unwrap();
        assert_eq!(time_bytes(unix_epoch), 2_208_988_800u32.to_be_bytes());
        // The value inetd sent for 2026-11-22 18:48:35 UTC in a manual check.
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 18, 48, 36).unwrap();
        assert_eq!(time_bytes(at), [0xee, 0xad, 0xb7, 0x84]);
    }

    #[test]
    fn time_round_trips_across_the_2036_wrap() {
        for at in [
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 18, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2036, 2, 7, 6, 28, 15).unwrap(),
            Utc.with_ymd_and_hms(2036, 2, 7, 6, 28, 16).unwrap(),
            Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(),
        ] {
            assert_eq!(decode_time(time_bytes(at)), at, "{at}");
        }
        assert_eq!(time_bytes(Utc.with_ymd_and_hms(2036, 2, 7, 6, 28, 16).unwrap()), [0, 0, 0, 0]);
    }

    #[test]
    fn answers_are_checked() {
        let server: SocketAddr = "127.0.0.1:13".parse().unwrap();
        let daytime = parse_answer(Protocol::Daytime, server, b"Sun Nov 22 18:48:35 2026\r\n").unwrap();
        assert_eq!(daytime.to_string(), "Sun Nov 22 18:48:35 2026");
        assert!(parse_answer(Protocol::Daytime, server, b"\r\n").is_err());
        assert!(parse_answer(Protocol::Daytime, server, b"a\r\nb\r\n").is_err());
        assert!(parse_answer(Protocol::Daytime, server, &[0xff, 0xfe]).is_err());
        assert!(parse_answer(Protocol::Time, server, &[1, 2, 3]).is_err());
        let time = parse_answer(Protocol::Time, server, &[0xee, 0xad, 0xb7, 0x84]).unwrap();
        assert!(time.to_string().starts_with("2026-11-22 18:48:36 UTC"), "{time}");
    }
}

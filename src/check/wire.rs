//! Talking to the program under test the way the drivers need: connections
//! made with the crate's own helpers, and reads that report how they ended
//! (all bytes, the peer closed, it reset, it went quiet) instead of failing,
//! because how a read ended is what a case judges.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::net::{self, ConnectError};

/// How a read ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Every byte asked for arrived.
    Complete,
    /// The peer closed the connection (`recv` returned `b''`).
    Closed,
    /// The peer reset the connection.
    Reset,
    /// Nothing more arrived for the quiet time.
    Quiet,
    /// Another socket error.
    Error(String),
}

impl End {
    /// What happened, as the end of a sentence: "then the server closed the connection".
    pub fn describe(&self, quiet: Duration) -> String {
        match self {
            End::Complete => "and that was all".to_owned(),
            End::Closed => "then the server closed the connection".to_owned(),
            End::Reset => {
                "then the server reset the connection (it crashed, or closed with data unread)".to_owned()
            }
            End::Quiet => format!("then nothing more for {}", humantime::format_duration(quiet)),
            End::Error(e) => format!("then the socket failed: {e}"),
        }
    }
}

/// Bytes that arrived and how the reading ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// What arrived.
    pub bytes: Vec<u8>,
    /// Why reading stopped.
    pub end: End,
}

/// Reads until `want` bytes have arrived (to the end of the stream when
/// `None`), the peer closes or resets, or nothing arrives for `quiet`.
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R, want: Option<usize>, quiet: Duration) -> Received {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if want.is_some_and(|w| bytes.len() >= w) {
            return Received { bytes, end: End::Complete };
        }
        let room = want.map_or(buf.len(), |w| (w - bytes.len()).min(buf.len()));
        let end = match tokio::time::timeout(quiet, reader.read(&mut buf[..room])).await {
            Err(_) => End::Quiet,
            Ok(Ok(0)) => End::Closed,
            Ok(Ok(n)) => {
                bytes.extend_from_slice(&buf[..n]);
                continue;
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => End::Reset,
            Ok(Err(e)) => End::Error(net::describe(&e)),
        };
        return Received { bytes, end };
    }
}

/// Connects to `addr` with the crate's connect helper (`TCP_NODELAY` on, so
/// each write the grader makes is its own segment).
///
/// # Errors
/// Why it could not, in words for a student.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    net::connect_tcp(&[addr], timeout).await.map_err(|e| why_no_connection(&e))
}

/// Connects to `addr` from the local address `from` (an address of the
/// loopback network other than the usual one, so that a server's limit of
/// connections per address does not count every grader client as one).
///
/// # Errors
/// As [`connect`].
pub async fn connect_from(
    from: Option<IpAddr>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let Some(from) = from else { return connect(addr, timeout).await };
    let attempt = async {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(from, 0))?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok::<_, io::Error>(stream)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(why_no_connection(&ConnectError::from_io(addr, e))),
        Err(_) => Err(why_no_connection(&ConnectError::TimedOut { addr, after: timeout })),
    }
}

/// A connection failure in a student's words: on loopback a refusal means
/// nothing listens and a timeout means nobody accepts.
fn why_no_connection(e: &ConnectError) -> String {
    match e {
        ConnectError::Refused { addr } => {
            format!("connecting to {addr} was refused: nothing listens there (has the server stopped?)")
        }
        ConnectError::TimedOut { addr, after } => format!(
            "connecting to {addr} got no answer within {}: the server's listen queue is full because it does not call accept()",
            humantime::format_duration(*after)
        ),
        other => other.to_string(),
    }
}

/// Closes `stream` with a reset (RST) instead of a FIN: what a client that
/// crashes, or is killed, does to the server.
pub fn reset(stream: TcpStream) {
    // Linger zero makes close() send RST; if it cannot be set, a FIN it is.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Waits until `done` holds, looking every 20 ms, for at most `limit`;
/// whether it held. For conditions over what several connections received.
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// A UDP socket on an ephemeral port of `addr`'s family, not connected, so
/// that replies from anywhere are seen with their source.
///
/// # Errors
/// When no socket can be bound.
pub async fn udp_for(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    UdpSocket::bind(local).await
}

/// Receives one datagram within `timeout`, with its source.
pub async fn recv_from(socket: &UdpSocket, timeout: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; net::UDP_RECV_BUFFER];
    match tokio::time::timeout(timeout, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => {
            buf.truncate(n);
            Some((buf, from))
        }
        // A refusal (ICMP port unreachable) or a timeout: nothing came.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn reads_report_how_they_ended() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(b"hello").await.unwrap();
        let quiet = Duration::from_millis(50);
        assert_eq!(
            read(&mut b, Some(3), quiet).await,
            Received { bytes: b"hel".to_vec(), end: End::Complete }
        );
        assert_eq!(read(&mut b, Some(9), quiet).await, Received { bytes: b"lo".to_vec(), end: End::Quiet });
        drop(a);
        assert_eq!(read(&mut b, None, quiet).await.end, End::Closed);
    }

    #[tokio::test]
    async fn a_reset_is_seen_as_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = connect(addr, Duration::from_secs(3)).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        reset(client);
        assert_eq!(read(&mut server, None, Duration::from_secs(3)).await.end, End::Reset);
    }
}

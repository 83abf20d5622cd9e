//! What every client shares: the timeouts it honours, the error it reports,
//! and reads that never wait longer than they were told to.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UdpSocket;

use crate::net::{ConnectError, describe};

/// How long a client waits for each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// For the TCP connection to be set up.
    pub connect: Duration,
    /// For each reply.
    pub reply: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(3), reply: Duration::from_secs(1) }
    }
}

/// A client could not complete an exchange.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The server did not answer in time.
    #[error("no reply from {addr} within {}", humantime::format_duration(*.after))]
    Timeout {
        /// The server's address.
        addr: SocketAddr,
        /// How long was waited.
        after: Duration,
    },
    /// The server closed the connection before the reply was complete.
    #[error("{addr} closed the connection after {got} of {expected} reply bytes")]
    Closed {
        /// The server's address.
        addr: SocketAddr,
        /// How many reply bytes arrived.
        got: usize,
        /// How many were expected.
        expected: usize,
    },
    /// A message does not fit in one UDP datagram.
    #[error("a message of {len} bytes does not fit in one UDP datagram (at most {max} bytes)")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The largest datagram payload.
        max: usize,
    },
    /// The reply is not what this kind of server sends.
    #[error("unexpected reply from {addr}: {detail}")]
    Unexpected {
        /// The server's address.
        addr: SocketAddr,
        /// What was wrong with it.
        detail: String,
    },
    /// The server understood and said no (a nickname that is taken, say).
    #[error("the server at {addr} refused: {reason}")]
    Refused {
        /// The server's address.
        addr: SocketAddr,
        /// What it said.
        reason: String,
    },
    /// Passing on what arrived failed: our output, not the network (a
    /// closed stdout pipe, which the binary does not count as a failure).
    #[error("cannot write the output")]
    Output(#[source] io::Error),
    /// Reading or writing the socket failed.
    #[error("talking to {addr}: {}{}", describe(.error), closed_hint(.error))]
    Io {
        /// The server's address.
        addr: SocketAddr,
        /// What the operating system said.
        error: io::Error,
    },
}

impl ClientError {
    /// Classifies an I/O error from a socket connected to `addr`.
    pub fn io(addr: SocketAddr, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::ConnectionRefused => ClientError::Connect(ConnectError::Refused { addr }),
            _ => ClientError::Io { addr, error: source },
        }
    }
}

/// What a server that drops a connection is usually doing.
fn closed_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => {
            " (it may be at its connection limit, or shutting down)"
        }
        _ => "",
    }
}

/// Reads a stream connected to `addr` to its end, keeping at most `limit`
/// bytes, waiting at most `timeout` in all.
///
/// # Errors
/// [`ClientError::Unexpected`] when more than `limit` bytes arrive,
/// [`ClientError::Timeout`] when time runs out, [`ClientError::Io`] otherwise.
pub async fn read_to_end<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    let read_all = async {
        let mut limited = reader.take(limit as u64 + 1);
        limited.read_to_end(&mut out).await.map_err(|e| ClientError::io(addr, e))
    };
    tokio::time::timeout(timeout, read_all)
        .await
        .map_err(|_| ClientError::Timeout { addr, after: timeout })??;
    if out.len() > limit {
        return Err(ClientError::Unexpected { addr, detail: format!("reply is longer than {limit} bytes") });
    }
    Ok(out)
}

/// Receives one datagram on a connected UDP socket, waiting at most `timeout`.
///
/// # Errors
/// [`ClientError::Timeout`] when time runs out; a refusal (ICMP port
/// unreachable) as [`ConnectError::Refused`].
pub async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
    addr: SocketAddr,
    timeout: Duration,
) -> Result<usize, ClientError> {
    tokio::time::timeout(timeout, socket.recv(buf))
        .await
        .map_err(|_| ClientError::Timeout { addr, after: timeout })?
        .map_err(|e| ClientError::io(addr, e))
}

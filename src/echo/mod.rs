//! RFC 862 echo over TCP and UDP: a server that sends back every byte it
//! receives, a client that prints what comes back, and a pinger that measures
//! round trips.
//!
//! The TCP server holds at most one read buffer ([`TCP_BUFFER`] bytes) per
//! connection: it writes what it read back before it reads again, so a client
//! that sends but never reads is held back by TCP flow control instead of
//! growing the server's memory.

mod client;
mod ping;

use std::io;
use std::pin::pin;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::{Bound, Endpoint};
use crate::server::{IdleTimer, Service, ServiceError, TcpLimits, UdpAction, accept_loop, udp_loop};
use crate::shutdown::Shutdown;

pub use client::EchoClient;
pub use ping::{MIN_PROBE_SIZE, PingStats, PingSummary, Pinger, Probe};

/// The default port of `echo serve` (RFC 862's own port 7 needs root).
pub const DEFAULT_PORT: u16 = 7007;

/// The most a TCP connection reads before it writes the bytes back.
pub const TCP_BUFFER: usize = 16 * 1024;

/// An echo server on bound sockets.
#[derive(Debug)]
pub struct EchoServer {
    bound: Bound,
    limits: TcpLimits,
}

impl EchoServer {
    /// An echo server on `bound`'s sockets (TCP, UDP or both).
    pub fn new(bound: Bound, limits: TcpLimits) -> Self {
        EchoServer { bound, limits }
    }
}

impl Service for EchoServer {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.bound.endpoints(self.name())
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, Result<(), ServiceError>> {
        let EchoServer { bound, limits } = *self;
        let udp = bound.udp.into_iter().map(|socket| {
            udp_loop("echo", socket, shutdown.clone(), |datagram, _, reply| {
                reply.extend_from_slice(datagram);
                UdpAction::Reply
            })
        });
        let udp = futures::future::join_all(udp);
        let tcp = accept_loop("echo", bound.tcp, limits, shutdown, move |stream, _, shutdown| {
            echo_connection(stream, limits, shutdown)
        });
        async move {
            futures::join!(tcp, udp);
            Ok(())
        }
        .boxed()
    }
}

/// Echoes one TCP connection until EOF, the idle timeout or shutdown. On
/// shutdown the bytes already received are still echoed before closing.
async fn echo_connection(mut stream: TcpStream, limits: TcpLimits, shutdown: Shutdown) -> io::Result<()> {
    let mut buf = vec![0u8; TCP_BUFFER];
    let mut stopping = pin!(shutdown.triggered());
    let mut idle = IdleTimer::new(limits.idle_timeout);
    // The part of `buf` read but not yet written back.
    let mut pending = 0..0;
    loop {
        if pending.is_empty() {
            tokio::select! {
                read = stream.read(&mut buf) => match read? {
                    0 => return stream.shutdown().await,
                    n => pending = 0..n,
                },
                () = &mut stopping => return finish(&mut stream, &mut buf).await,
                () = idle.expired() => return Err(idle.error()),
            }
        } else {
            tokio::select! {
                written = stream.write(&buf[pending.clone()]) => pending.start += written?,
                () = idle.expired() => return Err(idle.error()),
            }
        }
        idle.touch();
    }
}

/// Echoes whatever has already arrived, then closes: an exchange in flight
/// when the shutdown starts still gets its answer.
async fn finish(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    loop {
        match stream.try_read(buf) {
            Ok(0) => break,
            Ok(n) => stream.write_all(&buf[..n]).await?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    stream.shutdown().await
}

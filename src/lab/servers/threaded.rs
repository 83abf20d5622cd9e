//! The two echo servers `lab servers` compares, as its child processes run
//! them: a thread per connection with blocking sockets (written here), and the
//! crate's async [`EchoServer`].

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::echo::{EchoServer, TCP_BUFFER};
use crate::net::{self, Transports};
use crate::server::{Service, TcpLimits};
use crate::shutdown::{GRACE, Shutdown};

/// How long a connection may stay silent before either server closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How a server handles its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerModel {
    /// One OS thread per connection, blocking reads and writes.
    Threads,
    /// Tokio tasks on a few threads: the crate's [`EchoServer`].
    Async,
}

impl fmt::Display for ServerModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerModel::Threads => "threads",
            ServerModel::Async => "async",
        })
    }
}

/// The line a server child prints once it accepts connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listening {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process, whose memory the experiment reads.
    pub pid: u32,
}

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "echo tcp {} (pid {})", self.addr, self.pid)
    }
}

/// An echo server that gives every connection its own OS thread, which
/// blocks in `read` and `write`. Connections over the cap are closed on
/// arrival; a connection silent for the idle timeout is closed.
#[derive(Debug)]
pub struct ThreadedEchoServer {
    listener: TcpListener,
    limits: TcpLimits,
    active: Arc<AtomicUsize>,
}

/// Counts a connection as active for as long as it lives.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ThreadedEchoServer {
    /// A server on `listener` (switched to blocking mode).
    ///
    /// # Errors
    /// When the listener cannot be switched to blocking mode.
    pub fn new(listener: TcpListener, limits: TcpLimits) -> io::Result<ThreadedEchoServer> {
        listener.set_nonblocking(false)?;
        Ok(ThreadedEchoServer { listener, limits, active: Arc::new(AtomicUsize::new(0)) })
    }

    /// Accepts connections until `stop` is set. A blocking `accept` cannot be
    /// interrupted, so whoever sets `stop` must then connect once to wake it.
    pub fn run(self, stop: &AtomicBool) {
        for (n, stream) in self.listener.incoming().enumerate() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    // Out of file descriptors or memory: give the connections time to end.
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if self.active.fetch_add(1, Ordering::AcqRel) >= self.limits.max_connections {
                self.active.fetch_sub(1, Ordering::AcqRel);
                warn!("refusing connection: all {} connection slots are in use", self.limits.max_connections);
                continue;
            }
            let active = Active(self.active.clone());
            let idle = self.limits.idle_timeout;
            let spawned = std::thread::Builder::new().name(format!("conn-{n}")).spawn(move || {
                let _active = active;
                if let Err(e) = echo_blocking(stream, idle) {
                    debug!(error = %e, "connection ended with an error");
                }
            });
            if let Err(e) = spawned {
                // The closure (and the stream and the slot) was dropped with the error.
                warn!(error = %e, "cannot start a thread for a connection; closing it");
            }
        }
    }
}

/// Echoes one connection until EOF, an error or the idle timeout.
fn echo_blocking(mut stream: TcpStream, idle: Duration) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(idle))?;
    stream.set_write_timeout(Some(idle))?;
    let mut buf = vec![0u8; TCP_BUFFER];
    loop {
        match stream.read(&mut buf)? {
            0 => return Ok(()),
            n => stream.write_all(&buf[..n])?,
        }
    }
}

/// Runs an echo server of `model` on 127.0.0.1 (a free port), serving at most
/// `max_connections` at once: calls `ready` once it accepts connections, and
/// stops when `stop` completes. The async server drains its connections
/// through [`Shutdown`]; the threaded one stops accepting, and its connection
/// threads end with their connections (or with the process).
///
/// # Errors
/// When the listener cannot be set up, or `ready` fails.
pub async fn serve(
    model: ServerModel,
    max_connections: usize,
    ready: impl FnOnce(Listening) -> io::Result<()>,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut bound = net::bind(&[Ipv4Addr::LOCALHOST.into()], 0, Transports::TCP).map_err(io::Error::other)?;
    let listener = bound.tcp.pop().ok_or_else(|| io::Error::other("bound no TCP listener"))?;
    let addr = listener.local_addr()?;
    let limits = TcpLimits { max_connections, idle_timeout: IDLE_TIMEOUT };
    match model {
        ServerModel::Async => {
            bound.tcp.push(listener);
            let shutdown = Shutdown::new();
            let server = tokio::spawn(Box::new(EchoServer::new(bound, limits)).run(shutdown.clone()));
            ready(Listening { addr, pid: std::process::id() })?;
            stop.await;
            shutdown.drain(GRACE).await;
            server.await.map_err(io::Error::other)?.map_err(io::Error::other)
        }
        ServerModel::Threads => {
            let server = ThreadedEchoServer::new(listener.into_std()?, limits)?;
            let stopping = Arc::new(AtomicBool::new(false));
            let flag = stopping.clone();
            let acceptor = tokio::task::spawn_blocking(move || server.run(&flag));
            ready(Listening { addr, pid: std::process::id() })?;
            stop.await;
            stopping.store(true, Ordering::Release);
            // Wake the blocked accept; if that fails, the process exit ends the thread anyway.
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(_) => acceptor.await.map_err(io::Error::other),
                Err(e) => {
                    debug!(error = %e, "cannot wake the accept thread");
                    Ok(())
                }
            }
        }
    }
}

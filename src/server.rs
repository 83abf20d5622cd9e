//! What every server shares: the [`Service`] trait that `socketeer serve`
//! runs, a TCP accept loop with a connection cap, and a UDP request/reply loop.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

use crate::net::{Endpoint, UDP_RECV_BUFFER};
use crate::shutdown::Shutdown;

/// A server whose sockets are bound and which is ready to run.
///
/// Binding happens in each server's constructor, so that every port problem
/// is reported before any service starts; `run` then serves until the
/// shutdown signal.
pub trait Service: Send {
    /// The service's name, as in its status lines.
    fn name(&self) -> &'static str;
    /// The sockets it listens on.
    fn endpoints(&self) -> Vec<Endpoint>;
    /// Settings worth showing next to its status lines (such as a loss rate).
    fn detail(&self) -> Option<String> {
        None
    }
    /// Serves until `shutdown` triggers; connection tasks are spawned on
    /// `shutdown` so that draining it waits for them.
    fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, ()>;
}

/// Limits every TCP server applies to its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits { max_connections: 1024, idle_timeout: Duration::from_secs(60) }
    }
}

/// Accepts connections on `listeners` until shutdown and runs `handler` on
/// each in a tracked task. At most `limits.max_connections` run at once across
/// all the listeners; a connection over the cap is closed right away (a
/// client sees EOF at once instead of hanging in the backlog).
pub async fn accept_loop<H, F>(
    service: &'static str,
    listeners: Vec<TcpListener>,
    limits: TcpLimits,
    shutdown: Shutdown,
    handler: H,
) where
    H: Fn(TcpStream, SocketAddr, Shutdown) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let (permits, shutdown, handler) = (permits.clone(), shutdown.clone(), handler.clone());
            accept_one_listener(service, listener, permits, shutdown, handler)
        })
        .collect();
    futures::future::join_all(loops).await;
}

async fn accept_one_listener<H, F>(
    service: &'static str,
    listener: TcpListener,
    permits: Arc<Semaphore>,
    shutdown: Shutdown,
    handler: H,
) where
    H: Fn(TcpStream, SocketAddr, Shutdown) -> F + Send + Sync + 'static,
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = shutdown.triggered() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                accept_error(service, &e).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(service, %peer, "refusing connection: all connection slots are in use (raise --max-connections)");
            drop(stream);
            continue;
        };
        // Request/response services answer small writes; do not let Nagle hold them.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(service, %peer, error = %e, "cannot set TCP_NODELAY");
        }
        debug!(service, %peer, "connection opened");
        let task = handler(stream, peer, shutdown.clone());
        shutdown.spawn(async move {
            match task.await {
                Ok(()) => debug!(service, %peer, "connection closed"),
                Err(e) => debug!(service, %peer, error = %e, "connection ended with an error"),
            }
            drop(permit);
        });
    }
}

/// Keeps an accept loop alive through errors: running out of file descriptors
/// or memory is waited out, anything else (a connection reset before accept)
/// is only logged.
async fn accept_error(service: &'static str, e: &io::Error) {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    if matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM)) {
        warn!(service, error = %e, "cannot accept: out of resources; retrying in 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        debug!(service, error = %e, "accept failed");
    }
}

/// Closes connections that have been silent for too long, with one timer per
/// connection that is re-armed only when it fires: far cheaper than a new
/// timeout around every read.
#[derive(Debug)]
pub struct IdleTimer {
    limit: Duration,
    last_activity: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    /// A timer that expires after `limit` without [`IdleTimer::touch`].
    pub fn new(limit: Duration) -> Self {
        IdleTimer { limit, last_activity: Instant::now(), sleep: Box::pin(tokio::time::sleep(limit)) }
    }

    /// Records traffic: the idle period starts again.
    pub fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Completes once `limit` has passed since the last touch. Cancel-safe.
    pub async fn expired(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let deadline = self.last_activity + self.limit;
            if Instant::now() >= deadline {
                return;
            }
            self.sleep.as_mut().reset(deadline);
        }
    }

    /// The error a connection ends with when the timer expires.
    pub fn error(&self) -> io::Error {
        let limit = humantime::format_duration(self.limit);
        io::Error::new(io::ErrorKind::TimedOut, format!("no traffic for {limit}"))
    }
}

/// What a UDP service does with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpAction {
    /// Send the bytes written to the reply buffer back to the sender.
    Reply,
    /// Send nothing.
    Ignore,
}

/// Serves a UDP socket until shutdown: every datagram goes to `handle` with a
/// cleared reply buffer, and the reply (if any) goes back to its sender. A
/// reply that cannot be sent (too large, or the sender is gone) is logged and
/// the loop goes on.
pub async fn udp_loop<H>(service: &'static str, socket: UdpSocket, shutdown: Shutdown, mut handle: H)
where
    H: FnMut(&[u8], SocketAddr, &mut Vec<u8>) -> UdpAction + Send,
{
    let mut buf = vec![0u8; UDP_RECV_BUFFER];
    let mut reply = Vec::with_capacity(UDP_RECV_BUFFER);
    loop {
        let received = tokio::select! {
            () = shutdown.triggered() => break,
            received = socket.recv_from(&mut buf) => received,
        };
        let (len, peer) = match received {
            Ok(pair) => pair,
            Err(e) => {
                debug!(service, error = %e, "receive failed");
                continue;
            }
        };
        reply.clear();
        if handle(&buf[..len], peer, &mut reply) == UdpAction::Reply
            && let Err(e) = socket.send_to(&reply, peer).await
        {
            warn!(service, %peer, bytes = reply.len(), error = %e, "cannot send reply");
        }
    }
    if let Ok(addr) = socket.local_addr() {
        debug!(service, %addr, "udp socket closed");
    }
}

//! What every server shares: the [`Service`] trait that `socketeer serve`
//! runs, a TCP accept loop with a connection cap (overall, and optionally per
//! source address), and a UDP request/reply loop.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    ///
    /// # Errors
    /// Why the service stopped, when it could not go on. A service that
    /// returns before `shutdown` triggers, with or without an error, has
    /// died: whoever runs it must say so.
    fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, Result<(), ServiceError>>;
}

/// Why a service stopped serving before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A socket, thread or file it cannot do without failed.
    #[error("{context}: {error}")]
    Io {
        /// What it was doing.
        context: &'static str,
        /// What the operating system said.
        #[source]
        error: io::Error,
    },
    /// A thread of the service panicked; the message, when it had one.
    #[error("a thread panicked ({0})")]
    Panicked(String),
}

impl ServiceError {
    /// An I/O error while doing `context`.
    pub fn io(context: &'static str) -> impl FnOnce(io::Error) -> ServiceError {
        move |error| ServiceError::Io { context, error }
    }

    /// The panic whose payload is `payload`, with its message when it is text.
    pub fn panicked(payload: &(dyn std::any::Any + Send)) -> ServiceError {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        ServiceError::Panicked(message)
    }
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

/// Who a TCP server admits beyond [`TcpLimits`]' overall cap: at most
/// `max_per_address` connections from one source address, and a line to
/// send to a connection turned away (none closes it in silence).
#[derive(Clone, Copy, Debug)]
pub struct Admission {
    /// The overall cap and the idle timeout.
    pub limits: TcpLimits,
    /// Connections one source address may hold at once; `None` for no cap.
    pub max_per_address: Option<usize>,
    /// What to tell a connection that is turned away, if anything.
    pub refusal: Option<fn(Refusal) -> String>,
}

impl From<TcpLimits> for Admission {
    fn from(limits: TcpLimits) -> Self {
        Admission { limits, max_per_address: None, refusal: None }
    }
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// All `max` connection slots are in use.
    Full {
        /// The overall cap.
        max: usize,
    },
    /// Its address already holds `max` connections.
    PerAddress {
        /// The cap per address.
        max: usize,
    },
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
    admit_loop(service, listeners, limits.into(), shutdown, handler).await;
}

/// [`accept_loop`] with a cap per source address and a refusal line.
pub async fn admit_loop<H, F>(
    service: &'static str,
    listeners: Vec<TcpListener>,
    admission: Admission,
    shutdown: Shutdown,
    handler: H,
) where
    H: Fn(TcpStream, SocketAddr, Shutdown) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let gate = Arc::new(Gate {
        admission,
        permits: Arc::new(Semaphore::new(admission.limits.max_connections)),
        per_address: Mutex::new(HashMap::new()),
    });
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let (gate, shutdown, handler) = (gate.clone(), shutdown.clone(), handler.clone());
            accept_one_listener(service, listener, gate, shutdown, handler)
        })
        .collect();
    futures::future::join_all(loops).await;
}

/// The admission state all of a server's listeners share.
struct Gate {
    admission: Admission,
    permits: Arc<Semaphore>,
    /// Connections held per source address, when they are capped.
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place: its share of the overall cap and of its address's.
struct Ticket {
    _permit: OwnedSemaphorePermit,
    gate: Arc<Gate>,
    addr: Option<IpAddr>,
}

impl Gate {
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Ticket, Refusal> {
        let max = self.admission.limits.max_connections;
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| Refusal::Full { max })?;
        let Some(max) = self.admission.max_per_address else {
            return Ok(Ticket { _permit: permit, gate: self.clone(), addr: None });
        };
        // An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d.
        let addr = peer.ip().to_canonical();
        let mut held = self.per_address.lock();
        let count = held.entry(addr).or_insert(0);
        if *count >= max {
            return Err(Refusal::PerAddress { max });
        }
        *count += 1;
        Ok(Ticket { _permit: permit, gate: self.clone(), addr: Some(addr) })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(addr) = self.addr {
            let mut held = self.gate.per_address.lock();
            if let Some(count) = held.get_mut(&addr) {
                *count -= 1;
                if *count == 0 {
                    held.remove(&addr);
                }
            }
        }
    }
}

async fn accept_one_listener<H, F>(
    service: &'static str,
    listener: TcpListener,
    gate: Arc<Gate>,
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
        let ticket = match gate.admit(peer) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                match refusal {
                    Refusal::Full { .. } => {
                        warn!(service, %peer, "refusing connection: all connection slots are in use (raise --max-connections)")
                    }
                    Refusal::PerAddress { max } => {
                        warn!(service, %peer, max, "refusing connection: its address holds the most connections allowed")
                    }
                }
                if let Some(refusal_line) = gate.admission.refusal {
                    // A fresh socket's send buffer is empty: this does not block or cut the line.
                    let _ = stream.try_write(refusal_line(refusal).as_bytes());
                }
                drop(stream);
                continue;
            }
        };
        // Request/response services answer small writes; do not let Nagle hold them.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(service, %peer, error = %e, "cannot set TCP_NODELAY");
        }
        debug!(service, %peer, "connection opened");
        // A combinator rather than an async block: the block would hold the
        // handler's future twice (captured, and being awaited), doubling
        // every connection's task.
        let task = handler(stream, peer, shutdown.clone()).map(move |ended| {
            match ended {
                Ok(()) => debug!(service, %peer, "connection closed"),
                Err(e) => debug!(service, %peer, error = %e, "connection ended with an error"),
            }
            drop(ticket);
        });
        shutdown.spawn(task);
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
        std::future::poll_fn(|cx| self.poll_expired(cx)).await;
    }

    /// Ready once `limit` has passed since the last touch; otherwise
    /// registers the task to wake when it may have.
    pub fn poll_expired(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        loop {
            std::task::ready!(self.sleep.as_mut().poll(cx));
            let deadline = self.last_activity + self.limit;
            if Instant::now() >= deadline {
                return std::task::Poll::Ready(());
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

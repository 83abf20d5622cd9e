//! What every server shares: the [`Service`] trait that `socketeer serve`
//! runs, a TCP accept loop with a connection cap (or any other admission
//! policy, through a [`Gatekeeper`]), the summarised log of refused
//! connections, and a UDP request/reply loop.

use std::io;
use std::net::SocketAddr;
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
        ServiceError::Panicked(crate::poll::thread::panic_message(payload))
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

/// Who a TCP server lets in: [`admit_loop`] asks it about every connection
/// it accepts. A refused connection is sent the line the refusal carries
/// (if any) and closed at once; an admitted one holds its ticket until it
/// closes (a place under a cap, say).
pub trait Gatekeeper: Send + Sync + 'static {
    /// What an admitted connection holds while it is open.
    type Ticket: Send + 'static;
    /// Lets the connection from `peer` in, or says why not.
    ///
    /// # Errors
    /// The refusal, with what to tell the client.
    fn admit(&self, peer: SocketAddr) -> Result<Self::Ticket, Refused>;
}

/// A connection turned away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The line to send it before closing (none closes it in silence).
    pub line: Option<String>,
}

/// The overall cap on connections: a semaphore, and refusals logged.
struct Cap {
    service: &'static str,
    permits: Arc<Semaphore>,
    log: RefusalLog,
}

impl Gatekeeper for Cap {
    type Ticket = OwnedSemaphorePermit;

    fn admit(&self, peer: SocketAddr) -> Result<OwnedSemaphorePermit, Refused> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            self.log.refused(peer, "all connection slots are in use (raise --max-connections)");
            Refused { line: None }
        })
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
    let cap = Cap {
        service,
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        log: RefusalLog::new(service),
    };
    debug!(service = cap.service, max = limits.max_connections, "accepting connections");
    admit_loop(service, listeners, Arc::new(cap), shutdown, move |stream, peer, permit, shutdown| {
        handler(stream, peer, shutdown).map(move |ended| {
            drop(permit);
            ended
        })
    })
    .await;
}

/// Accepts connections on `listeners` until shutdown, lets in those that
/// `gate` admits, and runs `handler` on each (with its ticket) in a tracked
/// task.
pub async fn admit_loop<G, H, F>(
    service: &'static str,
    listeners: Vec<TcpListener>,
    gate: Arc<G>,
    shutdown: Shutdown,
    handler: H,
) where
    G: Gatekeeper,
    H: Fn(TcpStream, SocketAddr, G::Ticket, Shutdown) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = io::Result<()>> + Send + 'static,
{
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let (gate, shutdown, handler) = (gate.clone(), shutdown.clone(), handler.clone());
            accept_one_listener(service, listener, gate, shutdown, handler)
        })
        .collect();
    futures::future::join_all(loops).await;
}

/// How long refusals are counted before the log gets one line about them.
const REFUSAL_SUMMARY: Duration = Duration::from_secs(10);

/// The log of a server's refusals: the first of a burst is logged at once,
/// with its peer and reason; the rest are counted by reason and summed up
/// in one line every ten seconds while they go on, so that a flood
/// of connections does not become a flood of log lines.
#[derive(Debug)]
pub struct RefusalLog {
    service: &'static str,
    state: Mutex<RefusalCounts>,
}

#[derive(Debug, Default)]
struct RefusalCounts {
    /// Since when refusals are being counted (none: the next is logged).
    since: Option<Instant>,
    /// Refusals counted since then, by reason, in the order first seen.
    counts: Vec<(&'static str, u64)>,
}

impl RefusalLog {
    /// An empty log for `service`.
    pub fn new(service: &'static str) -> RefusalLog {
        RefusalLog { service, state: Mutex::new(RefusalCounts::default()) }
    }

    /// The connection from `peer` was refused for `reason`.
    pub fn refused(&self, peer: SocketAddr, reason: &'static str) {
        let now = Instant::now();
        let mut state = self.state.lock();
        match state.since {
            Some(since) if now.duration_since(since) < REFUSAL_SUMMARY => {
                match state.counts.iter_mut().find(|(known, _)| *known == reason) {
                    Some((_, n)) => *n += 1,
                    None => state.counts.push((reason, 1)),
                }
            }
            _ => {
                self.summarise(&mut state, now);
                state.since = Some(now);
                warn!(service = self.service, %peer, "refusing connection: {reason}");
            }
        }
    }

    /// Logs what was counted since the last line, if anything.
    fn summarise(&self, state: &mut RefusalCounts, now: Instant) {
        let counts = std::mem::take(&mut state.counts);
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        if let (Some(since), true) = (state.since, total > 0) {
            let reasons: Vec<String> = counts.iter().map(|(reason, n)| format!("{n}: {reason}")).collect();
            let over =
                humantime::format_duration(Duration::from_secs(now.duration_since(since).as_secs().max(1)));
            warn!(
                service = self.service,
                refused = total,
                "refused {total} more connections in {over} ({})",
                reasons.join("; ")
            );
        }
    }
}

impl Drop for RefusalLog {
    fn drop(&mut self) {
        let mut state = self.state.lock();
        self.summarise(&mut state, Instant::now());
    }
}

async fn accept_one_listener<G, H, F>(
    service: &'static str,
    listener: TcpListener,
    gate: Arc<G>,
    shutdown: Shutdown,
    handler: H,
) where
    G: Gatekeeper,
    H: Fn(TcpStream, SocketAddr, G::Ticket, Shutdown) -> F + Send + Sync + 'static,
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
            Err(refused) => {
                if let Some(line) = refused.line {
                    // A fresh socket's send buffer is empty: this does not block or cut the line.
                    let _ = stream.try_write(line.as_bytes());
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
        let task = handler(stream, peer, ticket, shutdown.clone()).map(move |ended| match ended {
            Ok(()) => debug!(service, %peer, "connection closed"),
            Err(e) => debug!(service, %peer, error = %e, "connection ended with an error"),
        });
        shutdown.spawn(task);
    }
}

/// Keeps an accept loop alive through errors: running out of file descriptors
/// or memory is waited out, anything else (a connection reset before accept)
/// is only logged.
async fn accept_error(service: &'static str, e: &io::Error) {
    use nix::errno::Errno;
    let out_of_resources = [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM];
    if e.raw_os_error().is_some_and(|code| out_of_resources.contains(&Errno::from_raw(code))) {
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

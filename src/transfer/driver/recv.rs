//! The receiving server: one loop owns every socket and every file, and
//! feeds the sans-IO [`Endpoint`] that owns the sessions.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::warn;

use crate::batch::{BatchSocket, RecvBuffers, SendBuffer};
use crate::net::Endpoint as NetEndpoint;
use crate::poll::{self, DriverDied, DriverThread, Poller, Waker};
use crate::server::{Service, ServiceError};
use crate::shutdown::Shutdown;
use crate::transfer::endpoint::admission::Caps;
use crate::transfer::endpoint::{Ended, Endpoint, EndpointConfig, EndpointEvent, SessionKey};
use crate::transfer::session::{DirError, Incoming, ReceiveDir};
use crate::transfer::{Protocol, ReceiverLimits, ReceiverStats};

use super::{LookFirst, ROUNDS};

/// How the receiving server stores files and whom it serves.
#[derive(Clone, Debug)]
pub struct ReceiveConfig {
    /// Files land here and nowhere else.
    pub dir: PathBuf,
    /// The permissions of the directory when it has to be created.
    pub dir_mode: u32,
    /// Replace existing files.
    pub overwrite: bool,
    /// What each session is granted.
    pub limits: ReceiverLimits,
    /// Sessions at once (finished ones lingering included); more are refused.
    pub max_sessions: usize,
    /// Sessions at once from one IP address.
    pub max_per_source: usize,
    /// Bytes all sessions together may keep out of order.
    pub max_buffered: usize,
}

impl ReceiveConfig {
    /// Storing into `dir` (created private, 0700, when missing) with the
    /// default caps: 64 sessions, 16 from one address, 64 MiB kept out of order.
    pub fn new(dir: PathBuf, limits: ReceiverLimits) -> Self {
        ReceiveConfig {
            dir,
            dir_mode: 0o700,
            overwrite: false,
            limits,
            max_sessions: 64,
            max_per_source: 16,
            max_buffered: 64 << 20,
        }
    }
}

/// Reports waiting to be read before the loop drops new ones.
pub const REPORT_QUEUE: usize = 256;

/// What the receiving server tells whoever listens.
#[derive(Clone, Debug)]
pub enum ServerEvent {
    /// A transfer ended (or was refused).
    Received(ReceiveReport),
    /// The loop died, and why: nothing more will be received.
    Failed(String),
}

/// What became of one incoming file.
#[derive(Clone, Debug, Serialize)]
pub struct ReceiveReport {
    /// The sender.
    pub from: SocketAddr,
    /// The file's name.
    pub name: String,
    /// Where it was stored, when it was.
    pub path: Option<PathBuf>,
    /// The ARQ protocol.
    pub protocol: Protocol,
    /// Content bytes received in order.
    pub bytes: u64,
    /// From the HELLO to the end.
    pub seconds: f64,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The receiver's counters.
    pub stats: ReceiverStats,
}

impl fmt::Display for ReceiveReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, &self.error) {
            (Some(path), None) => write!(
                f,
                "received {} ({} bytes) from {} in {:.3} s with {}: {}",
                self.name,
                self.bytes,
                self.from,
                self.seconds,
                self.protocol,
                path.display()
            ),
            (_, error) => write!(
                f,
                "failed to receive {} from {}: {}",
                self.name,
                self.from,
                error.as_deref().unwrap_or("unknown error")
            ),
        }
    }
}

/// The receiving server (`transfer recv`, and `socketeer serve`'s transfer
/// service): one socket per address, any number of sessions up to the caps.
#[derive(Debug)]
pub struct TransferServer {
    sockets: Vec<UdpSocket>,
    endpoints: Vec<NetEndpoint>,
    dir: Arc<ReceiveDir>,
    config: ReceiveConfig,
    events: Option<mpsc::Sender<ServerEvent>>,
}

/// Why a receiving server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The receiving directory cannot be used.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// A socket or the wake-up descriptor failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<StartError> for io::Error {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Io(e) => e,
            e => io::Error::other(e.to_string()),
        }
    }
}

impl TransferServer {
    /// A server on `sockets` (one per address), storing into the directory
    /// (created if missing); whatever happens is told on `events`.
    ///
    /// # Errors
    /// When the directory cannot be made, opened or written, or a socket's
    /// address cannot be read.
    pub fn new(
        sockets: Vec<UdpSocket>,
        config: ReceiveConfig,
        events: Option<mpsc::Sender<ServerEvent>>,
    ) -> Result<Self, StartError> {
        let dir = ReceiveDir::open(&config.dir, config.dir_mode)?;
        if dir.cleaned() > 0 {
            tracing::info!(files = dir.cleaned(), dir = %dir.path().display(), "transfer: removed temporary files of a receiver that was killed");
        }
        let endpoint = |s: &UdpSocket| {
            s.local_addr().map(|addr| NetEndpoint {
                service: "transfer",
                transport: crate::net::Transport::Udp,
                addr,
            })
        };
        let endpoints = sockets.iter().map(endpoint).collect::<io::Result<_>>()?;
        Ok(TransferServer { sockets, endpoints, dir: Arc::new(dir), config, events })
    }

    /// Where files land.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Service for TransferServer {
    fn name(&self) -> &'static str {
        "transfer"
    }

    fn endpoints(&self) -> Vec<NetEndpoint> {
        self.endpoints.clone()
    }

    fn detail(&self) -> Option<String> {
        Some(format!("into {}", self.dir.path().display()))
    }

    fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, Result<(), ServiceError>> {
        async move {
            let mut running = self.spawn().map_err(ServiceError::io("starting the receiving thread"))?;
            let died = tokio::select! {
                () = shutdown.triggered() => false,
                () = running.finished() => true,
            };
            let stopped = tokio::task::spawn_blocking(move || running.stop()).await.map_err(|e| {
                ServiceError::Io { context: "stopping the receiving thread", error: e.into() }
            })?;
            match stopped {
                Err(e) => Err(e),
                Ok(()) if died => Err(ServiceError::Io {
                    context: "the receiving loop",
                    error: io::Error::other("it stopped on its own"),
                }),
                Ok(()) => Ok(()),
            }
        }
        .boxed()
    }
}

/// A receiving server running on its own driver thread.
#[derive(Debug)]
pub struct RunningServer {
    driver: DriverThread<()>,
}

impl RunningServer {
    /// Completes when the receiving thread has ended, for whatever reason
    /// (stopped, failed or panicked). Cancel-safe.
    pub async fn finished(&mut self) {
        self.driver.finished().await;
    }

    /// Stops the server; transfers in progress are abandoned (their
    /// temporary files vanish).
    ///
    /// # Errors
    /// When the loop failed or panicked.
    pub fn stop(self) -> Result<(), ServiceError> {
        self.driver.stop().map_err(|died| match died {
            DriverDied::Panicked(message) => ServiceError::Panicked(message),
            DriverDied::Failed(why) => {
                ServiceError::Io { context: "the receiving loop", error: io::Error::other(why) }
            }
        })
    }
}

/// The poller's tokens: the waker, then one per socket.
const WAKER: u64 = 0;
const FIRST_SOCKET: u64 = 1;

/// Set to `panic` in the environment, the loop panics at its first datagram:
/// how the tests check that a dead loop ends `transfer recv` with an error.
pub const FAULT_ENV: &str = "SOCKETEER_TRANSFER_RECV_FAULT";

impl TransferServer {
    /// Starts receiving on a thread of its own. If the loop fails or
    /// panics, [`ServerEvent::Failed`] says why.
    ///
    /// # Errors
    /// When the wake-up descriptor or the thread cannot be created.
    pub fn spawn(self) -> io::Result<RunningServer> {
        let events = self.events.clone();
        let obituary = move |died: &DriverDied| {
            if let Some(events) = events {
                // Whoever listens must learn why; waiting for room is fine, nothing else is left to do.
                let _ =
                    events.blocking_send(ServerEvent::Failed(format!("the receiving loop stopped: {died}")));
            }
        };
        let driver = poll::spawn_reporting("transfer", move |waker| self.serve(waker), obituary)?;
        Ok(RunningServer { driver })
    }

    /// Receives until `waker` is stopped.
    fn serve(self, waker: &Waker) -> io::Result<()> {
        let sockets = self.sockets.into_iter().map(BatchSocket::new).collect::<io::Result<Vec<_>>>()?;
        // One epoll set for the loop's life: no descriptor list rebuilt per wake-up.
        let mut poller = Poller::new()?;
        poller.add(waker.as_fd(), WAKER)?;
        for (token, socket) in (FIRST_SOCKET..).zip(&sockets) {
            poller.add(socket.socket().as_fd(), token)?;
        }
        poll::tighten_timer_slack();
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(io::Error::other)?;
        let config = EndpointConfig {
            limits: self.config.limits,
            caps: Caps { max_sessions: self.config.max_sessions, max_per_source: self.config.max_per_source },
            max_buffered: self.config.max_buffered,
            secret,
        };
        let fault = std::env::var(FAULT_ENV).is_ok_and(|v| v == "panic");
        let mut state = Loop {
            endpoint: Endpoint::new(config, Instant::now()),
            files: HashMap::new(),
            stored: HashMap::new(),
            dir: self.dir,
            overwrite: self.config.overwrite,
            events: self.events,
            reports_dropped: 0,
        };
        let (mut bufs, mut out, mut buf) = (RecvBuffers::default(), SendBuffer::default(), Vec::new());
        let mut look_first = LookFirst::new();
        while !waker.is_stopped() {
            // The next datagram may have come while we sent.
            let looked = look_first.should_look();
            let mut received = if looked { state.receive_all(&sockets, &mut bufs, fault) } else { 0 };
            if looked {
                look_first.found(received > 0);
            }
            if received == 0 {
                let now = Instant::now();
                let deadline = state.endpoint.poll_timeout(now);
                if poller.wait(deadline)?.contains(&WAKER) {
                    waker.clear();
                }
                received = state.receive_all(&sockets, &mut bufs, fault);
            }
            let now = Instant::now();
            tracing::trace!(received, sessions = state.endpoint.sessions(), "transfer: round");
            state.endpoint.handle_timeout(now);
            state.handle_events(now);
            send_all(&mut state.endpoint, &sockets, &mut out, &mut buf);
        }
        // Tell the senders still sending, so they stop now rather than after
        // their timeout; dropping the files removes what they had sent.
        state.endpoint.shutdown();
        send_all(&mut state.endpoint, &sockets, &mut out, &mut buf);
        if state.reports_dropped > 0 {
            warn!(
                reports = state.reports_dropped,
                "transfer: reports dropped because no one read them in time"
            );
        }
        Ok(())
    }
}

/// Sends everything the endpoint has to send, batched per destination.
fn send_all(endpoint: &mut Endpoint, sockets: &[BatchSocket], out: &mut SendBuffer, buf: &mut Vec<u8>) {
    let mut current: Option<(usize, SocketAddr)> = None;
    let flush = |out: &mut SendBuffer, (local, peer): (usize, SocketAddr)| {
        if let Err(e) = sockets[local].flush(out, peer) {
            tracing::debug!(%peer, error = %e, "transfer: send failed");
        }
    };
    while let Some(to) = endpoint.poll_transmit(buf) {
        if let Some(previous) = current.filter(|&c| c != to) {
            flush(out, previous);
        }
        current = Some(to);
        if let Err(e) = sockets[to.0].push(out, to.1, buf) {
            tracing::debug!(peer = %to.1, error = %e, "transfer: send failed");
        }
    }
    if let Some(last) = current {
        flush(out, last);
    }
}

/// The loop's state beside the endpoint: the files of the sessions.
struct Loop {
    endpoint: Endpoint,
    files: HashMap<SessionKey, Incoming>,
    stored: HashMap<SessionKey, PathBuf>,
    dir: Arc<ReceiveDir>,
    overwrite: bool,
    events: Option<mpsc::Sender<ServerEvent>>,
    reports_dropped: u64,
}

impl Loop {
    /// Takes in what every socket has queued; returns how many messages.
    fn receive_all(&mut self, sockets: &[BatchSocket], bufs: &mut RecvBuffers, fault: bool) -> usize {
        let now = Instant::now();
        let mut total = 0;
        for (local, socket) in sockets.iter().enumerate() {
            let drained = socket.drain(bufs, ROUNDS, |r| {
                assert!(!fault, "{FAULT_ENV} asked for it");
                if let Some(new) = self.endpoint.handle_datagram(now, local, r.from, r.data) {
                    match Incoming::create(&self.dir, new.name(), self.overwrite, new.size()) {
                        Ok(file) => {
                            self.files.insert(new.key(), file);
                            self.endpoint.accept(now, new);
                        }
                        Err(reason) => self.endpoint.refuse(new, &reason),
                    }
                }
            });
            match drained {
                Ok(n) => total += n,
                // An ICMP error for a sender that went away: its session times out.
                Err(e) => tracing::debug!(error = %e, "transfer: receive failed"),
            }
        }
        total
    }

    /// Writes, stores and reports what the sessions produced.
    fn handle_events(&mut self, now: Instant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                EndpointEvent::Data(key, data) => {
                    let written = self.files.get_mut(&key).map(|f| f.write(&data));
                    if let Some(Err(e)) = written {
                        self.files.remove(&key);
                        let message =
                            format!("the receiver cannot write the file: {}", crate::net::describe(&e));
                        self.endpoint.abort(now, key, message);
                    }
                }
                EndpointEvent::Verified(key) => {
                    let stored = match self.files.remove(&key) {
                        Some(file) => file.commit(),
                        None => Err("the file is gone".to_owned()),
                    };
                    if let Ok(path) = &stored {
                        self.stored.insert(key, path.clone());
                    }
                    self.endpoint.committed(now, key, stored.map(drop));
                }
                EndpointEvent::Ended(ended) => {
                    // Dropping the file removes what was received of it.
                    self.files.remove(&ended.key);
                    let path = self.stored.remove(&ended.key);
                    self.report(ended, path);
                }
            }
        }
    }

    /// Hands a finished (or refused) transfer to whoever listens, and logs it;
    /// failures are warnings only when no one listens for reports.
    fn report(&mut self, ended: Ended, path: Option<PathBuf>) {
        let Ended { key: (_, from, _), name, protocol, duration, error, stats } = ended;
        let report = ReceiveReport {
            from,
            name,
            path: path.filter(|_| error.is_none()),
            protocol,
            bytes: stats.bytes,
            seconds: duration.as_secs_f64(),
            error,
            stats,
        };
        match (&report.error, &self.events) {
            (None, _) => {
                tracing::debug!(%from, name = %report.name, bytes = report.bytes, "transfer: stored")
            }
            (Some(e), Some(_)) => tracing::debug!(%from, name = %report.name, error = %e, "transfer: failed"),
            (Some(e), None) => warn!(%from, name = %report.name, error = %e, "transfer: failed"),
        }
        if let Some(events) = &self.events
            && events.try_send(ServerEvent::Received(report)).is_err()
        {
            self.reports_dropped += 1;
        }
    }
}

//! The receiving server: one loop owns every socket and every session.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::thread;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;
use tracing::warn;

use crate::batch::{BatchSocket, RecvBuffers, SendBuffer};
use crate::net::Endpoint;
use crate::poll::{self, Waker};
use crate::server::{Service, ServiceError};
use crate::shutdown::Shutdown;
use crate::transfer::packet::{ErrorCode, Kind, Packet, Repr};
use crate::transfer::receiver::refusal;
use crate::transfer::session::Incoming;
use crate::transfer::{Protocol, Receiver, ReceiverEvent, ReceiverLimits, ReceiverStats};

use super::{LookFirst, ROUNDS};

/// How the receiving server stores files.
#[derive(Clone, Debug)]
pub struct ReceiveConfig {
    /// Files land here and nowhere else.
    pub dir: PathBuf,
    /// Replace existing files.
    pub overwrite: bool,
    /// What each session is granted.
    pub limits: ReceiverLimits,
    /// Sessions at once; more are refused.
    pub max_sessions: usize,
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

struct Session {
    engine: Receiver,
    file: Option<Incoming>,
    name: String,
    protocol: Protocol,
    started: Instant,
    stored: Option<PathBuf>,
}

/// The receiving server (`transfer recv`, and `socketeer serve`'s transfer
/// service): one socket, any number of sessions up to a cap.
#[derive(Debug)]
pub struct TransferServer {
    sockets: Vec<UdpSocket>,
    endpoints: Vec<Endpoint>,
    config: ReceiveConfig,
    reports: Option<UnboundedSender<ReceiveReport>>,
}

impl TransferServer {
    /// A server on `sockets` (one per address); each finished session is
    /// reported on `reports`.
    ///
    /// # Errors
    /// When a socket's address cannot be read.
    pub fn new(
        sockets: Vec<UdpSocket>,
        config: ReceiveConfig,
        reports: Option<UnboundedSender<ReceiveReport>>,
    ) -> io::Result<Self> {
        let endpoint = |s: &UdpSocket| {
            s.local_addr().map(|addr| Endpoint {
                service: "transfer",
                transport: crate::net::Transport::Udp,
                addr,
            })
        };
        let endpoints = sockets.iter().map(endpoint).collect::<io::Result<_>>()?;
        Ok(TransferServer { sockets, endpoints, config, reports })
    }
}

impl Service for TransferServer {
    fn name(&self) -> &'static str {
        "transfer"
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.endpoints.clone()
    }

    fn detail(&self) -> Option<String> {
        Some(format!("into {}", self.config.dir.display()))
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

/// A receiving server running on its own thread.
#[derive(Debug)]
pub struct RunningServer {
    waker: Waker,
    thread: thread::JoinHandle<io::Result<()>>,
    ended: Option<oneshot::Receiver<()>>,
}

impl RunningServer {
    /// Completes when the receiving thread has ended, for whatever reason
    /// (stopped, failed or panicked). Cancel-safe.
    pub async fn finished(&mut self) {
        if let Some(ended) = &mut self.ended {
            // Sent or dropped as the thread ends: either way it has.
            let _ = ended.await;
            self.ended = None;
        }
    }

    /// Stops the server; transfers in progress are abandoned (their
    /// temporary files removed).
    ///
    /// # Errors
    /// When the loop failed or panicked.
    pub fn stop(self) -> Result<(), ServiceError> {
        self.waker.stop();
        match self.thread.join() {
            Ok(ended) => ended.map_err(ServiceError::io("the receiving loop")),
            Err(panic) => Err(ServiceError::panicked(&*panic)),
        }
    }
}

impl TransferServer {
    /// Starts receiving on a thread of its own.
    ///
    /// # Errors
    /// When the wake-up descriptor or the thread cannot be created.
    pub fn spawn(self) -> io::Result<RunningServer> {
        let waker = Waker::new()?;
        let loop_waker = waker.clone();
        let (ended_tx, ended) = oneshot::channel();
        let thread = thread::Builder::new().name("transfer".to_owned()).spawn(move || {
            // Dropped as the thread ends, by return or by panic: `finished` sees both.
            let _ended = ended_tx;
            self.serve(&loop_waker)
        })?;
        Ok(RunningServer { waker, thread, ended: Some(ended) })
    }

    /// Receives until `waker` is stopped.
    fn serve(self, waker: &Waker) -> io::Result<()> {
        let sockets = self.sockets.into_iter().map(BatchSocket::new).collect::<io::Result<Vec<_>>>()?;
        poll::tighten_timer_slack();
        let mut sessions: HashMap<SessionKey, Session> = HashMap::new();
        let (mut bufs, mut out, mut buf) = (RecvBuffers::default(), SendBuffer::default(), Vec::new());
        let mut replies: Vec<(SessionKey, Vec<u8>)> = Vec::new();
        let mut look_first = LookFirst::new();
        let server = Server { config: &self.config, reports: &self.reports };
        while !waker.is_stopped() {
            // The next datagram may have come while we sent.
            let looked = look_first.should_look();
            let mut received = if looked {
                receive_all(&sockets, &mut bufs, &mut sessions, &server, &mut replies)
            } else {
                0
            };
            if looked {
                look_first.found(received > 0);
            }
            if received == 0 {
                let now = Instant::now();
                let deadline = sessions.values().filter_map(|s| s.engine.poll_timeout(now)).min();
                let mut fds = vec![waker.as_fd()];
                fds.extend(sockets.iter().map(|s| s.socket().as_fd()));
                if poll::wait(&fds, deadline)?[0] {
                    waker.clear();
                }
                received = receive_all(&sockets, &mut bufs, &mut sessions, &server, &mut replies);
            }
            let now = Instant::now();
            tracing::trace!(received, sessions = sessions.len(), "transfer: round");
            for ((local, to, _), datagram) in replies.drain(..) {
                let _ = sockets[local].socket().send_to(&datagram, to);
            }
            for (&(local, peer, _), session) in &mut sessions {
                session.step(now, peer, &server);
                let socket = &sockets[local];
                while session.engine.poll_transmit(&mut buf) {
                    if let Err(e) = socket.push(&mut out, peer, &buf) {
                        tracing::debug!(%peer, error = %e, "transfer: send failed");
                    }
                }
                if let Err(e) = socket.flush(&mut out, peer) {
                    tracing::debug!(%peer, error = %e, "transfer: send failed");
                }
            }
            sessions.retain(|_, s| !s.engine.is_finished(now));
        }
        // Tell the senders still sending, so they stop now rather than after
        // their timeout; dropping the sessions removes their temporary files.
        for (&(local, peer, session), _) in sessions.iter().filter(|(_, s)| s.engine.is_active()) {
            Repr::Error { code: ErrorCode::Aborted, message: "the receiver is shutting down" }
                .emit(session, &mut buf);
            let _ = sockets[local].socket().send_to(&buf, peer);
        }
        Ok(())
    }
}

/// A session is known by the socket it arrived on, its sender, and its id.
type SessionKey = (usize, SocketAddr, u32);

/// Takes in what every socket has queued; returns how many messages.
fn receive_all(
    sockets: &[BatchSocket],
    bufs: &mut RecvBuffers,
    sessions: &mut HashMap<SessionKey, Session>,
    server: &Server<'_>,
    replies: &mut Vec<(SessionKey, Vec<u8>)>,
) -> usize {
    let now = Instant::now();
    let mut total = 0;
    for (local, socket) in sockets.iter().enumerate() {
        let drained =
            socket.drain(bufs, ROUNDS, |r| arrive(sessions, server, replies, now, (local, r.from), r.data));
        match drained {
            Ok(n) => total += n,
            // An ICMP error for a sender that went away: its session times out.
            Err(e) => tracing::debug!(error = %e, "transfer: receive failed"),
        }
    }
    total
}

/// What every session of a server shares.
struct Server<'a> {
    config: &'a ReceiveConfig,
    reports: &'a Option<UnboundedSender<ReceiveReport>>,
}

impl Server<'_> {
    /// Hands a finished (or refused) transfer to whoever listens, and logs it;
    /// failures are warnings only when no one listens for reports.
    fn report(&self, report: ReceiveReport) {
        match (&report.error, self.reports) {
            (None, _) => {
                tracing::debug!(from = %report.from, name = %report.name, bytes = report.bytes, "transfer: stored")
            }
            (Some(e), Some(_)) => {
                tracing::debug!(from = %report.from, name = %report.name, error = %e, "transfer: failed")
            }
            (Some(e), None) => {
                warn!(from = %report.from, name = %report.name, error = %e, "transfer: failed")
            }
        }
        if let Some(reports) = self.reports {
            let _ = reports.send(report);
        }
    }
}

/// Handles one datagram that arrived at the server.
fn arrive(
    sessions: &mut HashMap<SessionKey, Session>,
    server: &Server<'_>,
    replies: &mut Vec<(SessionKey, Vec<u8>)>,
    now: Instant,
    (local, from): (usize, SocketAddr),
    data: &[u8],
) {
    let Ok(packet) = Packet::new_checked(data) else { return };
    let key = (local, from, packet.session());
    if let Some(session) = sessions.get_mut(&key) {
        session.engine.handle_datagram(now, &packet);
        if session.engine.wants_ack_now() {
            let mut ack = Vec::new();
            if session.engine.poll_transmit(&mut ack) {
                replies.push((key, ack));
            }
        }
        return;
    }
    let mut reply = Vec::new();
    match Repr::parse(&packet) {
        Ok(Repr::Hello(hello)) => {
            let config = server.config;
            let active = sessions.values().filter(|s| s.engine.is_active()).count();
            let opened = if active >= config.max_sessions {
                Err("the receiver is busy; try again later".to_owned())
            } else {
                make_room(sessions, config.max_sessions * LINGERING_PER_SESSION);
                Incoming::create(&config.dir, hello.name, config.overwrite).and_then(|file| {
                    let engine = Receiver::accept(now, packet.session(), &hello, config.limits)?;
                    Ok(Session {
                        engine,
                        file: Some(file),
                        name: hello.name.to_owned(),
                        protocol: hello.protocol,
                        started: now,
                        stored: None,
                    })
                })
            };
            match opened {
                Ok(session) => {
                    tracing::debug!(%from, name = %session.name, protocol = %session.protocol, "transfer: incoming file");
                    sessions.insert(key, session);
                }
                Err(message) => {
                    refusal(packet.session(), &message, &mut reply);
                    replies.push((key, reply));
                    server.report(ReceiveReport {
                        from,
                        name: hello.name.to_owned(),
                        path: None,
                        protocol: hello.protocol,
                        bytes: 0,
                        seconds: 0.0,
                        error: Some(format!("refused: {message}")),
                        stats: ReceiverStats::default(),
                    });
                }
            }
        }
        // A session this receiver does not know (it restarted, or the session
        // ended long ago): tell the sender so it stops at once.
        Ok(_) if matches!(packet.kind(), Kind::Data | Kind::Fin) => {
            let message = "no such session on the receiver (did it restart?)";
            Repr::Error { code: ErrorCode::Aborted, message }.emit(packet.session(), &mut reply);
            replies.push((key, reply));
        }
        _ => {}
    }
}

/// Finished sessions kept (to answer a repeated FIN) per session allowed at
/// once: they do not count against `--max-sessions`, so files sent one after
/// another are never refused, but their number stays bounded.
const LINGERING_PER_SESSION: usize = 16;

/// Forgets finished sessions, any of them, until fewer than `limit` remain:
/// a sender whose FIN-ACK was lost then gets "no such session" for its repeat.
fn make_room(sessions: &mut HashMap<SessionKey, Session>, limit: usize) {
    while sessions.len() >= limit {
        let Some(&key) = sessions.iter().find(|(_, s)| !s.engine.is_active()).map(|(k, _)| k) else {
            return;
        };
        sessions.remove(&key);
    }
}

impl Session {
    /// Writes out what arrived, stores verified content, fires timers and reports the end.
    fn step(&mut self, now: Instant, peer: SocketAddr, server: &Server<'_>) {
        while let Some(data) = self.engine.poll_data() {
            let written = self.file.as_mut().map(|f| f.write(&data));
            if let Some(Err(e)) = written {
                self.file = None;
                self.engine.abort(format!("the receiver cannot write the file: {e}"));
            }
        }
        if self.engine.poll_timeout(now).is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        while let Some(event) = self.engine.poll_event() {
            let error = match event {
                ReceiverEvent::Verified => {
                    let stored = match self.file.take() {
                        Some(file) => file.commit(),
                        None => Err("the file is gone".to_owned()),
                    };
                    self.stored = stored.as_ref().ok().cloned();
                    self.engine.committed(now, stored.map(drop));
                    continue;
                }
                ReceiverEvent::Done => None,
                ReceiverEvent::Failed(e) => {
                    // Dropping the file removes the temporary one: nothing half-written stays.
                    self.file = None;
                    Some(e.to_string())
                }
            };
            let report = ReceiveReport {
                from: peer,
                name: self.name.clone(),
                path: self.stored.clone().filter(|_| error.is_none()),
                protocol: self.protocol,
                bytes: self.engine.stats().bytes,
                seconds: now.duration_since(self.started).as_secs_f64(),
                error,
                stats: self.engine.stats(),
            };
            server.report(report);
        }
    }
}

//! The only transfer code that touches sockets and files: one plain loop per
//! side that feeds its engine, waits until the engine's deadline (precise to
//! microseconds, [`crate::poll::wait`]), and sends what the engine writes, in
//! batches ([`crate::batch`]). No protocol decision is made here.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use super::packet::{ErrorCode, Kind, Packet, Repr};
use super::receiver::refusal;
use super::session::Incoming;
use super::{Protocol, Receiver, ReceiverEvent, ReceiverLimits, ReceiverStats, Sender, SenderConfig};
use super::{SenderEvent, SenderStats, TransferError};
use crate::batch::{BatchSocket, RecvBuffers, SendBuffer};
use crate::impair::units::Rate;
use crate::net::Endpoint;
use crate::poll::{self, Waker};
use crate::server::Service;
use crate::shutdown::Shutdown;

/// Blocks the input thread reads per message to the loop: one wake-up per
/// batch instead of per block.
const READ_BATCH: usize = 64;

/// Input batches waiting for the loop: with the window, a bound on memory.
const READ_AHEAD: usize = 8;

/// Receive rounds per wake-up before the loop sends and checks its timers.
const ROUNDS: usize = 8;

/// Whether to look for datagrams before sleeping. Looking saves a poll when
/// the peer already answered (a sender on one core with its receiver, a
/// stream of blocks); it wastes a system call when it never has (a
/// stop-and-wait receiver, which waits for each block). A saturating count
/// of recent looks learns which side of that this loop is on, and every
/// [`RELOOK`]th round looks anyway so that it can change its mind.
#[derive(Debug)]
struct LookFirst {
    score: u8,
    rounds: u32,
}

/// How often a loop that stopped looking first looks anyway.
const RELOOK: u32 = 16;

impl LookFirst {
    fn new() -> Self {
        LookFirst { score: 2, rounds: 0 }
    }

    fn should_look(&mut self) -> bool {
        self.rounds = self.rounds.wrapping_add(1);
        self.score >= 2 || self.rounds.is_multiple_of(RELOOK)
    }

    fn found(&mut self, anything: bool) {
        self.score = if anything { (self.score + 1).min(3) } else { self.score.saturating_sub(1) };
    }
}

/// A transfer that could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The protocol failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// Nothing listens at the receiver's address (ICMP port unreachable).
    #[error("connection refused by {0}; is `socketeer transfer recv` running there?")]
    Refused(SocketAddr),
    /// Reading the input or a socket failed.
    #[error("{context}: {}", crate::net::describe(.error))]
    Io {
        /// What was being done.
        context: &'static str,
        /// What the operating system said.
        error: io::Error,
    },
    /// Stopped by the user.
    #[error("interrupted")]
    Interrupted,
}

fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> DriverError {
    move |error| DriverError::Io { context, error }
}

/// What a finished send measured.
#[derive(Clone, Debug, Serialize)]
pub struct SendReport {
    /// The file's name as the receiver got it.
    pub name: String,
    /// The ARQ protocol.
    pub protocol: Protocol,
    /// The window the receiver granted.
    pub window: u32,
    /// The block size the receiver granted.
    pub block: u16,
    /// Content bytes.
    pub bytes: u64,
    /// From the first HELLO to the FIN-ACK.
    pub seconds: f64,
    /// Content bytes per second.
    pub goodput_bytes_per_sec: f64,
    /// The fastest round trip, in milliseconds.
    pub rtt_min_ms: Option<f64>,
    /// The smoothed round trip at the end, in milliseconds.
    pub rtt_avg_ms: Option<f64>,
    /// The sender's counters.
    pub stats: SenderStats,
}

impl fmt::Display for SendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "sent {} ({} bytes) in {:.3} s: {} with {} (window {}, {}-byte blocks)",
            self.name,
            self.bytes,
            self.seconds,
            // In the unit that fits: a slow transfer is not "0.0 MB/s".
            Rate::from_bytes_per_sec(self.goodput_bytes_per_sec).map_or("0B/s".to_owned(), |r| r.to_string()),
            self.protocol,
            self.window,
            self.block
        )?;
        write!(
            f,
            "datagrams: {} sent, {} data, {} retransmitted ({} fast), {} timeouts; {} dropped on arrival",
            s.datagrams_sent, s.data_sent, s.retransmitted, s.fast_retransmits, s.timeouts, s.dropped
        )?;
        if let (Some(min), Some(avg)) = (self.rtt_min_ms, self.rtt_avg_ms) {
            write!(f, "\nrtt min/avg = {min:.3}/{avg:.3} ms")?;
        }
        Ok(())
    }
}

enum Input {
    Blocks(Vec<Vec<u8>>),
    End,
    Failed(io::Error),
}

/// Reads `input` in blocks of `block` bytes on a thread of its own, so a slow
/// pipe never stalls the loop's timers.
fn spawn_reader(mut input: Box<dyn Read + Send>, block: usize, waker: Waker) -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::sync_channel(READ_AHEAD);
    thread::spawn(move || {
        loop {
            let mut batch = Vec::with_capacity(READ_BATCH);
            let mut ended = false;
            while batch.len() < READ_BATCH && !ended {
                match read_block(&mut input, block) {
                    Ok(data) => {
                        ended = data.len() < block;
                        if !data.is_empty() {
                            batch.push(data);
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Input::Failed(e));
                        waker.wake();
                        return;
                    }
                }
            }
            let mut sent = tx.send(Input::Blocks(batch)).is_ok();
            if ended {
                sent &= tx.send(Input::End).is_ok();
            }
            waker.wake();
            if ended || !sent {
                return;
            }
        }
    });
    rx
}

/// Up to `block` bytes; fewer only at the end of the input.
fn read_block(input: &mut dyn Read, block: usize) -> io::Result<Vec<u8>> {
    let mut data = vec![0u8; block];
    let mut filled = 0;
    while filled < block {
        match input.read(&mut data[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    data.truncate(filled);
    Ok(data)
}

/// Sends `input` to the receiver at `target` and waits for its verdict,
/// calling `progress` after each round of the loop. Stops when `waker` is stopped.
///
/// # Errors
/// Why the transfer failed; the receiver keeps nothing in that case.
pub fn send(
    input: Box<dyn Read + Send>,
    target: SocketAddr,
    config: SenderConfig,
    waker: &Waker,
    mut progress: impl FnMut(&SenderStats),
) -> Result<SendReport, DriverError> {
    let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).map_err(io_error("opening a socket"))?;
    socket.connect(target).map_err(io_error("connecting the socket"))?;
    let socket = BatchSocket::new(socket).map_err(io_error("setting up the socket"))?;
    poll::tighten_timer_slack();
    let started = Instant::now();
    let (name, protocol, session) = (config.name.clone(), config.protocol, config.session);
    let mut sender = Sender::new(config, started)?;
    let (mut bufs, mut out, mut buf) = (RecvBuffers::default(), SendBuffer::default(), Vec::new());
    let mut input = Some(input);
    let mut blocks: Option<mpsc::Receiver<Input>> = None;
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut granted = (0, 0);
    let mut look_first = LookFirst::new();
    loop {
        if waker.is_stopped() {
            Repr::Error { code: ErrorCode::Aborted, message: "the sender was interrupted" }
                .emit(session, &mut buf);
            // Telling the receiver is a courtesy: its own timeout covers a lost ERROR.
            let _ = socket.socket().send(&buf);
            return Err(DriverError::Interrupted);
        }
        let now = Instant::now();
        if let Some(rx) = &blocks {
            feed(&mut sender, rx, &mut pending)?;
        }
        while sender.poll_transmit(now, &mut buf) {
            socket.push(&mut out, target, &buf).map_err(|e| send_error(target, e))?;
        }
        socket.flush(&mut out, target).map_err(|e| send_error(target, e))?;
        while let Some(event) = sender.poll_event() {
            match event {
                SenderEvent::Connected { window, block } => {
                    granted = (window, block);
                    if let Some(input) = input.take() {
                        blocks = Some(spawn_reader(input, usize::from(block), waker.clone()));
                    }
                }
                SenderEvent::Done => {
                    let seconds = started.elapsed().as_secs_f64();
                    let stats = sender.stats();
                    let millis = |d: Option<Duration>| d.map(crate::stats::millis);
                    return Ok(SendReport {
                        name,
                        protocol,
                        window: granted.0,
                        block: granted.1,
                        bytes: stats.bytes_in,
                        seconds,
                        goodput_bytes_per_sec: stats.bytes_in as f64 / seconds,
                        rtt_min_ms: millis(sender.rtt().min_rtt()),
                        rtt_avg_ms: millis(sender.rtt().srtt()),
                        stats,
                    });
                }
                SenderEvent::Failed(e) => return Err(e.into()),
            }
        }
        progress(&sender.stats());
        let deadline = sender.poll_timeout();
        let stats = sender.stats();
        // The answer is often in already (the receiver ran while we sent).
        let mut receive = |now| socket.drain(&mut bufs, ROUNDS, |r| sender.handle_datagram(now, r.data));
        let looked = look_first.should_look();
        let found = looked && receive(Instant::now()).map_err(|e| send_error(target, e))? > 0;
        if looked {
            look_first.found(found);
        }
        if !found {
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            tracing::trace!(?wait, ?stats, "transfer: sender waits");
            let ready = poll::wait(&[waker.as_fd(), socket.socket().as_fd()], deadline)
                .map_err(io_error("waiting for the socket"))?;
            if ready[0] {
                waker.clear();
            }
            receive(Instant::now()).map_err(|e| send_error(target, e))?;
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            sender.handle_timeout(Instant::now());
        }
    }
}

fn send_error(target: SocketAddr, e: io::Error) -> DriverError {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        DriverError::Refused(target)
    } else {
        DriverError::Io { context: "talking to the receiver", error: e }
    }
}

/// Moves input into the engine while it has room.
fn feed(
    sender: &mut Sender,
    rx: &mpsc::Receiver<Input>,
    pending: &mut Vec<Vec<u8>>,
) -> Result<(), DriverError> {
    while sender.wants_block() {
        if let Some(block) = pending.pop() {
            sender.push_block(block);
            continue;
        }
        match rx.try_recv() {
            Ok(Input::Blocks(mut batch)) => {
                batch.reverse();
                *pending = batch;
            }
            Ok(Input::End) => sender.end_input(),
            Ok(Input::Failed(e)) => return Err(DriverError::Io { context: "reading the input", error: e }),
            Err(_) => break,
        }
    }
    Ok(())
}

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

    fn run(self: Box<Self>, shutdown: Shutdown) -> BoxFuture<'static, ()> {
        async move {
            let running = match self.spawn() {
                Ok(running) => running,
                Err(e) => return warn!(error = %e, "transfer: cannot start"),
            };
            shutdown.triggered().await;
            match tokio::task::spawn_blocking(move || running.stop()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "transfer: the receiving loop failed"),
                Err(_) => warn!("transfer: the receiving loop panicked"),
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
}

impl RunningServer {
    /// Stops the server; transfers in progress are abandoned (their
    /// temporary files removed).
    ///
    /// # Errors
    /// When the loop failed.
    pub fn stop(self) -> io::Result<()> {
        self.waker.stop();
        self.thread.join().map_err(|_| io::Error::other("the transfer thread panicked"))?
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
        let thread =
            thread::Builder::new().name("transfer".to_owned()).spawn(move || self.serve(&loop_waker))?;
        Ok(RunningServer { waker, thread })
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

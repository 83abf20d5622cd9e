//! The sending side: a reader thread feeds blocks from the input, and one
//! loop owns the socket and the sender engine.

use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::batch::{BatchSocket, RecvBuffers, SendBuffer};
use crate::poll::{self, DriverThread, Poller, Waker};
use crate::transfer::packet::{ErrorCode, Repr};
use crate::transfer::{Protocol, Sender, SenderConfig};
use crate::transfer::{SenderEvent, SenderStats, TransferError};
use crate::units::Rate;

use super::{LookFirst, ROUNDS};

/// Blocks the input thread reads per message to the loop: one wake-up per
/// batch instead of per block.
const READ_BATCH: usize = 64;

/// Input batches waiting for the loop: with the window, a bound on memory.
const READ_AHEAD: usize = 8;

/// The poller's tokens.
const WAKER: u64 = 0;
const SOCKET: u64 = 1;

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
    /// The receiver's address that answered.
    pub to: SocketAddr,
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

/// Runs [`send`] on a driver thread of its own: stop it through its waker
/// (the receiver is told), and a panic is kept as why it died rather than
/// lost.
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn_send(
    input: Box<dyn Read + Send>,
    targets: Vec<SocketAddr>,
    config: SenderConfig,
    progress: impl FnMut(&SenderStats) + Send + 'static,
) -> io::Result<DriverThread<Result<SendReport, DriverError>>> {
    poll::spawn("transfer-send", move |waker| Ok(send(input, &targets, config, waker, progress)))
}

/// Sends `input` to the receiver at the first of `targets` that answers (as
/// `nc` tries every address of a name: `localhost` is `::1` and
/// `127.0.0.1`), and waits for its verdict, calling `progress` after each
/// round of the loop. Stops when `waker` is stopped.
///
/// # Errors
/// Why the transfer failed; the receiver keeps nothing in that case. When
/// no address answered, the error of the last one.
pub fn send(
    input: Box<dyn Read + Send>,
    targets: &[SocketAddr],
    config: SenderConfig,
    waker: &Waker,
    mut progress: impl FnMut(&SenderStats),
) -> Result<SendReport, DriverError> {
    let mut input = input;
    let mut last =
        DriverError::Io { context: "resolving the receiver", error: io::Error::other("no address") };
    for (i, &target) in targets.iter().enumerate() {
        match attempt(input, target, config.clone(), waker, &mut progress) {
            Ok(report) => return Ok(report),
            // Nothing was read from the input yet: the next address gets it whole.
            Err((error, Some(unread))) if i + 1 < targets.len() && error.is_unreachable() => {
                tracing::debug!(%target, %error, "transfer: trying the next address");
                (input, last) = (unread, error);
            }
            Err((error, _)) => return Err(error),
        }
    }
    Err(last)
}

impl DriverError {
    /// True when the address did not lead to a receiver: refused,
    /// unreachable, or silent before the session started.
    fn is_unreachable(&self) -> bool {
        matches!(
            self,
            DriverError::Refused(_)
                | DriverError::Io { .. }
                | DriverError::Transfer(TransferError::PeerSilent(_))
        )
    }
}

/// One try at one address. On failure, gives the input back if nothing was read from it.
#[allow(clippy::type_complexity)]
fn attempt(
    input: Box<dyn Read + Send>,
    target: SocketAddr,
    config: SenderConfig,
    waker: &Waker,
    progress: &mut impl FnMut(&SenderStats),
) -> Result<SendReport, (DriverError, Option<Box<dyn Read + Send>>)> {
    let mut input = Some(input);
    let result = run(&mut input, target, config, waker, progress);
    result.map_err(|e| (e, input))
}

/// The loop of one try; takes the input out of `input` once the receiver accepted the session.
fn run(
    input: &mut Option<Box<dyn Read + Send>>,
    target: SocketAddr,
    config: SenderConfig,
    waker: &Waker,
    progress: &mut impl FnMut(&SenderStats),
) -> Result<SendReport, DriverError> {
    let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).map_err(io_error("opening a socket"))?;
    socket.connect(target).map_err(io_error("connecting the socket"))?;
    let socket = BatchSocket::new(socket).map_err(io_error("setting up the socket"))?;
    let mut poller = Poller::new().map_err(io_error("setting up the poller"))?;
    poller.add(waker.as_fd(), WAKER).map_err(io_error("setting up the poller"))?;
    poller.add(socket.socket().as_fd(), SOCKET).map_err(io_error("setting up the poller"))?;
    poll::tighten_timer_slack();
    let started = Instant::now();
    let (name, protocol, session) = (config.name.clone(), config.protocol, config.session);
    let mut sender = Sender::new(config, started)?;
    let (mut bufs, mut out, mut buf) = (RecvBuffers::default(), SendBuffer::default(), Vec::new());
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
                        to: target,
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
            if poller.wait(deadline).map_err(io_error("waiting for the socket"))?.contains(&WAKER) {
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

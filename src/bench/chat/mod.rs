//! `bench chat`: fan-out load on a chat server, or the same load on Redis
//! pub/sub for comparison.
//!
//! N clients connect and join (the clock has not started: with thousands of
//! clients, joining is measured on its own); then M senders send messages
//! for a fixed time, either at a fixed total rate or as fast as their window
//! allows (a sender may have `window` messages in flight: sent, but not yet
//! received by every recipient). Every receiver checks each message's sender
//! and sequence number and measures its publish-to-receive latency from the
//! send time the message carries. When the time is up the senders stop, and
//! the receivers wait (up to the reply timeout) for everything sent.
//!
//! Optional stalled clients connect and never read: they show what the
//! server does with a client that cannot keep up (it should drop it, and
//! the others should not notice).
//!
//! With a chat server the senders are among the N clients and receive one
//! another's messages (not their own). A Redis connection that subscribed
//! cannot publish, so there the senders are M more connections, and every
//! message goes to all N.

mod tally;
mod wire;

use std::fmt;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Latency, latency_histogram};
use crate::client::{ClientError, Timeouts};
use crate::net;
use tally::{Tally, Window};
pub use wire::{MAX_HEADER, Wire};
use wire::{Role, Stamp};

/// Connections being set up at once: more would overflow the server's listen
/// backlog, and a dropped SYN costs a second.
const CONNECTING_AT_ONCE: usize = 128;
/// The most messages a sender writes at once.
const MAX_BATCH: u64 = 256;
/// How often a sender at a fixed rate wakes up.
const TICK: Duration = Duration::from_millis(1);
/// A receiver's read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// What load to put on which server.
#[derive(Clone, Debug)]
pub struct ChatLoad {
    /// The server.
    pub server: SocketAddr,
    /// Its protocol.
    pub wire: Wire,
    /// Connections that receive messages.
    pub clients: usize,
    /// Senders (among the clients on a chat server, in addition to them on Redis).
    pub senders: usize,
    /// Connections that never read.
    pub stalled: usize,
    /// Message payload size in bytes, at least [`MAX_HEADER`].
    pub size: usize,
    /// Messages per second from all senders together; `None` for as fast as the windows allow.
    pub rate: Option<f64>,
    /// Messages each sender may have in flight, when there is no rate.
    pub window: usize,
    /// How long the senders send.
    pub duration: Duration,
    /// Connect timeout, and how long receivers wait for stragglers at the end.
    pub timeouts: Timeouts,
}

/// What a chat load measured.
#[derive(Clone, Debug, Serialize)]
pub struct ChatReport {
    /// The server.
    pub server: SocketAddr,
    /// Its protocol.
    pub wire: Wire,
    /// Receiving connections.
    pub clients: usize,
    /// Senders.
    pub senders: usize,
    /// Connections that never read.
    pub stalled: usize,
    /// Payload size in bytes.
    pub size: usize,
    /// The asked total rate, if any.
    pub rate: Option<f64>,
    /// Messages in flight per sender (without a rate).
    pub window: usize,
    /// From the first connect until every connection had joined.
    pub connect_seconds: f64,
    /// From the start until the last delivery.
    pub seconds: f64,
    /// Messages sent.
    pub sent: u64,
    /// Deliveries that should have happened: each message to each of its recipients.
    pub expected: u64,
    /// Messages received, summed over all receivers.
    pub deliveries: u64,
    /// Deliveries per second.
    pub deliveries_per_sec: f64,
    /// Expected deliveries that never happened.
    pub missing: u64,
    /// Deliveries out of their sender's order (or duplicated).
    pub out_of_order: u64,
    /// True when every message reached every recipient exactly once, in order.
    pub exactly_once_in_order: bool,
    /// Errors the server sent (such as flood-control notices).
    pub server_errors: u64,
    /// The first of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Stalled connections the server closed.
    pub stalled_dropped: usize,
    /// Receiving connections the server closed before the end.
    pub receivers_dropped: usize,
    /// Publish-to-receive latency.
    pub latency: Latency,
}

impl fmt::Display for ChatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pace = self.rate.map_or_else(
            || format!("as fast as a window of {} allows", self.window),
            |rate| format!("{rate} messages/s"),
        );
        writeln!(
            f,
            "{:?} {}: {} clients, {} senders, {} stalled, {}-byte messages, {pace}",
            self.wire, self.server, self.clients, self.senders, self.stalled, self.size
        )?;
        writeln!(f, "joined in {:.3} s", self.connect_seconds)?;
        writeln!(
            f,
            "sent {} messages; {} deliveries in {:.2} s ({:.0}/s)",
            self.sent, self.deliveries, self.seconds, self.deliveries_per_sec
        )?;
        let verdict = if self.exactly_once_in_order { "yes" } else { "NO" };
        writeln!(
            f,
            "every message to every recipient exactly once, in order: {verdict} ({} missing, {} out of order)",
            self.missing, self.out_of_order
        )?;
        if self.stalled > 0 || self.receivers_dropped > 0 {
            writeln!(
                f,
                "dropped by the server: {} of {} stalled, {} receivers",
                self.stalled_dropped, self.stalled, self.receivers_dropped
            )?;
        }
        if let Some(error) = &self.first_error {
            writeln!(f, "server errors: {} (first: {error})", self.server_errors)?;
        }
        write!(f, "{}", self.latency)
    }
}

/// What every connection of a run shares.
struct Run {
    load: ChatLoad,
    /// The zero of the send times that messages carry.
    base: Instant,
    /// When the senders start and stop, once the run has started.
    start: watch::Sender<Option<(Instant, Instant)>>,
    /// Triggered once the senders have stopped, with [`Run::drain_until`] set.
    draining: CancellationToken,
    drain_until: OnceLock<Instant>,
    /// Triggered when the receivers are done: stalled connections then look
    /// whether they were dropped.
    done: CancellationToken,
    windows: Vec<Window>,
    /// Messages each sender has sent so far.
    sent: Vec<AtomicU64>,
    /// Deliveries so far, for progress.
    delivered: Arc<AtomicU64>,
    connecting: Semaphore,
}

impl Run {
    fn sent(&self) -> Vec<u64> {
        self.sent.iter().map(|s| s.load(Ordering::Acquire)).collect()
    }
}

/// What one connection ends with.
enum Outcome {
    Receiver {
        tally: Box<Tally>,
        /// The sender whose messages this connection does not get (its own).
        except: Option<usize>,
        /// False for a Redis publisher, which gets no messages.
        expects: bool,
        closed_early: bool,
    },
    Stalled {
        dropped: bool,
    },
}

/// Connections that have all joined, waiting for the load to start.
pub struct Connected {
    run: Arc<Run>,
    /// Every connection's task, with its role.
    tasks: Vec<(Role, JoinHandle<Result<Outcome, ClientError>>)>,
    /// The sending halves of the senders.
    senders: Vec<JoinHandle<Result<OwnedWriteHalf, ClientError>>>,
    connect_seconds: f64,
}

impl fmt::Debug for Connected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connected").field("connections", &self.tasks.len()).finish()
    }
}

/// What a connection reports once it has joined: the task of its sending
/// half, if it is a sender.
type Joined = Result<Option<JoinHandle<Result<OwnedWriteHalf, ClientError>>>, ClientError>;

/// Messages each sender's recipients, and connections that only receive.
fn recipients_and_readers(load: &ChatLoad) -> (usize, usize) {
    match load.wire {
        Wire::Chat => (load.clients.saturating_sub(1), load.clients.saturating_sub(load.senders)),
        Wire::Redis => (load.clients, load.clients),
    }
}

/// Opens every connection and waits until all have joined; the load starts
/// with [`Connected::start`]. `delivered` counts deliveries as they happen.
///
/// # Errors
/// When a connection fails or is closed before it joined.
pub async fn connect(load: &ChatLoad, delivered: Arc<AtomicU64>) -> Result<Connected, ClientError> {
    let (recipients, readers) = recipients_and_readers(load);
    let run = Arc::new(Run {
        load: load.clone(),
        base: Instant::now(),
        start: watch::Sender::new(None),
        draining: CancellationToken::new(),
        drain_until: OnceLock::new(),
        done: CancellationToken::new(),
        windows: (0..load.senders).map(|_| Window::new(load.window, recipients)).collect(),
        sent: (0..load.senders).map(|_| AtomicU64::new(0)).collect(),
        delivered,
        connecting: Semaphore::new(CONNECTING_AT_ONCE),
    });
    let roles = (0..load.senders)
        .map(Role::Sender)
        .chain(std::iter::repeat_n(Role::Reader, readers))
        .chain(std::iter::repeat_n(Role::Stalled, load.stalled));
    let (joined_tx, mut joined) = mpsc::unbounded_channel::<Joined>();
    let started = Instant::now();
    let tasks: Vec<_> = roles
        .map(|role| {
            let (run, joined) = (run.clone(), joined_tx.clone());
            (role, tokio::spawn(connection(role, run, joined)))
        })
        .collect();
    drop(joined_tx);
    let mut connected = Connected { run, tasks, senders: Vec::new(), connect_seconds: 0.0 };
    for _ in 0..connected.tasks.len() {
        match joined.recv().await {
            Some(Ok(sender)) => connected.senders.extend(sender),
            Some(Err(e)) => {
                connected.abort();
                return Err(e);
            }
            // Every task died without reporting; joining them tells why.
            None => break,
        }
    }
    connected.connect_seconds = started.elapsed().as_secs_f64();
    Ok(connected)
}

impl Connected {
    /// Starts the clock, runs the load and reports. With no senders, holds
    /// the connections open for the duration.
    ///
    /// # Errors
    /// When a connection fails during the run.
    pub async fn start(mut self) -> Result<ChatReport, ClientError> {
        let start = Instant::now();
        let until = start + self.run.load.duration;
        self.run.start.send_replace(Some((start, until)));
        if self.senders.is_empty() {
            tokio::time::sleep_until(until).await;
        }
        let result = self.finish(start).await;
        self.abort();
        result
    }

    async fn finish(&mut self, start: Instant) -> Result<ChatReport, ClientError> {
        let run = self.run.clone();
        // Kept open until the end: a sender that closed would leave the chat.
        let mut open = Vec::new();
        for sender in std::mem::take(&mut self.senders) {
            open.push(self.join(sender).await??);
        }
        let _ = run.drain_until.set(Instant::now() + run.load.timeouts.reply);
        run.draining.cancel();
        let (stalled, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.tasks).into_iter().partition(|(role, _)| *role == Role::Stalled);
        let mut outcomes = Vec::new();
        for (_, task) in others {
            outcomes.push(self.join(task).await??);
        }
        run.done.cancel();
        for (_, task) in stalled {
            outcomes.push(self.join(task).await??);
        }
        drop(open);
        Ok(self.report(start, outcomes))
    }

    async fn join<T>(&self, task: JoinHandle<T>) -> Result<T, ClientError> {
        task.await.map_err(|e| ClientError::Io { addr: self.run.load.server, source: e.into() })
    }

    /// Ends every task still running (after an error, or once reported).
    fn abort(&self) {
        self.run.draining.cancel();
        self.run.done.cancel();
        self.tasks.iter().for_each(|(_, task)| task.abort());
        self.senders.iter().for_each(JoinHandle::abort);
    }

    fn report(&self, start: Instant, outcomes: Vec<Outcome>) -> ChatReport {
        let load = &self.run.load;
        let sent = self.run.sent();
        let (mut deliveries, mut out_of_order, mut errors, mut first_error) = (0, 0, 0, None);
        let mut latency = latency_histogram();
        let (mut last, mut missing, mut stalled_dropped, mut receivers_dropped) = (start, 0, 0, 0);
        for outcome in outcomes {
            match outcome {
                Outcome::Receiver { tally, except, expects, closed_early } => {
                    if expects {
                        missing += tally.missing(&sent, except);
                    }
                    receivers_dropped += usize::from(closed_early);
                    deliveries += tally.deliveries;
                    out_of_order += tally.out_of_order + tally.garbled;
                    errors += tally.errors;
                    first_error = first_error.or(tally.first_error);
                    last = last.max(tally.last_delivery.unwrap_or(start));
                    // Cannot fail: every histogram has the same bounds.
                    let _ = latency.add(&tally.latency);
                }
                Outcome::Stalled { dropped } => stalled_dropped += usize::from(dropped),
            }
        }
        let sent_total: u64 = sent.iter().sum();
        let expected = sent_total * recipients_and_readers(load).0 as u64;
        let seconds = match load.senders {
            0 => load.duration.as_secs_f64(),
            _ => (last - start).as_secs_f64().max(1e-6),
        };
        ChatReport {
            server: load.server,
            wire: load.wire,
            clients: load.clients,
            senders: load.senders,
            stalled: load.stalled,
            size: load.size,
            rate: load.rate,
            window: load.window,
            connect_seconds: self.connect_seconds,
            seconds,
            sent: sent_total,
            expected,
            deliveries,
            deliveries_per_sec: deliveries as f64 / seconds,
            missing,
            out_of_order,
            exactly_once_in_order: missing == 0 && out_of_order == 0 && deliveries == expected,
            server_errors: errors,
            first_error,
            stalled_dropped,
            receivers_dropped,
            latency: Latency::of(&latency),
        }
    }
}

/// One connection: connects, joins, reports in, then plays its role.
async fn connection(
    role: Role,
    run: Arc<Run>,
    joined: mpsc::UnboundedSender<Joined>,
) -> Result<Outcome, ClientError> {
    let (wire, addr) = (run.load.wire, run.load.server);
    let connected = async {
        let _turn = run.connecting.acquire().await;
        let mut stream = net::connect_tcp(&[addr], run.load.timeouts.connect).await?;
        stream.write_all(wire.hello(role)).await.map_err(|e| ClientError::io(addr, e))?;
        Ok::<TcpStream, ClientError>(stream)
    };
    let failed = |e: ClientError| {
        let detail = e.to_string();
        let _ = joined.send(Err(e));
        ClientError::Unexpected { addr, detail }
    };
    let stream = connected.await.map_err(failed)?;
    if role == Role::Stalled {
        let _ = joined.send(Ok(None));
        return Ok(Outcome::Stalled { dropped: stalled(stream, &run).await });
    }
    let (read, write) = stream.into_split();
    let mut receiver = Receiver::new(read, &run, role);
    if !wire.ready_at_once(role) {
        receiver.until_joined().await.map_err(failed)?;
    }
    let (sender, write) = match role {
        Role::Sender(k) => (Some(tokio::spawn(send(k, write, run.clone()))), None),
        // Kept open: dropping the half would close the connection.
        _ => (None, Some(write)),
    };
    let _ = joined.send(Ok(sender));
    let outcome = receiver.run().await;
    drop(write);
    outcome
}

/// A connection that never reads: once the run is over, whether the server
/// closed it (reading then reaches the end, or a reset, within the reply timeout).
async fn stalled(mut stream: TcpStream, run: &Run) -> bool {
    run.done.cancelled().await;
    let mut sink = vec![0u8; READ_BUFFER];
    let until = Instant::now() + run.load.timeouts.reply;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut sink)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Sends sender `k`'s messages from the start to the end of the run, at its
/// share of the rate or as fast as its window allows, and returns the
/// connection's writing half (still open).
async fn send(k: usize, mut write: OwnedWriteHalf, run: Arc<Run>) -> Result<OwnedWriteHalf, ClientError> {
    let load = &run.load;
    let Ok(times) = run.start.subscribe().wait_for(Option::is_some).await.map(|t| *t) else {
        return Ok(write);
    };
    let Some((start, until)) = times else { return Ok(write) };
    let rate = load.rate.map(|rate| rate / load.senders as f64);
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut seq, mut batch, mut payload) = (0u64, Vec::new(), String::new());
    while Instant::now() < until {
        let count = match rate {
            None => tokio::select! {
                room = run.windows[k].wait_for_room(seq) => room.min(MAX_BATCH),
                () = tokio::time::sleep_until(until) => break,
            },
            Some(rate) => {
                // Messages due by now: message n is due n / rate after the start.
                let due = ((Instant::now() - start).as_secs_f64() * rate) as u64 + 1;
                if due <= seq {
                    ticks.tick().await;
                    continue;
                }
                (due - seq).min(MAX_BATCH)
            }
        };
        batch.clear();
        let nanos = u64::try_from((Instant::now() - run.base).as_nanos()).unwrap_or(u64::MAX);
        for _ in 0..count {
            Stamp { sender: k, seq, nanos }.payload(load.size, &mut payload);
            load.wire.message(payload.as_bytes(), &mut batch);
            seq += 1;
        }
        let patience = load.timeouts.reply;
        tokio::time::timeout(patience, write.write_all(&batch))
            .await
            .map_err(|_| ClientError::Timeout { addr: load.server, after: patience })?
            .map_err(|e| ClientError::io(load.server, e))?;
        run.sent[k].store(seq, Ordering::Release);
    }
    Ok(write)
}

/// The reading side of a connection: lines in, tallied.
struct Receiver<'a> {
    read: OwnedReadHalf,
    run: &'a Run,
    role: Role,
    buf: Box<[u8]>,
    /// The bytes of `buf` read and not yet taken as lines.
    unread: std::ops::Range<usize>,
    joined: bool,
    tally: Tally,
    /// The last line before the connection joined (why it was refused, say).
    last_line: String,
}

impl<'a> Receiver<'a> {
    fn new(read: OwnedReadHalf, run: &'a Run, role: Role) -> Receiver<'a> {
        Receiver {
            read,
            run,
            role,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            unread: 0..0,
            joined: false,
            tally: Tally::new(run.load.senders),
            last_line: String::new(),
        }
    }

    /// Reads until the server says this connection joined.
    async fn until_joined(&mut self) -> Result<(), ClientError> {
        let addr = self.run.load.server;
        while !self.joined {
            if !self.fill().await.map_err(|e| ClientError::io(addr, e))? {
                let said = match self.last_line.as_str() {
                    "" => String::new(),
                    line => format!(": {line}"),
                };
                return Err(ClientError::Unexpected {
                    addr,
                    detail: format!("closed the connection before it joined{said}"),
                });
            }
        }
        Ok(())
    }

    /// Reads until everything sent has arrived (after the senders stopped),
    /// the drain time is over, or the server closes the connection.
    async fn run(mut self) -> Result<Outcome, ClientError> {
        let wire = self.run.load.wire;
        let except = match (wire, self.role) {
            (Wire::Chat, Role::Sender(k)) => Some(k),
            _ => None,
        };
        let expects = !(wire == Wire::Redis && matches!(self.role, Role::Sender(_)));
        let mut draining = pin!(self.run.draining.cancelled());
        let mut closed_early = false;
        loop {
            let read = tokio::select! {
                read = self.fill() => read,
                () = &mut draining => break,
            };
            if !read.unwrap_or(false) {
                closed_early = true;
                break;
            }
        }
        let until = self.run.drain_until.get().copied().unwrap_or_else(Instant::now);
        let sent = self.run.sent();
        while !closed_early && expects && !self.tally.complete(&sent, except) {
            match tokio::time::timeout_at(until, self.fill()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false) | Err(_)) => closed_early = true,
                Err(_) => break,
            }
        }
        Ok(Outcome::Receiver { tally: Box::new(self.tally), except, expects, closed_early })
    }

    /// Reads once and takes every whole line; false at the end of the stream.
    /// Cancel-safe: bytes read are kept in `buf` until taken.
    async fn fill(&mut self) -> std::io::Result<bool> {
        if self.unread.end == self.buf.len() {
            self.buf.copy_within(self.unread.clone(), 0);
            self.unread = 0..self.unread.len();
        }
        let n = self.read.read(&mut self.buf[self.unread.end..]).await?;
        if n == 0 {
            return Ok(false);
        }
        self.unread.end += n;
        self.take_lines();
        Ok(true)
    }

    fn take_lines(&mut self) {
        let Receiver { run, buf, unread, joined, tally, last_line, .. } = self;
        let wire = run.load.wire;
        let now = Instant::now();
        let since_base = now - run.base;
        let before = tally.deliveries;
        while let Some(end) = memchr::memchr(b'\n', &buf[unread.clone()]) {
            let raw = &buf[unread.start..unread.start + end];
            unread.start += end + 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if let Some(payload) = wire.delivery(line) {
                match Stamp::parse(payload) {
                    Some(stamp) => {
                        tally.delivered(stamp, now, since_base);
                        if let Some(window) = run.windows.get(stamp.sender) {
                            window.delivered(stamp.seq);
                        }
                    }
                    None => tally.garbled += 1,
                }
            } else if !*joined {
                *joined = wire.joined(line);
                *last_line = String::from_utf8_lossy(line).into_owned();
            } else if wire.is_error(line) {
                tally.error(line);
            }
        }
        if unread.start == unread.end {
            *unread = 0..0;
        }
        run.delivered.fetch_add(tally.deliveries - before, Ordering::Relaxed);
    }
}

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
//! Given several servers (the nodes of a chat cluster), the connections are
//! spread over them in turn, the first sender on the first server: most
//! messages then cross from one node to another.
//!
//! With a chat server the senders are among the N clients and receive one
//! another's messages (not their own). A Redis connection that subscribed
//! cannot publish, so there the senders are M more connections, and every
//! message goes to all N.

mod connection;
mod tally;
mod wire;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::text::plural;
use std::time::Duration;

use serde::Serialize;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientError, Timeouts};
use crate::stats::{Latency, latency_histogram};
use connection::connection;
use tally::{Tally, Window};
use wire::Role;
pub use wire::{MAX_HEADER, Wire};

/// Connections being set up at once: more would overflow the server's listen
/// backlog, and a dropped SYN costs a second.
const CONNECTING_AT_ONCE: usize = 128;
/// The most messages a sender writes at once.
const MAX_BATCH: u64 = 256;
/// How often a sender at a fixed rate wakes up.
const TICK: Duration = Duration::from_millis(1);
/// A receiver's read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// What load to put on which server; the report repeats it (without the
/// durations, which its own times replace).
#[derive(Clone, Debug, Serialize)]
pub struct ChatLoad {
    /// The servers (several: the nodes of one chat cluster); connection k
    /// goes to server k modulo their number. At least one.
    pub servers: Vec<SocketAddr>,
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
    /// Messages each sender writes at once, as fast as its socket takes them, before it
    /// stops (instead of a rate or a window, and of the duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Messages each sender may have in flight, when there is no rate.
    pub window: usize,
    /// How long the senders send.
    #[serde(skip)]
    pub duration: Duration,
    /// Connect timeout, and how long receivers wait for stragglers at the end.
    #[serde(skip)]
    pub timeouts: Timeouts,
}

/// What a chat load measured.
#[derive(Clone, Debug, Serialize)]
pub struct ChatReport {
    /// The load that was asked for.
    #[serde(flatten)]
    pub load: ChatLoad,
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
    /// Of the server errors, its per-client limits (flood control) holding the load back.
    pub server_limited: u64,
    /// Stalled connections the server closed.
    pub stalled_dropped: usize,
    /// Receiving connections the server closed before the end.
    pub receivers_dropped: usize,
    /// Publish-to-receive latency.
    pub latency: Latency,
    /// With several servers: the latency of the receivers of each (those
    /// of the senders' server get their lines directly, the others through
    /// the cluster).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latency_by_server: Vec<ServerLatency>,
}

/// Why a load could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A connection failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The server turned a connection away by one of its per-client limits.
    #[error("{addr} turned a connection away: {notice}")]
    Limited {
        /// The server.
        addr: SocketAddr,
        /// What it said.
        notice: String,
    },
}

/// The latency of the receivers of one server.
#[derive(Clone, Debug, Serialize)]
pub struct ServerLatency {
    /// The server.
    pub server: SocketAddr,
    /// Publish-to-receive latency of its receivers.
    pub latency: Latency,
}

impl fmt::Display for ChatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pace = match (self.load.burst, self.load.rate) {
            (Some(burst), _) => format!("a burst of {burst} from each sender"),
            (None, Some(rate)) => format!("{rate} messages/s"),
            (None, None) => format!("as fast as a window of {} allows", self.load.window),
        };
        let servers: Vec<String> = self.load.servers.iter().map(SocketAddr::to_string).collect();
        writeln!(
            f,
            "{:?} {}: {}, {}, {} stalled, {}-byte messages, {pace}",
            self.load.wire,
            servers.join(" + "),
            plural(self.load.clients as u64, "client"),
            plural(self.load.senders as u64, "sender"),
            self.load.stalled,
            self.load.size
        )?;
        writeln!(f, "joined in {:.3} s", self.connect_seconds)?;
        writeln!(
            f,
            "sent {}; {} deliveries in {:.2} s ({:.0}/s)",
            plural(self.sent, "message"),
            self.deliveries,
            self.seconds,
            self.deliveries_per_sec
        )?;
        let verdict = if self.exactly_once_in_order { "yes" } else { "NO" };
        writeln!(
            f,
            "every message to every recipient exactly once, in order: {verdict} ({} missing, {} out of order)",
            self.missing, self.out_of_order
        )?;
        if self.load.stalled > 0 || self.receivers_dropped > 0 {
            writeln!(
                f,
                "dropped by the server: {} of {} stalled, {} receivers",
                self.stalled_dropped, self.load.stalled, self.receivers_dropped
            )?;
        }
        if let Some(error) = &self.first_error {
            writeln!(f, "server errors: {} (first: {error})", self.server_errors)?;
        }
        write!(f, "{}", self.latency)?;
        for by_server in &self.latency_by_server {
            write!(f, "\n  receivers of {}: {}", by_server.server, by_server.latency)?;
        }
        Ok(())
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
        /// The server it read from.
        server: SocketAddr,
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
type Joined = Result<Option<JoinHandle<Result<OwnedWriteHalf, ClientError>>>, LoadError>;

/// Messages each sender's recipients, and connections that only receive.
fn recipients_and_readers(load: &ChatLoad) -> (usize, usize) {
    match load.wire {
        Wire::Chat | Wire::Irc => (load.clients.saturating_sub(1), load.clients.saturating_sub(load.senders)),
        Wire::Redis => (load.clients, load.clients),
    }
}

/// Opens every connection and waits until all have joined; the load starts
/// with [`Connected::start`]. `delivered` counts deliveries as they happen.
///
/// # Errors
/// When a connection fails or is closed before it joined
/// ([`LoadError::Limited`] when the server said it was one too many).
pub async fn connect(load: &ChatLoad, delivered: Arc<AtomicU64>) -> Result<Connected, LoadError> {
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
        .zip(load.servers.iter().cycle())
        .enumerate()
        .map(|(index, (role, &server))| {
            let (run, joined) = (run.clone(), joined_tx.clone());
            (role, tokio::spawn(connection(role, index, server, run, joined)))
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
        task.await.map_err(|e| ClientError::Io { addr: self.run.load.servers[0], error: e.into() })
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
        let mut limited = 0;
        let mut latency = latency_histogram();
        let mut by_server: Vec<_> = load.servers.iter().map(|_| latency_histogram()).collect();
        let (mut last, mut missing, mut stalled_dropped, mut receivers_dropped) = (start, 0, 0, 0);
        for outcome in outcomes {
            match outcome {
                Outcome::Receiver { tally, server, except, expects, closed_early } => {
                    if expects {
                        missing += tally.missing(&sent, except);
                    }
                    receivers_dropped += usize::from(closed_early);
                    deliveries += tally.deliveries;
                    out_of_order += tally.out_of_order + tally.garbled;
                    errors += tally.errors;
                    limited += tally.limited;
                    first_error = first_error.or(tally.first_error);
                    last = last.max(tally.last_delivery.unwrap_or(start));
                    // Cannot fail: every histogram has the same bounds.
                    let _ = latency.add(&tally.latency);
                    if let Some(at) = load.servers.iter().position(|s| *s == server) {
                        let _ = by_server[at].add(&tally.latency);
                    }
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
            load: load.clone(),
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
            server_limited: limited,
            stalled_dropped,
            receivers_dropped,
            latency: Latency::of(&latency),
            latency_by_server: match load.servers.len() {
                1 => Vec::new(),
                _ => load
                    .servers
                    .iter()
                    .zip(&by_server)
                    .map(|(&server, h)| ServerLatency { server, latency: Latency::of(h) })
                    .collect(),
            },
        }
    }
}

//! `bench echo`: request/response load against an echo server, or against
//! any server that answers a fixed request with a fixed response (Redis's
//! `PING`, for comparison).
//!
//! Every client connects first; the clock starts once all of them have, so
//! connection setup (slow with thousands of clients) is not counted as load.
//! Then each connection sends `pipeline` requests in one write, waits for all
//! their responses, checks them byte for byte, and records the batch's round
//! trip for each request in it; it repeats until the time is up.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::client::{ClientError, Timeouts};
use crate::net::{self, Transport, UDP_RECV_BUFFER};
use crate::stats::{Latency, latency_histogram, record};

/// The request Redis answers with [`REDIS_PONG`]: an inline `PING` command.
pub const REDIS_PING: &[u8] = b"PING\r\n";
/// Redis's answer to [`REDIS_PING`].
pub const REDIS_PONG: &[u8] = b"+PONG\r\n";

/// What load to put on which server.
#[derive(Clone, Debug)]
pub struct EchoLoad {
    /// The server.
    pub server: SocketAddr,
    /// TCP (one connection per client) or UDP (one socket per client).
    pub transport: Transport,
    /// Concurrent clients.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
    /// Requests each client keeps in flight.
    pub pipeline: usize,
    /// One request.
    pub request: Vec<u8>,
    /// The response a request must get.
    pub response: Vec<u8>,
    /// Connect and reply timeouts.
    pub timeouts: Timeouts,
}

/// What a load run measured.
#[derive(Clone, Debug, Serialize)]
pub struct EchoReport {
    /// The server.
    pub server: SocketAddr,
    /// The transport.
    pub transport: Transport,
    /// Concurrent clients.
    pub connections: usize,
    /// Requests in flight per client.
    pub pipeline: usize,
    /// Request size in bytes.
    pub request_bytes: usize,
    /// Requests answered correctly.
    pub requests: u64,
    /// Requests answered wrongly or not at all (UDP timeouts).
    pub errors: u64,
    /// Of the errors, requests whose reply came but differed from the expected one.
    pub mismatched: u64,
    /// Connections (or sockets) that failed mid-run; each stopped there, and
    /// [`Connected::start`] returns the first failure with the report.
    pub failed_clients: usize,
    /// The run was stopped before its duration was up.
    pub stopped_early: bool,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// Correct answers per second.
    pub requests_per_sec: f64,
    /// Round-trip percentiles.
    pub latency: Latency,
}

impl fmt::Display for EchoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {}: {} connections, pipeline {}, {}-byte requests, {:.1} s",
            self.transport, self.server, self.connections, self.pipeline, self.request_bytes, self.seconds
        )?;
        write!(f, "requests: {} ({:.0}/s), errors: {}", self.requests, self.requests_per_sec, self.errors)?;
        if self.mismatched > 0 {
            write!(f, " ({} mismatched)", self.mismatched)?;
        }
        writeln!(f)?;
        if self.stopped_early {
            writeln!(f, "stopped early: these are the numbers so far")?;
        }
        // Failed clients are the caller's error to report, once.
        write!(f, "{}", self.latency)
    }
}

#[derive(Debug)]
struct ClientResult {
    requests: u64,
    errors: u64,
    mismatched: u64,
    histogram: Histogram<u64>,
    /// Why the client stopped before the deadline.
    failure: Option<ClientError>,
}

impl ClientResult {
    fn new() -> ClientResult {
        ClientResult { requests: 0, errors: 0, mismatched: 0, histogram: latency_histogram(), failure: None }
    }

    /// Keeps what was measured before `outcome` failed.
    fn ended(mut self, outcome: Result<(), ClientError>) -> ClientResult {
        self.failure = outcome.err();
        self
    }
}

/// What a run measured, and why it failed if it did: the numbers up to a
/// failure are still worth showing.
#[derive(Debug)]
pub struct Outcome {
    /// The measurements.
    pub report: EchoReport,
    /// Why the run failed, if it did.
    pub failure: Option<Failure>,
}

/// Why a run that measured something still failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Replies came, but not one matched its request: the server speaks
    /// another protocol.
    #[error("no reply matched its request ({mismatched} mismatched)")]
    NoMatch {
        /// Requests answered with something else.
        mismatched: u64,
    },
    /// No request got a reply in time (UDP: nothing listens, or it drops
    /// everything).
    #[error("none of {unanswered} requests got a reply within {}", humantime::format_duration(*.after))]
    NoReply {
        /// Requests sent without a reply.
        unanswered: u64,
        /// How long each waited.
        after: Duration,
    },
    /// Clients failed mid-run (the server went away, say).
    #[error("{failed} of {clients} clients failed mid-run; the first: {first}")]
    Clients {
        /// How many failed.
        failed: usize,
        /// How many there were.
        clients: usize,
        /// The first failure.
        first: ClientError,
    },
}

/// Where the clients wait for each other: each reports when its connection
/// attempt is over, then waits for the deadline the run sets once all have.
#[derive(Clone)]
struct StartLine {
    arrived: mpsc::UnboundedSender<()>,
    deadline: watch::Receiver<Option<Instant>>,
    stop: Arc<AtomicBool>,
}

impl StartLine {
    /// Reports in; the deadline once every client has, or `None` when this
    /// client failed to connect (it does not wait) or the run is gone.
    async fn ready(mut self, connected: bool) -> Option<Running> {
        let _ = self.arrived.send(());
        if !connected {
            return None;
        }
        let deadline = self.deadline.wait_for(Option::is_some).await.ok().and_then(|deadline| *deadline)?;
        Some(Running { deadline, stop: self.stop })
    }
}

/// A client's view of a started run.
struct Running {
    deadline: Instant,
    stop: Arc<AtomicBool>,
}

impl Running {
    /// Whether to send another batch.
    fn goes_on(&self) -> bool {
        Instant::now() < self.deadline && !self.stop.load(Ordering::Relaxed)
    }
}

/// Runs `load` and reports what it measured, ending early when `stop`
/// completes; `completed` counts answered requests as they happen (for a
/// progress bar).
///
/// # Errors
/// When a client cannot connect.
pub async fn run(
    load: &EchoLoad,
    completed: Arc<AtomicU64>,
    stop: impl Future<Output = ()>,
) -> Result<Outcome, ClientError> {
    connect(load, completed).await.start(stop).await
}

/// Opens every client's connection and waits until all attempts are over;
/// the load starts with [`Connected::start`]. Between the two, a caller can
/// wait for the server to be ready (say, to have accepted every connection).
/// `completed` counts answered requests as they happen.
pub async fn connect(load: &EchoLoad, completed: Arc<AtomicU64>) -> Connected {
    let load = Arc::new(load.clone());
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let (set_deadline, deadline) = watch::channel(None);
    let stop = Arc::new(AtomicBool::new(false));
    let start = StartLine { arrived, deadline, stop: stop.clone() };
    let clients: Vec<_> = (0..load.connections)
        .map(|_| {
            let (load, completed, start) = (load.clone(), completed.clone(), start.clone());
            tokio::spawn(async move {
                match load.transport {
                    Transport::Tcp => tcp_client(&load, start, &completed).await,
                    Transport::Udp => udp_client(&load, start, &completed).await,
                }
            })
        })
        .collect();
    drop(start);
    for _ in 0..load.connections {
        if arrivals.recv().await.is_none() {
            break;
        }
    }
    Connected { load, clients, set_deadline, stop }
}

/// Clients whose connections are open, waiting to start the load.
#[derive(Debug)]
pub struct Connected {
    load: Arc<EchoLoad>,
    clients: Vec<tokio::task::JoinHandle<Result<ClientResult, ClientError>>>,
    set_deadline: watch::Sender<Option<Instant>>,
    stop: Arc<AtomicBool>,
}

impl Connected {
    /// Starts the clock, runs the load for its duration (or until `stop`
    /// completes) and reports.
    ///
    /// # Errors
    /// When a client could not connect, or every client failed before
    /// anything was answered (a UDP server that refuses, say): nothing was
    /// measured, so there is nothing to report.
    pub async fn start(self, stop: impl Future<Output = ()>) -> Result<Outcome, ClientError> {
        let Connected { load, clients, set_deadline, stop: stop_flag } = self;
        let started = Instant::now();
        // Fails only when every client has already ended (none could connect): no one to tell.
        let _ = set_deadline.send(Some(started + load.duration));
        let all_done = async {
            let mut results = Vec::with_capacity(clients.len());
            for client in clients {
                results
                    .push(client.await.map_err(|e| ClientError::Io { addr: load.server, error: e.into() }));
            }
            results
        };
        tokio::pin!(all_done);
        let results = tokio::select! {
            results = &mut all_done => results,
            () = stop => {
                stop_flag.store(true, Ordering::Relaxed);
                all_done.await
            }
        };
        let mut total = ClientResult::new();
        let mut failed_clients = 0;
        for result in results {
            let result = result??;
            total.requests += result.requests;
            total.errors += result.errors;
            total.mismatched += result.mismatched;
            // Cannot fail: every histogram has the same bounds.
            let _ = total.histogram.add(&result.histogram);
            if let Some(failure) = result.failure {
                failed_clients += 1;
                total.failure.get_or_insert(failure);
            }
        }
        if let Some(failure) = total.failure.take_if(|_| total.requests == 0 && total.errors == 0) {
            return Err(failure);
        }
        let seconds = started.elapsed().as_secs_f64();
        let report = EchoReport {
            server: load.server,
            transport: load.transport,
            connections: load.connections,
            pipeline: load.pipeline,
            request_bytes: load.request.len(),
            requests: total.requests,
            errors: total.errors,
            mismatched: total.mismatched,
            seconds,
            failed_clients,
            stopped_early: stop_flag.load(Ordering::Relaxed),
            requests_per_sec: total.requests as f64 / seconds,
            latency: Latency::of(&total.histogram),
        };
        let failure = if total.requests == 0 && total.mismatched > 0 {
            Some(Failure::NoMatch { mismatched: total.mismatched })
        } else if total.requests == 0 && total.errors > 0 && total.failure.is_none() {
            Some(Failure::NoReply { unanswered: total.errors, after: load.timeouts.reply })
        } else {
            total.failure.map(|first| Failure::Clients {
                failed: failed_clients,
                clients: load.connections,
                first,
            })
        };
        Ok(Outcome { report, failure })
    }
}

async fn tcp_client(
    load: &EchoLoad,
    start: StartLine,
    completed: &AtomicU64,
) -> Result<ClientResult, ClientError> {
    let stream = net::connect_tcp(&[load.server], load.timeouts.connect).await;
    let Some(running) = start.ready(stream.is_ok()).await else {
        return stream.map(|_| ClientResult::new()).map_err(Into::into);
    };
    let mut result = ClientResult::new();
    let outcome = tcp_load(load, stream?, &running, completed, &mut result).await;
    Ok(result.ended(outcome))
}

/// Sends batches on `stream` until the run ends or the connection fails.
async fn tcp_load(
    load: &EchoLoad,
    mut stream: TcpStream,
    running: &Running,
    completed: &AtomicU64,
    result: &mut ClientResult,
) -> Result<(), ClientError> {
    let addr = load.server;
    let batch = load.request.repeat(load.pipeline);
    let expected = load.response.repeat(load.pipeline);
    let mut answers = vec![0u8; expected.len()];
    let io = |e| ClientError::io(addr, e);
    while running.goes_on() {
        let sent = Instant::now();
        stream.write_all(&batch).await.map_err(io)?;
        tokio::time::timeout(load.timeouts.reply, stream.read_exact(&mut answers))
            .await
            .map_err(|_| ClientError::Timeout { addr, after: load.timeouts.reply })?
            .map_err(io)?;
        record(&mut result.histogram, sent.elapsed(), load.pipeline as u64);
        if answers == expected {
            result.requests += load.pipeline as u64;
            completed.fetch_add(load.pipeline as u64, Ordering::Relaxed);
        } else {
            result.errors += load.pipeline as u64;
            result.mismatched += load.pipeline as u64;
        }
    }
    Ok(())
}

async fn udp_client(
    load: &EchoLoad,
    start: StartLine,
    completed: &AtomicU64,
) -> Result<ClientResult, ClientError> {
    let socket = net::connect_udp(&[load.server]).await;
    let Some(running) = start.ready(socket.is_ok()).await else {
        return socket.map(|_| ClientResult::new()).map_err(Into::into);
    };
    let mut result = ClientResult::new();
    let outcome = udp_load(load, &socket?, &running, completed, &mut result).await;
    Ok(result.ended(outcome))
}

/// Sends batches of datagrams until the run ends or the socket fails; a lost
/// datagram is an error counted, not the end of the run.
async fn udp_load(
    load: &EchoLoad,
    socket: &UdpSocket,
    running: &Running,
    completed: &AtomicU64,
    result: &mut ClientResult,
) -> Result<(), ClientError> {
    let mut buf = vec![0u8; UDP_RECV_BUFFER];
    let io = |e| ClientError::io(load.server, e);
    while running.goes_on() {
        let sent = Instant::now();
        for _ in 0..load.pipeline {
            socket.send(&load.request).await.map_err(io)?;
        }
        for _ in 0..load.pipeline {
            match tokio::time::timeout(load.timeouts.reply, socket.recv(&mut buf)).await {
                Ok(Ok(len)) if buf[..len] == load.response[..] => {
                    record(&mut result.histogram, sent.elapsed(), 1);
                    result.requests += 1;
                    completed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(_)) => {
                    result.errors += 1;
                    result.mismatched += 1;
                }
                Err(_) => result.errors += 1,
                Ok(Err(e)) => return Err(io(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_mismatches_and_leaves_failures_to_the_caller() {
        let report = EchoReport {
            server: "127.0.0.1:7".parse().unwrap(),
            transport: Transport::Udp,
            connections: 2,
            pipeline: 1,
            request_bytes: 4,
            requests: 3,
            errors: 5,
            mismatched: 4,
            failed_clients: 2,
            stopped_early: false,
            seconds: 1.0,
            requests_per_sec: 3.0,
            latency: Latency::default(),
        };
        let text = report.to_string();
        assert!(text.contains("requests: 3 (3/s), errors: 5 (4 mismatched)\n"), "{text}");
        // The error says it on stderr; saying it in the report too said it twice.
        assert!(!text.contains("failed"), "{text}");
    }
}

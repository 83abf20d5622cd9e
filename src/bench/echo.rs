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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Latency, latency_histogram, record};
use crate::client::{ClientError, Timeouts};
use crate::net::{self, Transport, UDP_RECV_BUFFER};

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
        writeln!(f, "requests: {} ({:.0}/s), errors: {}", self.requests, self.requests_per_sec, self.errors)?;
        write!(f, "{}", self.latency)
    }
}

#[derive(Debug)]
struct ClientResult {
    requests: u64,
    errors: u64,
    histogram: Histogram<u64>,
}

impl ClientResult {
    fn new() -> ClientResult {
        ClientResult { requests: 0, errors: 0, histogram: latency_histogram() }
    }
}

/// Where the clients wait for each other: each reports when its connection
/// attempt is over, then waits for the deadline the run sets once all have.
#[derive(Clone)]
struct StartLine {
    arrived: mpsc::UnboundedSender<()>,
    deadline: watch::Receiver<Option<Instant>>,
}

impl StartLine {
    /// Reports in; the deadline once every client has, or `None` when this
    /// client failed to connect (it does not wait) or the run is gone.
    async fn ready(mut self, connected: bool) -> Option<Instant> {
        let _ = self.arrived.send(());
        if !connected {
            return None;
        }
        self.deadline.wait_for(Option::is_some).await.ok().and_then(|deadline| *deadline)
    }
}

/// Runs `load` and reports what it measured; `completed` counts answered
/// requests as they happen (for a progress bar).
///
/// # Errors
/// When a client cannot connect, or a TCP connection fails mid-run.
pub async fn run(load: &EchoLoad, completed: Arc<AtomicU64>) -> Result<EchoReport, ClientError> {
    connect(load, completed).await.start().await
}

/// Opens every client's connection and waits until all attempts are over;
/// the load starts with [`Connected::start`]. Between the two, a caller can
/// wait for the server to be ready (say, to have accepted every connection).
/// `completed` counts answered requests as they happen.
pub async fn connect(load: &EchoLoad, completed: Arc<AtomicU64>) -> Connected {
    let load = Arc::new(load.clone());
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let (set_deadline, deadline) = watch::channel(None);
    let start = StartLine { arrived, deadline };
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
    Connected { load, clients, set_deadline }
}

/// Clients whose connections are open, waiting to start the load.
#[derive(Debug)]
pub struct Connected {
    load: Arc<EchoLoad>,
    clients: Vec<tokio::task::JoinHandle<Result<ClientResult, ClientError>>>,
    set_deadline: watch::Sender<Option<Instant>>,
}

impl Connected {
    /// Starts the clock, runs the load for its duration and reports.
    ///
    /// # Errors
    /// When a client could not connect, or a TCP connection fails mid-run.
    pub async fn start(self) -> Result<EchoReport, ClientError> {
        let Connected { load, clients, set_deadline } = self;
        let started = Instant::now();
        // Fails only when every client has already ended (none could connect): no one to tell.
        let _ = set_deadline.send(Some(started + load.duration));
        let mut total = ClientResult::new();
        for client in clients {
            let result =
                client.await.map_err(|e| ClientError::Io { addr: load.server, error: e.into() })??;
            total.requests += result.requests;
            total.errors += result.errors;
            // Cannot fail: every histogram has the same bounds.
            let _ = total.histogram.add(&result.histogram);
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(EchoReport {
            server: load.server,
            transport: load.transport,
            connections: load.connections,
            pipeline: load.pipeline,
            request_bytes: load.request.len(),
            requests: total.requests,
            errors: total.errors,
            seconds,
            requests_per_sec: total.requests as f64 / seconds,
            latency: Latency::of(&total.histogram),
        })
    }
}

async fn tcp_client(
    load: &EchoLoad,
    start: StartLine,
    completed: &AtomicU64,
) -> Result<ClientResult, ClientError> {
    let addr = load.server;
    let stream = net::connect_tcp(&[addr], load.timeouts.connect).await;
    let Some(deadline) = start.ready(stream.is_ok()).await else {
        return stream.map(|_| ClientResult::new()).map_err(Into::into);
    };
    let mut stream: TcpStream = stream?;
    let batch = load.request.repeat(load.pipeline);
    let expected = load.response.repeat(load.pipeline);
    let mut answers = vec![0u8; expected.len()];
    let mut result = ClientResult::new();
    let io = |e| ClientError::io(addr, e);
    while Instant::now() < deadline {
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
        }
    }
    Ok(result)
}

async fn udp_client(
    load: &EchoLoad,
    start: StartLine,
    completed: &AtomicU64,
) -> Result<ClientResult, ClientError> {
    let addr = load.server;
    let socket = net::connect_udp(&[addr]).await;
    let Some(deadline) = start.ready(socket.is_ok()).await else {
        return socket.map(|_| ClientResult::new()).map_err(Into::into);
    };
    let socket = socket?;
    let mut buf = vec![0u8; UDP_RECV_BUFFER];
    let mut result = ClientResult::new();
    let io = |e| ClientError::io(addr, e);
    while Instant::now() < deadline {
        let sent = Instant::now();
        for _ in 0..load.pipeline {
            socket.send(&load.request).await.map_err(io)?;
        }
        for _ in 0..load.pipeline {
            // A lost datagram is an error, not the end of the run.
            match tokio::time::timeout(load.timeouts.reply, socket.recv(&mut buf)).await {
                Ok(Ok(len)) if buf[..len] == load.response[..] => {
                    record(&mut result.histogram, sent.elapsed(), 1);
                    result.requests += 1;
                    completed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(_)) | Err(_) => result.errors += 1,
                Ok(Err(e)) => return Err(io(e)),
            }
        }
    }
    Ok(result)
}

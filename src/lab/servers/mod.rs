//! `lab servers`: the same echo workload against a thread-per-connection
//! server and the async server, at rising connection counts.
//!
//! Each measurement starts a fresh server in a child process (so its memory
//! is its own), reads the child's resident and virtual memory and thread
//! count from `/proc/PID/status` before the load and while it runs (keeping
//! the peaks), and drives it with the crate's load generator
//! ([`crate::bench::echo`]): once every connection is open and the server has
//! accepted them all, each sends a request, waits for the echo, and repeats,
//! for a fixed time.
//!
//! Every connection costs a file descriptor on each side, so the experiment
//! raises this process's soft `RLIMIT_NOFILE` to its hard limit (children
//! inherit it) and skips the counts that still do not fit.

mod threaded;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::table::Table;
use super::{ChildTask, LabError, Lesson, SelfExec, cores, thousands};
use crate::bench::echo::{self as load, EchoLoad};
use crate::client::Timeouts;
use crate::net::Transport;
use crate::process::{ProcStatus, raise_fd_limit};
use crate::stats::as_millis;

pub use threaded::{Listening, ServerModel, ThreadedEchoServer, serve};

/// File descriptors kept free beyond one per connection.
const FD_MARGIN: u64 = 64;
/// How often the server's memory is read while the load runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// How long the load waits at most for the server to accept every connection.
const ACCEPT_LIMIT: Duration = Duration::from_secs(10);
/// How long the load waits for the server's connection count to grow again.
const ACCEPT_STALL: Duration = Duration::from_millis(500);
/// How long a server child gets to exit after its stdin closes.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// What to measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServersConfig {
    /// The connection counts, in order.
    pub connections: Vec<usize>,
    /// How long each load runs.
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    /// Request size in bytes.
    pub size: usize,
}

/// One server at one connection count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerRow {
    /// Which server.
    pub model: ServerModel,
    /// Concurrent connections.
    pub connections: usize,
    /// The most connections the server held open at once (from its open files).
    pub served_at_once: u64,
    /// Requests answered correctly.
    pub requests: u64,
    /// Requests answered wrongly.
    pub errors: u64,
    /// Answered requests per second.
    pub requests_per_sec: f64,
    /// The server before any connection.
    pub idle: ProcStatus,
    /// The server's peaks under load.
    pub loaded: ProcStatus,
    /// Resident memory added per connection served at once, KiB.
    pub rss_per_connection_kib: f64,
    /// Virtual memory (address space) added per connection served at once, KiB.
    pub vm_per_connection_kib: f64,
    /// The server's CPU time per answered request, in microseconds: its cost
    /// per request, whatever share of the cores it got.
    pub cpu_us_per_request: f64,
    /// The server's CPU time over the load's wall time: how many cores it kept busy.
    pub cores_used: f64,
    /// Why the load failed, when it did.
    pub failure: Option<String>,
}

/// What `lab servers` measured.
#[derive(Clone, Debug, Serialize)]
pub struct ServersReport {
    /// What was asked.
    pub config: ServersConfig,
    /// Cores on this machine (shared by the servers and the load).
    pub cores: usize,
    /// The soft open-file limit after raising it.
    pub fd_limit: u64,
    /// Connection counts left out because they do not fit in `fd_limit`.
    pub skipped: Vec<usize>,
    /// Every server at every count that fits, threads first.
    pub rows: Vec<ServerRow>,
}

/// Measures both servers at every connection count that fits, smallest
/// first, calling `on_step` before each measurement.
///
/// # Errors
/// When a server child cannot be started or fails. A load that fails (say,
/// the threaded server cannot start more threads) is a result, recorded in
/// [`ServerRow::failure`].
pub async fn run(
    exec: &SelfExec,
    config: ServersConfig,
    mut on_step: impl FnMut(ServerModel, usize),
) -> Result<ServersReport, LabError> {
    let mut config = config;
    config.connections.sort_unstable();
    config.connections.dedup();
    let fd_limit = raise_fd_limit();
    let (fits, skipped): (Vec<usize>, Vec<usize>) =
        config.connections.iter().partition(|&&n| n as u64 + FD_MARGIN <= fd_limit);
    let mut rows = Vec::new();
    for &connections in &fits {
        for model in [ServerModel::Threads, ServerModel::Async] {
            on_step(model, connections);
            rows.push(measure(exec, model, connections, &config).await?);
        }
    }
    Ok(ServersReport { config, cores: cores(), fd_limit, skipped, rows })
}

async fn measure(
    exec: &SelfExec,
    model: ServerModel,
    connections: usize,
    config: &ServersConfig,
) -> Result<ServerRow, LabError> {
    let task = ChildTask::EchoServer { model, max_connections: connections + 16 };
    let mut child = exec.spawn(format!("{model} echo server"), &task)?;
    let mut lines = child.lines::<Listening>();
    let listening = tokio::task::spawn_blocking(move || lines.next())
        .await
        .map_err(|e| LabError::Child { what: format!("{model} echo server"), detail: e.to_string() })?
        .transpose()?
        .ok_or_else(|| LabError::Child {
            what: format!("{model} echo server"),
            detail: "exited before it listened".to_owned(),
        })?;
    let status =
        |pid| ProcStatus::of(pid).map_err(LabError::io(format!("reading the memory of {model} server")));
    let idle = status(listening.pid)?;
    let stop_sampling = CancellationToken::new();
    // Stops the sampler on every way out of here, errors included.
    let _stop_on_return = stop_sampling.clone().drop_guard();
    let sampler = tokio::spawn(sample_peaks(listening.pid, idle, stop_sampling.clone()));
    let mut request = vec![b'x'; config.size.saturating_sub(1)];
    request.push(b'\n');
    let echo_load = EchoLoad {
        server: listening.addr,
        transport: Transport::Tcp,
        connections,
        duration: config.duration,
        pipeline: 1,
        request: request.clone(),
        response: request,
        timeouts: Timeouts { connect: Duration::from_secs(10), reply: Duration::from_secs(5) },
    };
    let connected = load::connect(&echo_load, Arc::new(AtomicU64::new(0))).await;
    wait_until_held(listening.pid, idle.open_files + connections as u64).await;
    let before = status(listening.pid)?;
    tracing::debug!(
        %model,
        held = before.open_files.saturating_sub(idle.open_files),
        connections,
        "starting the load"
    );
    let cpu_before = before.cpu_ms;
    let outcome = connected.start(std::future::pending()).await;
    let cpu_used_ms = status(listening.pid)?.cpu_ms.saturating_sub(cpu_before);
    stop_sampling.cancel();
    let loaded = sampler.await.unwrap_or(idle);
    tokio::task::spawn_blocking(move || child.finish(EXIT_LIMIT))
        .await
        .map_err(|e| LabError::Child { what: format!("{model} echo server"), detail: e.to_string() })??;
    let served_at_once = loaded.open_files.saturating_sub(idle.open_files);
    let per_connection =
        |after: u64, before: u64| after.saturating_sub(before) as f64 / served_at_once.max(1) as f64;
    let (requests, errors, requests_per_sec, seconds, failure) = match outcome {
        Ok(load::Outcome { report, failure }) => (
            report.requests,
            report.errors,
            report.requests_per_sec,
            report.seconds,
            failure.map(|e| e.to_string()),
        ),
        Err(e) => (0, 0, 0.0, 0.0, Some(e.to_string())),
    };
    Ok(ServerRow {
        model,
        connections,
        served_at_once,
        requests,
        errors,
        requests_per_sec,
        idle,
        loaded,
        rss_per_connection_kib: per_connection(loaded.rss_kib, idle.rss_kib),
        vm_per_connection_kib: per_connection(loaded.vm_kib, idle.vm_kib),
        cpu_us_per_request: cpu_used_ms as f64 * 1000.0 / requests.max(1) as f64,
        cores_used: cpu_used_ms as f64 / 1000.0 / seconds.max(1e-3),
        failure,
    })
}

/// Waits until server `pid` holds `open_files` files (every connection
/// accepted), or its count stops growing for [`ACCEPT_STALL`], or
/// [`ACCEPT_LIMIT`] passes. Measures the servers serving rather than the
/// kernel's handshake retransmissions: a connection that overflowed the listen
/// backlog completes only after a retransmit, or (with SYN cookies) only when
/// its client first sends.
async fn wait_until_held(pid: u32, open_files: u64) {
    let started = tokio::time::Instant::now();
    let (mut held, mut grew) = (0, started);
    while started.elapsed() < ACCEPT_LIMIT && grew.elapsed() < ACCEPT_STALL {
        match ProcStatus::of(pid) {
            Ok(now) if now.open_files >= open_files => return,
            Ok(now) if now.open_files > held => (held, grew) = (now.open_files, tokio::time::Instant::now()),
            _ => {}
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

/// Reads `pid`'s status until `stop`, and returns the peaks. A reading that
/// fails is skipped: the process is known to be alive until `stop`.
async fn sample_peaks(pid: u32, start: ProcStatus, stop: CancellationToken) -> ProcStatus {
    let mut peak = start;
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return peak,
            _ = ticks.tick() => if let Ok(now) = ProcStatus::of(pid) {
                peak = peak.peak(now);
            },
        }
    }
}

impl ServersReport {
    /// The largest connection count at which both servers served the load.
    fn largest_shared(&self) -> Option<(&ServerRow, &ServerRow)> {
        let ok = |model, n| {
            self.rows.iter().find(|r| r.model == model && r.connections == n && r.failure.is_none())
        };
        self.config
            .connections
            .iter()
            .rev()
            .find_map(|&n| Some((ok(ServerModel::Threads, n)?, ok(ServerModel::Async, n)?)))
    }
}

impl fmt::Display for ServersReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "echo over loopback TCP: {}-byte requests, one in flight per connection, {} per run; \
             {} cores, open-file limit {}",
            self.config.size,
            humantime::format_duration(self.config.duration),
            self.cores,
            thousands(self.fd_limit)
        )?;
        let mut table = Table::new(&[
            "server",
            "connections",
            "served at once",
            "requests/s",
            "CPU/request",
            "cores used",
            "errors",
            "threads",
            "RSS/conn",
            "virtual/conn",
        ]);
        for r in &self.rows {
            let mut cells = vec![r.model.to_string(), thousands(r.connections as u64)];
            match &r.failure {
                None => cells.extend([
                    thousands(r.served_at_once),
                    thousands(r.requests_per_sec as u64),
                    format!("{:.1} µs", r.cpu_us_per_request),
                    format!("{:.2}", r.cores_used),
                    thousands(r.errors),
                    thousands(r.loaded.threads),
                    format!("{:.1} KiB", r.rss_per_connection_kib),
                    format!("{:.1} MiB", r.vm_per_connection_kib / 1024.0),
                ]),
                Some(e) => cells.push(format!("failed: {e}")),
            }
            table.row(cells);
        }
        write!(f, "{table}")?;
        if !self.skipped.is_empty() {
            let skipped: Vec<String> = self.skipped.iter().map(|&n| thousands(n as u64)).collect();
            write!(
                f,
                "\nskipped {} connections: each needs that many open files plus {FD_MARGIN}, and the limit is {} \
                 (raise the hard limit: ulimit -Hn)",
                skipped.join(", "),
                thousands(self.fd_limit)
            )?;
        }
        Ok(())
    }
}

impl Lesson for ServersReport {
    fn lesson(&self) -> String {
        let Some((threads, tasks)) = self.largest_shared() else {
            return "No connection count was served by both servers, so there is nothing to compare; \
                    see the failures above."
                .to_owned();
        };
        let mut text = format!(
            "Asked for {} connections, the thread-per-connection server held {} at once with up to {} \
             threads: per connection its address space grew by {:.1} MiB (mostly the thread's stack \
             reservation) and its resident memory by {:.1} KiB, plus a kernel stack not counted here. The \
             async server held {} at once with {} threads, at {:.1} KiB per connection.",
            thousands(threads.connections as u64),
            thousands(threads.served_at_once),
            thousands(threads.loaded.threads),
            threads.vm_per_connection_kib / 1024.0,
            threads.rss_per_connection_kib,
            thousands(tasks.served_at_once),
            tasks.loaded.threads,
            tasks.rss_per_connection_kib,
        );
        text.push_str(&format!(
            " Per request the threaded server spent {:.1} µs of CPU against {:.1} µs for async: waking a thread \
             per request costs more than an event loop that handles every ready socket in one pass. Requests per second \
             ({} with threads, {} with async) depend mostly on how the shared {} cores were split between \
             the servers, the load generator and anything else running (see cores used), and move from run \
             to run.",
            threads.cpu_us_per_request,
            tasks.cpu_us_per_request,
            thousands(threads.requests_per_sec as u64),
            thousands(tasks.requests_per_sec as u64),
            self.cores,
        ));
        text.push_str(
            " A thread per connection is simple and fine for tens or hundreds of clients, but every \
             connection costs a stack, a kernel thread and scheduling work, while a task costs little more \
             than its buffer.",
        );
        text
    }
}

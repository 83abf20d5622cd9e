//! `socketeer bench`: load generators.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::fmt;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use socketeer::bench::chat::{self, ChatLoad, ChatReport, Wire};
use socketeer::bench::echo::{self, EchoLoad, REDIS_PING, REDIS_PONG};
use socketeer::bench::impair::ImpairBench;
use socketeer::bench::transfer::{TransferBench, TransferRow};
use socketeer::client::Timeouts;
use socketeer::net::{MAX_UDP_PAYLOAD, Target, Transport};
use socketeer::plot::{self, Axes, Series};
use socketeer::process::ProcStatus;
use socketeer::transfer::Protocol;

use super::args::{UsageError, positive_duration, size, size_in};
use super::output::{Output, check_writable, write_replacing};

/// Load generators.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Request/response load on an echo server (or Redis PING with --redis).
    #[command(after_help = "Examples:\n  socketeer bench echo localhost --connections 50 --duration 5s\n  \
                            socketeer bench echo localhost:6379 --redis --json")]
    Echo(EchoArgs),
    /// Fan-out load on a chat server (or Redis pub/sub with --redis): deliveries/s, latency, exactly-once.
    #[command(
        after_help = "Examples:\n  socketeer chat serve --port 5556 --rate-limit off --max-per-ip off &   # no per-client limits\n  \
                            socketeer bench chat localhost:5556 --clients 100 --senders 1 --duration 5s\n  \
                            socketeer bench chat localhost:5556 --clients 100 --rate 1000 --json\n  \
                            socketeer bench chat localhost:6379 --redis --clients 100\n  \
                            socketeer bench chat localhost:6667 --irc --clients 100   # any IRC server (ngircd)\n  \
                            socketeer bench chat localhost:5555 localhost:5556 --rate 1000   # two nodes of a cluster\n  \
                            socketeer bench chat localhost:5556 --clients 20 --stalled 1   # one client that never reads\n  \
                            socketeer bench chat localhost:5556 --clients 20 --burst 20000   # one burst, 19 readers"
    )]
    Chat(ChatArgs),
    /// Measure the impairment proxy: forwarding rate, windowed flows, delay precision, rate limits.
    #[command(
        after_help = "Examples:\n  socketeer bench impair\n  socketeer bench impair --scenario delay,rate --duration 3s --json"
    )]
    Impair(ImpairArgs),
    /// Measure file transfer goodput: each protocol direct, through the proxy with loss, and --sweep against the textbook bounds.
    #[command(after_help = "Examples:\n  socketeer bench transfer\n  \
                            socketeer bench transfer --size 10MB --sweep --plot docs/transfer-goodput.svg --json")]
    Transfer(TransferArgs),
}

/// Arguments of `bench transfer`.
#[derive(Debug, clap::Args)]
pub struct TransferArgs {
    /// Content size of each direct and proxied run.
    #[arg(long, value_name = "SIZE", default_value = "50MB", value_parser = size)]
    size: u64,
    /// Block size.
    #[arg(long, value_name = "SIZE", default_value = "1400", value_parser = size_in::<u16>(1, u16::MAX.into()))]
    block: u16,
    /// Window of Go-Back-N and selective repeat.
    #[arg(short, long, value_name = "N", default_value_t = 256)]
    window: u32,
    /// Also sweep loss rates with a delay and compare with the textbook bounds.
    #[arg(long)]
    sweep: bool,
    /// The sweep's delay, added each way.
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = positive_duration)]
    sweep_delay: Duration,
    /// The sweep's window for Go-Back-N and selective repeat.
    #[arg(long, value_name = "N", default_value_t = 32)]
    sweep_window: u32,
    /// Runs of each direct and proxied measurement; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Draw the sweep (goodput vs loss, one line per protocol, bounds dashed) into this SVG file.
    #[arg(long, value_name = "FILE.svg", requires = "sweep")]
    plot: Option<PathBuf>,
    /// Print each row as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `bench impair`.
#[derive(Debug, clap::Args)]
pub struct ImpairArgs {
    /// Length of each measurement.
    #[arg(short, long, value_name = "DURATION", default_value = "2s", value_parser = positive_duration)]
    duration: Duration,
    /// Run only these scenarios, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = ["forward", "window", "delay", "rate", "tun-forward", "tun-delay"])]
    scenario: Vec<String>,
    /// Run the proxy in the real-time scheduling class for the delay and rate
    /// scenarios (needs root or CAP_SYS_NICE); throughput is measured without it.
    #[arg(long)]
    realtime: bool,
    /// Print each row as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `bench chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The server, as HOST or HOST:PORT (port 5555, or 6379 with --redis, when left out);
    /// several: the nodes of one chat cluster, the clients spread over them in turn.
    #[arg(required = true, num_args = 1.., value_name = "TARGET")]
    targets: Vec<Target>,
    /// Connections that receive messages.
    #[arg(short, long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Connections that send (among the clients on a chat server; more connections on Redis).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    senders: u32,
    /// More connections that never read, to see what the server does with them.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    stalled: u32,
    /// Message size (the payload, without the protocol's framing): 64, 1KiB.
    #[arg(short, long, value_name = "SIZE", default_value = "64",
          value_parser = size_in::<u32>(chat::MAX_HEADER as u64, 1 << 20))]
    size: u32,
    /// Messages per second from all senders together; as fast as the window allows when left out.
    #[arg(short, long, value_parser = positive_rate)]
    rate: Option<f64>,
    /// Each sender writes this many messages at once, as fast as the socket takes them, then
    /// stops (a burst: what a server does with readers that cannot keep up for a moment).
    #[arg(long, value_name = "N", conflicts_with = "rate",
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    burst: Option<u64>,
    /// Messages each sender may have in flight (sent, not yet received by all), without --rate.
    #[arg(short, long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    window: u32,
    /// How long the senders send (or the connections are held, with no senders).
    #[arg(short, long, value_name = "DURATION", default_value = "5s", value_parser = positive_duration)]
    duration: Duration,
    /// Speak Redis pub/sub (SUBSCRIBE and PUBLISH) to a redis-server, for comparison.
    #[arg(long, conflicts_with = "irc")]
    redis: bool,
    /// Speak IRC (register, JOIN #lobby, PRIVMSG #lobby), to socketeer's chat or any IRC server.
    #[arg(long)]
    irc: bool,
    /// How long to wait for connections, and for the last messages after the senders stop.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = positive_duration)]
    timeout: Duration,
    /// The server's process id: report its memory and CPU use (Linux).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("'{s}' is not a rate above zero (messages per second)")),
    }
}

/// Arguments of `bench echo`.
#[derive(Debug, clap::Args)]
pub struct EchoArgs {
    /// The server, as HOST or HOST:PORT (port 7007 when left out).
    target: Target,
    /// Concurrent connections (or UDP sockets).
    #[arg(short, long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// How long to run.
    #[arg(short, long, value_name = "DURATION", default_value = "5s", value_parser = positive_duration)]
    duration: Duration,
    /// Request size (a line of 'x' ending in a newline): 64, 1KiB.
    #[arg(short, long, value_name = "SIZE", default_value = "64",
          value_parser = size_in::<u32>(1, MAX_UDP_PAYLOAD as u64), conflicts_with = "redis")]
    size: u32,
    /// Requests each connection keeps in flight.
    #[arg(short, long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pipeline: u32,
    /// Use UDP instead of TCP.
    #[arg(long)]
    udp: bool,
    /// Send Redis's PING and expect +PONG, to load a redis-server for comparison.
    #[arg(long)]
    redis: bool,
    /// How long to wait for each reply before counting an error.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = positive_duration)]
    timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `bench` command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Echo(args) => echo(args).await,
        Command::Transfer(args) => transfer(args).await,
        Command::Chat(args) => bench_chat(args).await,
        Command::Impair(args) => {
            let out = Output::new(args.json);
            let bench =
                ImpairBench { duration: args.duration, scenarios: args.scenario, realtime: args.realtime };
            out.note(format_args!(
                "{:<10} {:<26} {:>12} {:<14} notes",
                "scenario", "setting", "measured", "unit"
            ))?;
            // The scenarios drive blocking sockets and spin: keep them off the async workers.
            tokio::task::spawn_blocking(move || bench.run(|row| out.emit("row", &row))).await??;
            Ok(())
        }
    }
}

async fn transfer(args: TransferArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.plot {
        check_writable(path)?;
    }
    let out = Output::new(args.json);
    let bench = TransferBench {
        size: usize::try_from(args.size)?,
        block: args.block,
        window: args.window,
        sweep: args.sweep,
        sweep_delay: args.sweep_delay,
        sweep_window: args.sweep_window,
        rounds: args.rounds as usize,
    };
    let rows = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::new();
        bench.run(|row| {
            out.emit("row", &row)?;
            rows.push(row);
            Ok(())
        })?;
        Ok::<_, std::io::Error>(rows)
    })
    .await??;
    if let Some(path) = args.plot {
        write_replacing(&path, &sweep_plot(&rows, args.sweep_delay))?;
        out.note(format_args!("plot written to {}", path.display()))?;
    }
    Ok(())
}

/// Goodput against loss, measured (dots) and bound (dashed), per protocol.
fn sweep_plot(rows: &[TransferRow], delay: Duration) -> String {
    let mut series = Vec::new();
    for (group, protocol) in Protocol::ALL.into_iter().enumerate() {
        let points: Vec<&TransferRow> =
            rows.iter().filter(|r| r.scenario == "sweep" && r.protocol == protocol).collect();
        let window = points.first().map_or(1, |r| r.window);
        let name = format!("{protocol} (W={window})");
        series.push(Series {
            label: name.clone(),
            points: points.iter().map(|r| (r.loss_percent, r.goodput_mb_s)).collect(),
            group,
            dashed: false,
        });
        series.push(Series {
            label: format!("bound, {name}"),
            points: points.iter().filter_map(|r| Some((r.loss_percent, r.bound_mb_s?))).collect(),
            group,
            dashed: true,
        });
    }
    let axes =
        Axes { x_label: "DATA loss (%)".into(), y_label: "goodput (MB/s, log scale)".into(), y_log: true };
    let subtitle = format!(
        "through socketeer impair on loopback, {} each way; measured dots, textbook bounds dashed",
        humantime::format_duration(delay)
    );
    plot::lines("Goodput against loss: stop-and-wait, Go-Back-N, selective repeat", &subtitle, &axes, &series)
}

async fn echo(args: EchoArgs) -> anyhow::Result<()> {
    let server = args.target.resolve(socketeer::echo::DEFAULT_PORT).await?[0];
    let (request, response) = if args.redis {
        (REDIS_PING.to_vec(), REDIS_PONG.to_vec())
    } else {
        let mut line = vec![b'x'; args.size as usize - 1];
        line.push(b'\n');
        (line.clone(), line)
    };
    let load = EchoLoad {
        server,
        transport: if args.udp { Transport::Udp } else { Transport::Tcp },
        connections: args.connections as usize,
        duration: args.duration,
        pipeline: args.pipeline as usize,
        request,
        response,
        timeouts: Timeouts { connect: Duration::from_secs(3), reply: args.timeout },
    };
    let completed = Arc::new(AtomicU64::new(0));
    let bar = ProgressBar::new(args.duration.as_millis() as u64);
    let ticker = tick_progress(bar.clone(), completed.clone(), "requests");
    // Ctrl-C ends the run early with the numbers so far; listening from the
    // start, so an early one is not the default (fatal) action.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let interrupted = async move {
        sigint.recv().await;
    };
    let outcome = echo::run(&load, completed, interrupted).await;
    ticker.abort();
    bar.finish_and_clear();
    let echo::Outcome { report, failure } = outcome?;
    Output::new(args.json).emit("report", &report)?;
    let expected = if args.redis { "a Redis server" } else { "an echo server" };
    match failure {
        Some(failure @ (echo::Failure::NoMatch { .. } | echo::Failure::NoReply { .. })) => {
            Err(anyhow::anyhow!("{failure}; is {} {expected}?", report.server))
        }
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}

/// Moves `bar` (on stderr, hidden when stderr is not a terminal) with the
/// elapsed time and shows how many `unit` (requests, deliveries) so far.
fn tick_progress(
    bar: ProgressBar,
    completed: Arc<AtomicU64>,
    unit: &'static str,
) -> tokio::task::JoinHandle<()> {
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval(Duration::from_millis(200));
        loop {
            ticks.tick().await;
            bar.set_position(started.elapsed().as_millis() as u64);
            bar.set_message(format!("{} {unit}", completed.load(Ordering::Relaxed)));
        }
    })
}

/// The chat load's report, and the server's resource use when its pid was given.
#[derive(Serialize)]
struct ChatOutcome {
    #[serde(flatten)]
    report: ChatReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_usage: Option<ServerUsage>,
}

/// What the server process used, from `/proc`.
#[derive(Serialize)]
struct ServerUsage {
    /// Resident memory before the clients connected.
    rss_kib_before: u64,
    /// Resident memory once all had joined.
    rss_kib_joined: u64,
    /// The most resident memory seen during the run.
    rss_kib_peak: u64,
    /// (joined - before) / connections.
    rss_kib_per_connection: f64,
    /// CPU time used while the senders sent, user and system.
    cpu_seconds: f64,
}

impl fmt::Display for ChatOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.report)?;
        if let Some(usage) = &self.server_usage {
            write!(
                f,
                "\nserver memory KiB: {} before, {} joined ({:.1} per connection), {} peak; CPU {:.2} s",
                usage.rss_kib_before,
                usage.rss_kib_joined,
                usage.rss_kib_per_connection,
                usage.rss_kib_peak,
                usage.cpu_seconds
            )?;
        }
        Ok(())
    }
}

/// How long to let a server settle after the clients joined before reading its memory.
const SETTLE: Duration = Duration::from_millis(300);
/// How often the server's memory is read during the run.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

async fn bench_chat(args: ChatArgs) -> anyhow::Result<()> {
    let default_port = if args.redis { 6379 } else { socketeer::chat::DEFAULT_PORT };
    let mut servers = Vec::new();
    for target in &args.targets {
        servers.push(target.resolve(default_port).await?[0]);
    }
    let load = ChatLoad {
        servers,
        wire: match (args.redis, args.irc) {
            (true, _) => Wire::Redis,
            (false, true) => Wire::Irc,
            (false, false) => Wire::Chat,
        },
        clients: args.clients as usize,
        senders: args.senders as usize,
        stalled: args.stalled as usize,
        size: args.size as usize,
        rate: args.rate,
        burst: args.burst,
        window: args.window as usize,
        duration: args.duration,
        timeouts: Timeouts { connect: args.timeout, reply: args.timeout },
    };
    let needed = (load.clients + load.senders + load.stalled) as u64 + 64;
    let limit = socketeer::process::raise_fd_limit();
    if limit < needed {
        return Err(UsageError(format!(
            "{needed} connections need more open files than the limit of {limit}; raise it with ulimit -n"
        ))
        .into());
    }
    let status = |pid: u32| {
        ProcStatus::of(pid).map_err(|e| anyhow::anyhow!("reading the memory of server process {pid}: {e}"))
    };
    let before = args.server_pid.map(status).transpose()?;
    let delivered = Arc::new(AtomicU64::new(0));
    let connected = chat::connect(&load, delivered.clone()).await.map_err(|e| match e {
        chat::LoadError::Limited { .. } => anyhow::anyhow!("{e}; {UNLIMITED_SERVER}"),
        chat::LoadError::Client(e) => e.into(),
    })?;
    let joined = match args.server_pid {
        Some(pid) => {
            tokio::time::sleep(SETTLE).await;
            Some(status(pid)?)
        }
        None => None,
    };
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = args.server_pid.map(|pid| tokio::spawn(track_peak_rss(pid, peak.clone())));
    let bar = ProgressBar::new(args.duration.as_millis() as u64);
    let ticker = tick_progress(bar.clone(), delivered, "deliveries");
    let report = connected.start().await;
    ticker.abort();
    bar.finish_and_clear();
    let server_usage = match (args.server_pid, before, joined, sampler) {
        (Some(pid), Some(before), Some(joined), Some(sampler)) => {
            let after = status(pid)?;
            sampler.abort();
            let peak = peak.load(Ordering::Relaxed).max(after.rss_kib).max(joined.rss_kib);
            let connections = (load.clients + load.senders + load.stalled) as f64;
            Some(ServerUsage {
                rss_kib_before: before.rss_kib,
                rss_kib_joined: joined.rss_kib,
                rss_kib_peak: peak,
                rss_kib_per_connection: joined.rss_kib.saturating_sub(before.rss_kib) as f64 / connections,
                cpu_seconds: after.cpu_ms.saturating_sub(joined.cpu_ms) as f64 / 1000.0,
            })
        }
        _ => None,
    };
    let outcome = ChatOutcome { report: report?, server_usage };
    Output::new(args.json).emit("report", &outcome)?;
    let report = &outcome.report;
    if report.exactly_once_in_order {
        return Ok(());
    }
    let failed = format!(
        "not every message reached every recipient exactly once, in order ({} missing, {} out of order)",
        report.missing, report.out_of_order
    );
    match &report.first_error {
        Some(notice) if report.server_limited > 0 => {
            anyhow::bail!("{failed}; the server held the load back ({notice}): {UNLIMITED_SERVER}")
        }
        Some(notice) => anyhow::bail!("{failed}; the server said: {notice}"),
        None => anyhow::bail!("{failed}"),
    }
}

/// What to do when a chat server's per-client limits get in a benchmark's way.
const UNLIMITED_SERVER: &str =
    "for benchmarks, start the server with `socketeer chat serve --rate-limit off --max-per-ip off`";

/// Keeps `peak` at the largest resident memory of process `pid` seen, in
/// KiB, until aborted.
async fn track_peak_rss(pid: u32, peak: Arc<AtomicU64>) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    loop {
        ticks.tick().await;
        if let Ok(now) = ProcStatus::of(pid) {
            peak.fetch_max(now.rss_kib, Ordering::Relaxed);
        }
    }
}

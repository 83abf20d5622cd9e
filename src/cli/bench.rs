//! `socketeer bench`: load generators.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use socketeer::bench::echo::{self, EchoLoad, REDIS_PING, REDIS_PONG};
use socketeer::bench::impair::ImpairBench;
use socketeer::bench::transfer::{TransferBench, TransferRow};
use socketeer::client::Timeouts;
use socketeer::impair::units::parse_size as parse_units_size;
use socketeer::net::{MAX_UDP_PAYLOAD, Target, Transport};
use socketeer::plot::{self, Axes, Series};
use socketeer::transfer::Protocol;

use super::args::positive_duration;
use super::output::{Output, check_writable, write_replacing};

/// Load generators.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Request/response load on an echo server (or Redis PING with --redis).
    #[command(after_help = "Examples:\n  socketeer bench echo localhost --connections 50 --duration 5s\n  \
                            socketeer bench echo localhost:6379 --redis --json")]
    Echo(EchoArgs),
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
    #[arg(long, default_value = "50MB", value_parser = parse_size)]
    size: u64,
    /// Block size.
    #[arg(long, default_value_t = 1400)]
    block: u16,
    /// Window of Go-Back-N and selective repeat.
    #[arg(short, long, default_value_t = 256)]
    window: u32,
    /// Also sweep loss rates with a delay and compare with the textbook bounds.
    #[arg(long)]
    sweep: bool,
    /// The sweep's delay, added each way.
    #[arg(long, default_value = "1ms", value_parser = positive_duration)]
    sweep_delay: Duration,
    /// The sweep's window for Go-Back-N and selective repeat.
    #[arg(long, default_value_t = 32)]
    sweep_window: u32,
    /// Runs of each direct and proxied measurement; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
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
    #[arg(short, long, default_value = "2s", value_parser = positive_duration)]
    duration: Duration,
    /// Run only these scenarios, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = ["forward", "window", "delay", "rate"])]
    scenario: Vec<String>,
    /// Run the proxy in the real-time scheduling class (needs root or CAP_SYS_NICE).
    #[arg(long)]
    realtime: bool,
    /// Print each row as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `bench echo`.
#[derive(Debug, clap::Args)]
pub struct EchoArgs {
    /// The server, as HOST or HOST:PORT (port 7007 when left out).
    target: Target,
    /// Concurrent connections (or UDP sockets).
    #[arg(short, long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// How long to run.
    #[arg(short, long, default_value = "5s", value_parser = positive_duration)]
    duration: Duration,
    /// Request size in bytes (a line of 'x' ending in a newline).
    #[arg(short, long, default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=MAX_UDP_PAYLOAD as i64), conflicts_with = "redis")]
    size: u32,
    /// Requests each connection keeps in flight.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pipeline: u32,
    /// Use UDP instead of TCP.
    #[arg(long)]
    udp: bool,
    /// Send Redis's PING and expect +PONG, to load a redis-server for comparison.
    #[arg(long)]
    redis: bool,
    /// How long to wait for each reply before counting an error.
    #[arg(long, default_value = "2s", value_parser = positive_duration)]
    timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    parse_units_size(s).map_err(|e| e.to_string())
}

/// Runs a `bench` command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Echo(args) => echo(args).await,
        Command::Transfer(args) => transfer(args).await,
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
    let ticker = tick_progress(bar.clone(), completed.clone());
    let report = echo::run(&load, completed).await;
    ticker.abort();
    bar.finish_and_clear();
    Output::new(args.json).emit("report", &report?)?;
    Ok(())
}

/// Moves `bar` (on stderr, hidden when stderr is not a terminal) with the
/// elapsed time and shows the requests so far.
fn tick_progress(bar: ProgressBar, completed: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
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
            bar.set_message(format!("{} requests", completed.load(Ordering::Relaxed)));
        }
    })
}
